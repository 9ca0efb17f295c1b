package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/shoal-scraper/shoal/bench/farm"
	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/parse"
	"github.com/shoal-scraper/shoal/produce"
)

func nodeFixture(tb testing.TB) []byte {
	b, err := os.ReadFile("../parse/testdata/node_exporter.prom")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// scrapeTarget sets up an engine with one target on a bench/farm exporter
// serving body (gzipped if gz; values change on every scrape), writing to
// the discard sink. The farm answers without allocating, so allocs/op is
// the scraper's alone.
func scrapeTarget(tb testing.TB, body []byte, gz bool) (*Engine, *target, *produce.Discard) {
	f, err := farm.Start(context.Background(), farm.Config{Targets: 1, Payload: body, Gzip: gz})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	d := &produce.Discard{}
	e := newTestEngine(tb, d)
	if err := e.ApplyConfig(mustConfig(tb, fmt.Sprintf(jobYAML, "j", ""))); err != nil {
		tb.Fatal(err)
	}
	e.SyncTargets("j", groups(f.Addrs()[0]))
	return e, only(tb, e, "j"), d
}

// BenchmarkScrape is one end-to-end scrape over loopback of a real
// payload: fetch, (gunzip,) parse, series cache, staleness, synthetic
// series, discard sink. Steady state: the series set is unchanged.
// fixture=node is a node_exporter (512 samples); fixture=python the
// Python client's default metrics (67 samples), a small target, where
// what a scrape costs whatever its size (the request, the exchange, the
// synthetic series) weighs most.
//
//	go test -run '^$' -bench 'BenchmarkScrape$' -benchmem -count=10 -cpu=1 ./engine/ | tee new.txt
func BenchmarkScrape(b *testing.B) {
	python, err := os.ReadFile("../parse/testdata/python_client.prom")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		fixture, enc string
		body         []byte
	}{
		{"node", "identity", nodeFixture(b)},
		{"node", "gzip", nodeFixture(b)},
		{"python", "identity", python},
	} {
		body, enc := bc.body, bc.enc
		b.Run("fixture="+bc.fixture+"/encoding="+enc, func(b *testing.B) {
			e, tg, d := scrapeTarget(b, body, enc == "gzip")
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			var p parse.Parser
			// Warm the cache: the first scrape fills it, the second (no
			// new series) settles it (parse.Cache gives back its append
			// slack once), so the loop is the steady state.
			e.scrape(tg, time.Now(), &p)
			e.scrape(tg, time.Now(), &p)
			start := d.Samples()
			n := 0
			for b.Loop() {
				e.scrape(tg, time.Now(), &p)
				n++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(d.Samples()-start), "ns/sample")
			b.ReportMetric(float64(d.Samples()-start)/float64(n), "samples/op")
		})
	}
}

// BenchmarkAppend is the scrape's CPU work without the network: parse the
// node payload through the series cache into a Scrape, staleness, report.
//
//	go test -run '^$' -bench 'BenchmarkAppend$' -benchmem -count=10 -cpu=1 ./engine/
func BenchmarkAppend(b *testing.B) {
	body := nodeFixture(b)
	e, tg := appendTarget(b)
	var p parse.Parser
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	samples := 0
	for b.Loop() {
		samples = appendOnce(b, e, tg, &p, body)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples*b.N), "ns/sample")
}

// BenchmarkSeriesCacheMemory measures the per-series memory of the scrape
// state of a fleet of node_exporter targets: each iteration scrapes 200
// targets twice (the second scrape all hits, the steady state) through
// appendSamples, then reports the live heap growth after a GC per cached
// series: the series cache (entries, index) and its values (the final
// series, whose own labels are interned and shared by the fleet). The
// discard sink keeps no encoding. ns/op is not meaningful.
//
//	go test -run '^$' -bench 'BenchmarkSeriesCacheMemory' -count=6 ./engine/
func BenchmarkSeriesCacheMemory(b *testing.B) {
	body := nodeFixture(b)
	e, tg := appendTarget(b)
	var p parse.Parser
	const targets = 200
	var ms runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		ts := make([]*target, targets)
		n := 0
		for i := range ts {
			t := tg.fresh()
			t.gen = tg.gen
			t.cache = newSeriesCache()
			t.lb = labels.NewBuilder(labels.EmptyLabels())
			appendOnce(b, e, t, &p, body)
			appendOnce(b, e, t, &p, body)
			n += t.cache.Len()
			ts[i] = t
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapAlloc-before)/float64(n), "heap-B/series")
		runtime.KeepAlive(ts)
	}
}

func appendTarget(tb testing.TB) (*Engine, *target) {
	e := newTestEngine(tb, &produce.Discard{})
	if err := e.ApplyConfig(mustConfig(tb, fmt.Sprintf(jobYAML, "j", ""))); err != nil {
		tb.Fatal(err)
	}
	e.SyncTargets("j", groups("127.0.0.1:1"))
	tg := only(tb, e, "j")
	tg.cache = newSeriesCache()
	tg.lb = labels.NewBuilder(labels.EmptyLabels())
	return e, tg
}

func newSeriesCache() *parse.Cache[*cached] { return parse.NewCache[*cached]() }

func appendOnce(tb testing.TB, e *Engine, tg *target, p *parse.Parser, body []byte) int {
	out := e.getScrape(tg.lastOut)
	defer e.putScrape(out)
	tg.cache.Begin()
	_, post, _, err := e.appendSamples(tg, p, out, body, parse.FormatText, 1)
	if err != nil {
		tb.Fatal(err)
	}
	tg.cache.Stale(func(*cached) {})
	e.appendReport(tg, out, 1, [numReport]float64{1, 0.1, float64(post), float64(post), 0})
	if err := e.sink.Write(out); err != nil {
		tb.Fatal(err)
	}
	return post
}

// TestSteadyStateScrapeDoesNotAllocatePerSample: once a target's series are
// cached, parse → labels → sink allocates nothing, whatever the number of
// samples.
func TestSteadyStateScrapeDoesNotAllocatePerSample(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items: allocation counts are meaningless")
	}
	body := nodeFixture(t)
	e, tg := appendTarget(t)
	var p parse.Parser
	appendOnce(t, e, tg, &p, body) // first scrape fills the cache
	allocs := testing.AllocsPerRun(20, func() { appendOnce(t, e, tg, &p, body) })
	if allocs > 0 {
		t.Fatalf("steady-state scrape of %d lines allocates %.1f times; want 0", strings.Count(string(body), "\n"), allocs)
	}
}

// BenchmarkRequest is what writing a scrape's request costs, warm, to a
// buffer: how=head is a target's head with the job's headers after it (every
// scrape's request); how=fasthttp builds and writes a fasthttp.Request
// (what every scrape did before heads, and now a redirect does).
//
//	go test -run '^$' -bench 'BenchmarkRequest$' -benchmem -count=6 -cpu=1 ./engine/
func BenchmarkRequest(b *testing.B) {
	c, err := newHTTPClient(&config.ScrapeConfig{JobName: "j", Scheme: "http"}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(io.Discard, 4<<10)
	const url, timeout = "http://127.0.0.1:9100/metrics", 10 * time.Second
	b.Run("how=head", func(b *testing.B) {
		b.ReportAllocs()
		var cs conns
		for b.Loop() {
			if cs.head.url != url || cs.head.timeout != timeout {
				cs.head = makeHead(url, timeout)
			}
			o := outgoing{head: &cs.head}
			if err := o.write(c, bw); err != nil {
				b.Fatal(err)
			}
			bw.Flush()
		}
	})
	b.Run("how=fasthttp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			o := outgoing{req: c.request(url, timeout, "")}
			if err := o.write(c, bw); err != nil {
				b.Fatal(err)
			}
			bw.Flush()
			o.release()
		}
	})
}
