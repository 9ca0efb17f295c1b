package parse

import (
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
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
// series, runs one more scrape in which every series is a hit (the steady
// state a target reaches on its second scrape), then reports the live heap
// growth (after a GC) per cached series. The value is a pointer
// (value=ptr, the engine's since the cache entry went to 24 bytes) or a
// pointer and a uint32 (value=ptr+u32, 16 bytes, the engine's before).
// ns/op is not meaningful.
//
//	go test ./parse -run '^$' -bench 'BenchmarkCacheMemory' -count=6 -cpu=1 | tee mem.txt
func BenchmarkCacheMemory(b *testing.B) {
	b.Run("value=ptr", func(b *testing.B) { cacheMemory(b, func() *int { return nil }) })
	b.Run("value=ptr+u32", func(b *testing.B) {
		type v struct {
			p *int
			x uint32
		}
		cacheMemory(b, func() v { return v{p: nil, x: 1} }) // fields named: only their size matters
	})
}

func cacheMemory[V any](b *testing.B, zero func() V) {
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
		caches := make([]*Cache[V], targets)
		n := 0
		for i := range caches {
			c := NewCache[V]()
			for scrape := range 2 {
				c.Begin()
				for p.Reset(body, FormatText); p.Next(); {
					if _, _, ok := c.Get(p.Series()); !ok {
						c.Put(p.Series(), zero())
					}
					if scrape == 0 {
						n++
					}
				}
				c.Stale(func(V) {})
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

// BenchmarkCache times the cache alone on the node_exporter body's series
// (507), per series, value a pointer as the engine's. path=next: a scrape
// in exposition order, every Get a hit at the expected next entry (the
// steady state: no hashing). path=index: a scrape in a shuffled order,
// every Get a hit found through the index. path=miss: Gets of 507 series
// the cache lacks (a target's new series, before Put). path=fill: a first
// scrape into a new cache, Get misses and Puts.
//
//	go test ./parse -run '^$' -bench 'BenchmarkCache$' -count=8 | tee cache.txt
func BenchmarkCache(b *testing.B) {
	body, err := os.ReadFile("testdata/node_exporter.prom")
	if err != nil {
		b.Fatal(err)
	}
	var keys, absent [][]byte
	var p Parser
	for p.Reset(body, FormatText); p.Next(); {
		keys = append(keys, append([]byte(nil), p.Series()...))
		absent = append(absent, append([]byte("x"), p.Series()...))
	}
	shuffled := slices.Clone(keys)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	v := new(int)
	full := NewCache[*int]()
	full.Begin()
	for _, k := range keys {
		full.Put(k, v)
	}
	full.Stale(func(*int) {})
	perSeries := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(keys)), "ns/series")
	}
	scrape := func(b *testing.B, order [][]byte) {
		b.ReportAllocs()
		for b.Loop() {
			full.Begin()
			for _, k := range order {
				if _, _, ok := full.Get(k); !ok {
					b.Fatal("miss")
				}
			}
			full.Stale(func(*int) {})
		}
		perSeries(b)
	}
	b.Run("path=next", func(b *testing.B) { scrape(b, keys) })
	b.Run("path=index", func(b *testing.B) { scrape(b, shuffled) })
	b.Run("path=miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, k := range absent {
				if _, _, ok := full.Get(k); ok {
					b.Fatal("hit")
				}
			}
		}
		perSeries(b)
	})
	b.Run("path=fill", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := NewCache[*int]()
			c.Begin()
			for _, k := range keys {
				if _, _, ok := c.Get(k); !ok {
					c.Put(k, v)
				}
			}
			c.Stale(func(*int) {})
		}
		perSeries(b)
	})
}
