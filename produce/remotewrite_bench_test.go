package produce

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/model/labels"
)

// BenchmarkEncode measures the encoding of one target's scrape: the
// node_exporter fixture with job and instance labels and the synthetic
// series, 512 samples. ns/sample and B/sample are per sample.
//
//   - shape=same: the steady state, every series seen before and the same
//     series order as the previous scrape.
//   - shape=inserted: scrapes alternate between the fixture and the fixture
//     with one more series at position 20 (churn: a series comes and goes),
//     so every RW2 message leaves its run of hits there and interns the
//     rest of the scrape on the slow path.
//   - shape=shuffled: scrapes alternate between two random series orders,
//     the slow path's worst case (no neighbour shares strings). RW1 does not
//     care about order.
//   - shape=cold: the target's memo dropped before each scrape: a target's
//     first scrape, allocating its memo.
//
// Run with:
//
//	go test ./produce -run '^$' -bench 'BenchmarkEncode$' -benchmem -count=10 -cpu=1 | tee encode.txt
//	benchstat -col /format -row /shape encode.txt
func BenchmarkEncode(b *testing.B) {
	s := nodeFixture(b)
	shuffled := *s
	shuffled.Samples = slices.Clone(s.Samples)
	rand.New(rand.NewPCG(2, 3)).Shuffle(len(shuffled.Samples), func(i, j int) {
		shuffled.Samples[i], shuffled.Samples[j] = shuffled.Samples[j], shuffled.Samples[i]
	})
	inserted := *s
	inserted.Samples = slices.Insert(slices.Clone(s.Samples), 20, Sample{seriesOf("__name__", "churn", "job", "node"), s.T, 1})
	for _, f := range formats {
		for _, shape := range []string{"same", "inserted", "shuffled", "cold"} {
			b.Run(fmt.Sprintf("format=%v/fixture=node/shape=%s", f, shape), func(b *testing.B) {
				e := NewEncoder(f)
				dst := e.Append(nil, s)
				b.SetBytes(int64(len(dst)))
				b.ReportAllocs()
				odd := false
				for b.Loop() {
					switch shape {
					case "same":
						dst = e.Append(dst[:0], s)
					case "inserted", "shuffled":
						other := &inserted
						if shape == "shuffled" {
							other = &shuffled
						}
						if odd = !odd; odd {
							dst = e.Append(dst[:0], other)
						} else {
							dst = e.Append(dst[:0], s)
						}
					case "cold":
						*s.Memo = Memo{} // in place: the other shapes share it
						dst = e.Append(dst[:0], s)
					}
				}
				n := float64(b.N) * float64(len(s.Samples))
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/sample")
				b.ReportMetric(float64(len(dst))/float64(len(s.Samples)), "B/sample")
			})
		}
	}
}

// BenchmarkEncodeZstd measures what a sample costs on the wire: records
// are encoded and their values compressed together with zstd as franz-go
// compresses a batch (64 KiB window, concurrency 1; level=default is
// kgo.ZstdCompression(), level=fastest its WithLevel(int(zstd.SpeedFastest))).
//
//   - batch=1/targets=1: one record alone (no linger, or a quiet partition).
//   - batch=10/targets=1: ten consecutive scrapes of one node_exporter with
//     the values of ten real scrapes 15 s apart (nodeCapture): the best case
//     for matching a scrape against the previous one.
//   - batch=10/targets=10: one scrape each of ten node_exporter targets
//     (instance node-1 to node-10, scrape phases 1.5 s apart), what a batch
//     of a partition shared by many similar targets holds. Their values are
//     the ten captured scrapes of one machine: real hosts differ more.
//
// zB/sample is the compressed size, B/sample the uncompressed one, and
// ns/sample the time for encode and compress. Record framing (key,
// headers), a few bytes per record, is left out.
//
// Run with:
//
//	go test ./produce -run '^$' -bench 'BenchmarkEncodeZstd' -benchmem -count=10 -cpu=1 | tee zstd.txt
//	benchstat -col /format -row /level,/batch,/targets zstd.txt
func BenchmarkEncodeZstd(b *testing.B) {
	s := nodeFixture(b)
	scrapes := capturedScrapes(b, s)
	fleet := make([]*Scrape, len(scrapes))
	for k, sc := range scrapes {
		instance := fmt.Sprintf("node-%d.example.com:9100", k+1)
		t := s.T + int64(k)*1500
		c := &Scrape{Key: "node/" + instance, Job: "node", Instance: instance, T: t, Samples: make([]Sample, len(sc.Samples)), Memo: &Memo{}}
		for i, smp := range sc.Samples {
			ls := labels.NewBuilder(smp.Series.Labels()).Set("instance", instance).Labels()
			c.Samples[i] = Sample{NewSeries(ls), t, smp.V}
		}
		fleet[k] = c
	}
	for _, level := range []zstd.EncoderLevel{zstd.SpeedDefault, zstd.SpeedFastest} {
		zw, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level),
			zstd.WithWindowSize(64<<10), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
		if err != nil {
			b.Fatal(err)
		}
		defer zw.Close()
		for _, f := range formats {
			for _, bc := range []struct {
				batch   int
				targets []*Scrape
				n       int
			}{{1, scrapes, 1}, {10, scrapes, 1}, {10, fleet, 10}} {
				name := fmt.Sprintf("format=%v/level=%s/batch=%d/targets=%d", f, levelName(level), bc.batch, bc.n)
				benchZstd(b, zw, name, f, bc.targets, bc.batch)
			}
		}
	}
}

func levelName(l zstd.EncoderLevel) string {
	if l == zstd.SpeedFastest {
		return "fastest"
	}
	return "default"
}

// benchZstd encodes batch records of scrapes (cycling through them) and
// compresses them together, per op.
func benchZstd(b *testing.B, zw *zstd.Encoder, name string, f RecordFormat, scrapes []*Scrape, batch int) {
	b.Run(name, func(b *testing.B) {
		e := NewEncoder(f)
		var raw, out []byte
		for _, sc := range scrapes {
			raw = e.Append(raw[:0], sc)
		}
		next := 0
		b.ReportAllocs()
		for b.Loop() {
			raw = raw[:0]
			for range batch {
				raw = e.Append(raw, scrapes[next])
				next = (next + 1) % len(scrapes)
			}
			out = zw.EncodeAll(raw, out[:0])
		}
		n := float64(batch * len(scrapes[0].Samples))
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/sample")
		b.ReportMetric(float64(len(raw))/n, "B/sample")
		b.ReportMetric(float64(len(out))/n, "zB/sample")
	})
}

// capturedScrapes returns the ten scrapes of nodeCapture as the engine
// would hand them over: s's series (the fixture's, then the synthetic
// ones), timestamps 15 s apart, the captured values, and a fresh measured
// duration in scrape_duration_seconds.
func capturedScrapes(tb testing.TB, s *Scrape) []*Scrape {
	tb.Helper()
	rng := rand.New(rand.NewPCG(42, 15))
	vals := make([]float64, len(s.Samples))
	for i, smp := range s.Samples {
		vals[i] = smp.V
	}
	var out []*Scrape
	for k, block := range strings.Split(strings.TrimSpace(nodeCapture), "\n\n") {
		for i, field := range strings.Fields(block) {
			if k > 0 {
				idx, v, ok := strings.Cut(field, "=")
				if !ok {
					tb.Fatalf("capture scrape %d: bad entry %q", k, field)
				}
				n, err := strconv.Atoi(idx)
				if err != nil {
					tb.Fatal(err)
				}
				i, field = n, v
			}
			v, err := strconv.ParseFloat(field, 64)
			if err != nil || i >= len(vals) {
				tb.Fatalf("capture scrape %d: bad value %q for sample %d", k, field, i)
			}
			vals[i] = v
		}
		sc := *s
		sc.T = s.T + int64(k)*15000
		sc.Samples = make([]Sample, len(s.Samples))
		for i, smp := range s.Samples {
			if smp.Series.Labels().Get("__name__") == "scrape_duration_seconds" {
				vals[i] = 0.005 + rng.Float64()*0.02
			}
			sc.Samples[i] = Sample{smp.Series, sc.T, vals[i]}
		}
		out = append(out, &sc)
	}
	if len(out) != 10 {
		tb.Fatalf("capture has %d scrapes, want 10", len(out))
	}
	return out
}

// fleetScrapes returns n node_exporter targets (instance 10.1.x.y:9100),
// each with its own series (so its own label caches) and ten scrapes: the
// ten captured ones of nodeCapture, target k starting at capture k%10,
// with every value other than 0 and 1 scaled by a factor drawn for the
// target in [0.5, 1.5) (integers stay integers), as real hosts differ.
// fleet[k][r] is target k's scrape r; timestamps are the captures'.
func fleetScrapes(tb testing.TB, n int) [][]*Scrape {
	tb.Helper()
	caps := capturedScrapes(tb, nodeFixture(tb))
	fleet := make([][]*Scrape, n)
	for k := range n {
		f := 0.5 + rand.New(rand.NewPCG(uint64(k), 42)).Float64()
		instance := fmt.Sprintf("10.1.%d.%d:9100", k/250, k%250)
		memo := &Memo{}
		series := make([]*Series, len(caps[0].Samples))
		for i, smp := range caps[0].Samples {
			ls := labels.NewBuilder(smp.Series.Labels()).Set("instance", instance).Labels()
			series[i] = NewSeries(ls)
		}
		for r := range caps {
			c := caps[(k+r)%len(caps)]
			sc := &Scrape{Key: "node/" + instance, Job: "node", Instance: instance, T: c.T, Samples: make([]Sample, len(c.Samples)), Memo: memo}
			for i, smp := range c.Samples {
				v := smp.V
				if !math.IsNaN(v) && !math.IsInf(v, 0) && v != 0 && v != 1 {
					if v == math.Trunc(v) {
						v = math.Round(v * f)
					} else {
						v *= f
					}
				}
				sc.Samples[i] = Sample{series[i], c.T, v}
			}
			fleet[k] = append(fleet[k], sc)
		}
	}
	return fleet
}

// BenchmarkBatchZstd compares batch compressors on what a Kafka batch of a
// partition shared by many node_exporter targets holds: batch records, each
// one scrape of a different target (fleetScrapes, values differing per
// host), encoded in rw2 and compressed together as kgo compresses a batch.
//
//   - comp=kgo: kgo.ZstdCompression(), a 64 KiB window (two rw2 records).
//   - comp=shoal: the sink's batchCompressor (1 MiB window, no checksum).
//   - comp=shoal-fastest, comp=shoal-better: the same at another level.
//
// batch=40 is a full default batch (1,000,012 bytes). zB/sample is the
// compressed size, ns/sample encode + compress.
//
//	go test ./produce -run '^$' -bench 'BenchmarkBatchZstd' -benchmem -count=10 -cpu=1 | tee batchzstd.txt
//	benchstat -col /comp -row /batch batchzstd.txt
func BenchmarkBatchZstd(b *testing.B) {
	fleet := fleetScrapes(b, 40)
	scrapes := make([]*Scrape, len(fleet))
	for k := range fleet {
		scrapes[k] = fleet[k][0]
	}
	comps := []struct {
		name string
		opts []zstd.EOption
	}{
		{"kgo", []zstd.EOption{zstd.WithWindowSize(64 << 10)}},
		{"shoal", []zstd.EOption{zstd.WithWindowSize(zstdWindow), zstd.WithEncoderCRC(false)}},
		{"shoal-fastest", []zstd.EOption{zstd.WithWindowSize(zstdWindow), zstd.WithEncoderCRC(false), zstd.WithEncoderLevel(zstd.SpeedFastest)}},
		{"shoal-better", []zstd.EOption{zstd.WithWindowSize(zstdWindow), zstd.WithEncoderCRC(false), zstd.WithEncoderLevel(zstd.SpeedBetterCompression)}},
	}
	for _, c := range comps {
		zw, err := zstd.NewWriter(nil, append(c.opts, zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))...)
		if err != nil {
			b.Fatal(err)
		}
		defer zw.Close()
		for _, batch := range []int{1, 4, 16, 40} {
			benchZstd(b, zw, fmt.Sprintf("format=rw2/comp=%s/batch=%d", c.name, batch), RW2, scrapes, batch)
		}
	}
}
