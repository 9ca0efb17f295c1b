package produce

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// zstdWindow is the window of the batch compressor: large enough to see a
// whole default batch (kgo's batches are at most ProducerBatchMaxBytes,
// 1,000,012 bytes for the default MaxRecordBytes). Larger batches only
// come with larger records, which compress mostly within themselves.
const zstdWindow = 1 << 20

// Compression is how the Kafka sink compresses record batches
// (KafkaConfig.Compression). The zero value means the default, Zstd.
type Compression uint8

const (
	// Zstd: zstd at its default level (zstd's level 3), the smallest
	// batches for their CPU.
	Zstd Compression = iota + 1
	// ZstdFastest: zstd's fastest level. On full batches of node_exporter
	// scrapes the whole sink (encode, queue, kgo, zstd, produce) took about
	// a sixth less CPU per sample and the batches came out about a sixth
	// larger (BenchmarkKafkaSink; README, Compression): for scrapers
	// whose CPU costs more than the brokers' disks and network.
	ZstdFastest
	// NoCompression: batches go uncompressed, about 50 bytes per sample
	// in rw2, 15 times what zstd makes of full batches; for topics whose
	// brokers compress themselves (compression.type), or tests.
	NoCompression
)

// ParseCompression parses a compression as a flag spells it: "zstd",
// "zstd-fastest" or "none". The error names the accepted values.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "zstd":
		return Zstd, nil
	case "zstd-fastest":
		return ZstdFastest, nil
	case "none":
		return NoCompression, nil
	}
	return 0, fmt.Errorf("parse compression %q: want zstd, zstd-fastest or none", s)
}

// String returns the name ParseCompression reads back, or
// "Compression(N)" for anything else.
func (c Compression) String() string {
	switch c {
	case Zstd:
		return "zstd"
	case ZstdFastest:
		return "zstd-fastest"
	case NoCompression:
		return "none"
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

// kgoOpts returns the client options that compress batches as c says.
// The only compression layer: record values are plain protobuf, and
// batches get zstd with a window spanning the whole batch (see
// batchCompressor). The codec option is what kgo would use without
// WithCompressor (its default is snappy).
func (c Compression) kgoOpts() []kgo.Opt {
	switch c {
	case NoCompression:
		return []kgo.Opt{kgo.ProducerBatchCompression(kgo.NoCompression())}
	case ZstdFastest:
		return []kgo.Opt{kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.WithCompressor(newBatchCompressor(zstd.SpeedFastest))}
	}
	return []kgo.Opt{kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.WithCompressor(newBatchCompressor(zstd.SpeedDefault))}
}

// batchCompressor is the sink's kgo.Compressor: zstd, like
// kgo.ZstdCompression(), but with a window that spans the whole batch.
//
// Why not kgo's own: it fixes the window at 64 KiB, and a node_exporter
// scrape is a 25 KB record in rw2, so a record could only refer back to
// the two before it. What makes a batch of many targets small is that
// every record shares its symbols, label references and many values with
// the others; with the whole batch in the window a batch of 40
// node_exporter scrapes of different hosts costs 3.3 B/sample instead of
// 4.9 (BenchmarkBatchZstd), and the sink as a whole takes a quarter less
// CPU (BenchmarkKafkaSink: longer matches, fewer sequences to code).
// The level is SpeedDefault, or SpeedFastest with ZstdFastest (see
// Compression for what each costs); SpeedBetterCompression and
// SpeedBestCompression came out larger than the default on these batches,
// and slower, so they are not offered.
//
// The frame has no content checksum: the record batch's CRC-32C already
// covers the compressed bytes, and Kafka's Java producer writes none
// either. Decoders must accept a 1 MiB window; the zstd format (RFC 8878)
// recommends that every decoder accept at least 8 MiB.
type batchCompressor struct {
	encs sync.Pool // *zstd.Encoder; EncodeAll on one encoder is not concurrent
}

func newBatchCompressor(level zstd.EncoderLevel) *batchCompressor {
	c := &batchCompressor{}
	c.encs.New = func() any {
		e, err := zstd.NewWriter(nil,
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderLevel(level),
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(false),
			zstd.WithZeroFrames(true))
		if err != nil {
			panic(err) // only for invalid options, which are constant
		}
		return e
	}
	return c
}

// compressChunk is how much of a batch Compress encodes before it yields:
// one zstd block, the most the encoder codes at once anyway.
const compressChunk = 128 << 10

// Compress implements kgo.Compressor. kgo calls it from its sink
// goroutines, concurrently; each call takes an encoder from the pool.
// Brokers too old for zstd (produce requests before v7, Kafka before 2.1)
// get the batch uncompressed.
//
// The batch goes through the encoder's stream a block at a time, and
// Compress yields the processor between blocks (runtime.Gosched). Why: a
// full batch takes the encoder 3 to 6 ms at the default level, and the
// runtime preempts a goroutine only after 10 ms, so on one P the timing
// wheel, whose timers are due, waited for the whole batch (and for every
// batch of a produce request, which kgo compresses one after the other):
// scrape-start lateness p99 was 4.4 to 7 ms with the Kafka sink against
// 0.5 with the discard sink (bench/README.md, Lateness). A block takes
// about half a millisecond. EncodeAll does the same work in the same
// blocks with the same history, so the batches come out the same size.
func (c *batchCompressor) Compress(dst *bytes.Buffer, src []byte, flags ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	for _, f := range flags {
		if f == kgo.CompressDisableZstd {
			return src, kgo.CodecNone
		}
	}
	e := c.encs.Get().(*zstd.Encoder)
	defer c.encs.Put(e)
	dst.Reset()
	if n := e.MaxEncodedSize(len(src)); n > dst.Cap() {
		dst.Grow(n)
	}
	// The encoder keeps dst as its writer until its next use, which
	// replaces it first: kgo may reuse dst, the encoder never writes to
	// it again.
	e.ResetContentSize(dst, int64(len(src)))
	for rest := src; len(rest) > 0; {
		n := min(len(rest), compressChunk)
		if _, err := e.Write(rest[:n]); err != nil {
			return src, kgo.CodecNone // cannot happen with a bytes.Buffer; sending the batch as is loses nothing
		}
		rest = rest[n:]
		runtime.Gosched()
	}
	if err := e.Close(); err != nil {
		return src, kgo.CodecNone
	}
	return dst.Bytes(), kgo.CodecZstd
}
