package engine

import (
	"compress/gzip"
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/value"
	"go.uber.org/goleak"

	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/parse"
	"github.com/shoal-scraper/shoal/produce"
)

// recSink records every scrape as copied samples, and signals each Write.
type recSink struct {
	mu      sync.Mutex
	scrapes []recScrape
	ch      chan recScrape
}

type recScrape struct {
	key     string
	t       int64
	samples []recSample
}

type recSample struct {
	series string
	t      int64
	v      float64
}

func newRecSink() *recSink { return &recSink{ch: make(chan recScrape, 1024)} }

func (s *recSink) Write(sc *produce.Scrape) error {
	r := recScrape{key: sc.Key, t: sc.T}
	for _, smp := range sc.Samples {
		r.samples = append(r.samples, recSample{smp.Series.Labels().String(), smp.T, smp.V})
	}
	s.mu.Lock()
	s.scrapes = append(s.scrapes, r)
	s.mu.Unlock()
	select {
	case s.ch <- r:
	default:
	}
	return nil
}

// find returns the value of series in r, and whether it is present.
func (r recScrape) find(series string) (float64, bool) {
	for _, s := range r.samples {
		if s.series == series {
			return s.v, true
		}
	}
	return 0, false
}

func (r recScrape) mustFind(t *testing.T, series string) float64 {
	t.Helper()
	v, ok := r.find(series)
	if !ok {
		t.Fatalf("series %s missing from scrape; have:\n%s", series, r)
	}
	return v
}

func (r recScrape) String() string {
	var b strings.Builder
	for _, s := range r.samples {
		fmt.Fprintf(&b, "  %s %v %d\n", s.series, s.v, s.t)
	}
	return b.String()
}

// exporter is an in-test target whose response the test controls.
type exporter struct {
	mu      sync.Mutex
	body    string
	status  int
	ctype   string
	gzip    bool
	delay   time.Duration
	srv     *httptest.Server
	headers http.Header
}

func newExporter(t *testing.T, body string) *exporter {
	x := &exporter{body: body, status: 200, ctype: "text/plain; version=0.0.4; charset=utf-8"}
	x.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x.mu.Lock()
		body, status, ctype, gz, delay := x.body, x.status, x.ctype, x.gzip, x.delay
		x.headers = r.Header.Clone()
		x.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", ctype)
		if gz && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(status)
			zw := gzip.NewWriter(w)
			zw.Write([]byte(body))
			zw.Close()
			return
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(x.srv.Close)
	return x
}

func (x *exporter) addr() string { return strings.TrimPrefix(x.srv.URL, "http://") }

func (x *exporter) set(f func(x *exporter)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	f(x)
}

func mustConfig(t testing.TB, yml string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(yml), "test.yml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

func newTestEngine(t testing.TB, sink Sink) *Engine {
	t.Helper()
	e, err := New(Config{Workers: 4, Version: "test"}, sink, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func groups(addrs ...string) []*targetgroup.Group {
	g := &targetgroup.Group{Source: "test"}
	for _, a := range addrs {
		g.Targets = append(g.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(a)})
	}
	return []*targetgroup.Group{g}
}

// only returns the single target of job.
func only(t testing.TB, e *Engine, job string) *target {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.jobs[job]
	if j == nil || len(j.targets) != 1 {
		t.Fatalf("job %q: want 1 target, have %v", job, j)
	}
	for _, tg := range j.targets {
		return tg
	}
	return nil
}

// scrapeOnce runs one scrape of tg synchronously and returns what the sink got.
func scrapeOnce(t *testing.T, e *Engine, s *recSink, tg *target) recScrape {
	t.Helper()
	tg.scrapeMu.Lock()
	e.scrape(tg, time.Now(), &parse.Parser{})
	tg.scrapeMu.Unlock()
	select {
	case r := <-s.ch:
		return r
	default:
		t.Fatal("scrape wrote nothing to the sink")
	}
	return recScrape{}
}

const jobYAML = `
scrape_configs:
- job_name: %s
  scrape_interval: 1s
  scrape_timeout: 500ms
%s
`

// setup starts an exporter serving body and an engine with job "j" (plus
// the extra YAML lines) scraping it.
func setup(t *testing.T, body, extra string) (*Engine, *recSink, *exporter, *target) {
	t.Helper()
	x := newExporter(t, body)
	e, s, tg := engineFor(t, x.addr(), extra)
	return e, s, x, tg
}

// engineFor returns an engine with job "j" (plus the extra YAML lines)
// and its one target at addr.
func engineFor(t *testing.T, addr, extra string) (*Engine, *recSink, *target) {
	t.Helper()
	s := newRecSink()
	e := newTestEngine(t, s)
	if err := e.ApplyConfig(mustConfig(t, fmt.Sprintf(jobYAML, "j", extra))); err != nil {
		t.Fatal(err)
	}
	e.SyncTargets("j", groups(addr))
	return e, s, only(t, e, "j")
}

func TestScrapeSamplesAndSyntheticSeries(t *testing.T) {
	e, s, x, tg := setup(t, "# TYPE a counter\na_total{x=\"1\"} 10\nb 2.5\n", "")
	r := scrapeOnce(t, e, s, tg)
	inst := x.addr()
	want := map[string]float64{
		fmt.Sprintf(`{__name__="a_total", instance="%s", job="j", x="1"}`, inst):                        10,
		fmt.Sprintf(`{__name__="b", instance="%s", job="j"}`, inst):                                     2.5,
		fmt.Sprintf(`{__name__="up", instance="%s", job="j"}`, inst):                                    1,
		fmt.Sprintf(`{__name__="scrape_samples_scraped", instance="%s", job="j"}`, inst):                2,
		fmt.Sprintf(`{__name__="scrape_samples_post_metric_relabeling", instance="%s", job="j"}`, inst): 2,
		fmt.Sprintf(`{__name__="scrape_series_added", instance="%s", job="j"}`, inst):                   2,
	}
	for series, v := range want {
		if got := r.mustFind(t, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	if d := r.mustFind(t, fmt.Sprintf(`{__name__="scrape_duration_seconds", instance="%s", job="j"}`, inst)); d <= 0 || d > 1 {
		t.Errorf("scrape_duration_seconds = %v", d)
	}
	if r.key != "j/"+inst {
		t.Errorf("key = %q", r.key)
	}
	// The second scrape of unchanged series adds none.
	r = scrapeOnce(t, e, s, tg)
	if v := r.mustFind(t, fmt.Sprintf(`{__name__="scrape_series_added", instance="%s", job="j"}`, inst)); v != 0 {
		t.Errorf("scrape_series_added on second scrape = %v, want 0", v)
	}
	// Headers Prometheus sends.
	x.mu.Lock()
	h := x.headers
	x.mu.Unlock()
	if !strings.HasPrefix(h.Get("Accept"), "application/openmetrics-text;version=1.0.0") || h.Get("X-Prometheus-Scrape-Timeout-Seconds") != "0.5" {
		t.Errorf("request headers: Accept=%q timeout=%q", h.Get("Accept"), h.Get("X-Prometheus-Scrape-Timeout-Seconds"))
	}
}

func TestStalenessWhenSeriesDisappears(t *testing.T) {
	e, s, x, tg := setup(t, "a 1\nb 2\n", "")
	scrapeOnce(t, e, s, tg)
	x.set(func(x *exporter) { x.body = "a 1\n" })
	r := scrapeOnce(t, e, s, tg)
	b := fmt.Sprintf(`{__name__="b", instance="%s", job="j"}`, x.addr())
	if v := r.mustFind(t, b); !produce.IsStale(v) {
		t.Fatalf("b = %v, want a staleness marker", v)
	}
	// Only once.
	r = scrapeOnce(t, e, s, tg)
	if _, ok := r.find(b); ok {
		t.Fatalf("b marked stale twice")
	}
}

func TestFailedScrapeIsDownWithStaleness(t *testing.T) {
	cases := map[string]func(x *exporter){
		"status 500":     func(x *exporter) { x.status = 500 },
		"malformed body": func(x *exporter) { x.body = "a 1\nb{ 2\n" },
		"invalid utf-8":  func(x *exporter) { x.body = "a{l=\"\xff\"} 1\n" },
		"bad content":    func(x *exporter) { x.ctype = "application/json" },
		"timeout":        func(x *exporter) { x.delay = 2 * time.Second },
	}
	for name, fault := range cases {
		t.Run(name, func(t *testing.T) {
			e, s, x, tg := setup(t, "a 1\n", "")
			scrapeOnce(t, e, s, tg)
			x.set(fault)
			r := scrapeOnce(t, e, s, tg)
			inst := x.addr()
			if v := r.mustFind(t, fmt.Sprintf(`{__name__="up", instance="%s", job="j"}`, inst)); v != 0 {
				t.Errorf("up = %v, want 0", v)
			}
			if v := r.mustFind(t, fmt.Sprintf(`{__name__="a", instance="%s", job="j"}`, inst)); !produce.IsStale(v) {
				t.Errorf("a = %v, want stale", v)
			}
			if st := tg.status(); st.Health != HealthDown || st.LastError == "" {
				t.Errorf("status = %+v", st)
			}
			// Recovery: the series comes back, no double staleness.
			x.set(func(x *exporter) { x.status, x.body, x.ctype, x.delay = 200, "a 1\n", "text/plain; version=0.0.4", 0 })
			r = scrapeOnce(t, e, s, tg)
			if v := r.mustFind(t, fmt.Sprintf(`{__name__="a", instance="%s", job="j"}`, inst)); v != 1 {
				t.Errorf("after recovery a = %v", v)
			}
		})
	}
}

func TestHonorLabelsAndConflicts(t *testing.T) {
	body := "m{job=\"other\",instance=\"i\",exported_job=\"x\"} 1\n"
	e, s, x, tg := setup(t, body, "")
	r := scrapeOnce(t, e, s, tg)
	inst := x.addr()
	// Prometheus's rule: the conflicting scraped job="other" becomes
	// exported_job, and since the exporter already has exported_job, it
	// moves on to exported_exported_job.
	r.mustFind(t, fmt.Sprintf(`{__name__="m", exported_exported_job="other", exported_instance="i", exported_job="x", instance="%s", job="j"}`, inst))

	e, s, _, tg = setup(t, body, "  honor_labels: true")
	r = scrapeOnce(t, e, s, tg)
	r.mustFind(t, `{__name__="m", exported_job="x", instance="i", job="other"}`)
}

func TestMetricRelabelAndLimits(t *testing.T) {
	body := "keep 1\ndrop_me 2\nkeep2{a=\"b\"} 3\n"
	e, s, x, tg := setup(t, body, `  metric_relabel_configs:
  - source_labels: [__name__]
    regex: drop_.*
    action: drop`)
	r := scrapeOnce(t, e, s, tg)
	inst := x.addr()
	if _, ok := r.find(fmt.Sprintf(`{__name__="drop_me", instance="%s", job="j"}`, inst)); ok {
		t.Error("drop_me was not dropped")
	}
	if v := r.mustFind(t, fmt.Sprintf(`{__name__="scrape_samples_post_metric_relabeling", instance="%s", job="j"}`, inst)); v != 2 {
		t.Errorf("post relabel = %v, want 2", v)
	}

	for _, c := range []struct{ extra, want string }{
		{"  sample_limit: 2", "sample limit exceeded"},
		{"  label_limit: 2", "label_limit exceeded"},
		{"  label_value_length_limit: 0\n  label_name_length_limit: 1", "label_name_length_limit exceeded"},
		{"  body_size_limit: 10B", "body size limit exceeded"},
	} {
		e, s, x, tg := setup(t, body, c.extra)
		r := scrapeOnce(t, e, s, tg)
		if v := r.mustFind(t, fmt.Sprintf(`{__name__="up", instance="%s", job="j"}`, x.addr())); v != 0 {
			t.Errorf("%s: up = %v", c.extra, v)
		}
		if st := tg.status(); !strings.Contains(st.LastError, c.want) {
			t.Errorf("%s: error %q, want %q", c.extra, st.LastError, c.want)
		}
		if len(r.samples) != numReport {
			t.Errorf("%s: a failed scrape wrote %d samples, want only the %d synthetic ones:\n%s", c.extra, len(r.samples), numReport, r)
		}
	}
}

func TestGzipAndBodyLimitAfterDecompression(t *testing.T) {
	big := strings.Repeat("m{l=\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"} 1\n", 1) + strings.Repeat("# padding comment to compress well\n", 2000)
	e, s, x, tg := setup(t, big, "  body_size_limit: 4KB")
	x.set(func(x *exporter) { x.gzip = true })
	scrapeOnce(t, e, s, tg)
	if st := tg.status(); !strings.Contains(st.LastError, "body size limit exceeded") {
		t.Fatalf("gzip body over the limit after decompression: error %q", st.LastError)
	}
	e, s, x, tg = setup(t, "a 1\n", "")
	x.set(func(x *exporter) { x.gzip = true })
	r := scrapeOnce(t, e, s, tg)
	if v := r.mustFind(t, fmt.Sprintf(`{__name__="a", instance="%s", job="j"}`, x.addr())); v != 1 {
		t.Errorf("gzip a = %v", v)
	}
}

func TestHonorTimestamps(t *testing.T) {
	e, s, x, tg := setup(t, "a 1 1000\n", "")
	r := scrapeOnce(t, e, s, tg)
	series := fmt.Sprintf(`{__name__="a", instance="%s", job="j"}`, x.addr())
	for _, smp := range r.samples {
		if smp.series == series && smp.t != 1000 {
			t.Errorf("honored timestamp = %d, want 1000", smp.t)
		}
	}
	// Explicit timestamps: no staleness marker when the series goes away.
	x.set(func(x *exporter) { x.body = "b 1\n" })
	r = scrapeOnce(t, e, s, tg)
	if _, ok := r.find(series); ok {
		t.Error("series with an explicit timestamp got a staleness marker")
	}

	e, s, _, tg = setup(t, "a 1 1000\n", "  honor_timestamps: false")
	r = scrapeOnce(t, e, s, tg)
	for _, smp := range r.samples {
		if smp.t == 1000 {
			t.Errorf("honor_timestamps false kept the exporter's timestamp")
		}
	}
}

// The series cache's values share the series' allocation: a
// produce.Series is 40 bytes, allocated in the 48-byte size class, and
// cached must stay within it to cost nothing (see cached).
func TestCachedSize(t *testing.T) {
	if s := unsafe.Sizeof(cached{}); s > 24 {
		t.Fatalf("cached is %d bytes, over the 24-byte size class (a 16-byte produce.Series and the cache's fields)", s)
	}
}

// TestSeriesCacheValueUpdates: a series whose cache value is remade with
// the same labels (its noStale changed, or its job's config) keeps its
// *cached, and with it its produce.Series, updated in place; staleness then
// follows the updated noStale. Dropped series share the target's value.
func TestSeriesCacheValueUpdates(t *testing.T) {
	const drop = `  metric_relabel_configs:
  - source_labels: [__name__]
    regex: c.*
    action: drop`
	e, s, x, tg := setup(t, "a 1 1000\nb 1\nc1 1\nc2 1\n", drop)
	values := func(tg *target) map[string]*cached {
		m := map[string]*cached{}
		tg.cache.Live(func(c *cached) {
			if c.dropped {
				m[fmt.Sprintf("dropped%p", c)] = c
			} else {
				m[c.Labels().Get("__name__")] = c
			}
		})
		return m
	}
	scrape := func(tg *target, body string) recScrape {
		t.Helper()
		x.set(func(x *exporter) { x.body = body })
		return scrapeOnce(t, e, s, tg)
	}
	a := fmt.Sprintf(`{__name__="a", instance="%s", job="j"}`, x.addr())
	scrapeOnce(t, e, s, tg)
	v0 := values(tg)
	if len(v0) != 3 || v0["a"] == nil || !v0["a"].noStale || v0["b"] == nil {
		t.Fatalf("values after the first scrape: %v (want a, b and one shared dropped value)", v0)
	}
	// a loses its timestamp: same labels, same value, noStale off.
	scrape(tg, "a 1\nb 1\nc1 1\nc2 1\n")
	if v := values(tg); v["a"] != v0["a"] || v["a"].noStale || v["b"] != v0["b"] {
		t.Fatalf("after a lost its timestamp: a %p (was %p), noStale %v", v["a"], v0["a"], v["a"].noStale)
	}
	if r := scrape(tg, "b 1\n"); !func() bool { v, ok := r.find(a); return ok && produce.IsStale(v) }() {
		t.Error("a, timestamped no more, got no staleness marker when it went")
	}
	scrape(tg, "a 1\nb 1\n")
	scrape(tg, "a 1 1000\nb 1\n") // a timestamped again: noStale on
	if r := scrape(tg, "b 1\n"); func() bool { _, ok := r.find(a); return ok }() {
		t.Error("a, timestamped again, got a staleness marker")
	}

	// A config change: the new target adopts the cache; a series whose
	// labels stay keeps its value, now of the new generation.
	scrape(tg, "a 1\nb 1\nc1 1\n")
	v1 := values(tg)
	if err := e.ApplyConfig(mustConfig(t, fmt.Sprintf(jobYAML, "j", drop+"\n  sample_limit: 100"))); err != nil {
		t.Fatal(err)
	}
	nt := only(t, e, "j")
	if nt == tg || nt.gen == tg.gen {
		t.Fatal("the changed job's target was not replaced")
	}
	scrape(nt, "a 1\nb 1\nc1 1\n")
	v2 := values(nt)
	if v2["a"] != v1["a"] || v2["a"].gen != nt.gen || v2["b"] != v1["b"] {
		t.Fatalf("after a config change: a %p (was %p), gen %d (target's %d)", v2["a"], v1["a"], v2["a"].gen, nt.gen)
	}
	for k, v := range v2 {
		if v.dropped && (v != nt.dropped[0] || v.gen != nt.gen) {
			t.Fatalf("dropped value %s is not the new target's", k)
		}
	}
}

func TestTargetRemovalStaleVsOwnershipMove(t *testing.T) {
	e, s, _, tg := setup(t, "a 1\n", "")
	scrapeOnce(t, e, s, tg)
	// Moving to another member: no markers.
	e.SetOwner(ownerFunc(func(string) bool { return false }), time.Time{})
	e.bg.Wait()
	select {
	case r := <-s.ch:
		t.Fatalf("ownership move wrote staleness markers:\n%s", r)
	default:
	}

	e, s, x, tg := setup(t, "a 1\n", "")
	scrapeOnce(t, e, s, tg)
	e.SyncTargets("j", nil) // gone from discovery
	e.bg.Wait()
	r := <-s.ch
	for _, name := range []string{"a", "up", "scrape_duration_seconds"} {
		if v := r.mustFind(t, fmt.Sprintf(`{__name__="%s", instance="%s", job="j"}`, name, x.addr())); !produce.IsStale(v) {
			t.Errorf("%s = %v after removal, want stale", name, v)
		}
	}
}

type ownerFunc func(string) bool

func (f ownerFunc) Owns(k string) bool { return f(k) }

func TestReloadKeepsUnchangedJobs(t *testing.T) {
	x := newExporter(t, "a 1\nb 1\n")
	s := newRecSink()
	e := newTestEngine(t, s)
	two := fmt.Sprintf(jobYAML, "j", "") + `- job_name: k
  scrape_interval: 1s
  scrape_timeout: 500ms
`
	if err := e.ApplyConfig(mustConfig(t, two)); err != nil {
		t.Fatal(err)
	}
	e.SyncTargets("j", groups(x.addr()))
	e.SyncTargets("k", groups(x.addr()))
	tj, tk := only(t, e, "j"), only(t, e, "k")
	scrapeOnce(t, e, s, tk)

	// Change job k only: metric relabeling now drops b.
	changed := fmt.Sprintf(jobYAML, "j", "") + `- job_name: k
  scrape_interval: 1s
  scrape_timeout: 500ms
  metric_relabel_configs:
  - source_labels: [__name__]
    regex: b
    action: drop
`
	if err := e.ApplyConfig(mustConfig(t, changed)); err != nil {
		t.Fatal(err)
	}
	if only(t, e, "j") != tj {
		t.Error("unchanged job's target was restarted")
	}
	nk := only(t, e, "k")
	if nk == tk {
		t.Fatal("changed job's target was not restarted")
	}
	// The new target carries the cache over: b goes stale, a continues.
	r := scrapeOnce(t, e, s, nk)
	if v := r.mustFind(t, fmt.Sprintf(`{__name__="b", instance="%s", job="k"}`, x.addr())); !produce.IsStale(v) {
		t.Errorf("b after relabel change = %v, want stale", v)
	}
	if v := r.mustFind(t, fmt.Sprintf(`{__name__="a", instance="%s", job="k"}`, x.addr())); v != 1 {
		t.Errorf("a = %v", v)
	}
}

func TestTargetLabelsAndURL(t *testing.T) {
	c := mustConfig(t, `
scrape_configs:
- job_name: p
  metrics_path: /probe
  params:
    module: [http_2xx]
  relabel_configs:
  - source_labels: [__address__]
    target_label: __param_target
  - source_labels: [__param_target]
    target_label: instance
  - target_label: __address__
    replacement: 127.0.0.1:9115
  - source_labels: [__meta_x]
    target_label: from_meta
  static_configs:
  - targets: [example.org]
    labels:
      __meta_x: hello
      __scrape_interval__: 30s
`)
	j := &job{cfg: c.ScrapeConfigs[0]}
	ts, errs := targetsFromGroups(j, c.ScrapeConfigs[0].StaticConfigs)
	if len(errs) != 0 || len(ts) != 1 {
		t.Fatalf("targets %v errs %v", ts, errs)
	}
	tg := ts[0]
	if want := "http://127.0.0.1:9115/probe?module=http_2xx&target=example.org"; tg.url != want {
		t.Errorf("url = %q, want %q", tg.url, want)
	}
	if want := `{from_meta="hello", instance="example.org", job="p"}`; tg.labels.String() != want {
		t.Errorf("labels = %s, want %s", tg.labels, want)
	}
	if tg.interval != 30*time.Second || tg.key != "p/example.org" {
		t.Errorf("interval %v key %q", tg.interval, tg.key)
	}
	if tg.disc.Get("__meta_x") != "hello" {
		t.Errorf("discovered labels lost meta labels: %s", tg.disc)
	}
}

func TestPhaseIsStableAndAligned(t *testing.T) {
	tg := &target{key: "job/host:9100", interval: 15 * time.Second}
	tg.offset = phase(tg.key, tg.interval)
	now := time.Unix(1700000000, 123456789)
	d1 := tg.nextDue(now)
	if d1.Before(now) || d1.Sub(now) >= tg.interval {
		t.Fatalf("due %v not within one interval after %v", d1, now)
	}
	if got := time.Duration(d1.UnixNano() % int64(tg.interval)); got != tg.offset {
		t.Fatalf("due not aligned: phase %v, want %v", got, tg.offset)
	}
	// Any member computing it later agrees on the instants.
	d2 := tg.nextDue(now.Add(7 * time.Second))
	if d := d2.Sub(d1); d%tg.interval != 0 {
		t.Fatalf("two computations differ by %v, not a multiple of the interval", d)
	}
}

// TestRunScrapesOnSchedule runs the whole engine: wheel, queue, workers.
func TestRunScrapesOnSchedule(t *testing.T) {
	// Registered first, so it runs after the exporter's cleanup. Nothing
	// is exempt: the workers, and the connections' owners (targets, not
	// fasthttp host clients with their cleaner goroutines), leave none.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	x := newExporter(t, "a 1\n")
	s := newRecSink()
	e := newTestEngine(t, s)
	if err := e.ApplyConfig(mustConfig(t, `
scrape_configs:
- job_name: fast
  scrape_interval: 100ms
  scrape_timeout: 50ms
`)); err != nil {
		t.Fatal(err)
	}
	e.SyncTargets("fast", groups(x.addr()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	var ts []int64
	for len(ts) < 3 {
		select {
		case r := <-s.ch:
			ts = append(ts, r.t)
		case <-time.After(5 * time.Second):
			t.Fatal("no scrapes")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Each scrape is stamped at its due instant (or, if the machine was
	// late by more than the tolerance, when it actually started): on the
	// target's phase within the 100ms interval.
	tg := only(t, e, "fast")
	for _, ms := range ts {
		late := (time.Duration(ms)*time.Millisecond - tg.offset.Truncate(time.Millisecond)) % (100 * time.Millisecond)
		if late < 0 {
			late += 100 * time.Millisecond
		}
		if late > 30*time.Millisecond {
			t.Errorf("scrape at %d is %v off the target's phase %v", ms, late, tg.offset)
		}
	}
}

func TestAuthorization(t *testing.T) {
	dir := t.TempDir()
	tokFile := dir + "/token"
	if err := os.WriteFile(tokFile, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, s, x, tg := setup(t, "a 1\n", "  bearer_token_file: "+tokFile)
	scrapeOnce(t, e, s, tg)
	authSeen := func() string {
		x.mu.Lock()
		defer x.mu.Unlock()
		return x.headers.Get("Authorization")
	}
	if got := authSeen(); got != "Bearer first" {
		t.Fatalf("Authorization = %q", got)
	}
	// A rotated token is picked up once the cached one is old enough.
	if err := os.WriteFile(tokFile, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	tg.job.client.authMu.Lock()
	tg.job.client.authAt = time.Now().Add(-credentialsRefresh)
	tg.job.client.authMu.Unlock()
	scrapeOnce(t, e, s, tg)
	if got := authSeen(); got != "Bearer second" {
		t.Fatalf("after rotation Authorization = %q", got)
	}
	// An unreadable file fails the scrape instead of sending no credentials.
	os.Remove(tokFile)
	tg.job.client.authMu.Lock()
	tg.job.client.authAt = time.Now().Add(-credentialsRefresh)
	tg.job.client.authMu.Unlock()
	r := scrapeOnce(t, e, s, tg)
	if v := r.mustFind(t, fmt.Sprintf(`{__name__="up", instance="%s", job="j"}`, x.addr())); v != 0 {
		t.Errorf("up = %v with an unreadable token file", v)
	}
	if st := tg.status(); !strings.Contains(st.LastError, "bearer_token_file") {
		t.Errorf("error %q does not name the field", st.LastError)
	}

	e, s, x, tg = setup(t, "a 1\n", "  basic_auth: {username: u, password: p}")
	scrapeOnce(t, e, s, tg)
	if got := authSeen(); got != "Basic dTpw" {
		t.Fatalf("basic auth header %q", got)
	}
}

func TestHTTPSWithCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("tls_ok 1\n"))
	}))
	defer srv.Close()
	ca := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.URL, "https://")
	for _, c := range []struct {
		name, extra string
		up          float64
	}{
		{"trusted CA", "  scheme: https\n  tls_config: {ca_file: " + ca + "}", 1},
		{"unknown CA", "  scheme: https", 0},
	} {
		e, s, tg := engineFor(t, addr, c.extra)
		r := scrapeOnce(t, e, s, tg)
		if v := r.mustFind(t, fmt.Sprintf(`{__name__="up", instance="%s", job="j"}`, addr)); v != c.up {
			t.Errorf("%s: up = %v (error %q)", c.name, v, tg.status().LastError)
		}
	}
}

func TestRedirects(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			http.Redirect(w, r, "/real", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("moved 1\n"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, c := range []struct {
		extra string
		up    float64
	}{{"", 1}, {"  follow_redirects: false", 0}} {
		e, s, tg := engineFor(t, addr, c.extra)
		r := scrapeOnce(t, e, s, tg)
		if v := r.mustFind(t, fmt.Sprintf(`{__name__="up", instance="%s", job="j"}`, addr)); v != c.up {
			t.Errorf("%q: up = %v (error %q)", c.extra, v, tg.status().LastError)
		}
		if c.up == 1 {
			r.mustFind(t, fmt.Sprintf(`{__name__="moved", instance="%s", job="j"}`, addr))
		}
	}
}

// TestHandOverAtInstant runs two engines over the same targets and swaps
// ownership between them at one instant announced ahead, as coord/ does on
// a join or a graceful leave: every due instant of every target must be
// scraped exactly once across the two, and the hand-over writes no
// staleness markers.
func TestHandOverAtInstant(t *testing.T) {
	const n = 16
	var addrs []string
	for range n {
		addrs = append(addrs, newExporter(t, "a 1\n").addr())
	}
	cfg := mustConfig(t, `
scrape_configs:
- job_name: j
  scrape_interval: 200ms
  scrape_timeout: 150ms
`)
	even := func(key string) bool { return xxhash.Sum64String(key)%2 == 0 }
	sinks := [2]*recSink{newRecSink(), newRecSink()}
	var engines [2]*Engine
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range engines {
		e, err := New(Config{Workers: 8, RequireOwner: true}, sinks[i], prometheus.NewRegistry(), nil)
		if err != nil {
			t.Fatal(err)
		}
		engines[i] = e
		if err := e.ApplyConfig(cfg); err != nil {
			t.Fatal(err)
		}
		e.SyncTargets("j", groups(addrs...))
		mine := i == 0
		e.SetOwner(ownerFunc(func(k string) bool { return even(k) == mine }), time.Time{})
		wg.Go(func() { _ = e.Run(ctx) })
	}
	// Announce the swap 500ms ahead, one engine after the other (as two
	// members learn of a ZooKeeper event at slightly different times).
	time.Sleep(300 * time.Millisecond) // let a few scrapes happen first; not synchronisation
	at := time.Now().Add(500 * time.Millisecond)
	for i, e := range engines {
		mine := i == 1
		e.SetOwner(ownerFunc(func(k string) bool { return even(k) == mine }), at)
		time.Sleep(150 * time.Millisecond) // the other member learns later: not synchronisation
	}
	// Wait until every target has been scraped twice after the swap.
	deadline := time.Now().Add(10 * time.Second)
	for {
		after := map[string]int{}
		for _, s := range sinks {
			s.mu.Lock()
			for _, r := range s.scrapes {
				if r.t > at.UnixMilli() {
					after[r.key]++
				}
			}
			s.mu.Unlock()
		}
		done := len(after) == n
		for _, c := range after {
			done = done && c >= 2
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets not scraped twice after the hand-over within 10s: %v", after)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	byKey := map[string][]int64{}
	for i, s := range sinks {
		for _, r := range s.scrapes {
			byKey[r.key] = append(byKey[r.key], r.t)
			for _, smp := range r.samples {
				if value.IsStaleNaN(smp.v) {
					t.Errorf("engine %d wrote a staleness marker for %s at %d", i, smp.series, smp.t)
				}
			}
		}
	}
	if len(byKey) != n {
		t.Fatalf("%d targets scraped, want %d", len(byKey), n)
	}
	for key, ts := range byKey {
		slices.Sort(ts)
		for k := 1; k < len(ts); k++ {
			// Timestamps snap to the due instant only within a small
			// tolerance (a loaded machine starts scrapes late): compare
			// in whole intervals.
			if d := ts[k] - ts[k-1]; d < 100 || d > 300 {
				t.Errorf("%s: scrapes at %d and %d: %dms apart, want one interval of 200 (a double or a gap at the hand-over %d)", key, ts[k-1], ts[k], d, at.UnixMilli())
			}
		}
		if ts[0] > at.UnixMilli() || ts[len(ts)-1] < at.UnixMilli() {
			t.Errorf("%s: scrapes %d..%d do not span the hand-over at %d", key, ts[0], ts[len(ts)-1], at.UnixMilli())
		}
	}
}
