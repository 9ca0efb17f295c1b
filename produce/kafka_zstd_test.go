package produce

import (
	"bytes"
	"context"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shoal-scraper/shoal/internal/yieldtest"
)

// The batch compressor writes zstd that Kafka clients decode, sees matches
// across the whole batch (kgo's own sees 64 KiB back), and leaves batches
// for brokers too old for zstd uncompressed.
func TestBatchCompressor(t *testing.T) {
	c := newBatchCompressor(zstd.SpeedDefault)
	decode := func(t *testing.T, b []byte) []byte {
		t.Helper()
		out, err := kgo.DefaultDecompressor().Decompress(b, kgo.CodecZstd)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	t.Run("round trip", func(t *testing.T) {
		var src []byte
		enc := NewEncoder(RW2)
		for _, f := range fleetScrapes(t, 40) {
			src = enc.Append(src, f[0])
		}
		var dst bytes.Buffer
		out, codec := c.Compress(&dst, src)
		if codec != kgo.CodecZstd {
			t.Fatalf("codec %v, want zstd", codec)
		}
		if !bytes.Equal(decode(t, out), src) {
			t.Fatal("decompressed batch differs from the input")
		}
		if len(out)*10 > len(src) {
			t.Errorf("40 hosts' scrapes compressed %d → %d bytes, want at least 10×", len(src), len(out))
		}
	})

	t.Run("window", func(t *testing.T) {
		// 200 KB of noise, then the same again: with the whole batch in
		// the window the repeat costs almost nothing.
		block := make([]byte, 200<<10)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range block {
			block[i] = byte(r.Uint32())
		}
		src := append(append([]byte{}, block...), block...)
		var dst bytes.Buffer
		out, _ := c.Compress(&dst, src)
		if !bytes.Equal(decode(t, out), src) {
			t.Fatal("decompressed batch differs from the input")
		}
		if len(out) > len(block)+len(block)/20 {
			t.Errorf("a 200 KB block repeated 200 KB later compressed to %d bytes: the window does not reach it", len(out))
		}
	})

	t.Run("zstd disabled", func(t *testing.T) {
		src := []byte("produce request before v7")
		var dst bytes.Buffer
		out, codec := c.Compress(&dst, src, kgo.CompressDisableZstd)
		if codec != kgo.CodecNone || !bytes.Equal(out, src) {
			t.Errorf("codec %v, %q; want the batch uncompressed", codec, out)
		}
	})
}

// Every compression reaches consumers intact, and the level is applied:
// none puts the records' bytes on the wire, zstd-fastest batches larger
// than zstd's, both far smaller than none.
// On one P the compressor lets other goroutines run between blocks: the
// timing wheel, whose timers fall due while a batch is compressed, must
// not wait for the whole batch (3 to 6 ms at the default level; the
// runtime preempts only after 10 ms). A goroutine that yields whenever it
// runs counts its turns during one Compress of a full batch: it gets one
// per block boundary.
func TestBatchCompressorYields(t *testing.T) {
	var src []byte
	enc := NewEncoder(RW2)
	for _, f := range fleetScrapes(t, 40) {
		src = enc.Append(src, f[0])
	}
	c := newBatchCompressor(zstd.SpeedDefault)
	var dst bytes.Buffer
	var codec kgo.CompressionCodecType
	got := yieldtest.Turns(func() { _, codec = c.Compress(&dst, src) })
	if codec != kgo.CodecZstd {
		t.Fatalf("codec %v, want zstd", codec)
	}
	// Allow a turn or two to another goroutine (a collection's worker, a
	// timer); without the yields the counter got none.
	if want := int64(len(src)/compressChunk) - 2; got < want {
		t.Errorf("another goroutine ran %d times while a %d-byte batch was compressed on one P, want at least %d (once per %d-byte block)", got, len(src), want, compressChunk)
	}
}

func TestKafkaCompression(t *testing.T) {
	fleet := fleetScrapes(t, 24)
	raw := map[Compression]float64{}
	wire := map[Compression]float64{}
	for _, comp := range []Compression{Zstd, ZstdFastest, NoCompression} {
		t.Run(comp.String(), func(t *testing.T) {
			c := newCluster(t)
			// Long lingers, the sink's and kgo's: every scrape is handed
			// over at Close and kgo holds each partition's records until
			// Close flushes them, so each partition's records make one batch
			// however slow the machine (under -race kgo's own 10 ms linger
			// split one).
			k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) {
				c.Compression, c.Linger = comp, time.Hour
				c.ClientOpts = append(c.ClientOpts, kgo.ProducerLinger(time.Minute))
			})
			byKey := map[string]*Scrape{}
			for _, f := range fleet {
				byKey[f[0].Key] = f[0]
				if err := k.Write(f[0]); err != nil {
					t.Fatal(err)
				}
			}
			if err := k.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			recs := consumeTopic(t, c.ListenAddrs(), testTopic, len(fleet), 10*time.Second)
			if len(recs) != len(fleet) {
				t.Fatalf("%d records, want %d", len(recs), len(fleet))
			}
			for _, r := range recs {
				s := byKey[string(r.Key)]
				if s == nil {
					t.Fatalf("record of unknown key %q", r.Key)
				}
				sameSamples(t, decodeRecord(t, r), s.Samples)
			}
			if got := k.counter(t, "batches"); got > 3 {
				t.Errorf("%v batches for 3 partitions: the test wants one per partition", got)
			}
			raw[comp], wire[comp] = k.counter(t, "bytes"), k.counter(t, "compressed")
		})
	}
	if t.Failed() {
		return
	}
	t.Logf("value bytes %v; on the wire: zstd %v, zstd-fastest %v, none %v", raw[Zstd], wire[Zstd], wire[ZstdFastest], wire[NoCompression])
	if wire[NoCompression] < raw[NoCompression] {
		t.Errorf("none: %v bytes on the wire for %v bytes of values", wire[NoCompression], raw[NoCompression])
	}
	if wire[Zstd]*5 > raw[Zstd] || wire[ZstdFastest]*5 > raw[ZstdFastest] {
		t.Errorf("zstd %v, zstd-fastest %v bytes on the wire for %v bytes of values: want a fifth at most", wire[Zstd], wire[ZstdFastest], raw[Zstd])
	}
	if wire[ZstdFastest] <= wire[Zstd] {
		t.Errorf("zstd-fastest %v bytes on the wire, zstd %v: the fastest level compresses as well, so it is not applied", wire[ZstdFastest], wire[Zstd])
	}
}

func TestParseCompression(t *testing.T) {
	for _, c := range []Compression{Zstd, ZstdFastest, NoCompression} {
		if got, err := ParseCompression(c.String()); err != nil || got != c {
			t.Errorf("ParseCompression(%q) = %v, %v", c.String(), got, err)
		}
	}
	if _, err := ParseCompression("gzip"); err == nil || !strings.Contains(err.Error(), `"gzip": want zstd, zstd-fastest or none`) {
		t.Errorf("ParseCompression(gzip): %v", err)
	}
}

// BenchmarkCompressYield measures what compressing batches does to a timer
// due meanwhile on one P, as the timing wheel's are: a goroutine sleeps
// 200 µs at a time and records how late it wakes, while the benchmark
// compresses full batches (40 node_exporter scrapes of different hosts,
// rw2, about 1 MB) at the default level.
//
//   - comp=encodeall: EncodeAll over the whole batch, as the sink did
//     before its compressor yielded between blocks.
//   - comp=sink: the sink's batchCompressor.
//
// late-p99-ms and late-max-ms are the timer's lateness: on one P, the
// longest stretches the compressor kept the P. zB/sample shows that both
// make the same batch.
//
//	go test ./produce -run '^$' -bench BenchmarkCompressYield -count 5 | tee yield.txt
//	benchstat -col /comp yield.txt
func BenchmarkCompressYield(b *testing.B) {
	var src []byte
	enc := NewEncoder(RW2)
	fleet := fleetScrapes(b, 40)
	for _, f := range fleet {
		src = enc.Append(src, f[0])
	}
	samples := float64(len(fleet) * len(fleet[0][0].Samples))
	zw, err := zstd.NewWriter(nil, zstd.WithWindowSize(zstdWindow), zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
	if err != nil {
		b.Fatal(err)
	}
	defer zw.Close()
	sink := newBatchCompressor(zstd.SpeedDefault)
	comps := []struct {
		name     string
		compress func(dst *bytes.Buffer) []byte
	}{
		{"encodeall", func(dst *bytes.Buffer) []byte { return zw.EncodeAll(src, dst.Bytes()[:0]) }},
		{"sink", func(dst *bytes.Buffer) []byte { out, _ := sink.Compress(dst, src); return out }},
	}
	for _, c := range comps {
		b.Run("comp="+c.name, func(b *testing.B) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			const tick = 200 * time.Microsecond
			lates := make([]time.Duration, 0, 1<<16)
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
					}
					t0 := time.Now()
					time.Sleep(tick)
					if len(lates) < cap(lates) {
						lates = append(lates, time.Since(t0)-tick)
					}
				}
			}()
			var dst bytes.Buffer
			var out []byte
			for b.Loop() {
				out = c.compress(&dst)
			}
			close(stop)
			<-done
			slices.Sort(lates)
			if len(lates) > 0 {
				b.ReportMetric(float64(lates[len(lates)*99/100].Microseconds())/1e3, "late-p99-ms")
				b.ReportMetric(float64(lates[len(lates)-1].Microseconds())/1e3, "late-max-ms")
			}
			b.ReportMetric(float64(len(out))/samples, "zB/sample")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/samples, "ns/sample")
		})
	}
}
