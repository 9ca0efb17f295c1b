package parse

import (
	"io"
	"os"
	"runtime"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// BenchmarkParse compares, per fixture and format, textparse alone
// (path=textparse: Next and Series over the body, the reference), this
// package's Parser (path=fast: Next, Series, Value, Timestamp), the engine's
// steady state (path=cachehit: the Parser plus a Cache.Get hit for every
// sample) and its cold start (path=labels: the Parser plus Labels for every
// sample, what a first scrape costs). ns/sample divides by the float
// samples of the body.
//
// Run with:
//
//	go test ./parse -run '^$' -bench 'BenchmarkParse' -benchmem -count=6 -cpu=1 | tee bench.txt
//	benchstat -col /path -row /format,/fixture bench.txt
func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct {
		format  Format
		fixture string
		file    string
	}{
		{FormatText, "node", "testdata/node_exporter.prom"},
		{FormatOpenMetrics, "node", "testdata/node_exporter.om.txt"},
		{FormatOpenMetrics, "python", "testdata/python_client.om.txt"},
	} {
		body, err := os.ReadFile(bc.file)
		if err != nil {
			b.Fatal(err)
		}
		var p Parser
		samples := 0
		c := NewCache[int]()
		c.Begin()
		for p.Reset(body, bc.format); p.Next(); samples++ {
			c.Put(p.Series(), samples)
		}
		if p.Err() != nil {
			b.Fatal(p.Err())
		}
		prefix := "format=" + bc.format.String() + "/fixture=" + bc.fixture + "/path="
		perSample := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(samples), "ns/sample")
		}
		b.Run(prefix+"textparse", func(b *testing.B) {
			st := labels.NewSymbolTable()
			doc := make([]byte, len(body), len(body)+1) // room for PromParser's '\n'
			copy(doc, body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				tp := newTextparse(doc, bc.format, st)
				for {
					e, err := tp.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if e == textparse.EntrySeries {
						tp.Series()
					}
				}
			}
			perSample(b)
		})
		b.Run(prefix+"fast", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var sink float64
			for b.Loop() {
				for p.Reset(body, bc.format); p.Next(); {
					_ = p.Series()
					ts, _ := p.Timestamp()
					sink += p.Value() + float64(ts)
				}
			}
			perSample(b)
		})
		b.Run(prefix+"labels", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				for p.Reset(body, bc.format); p.Next(); {
					if _, err := p.Labels(); err != nil {
						b.Fatal(err)
					}
				}
			}
			perSample(b)
		})
		b.Run(prefix+"cachehit", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			sum := 0
			for b.Loop() {
				c.Begin()
				for p.Reset(body, bc.format); p.Next(); {
					v, _, ok := c.Get(p.Series())
					if !ok {
						b.Fatal("cache miss")
					}
					ts, _ := p.Timestamp()
					sum += v + int(ts)
				}
			}
			perSample(b)
		})
	}
}

// BenchmarkCacheMemory measures what the series caches of many targets
// exposing the same series (a fleet of node_exporters) hold: each
// iteration fills one cache per target with the node_exporter body's
// series, then reports the live heap growth (after a GC) per cached
// series, the value being a pointer as the engine's is. ns/op is not
// meaningful.
//
//	go test ./parse -run '^$' -bench 'BenchmarkCacheMemory' -count=6 -cpu=1 | tee mem.txt
func BenchmarkCacheMemory(b *testing.B) {
	body, err := os.ReadFile("testdata/node_exporter.prom")
	if err != nil {
		b.Fatal(err)
	}
	const targets = 200
	var p Parser
	var ms runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		caches := make([]*Cache[*int], targets)
		n := 0
		for i := range caches {
			c := NewCache[*int]()
			c.Begin()
			p.Reset(body, FormatText)
			for p.Next() {
				c.Put(p.Series(), nil)
				n++
			}
			p.Reset(nil, FormatText)
			caches[i] = c
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapAlloc-before)/float64(n), "heap-B/series")
		runtime.KeepAlive(caches)
	}
}
