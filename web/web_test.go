package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/goleak"

	"github.com/shoal-scraper/shoal/discovery"
	"github.com/shoal-scraper/shoal/engine"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource is a TargetSource with a fixed snapshot.
type fakeSource struct {
	jobs  []engine.JobStatus
	ready atomic.Bool
}

func (f *fakeSource) Jobs() []engine.JobStatus { return f.jobs }
func (f *fakeSource) Ready() bool              { return f.ready.Load() }

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	upURL      = "http://10.0.0.1:8080/metrics"
	downURL    = "http://10.0.0.2:8080/metrics"
	unknownURL = "http://host1:9100/metrics"
	scriptVal  = "<script>alert(1)</script>"
	jobErr     = `invalid job: scrape_timeout "20s" greater than scrape_interval "15s"`
	downErr    = `Get "http://10.0.0.2:8080/metrics": dial tcp 10.0.0.2:8080: connect: connection refused`
)

// testJobs: job api with one up target (carrying a hostile label value) and
// one down target, job broken with only a job-level error, job node with
// one target never scraped.
func testJobs() []engine.JobStatus {
	return []engine.JobStatus{
		{Name: "api", Targets: []engine.TargetStatus{
			{
				Job: "api", Key: "api/10.0.0.1:8080", URL: upURL,
				Labels:           labels.FromStrings("env", scriptVal, "instance", "10.0.0.1:8080", "job", "api"),
				DiscoveredLabels: labels.FromStrings("__address__", "10.0.0.1:8080", "__meta_x", "y"),
				Health:           engine.HealthUp,
				LastScrape:       testNow.Add(-3200 * time.Millisecond),
				LastDuration:     52300 * time.Microsecond,
				LastSamples:      1234,
				Interval:         15 * time.Second,
				Timeout:          10 * time.Second,
				NextScrape:       testNow.Add(11800 * time.Millisecond),
			},
			{
				Job: "api", Key: "api/10.0.0.2:8080", URL: downURL,
				Labels:       labels.FromStrings("instance", "10.0.0.2:8080", "job", "api"),
				Health:       engine.HealthDown,
				LastScrape:   testNow.Add(-time.Second),
				LastDuration: 2 * time.Millisecond,
				LastError:    downErr,
				Interval:     15 * time.Second,
				Timeout:      10 * time.Second,
			},
		}},
		{Name: "broken", Error: jobErr},
		{Name: "node", Targets: []engine.TargetStatus{
			{
				Job: "node", Key: "node/host1:9100", URL: unknownURL,
				Labels:   labels.FromStrings("instance", "host1:9100", "job", "node"),
				Health:   engine.HealthUnknown,
				Interval: time.Minute,
				Timeout:  10 * time.Second,
			},
		}},
	}
}

func newTestServer(t testing.TB, src TargetSource, g prometheus.Gatherer) *Server {
	t.Helper()
	if g == nil {
		g = prometheus.NewRegistry()
	}
	return New(Config{Version: "v9.9.9-test", Now: func() time.Time { return testNow }}, src, g, nil)
}

// get serves one request in-process and returns the recorded response.
func get(t *testing.T, h http.Handler, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHealthyAndReady(t *testing.T) {
	for _, tc := range []struct {
		path     string
		ready    bool
		wantCode int
		wantBody string
	}{
		{"/-/healthy", false, 200, "shoal is Healthy.\n"},
		{"/-/healthy", true, 200, "shoal is Healthy.\n"},
		{"/-/ready", false, 503, "shoal is not ready.\n"},
		{"/-/ready", true, 200, "shoal is Ready.\n"},
	} {
		t.Run(fmt.Sprintf("%s/ready=%v", tc.path, tc.ready), func(t *testing.T) {
			src := &fakeSource{}
			src.ready.Store(tc.ready)
			rec := get(t, newTestServer(t, src, nil).Handler(), tc.path)
			if rec.Code != tc.wantCode || rec.Body.String() != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_test_events_total", Help: "Test events."})
	c.Add(3)
	reg.MustRegister(c, collectors.NewGoCollector())
	h := newTestServer(t, &fakeSource{}, reg).Handler()

	rec := get(t, h, "/metrics")
	if rec.Code != 200 {
		t.Fatalf("code %d, body %q", rec.Code, rec.Body.String())
	}
	for _, want := range []string{"shoal_test_events_total 3\n", "\ngo_goroutines "} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	rec = get(t, h, "/metrics", "Accept", "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;q=0.5")
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("OpenMetrics request got Content-Type %q", ct)
	}
	if !strings.HasSuffix(rec.Body.String(), "# EOF\n") {
		t.Errorf("OpenMetrics body does not end with # EOF")
	}
}

func TestTargetsHTML(t *testing.T) {
	src := &fakeSource{jobs: testJobs()}
	src.ready.Store(true)
	rec := get(t, newTestServer(t, src, nil).Handler(), "/targets",
		"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("code %d, body %q", rec.Code, body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, want := range []string{
		upURL, downURL, unknownURL,
		">api</a>", ">broken</a>", ">node</a>",
		"(1/2 up, 1 down)", "(0/0 up)", "(0/1 up, 1 unknown)",
		"1/3 up</strong> in 3 jobs",
		`class="joberr">Job error: invalid job: scrape_timeout &#34;20s&#34; greater than scrape_interval &#34;15s&#34;`,
		`<span class="state up">up</span>`, `<span class="state down">down</span>`, `<span class="state unknown">unknown</span>`,
		`<span class="chip">instance="10.0.0.1:8080"</span>`,
		`<span class="chip">env="&lt;script&gt;alert(1)&lt;/script&gt;"</span>`,
		"3.2s ago", "52.3ms", ">1234<", "never",
		"connection refused",
		"v9.9.9-test",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, scriptVal) {
		t.Errorf("page contains the unescaped label value %q", scriptVal)
	}
	if strings.Contains(body, "Not ready") {
		t.Errorf("ready source shows the not-ready banner")
	}

	src.ready.Store(false)
	rec = get(t, newTestServer(t, src, nil).Handler(), "/targets")
	if !strings.Contains(rec.Body.String(), "Not ready") {
		t.Errorf("not-ready source shows no banner")
	}
}

func TestTargetsHTMLFilters(t *testing.T) {
	src := &fakeSource{jobs: testJobs()}
	h := newTestServer(t, src, nil).Handler()
	for _, tc := range []struct {
		query       string
		want, avoid []string
	}{
		{"job=api", []string{upURL, downURL, ">api</a>"}, []string{unknownURL, ">broken</a>", ">node</a>"}},
		{"job=api&job=node", []string{upURL, unknownURL}, []string{">broken</a>"}},
		{"scrapePool=node", []string{unknownURL}, []string{upURL, ">api</a>"}},
		{"health=down", []string{downURL, ">broken</a>", "Job error"}, []string{upURL, unknownURL, ">node</a>"}},
		{"health=up,unknown", []string{upURL, unknownURL}, []string{downURL}},
		{"health=up&health=unknown", []string{upURL, unknownURL}, []string{downURL}},
		{"job=node&health=down", []string{"No jobs match the filter"}, []string{upURL, downURL, unknownURL}},
		{"job=nope", []string{"No jobs match the filter", "(<a"}, []string{upURL}},
		{"job=&health=", []string{upURL, downURL, unknownURL}, nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			rec := get(t, h, "/targets?"+tc.query)
			if rec.Code != 200 {
				t.Fatalf("code %d", rec.Code)
			}
			body := rec.Body.String()
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("lacks %q", w)
				}
			}
			for _, a := range tc.avoid {
				if strings.Contains(body, a) {
					t.Errorf("contains %q", a)
				}
			}
		})
	}
}

func TestTargetsBadQuery(t *testing.T) {
	h := newTestServer(t, &fakeSource{jobs: testJobs()}, nil).Handler()
	for _, target := range []string{
		"/targets?health=sick",
		"/targets?format=xml",
		"/targets?format=json&health=sick",
		"/api/v1/targets?health=sick",
	} {
		rec := get(t, h, target)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: code %d, want 400", target, rec.Code)
		}
	}
	rec := get(t, h, "/api/v1/targets?health=sick")
	var e struct{ Status, ErrorType, Error string }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Status != "error" || e.ErrorType != "bad_data" || !strings.Contains(e.Error, `"sick"`) {
		t.Errorf("API error body %q (decode err %v)", rec.Body.String(), err)
	}
}

// apiDoc mirrors the documented JSON.
type apiDoc struct {
	Status string `json:"status"`
	Data   struct {
		ActiveTargets []map[string]any `json:"activeTargets"`
		Jobs          []apiJob         `json:"jobs"`
	} `json:"data"`
}

func getAPI(t *testing.T, h http.Handler, target string, header ...string) apiDoc {
	t.Helper()
	rec := get(t, h, target, header...)
	if rec.Code != 200 {
		t.Fatalf("%s: code %d, body %q", target, rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q", target, ct)
	}
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	var doc apiDoc
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: decode: %v", target, err)
	}
	if dec.More() {
		t.Fatalf("%s: trailing data after the document", target)
	}
	return doc
}

func TestTargetsJSON(t *testing.T) {
	h := newTestServer(t, &fakeSource{jobs: testJobs()}, nil).Handler()
	wantFields := []string{
		"job", "scrapePool", "key", "scrapeUrl", "labels", "discoveredLabels", "health",
		"lastScrape", "lastScrapeDuration", "lastError", "lastSamples",
		"scrapeInterval", "scrapeTimeout", "nextScrape",
	}
	slices.Sort(wantFields)
	wantUp := map[string]any{
		"job":                "api",
		"scrapePool":         "api",
		"key":                "api/10.0.0.1:8080",
		"scrapeUrl":          upURL,
		"labels":             map[string]any{"env": scriptVal, "instance": "10.0.0.1:8080", "job": "api"},
		"discoveredLabels":   map[string]any{"__address__": "10.0.0.1:8080", "__meta_x": "y"},
		"health":             "up",
		"lastScrape":         "2026-03-01T11:59:56.8Z",
		"lastScrapeDuration": 0.0523,
		"lastError":          "",
		"lastSamples":        1234.0,
		"scrapeInterval":     "15s",
		"scrapeTimeout":      "10s",
		"nextScrape":         "2026-03-01T12:00:11.8Z",
	}
	wantJobs := []apiJob{{Name: "api"}, {Name: "broken", Error: jobErr}, {Name: "node"}}

	for _, req := range []struct {
		target string
		header []string
	}{
		{"/targets?format=json", nil},
		{"/targets", []string{"Accept", "application/json"}},
		{"/targets", []string{"Accept", "application/json, text/html;q=0.5"}},
		{"/api/v1/targets", nil},
	} {
		t.Run(req.target+" "+strings.Join(req.header, ": "), func(t *testing.T) {
			doc := getAPI(t, h, req.target, req.header...)
			if doc.Status != "success" {
				t.Errorf("status %q", doc.Status)
			}
			if got := len(doc.Data.ActiveTargets); got != 3 {
				t.Fatalf("%d active targets, want 3", got)
			}
			for _, at := range doc.Data.ActiveTargets {
				if got := slices.Sorted(maps.Keys(at)); !slices.Equal(got, wantFields) {
					t.Errorf("target fields %v, want %v", got, wantFields)
				}
			}
			got := doc.Data.ActiveTargets[0]
			for k, want := range wantUp {
				if fmt.Sprint(got[k]) != fmt.Sprint(want) {
					t.Errorf("up target %s = %v, want %v", k, got[k], want)
				}
			}
			down, unknown := doc.Data.ActiveTargets[1], doc.Data.ActiveTargets[2]
			if down["health"] != "down" || down["lastError"] != downErr {
				t.Errorf("down target: health %v, lastError %v", down["health"], down["lastError"])
			}
			if unknown["health"] != "unknown" || unknown["lastScrape"] != "0001-01-01T00:00:00Z" || unknown["scrapeInterval"] != "1m" {
				t.Errorf("unknown target: health %v, lastScrape %v, scrapeInterval %v",
					unknown["health"], unknown["lastScrape"], unknown["scrapeInterval"])
			}
			if !reflect.DeepEqual(doc.Data.Jobs, wantJobs) {
				t.Errorf("jobs %v, want %v", doc.Data.Jobs, wantJobs)
			}
		})
	}
}

func TestTargetsJSONFilters(t *testing.T) {
	h := newTestServer(t, &fakeSource{jobs: testJobs()}, nil).Handler()
	for _, tc := range []struct {
		query    string
		wantKeys []string
		wantJobs []string
	}{
		{"", []string{"api/10.0.0.1:8080", "api/10.0.0.2:8080", "node/host1:9100"}, []string{"api", "broken", "node"}},
		{"health=down", []string{"api/10.0.0.2:8080"}, []string{"api", "broken"}},
		{"job=node", []string{"node/host1:9100"}, []string{"node"}},
		{"scrapePool=api&health=up", []string{"api/10.0.0.1:8080"}, []string{"api"}},
		{"job=nope", nil, nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			doc := getAPI(t, h, "/api/v1/targets?"+tc.query)
			var keys, jobs []string
			for _, at := range doc.Data.ActiveTargets {
				keys = append(keys, at["key"].(string))
			}
			for _, j := range doc.Data.Jobs {
				jobs = append(jobs, j.Name)
			}
			if !slices.Equal(keys, tc.wantKeys) || !slices.Equal(jobs, tc.wantJobs) {
				t.Errorf("keys %v jobs %v, want %v %v", keys, jobs, tc.wantKeys, tc.wantJobs)
			}
		})
	}
}

func TestTargetsJSONEmpty(t *testing.T) {
	rec := get(t, newTestServer(t, &fakeSource{}, nil).Handler(), "/api/v1/targets")
	if want := `{"status":"success","data":{"activeTargets":[],"jobs":[]}}` + "\n"; rec.Body.String() != want {
		t.Errorf("got %q, want %q", rec.Body.String(), want)
	}
}

func TestWantsJSON(t *testing.T) {
	for _, tc := range []struct {
		query, accept string
		want          bool
	}{
		{"", "", false},
		{"", "*/*", false},
		{"", "application/json", true},
		{"", "Application/JSON; charset=utf-8", true},
		{"", "text/html,application/json", false},
		{"", "application/json,text/html", true},
		{"format=html", "application/json", false},
		{"format=json", "text/html", true},
	} {
		r := httptest.NewRequest("GET", "/targets?"+tc.query, nil)
		if tc.accept != "" {
			r.Header.Set("Accept", tc.accept)
		}
		if got, err := wantsJSON(r); got != tc.want || err != nil {
			t.Errorf("?%s Accept %q: got %v, %v; want %v", tc.query, tc.accept, got, err, tc.want)
		}
	}
}

func TestFormatAgo(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration // now - t
		want string
	}{
		{3200 * time.Millisecond, "3.2s ago"},
		{850 * time.Microsecond, "850µs ago"},
		{52300 * time.Microsecond, "52.3ms ago"},
		{125 * time.Second, "2m5s ago"},
		{-2 * time.Second, "in 2.0s"},
	} {
		if got := formatAgo(testNow, testNow.Add(-tc.d)); got != tc.want {
			t.Errorf("formatAgo(now-%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := formatAgo(testNow, time.Time{}); got != "never" {
		t.Errorf("formatAgo(zero) = %q, want never", got)
	}
}

func TestRoutes(t *testing.T) {
	s := newTestServer(t, &fakeSource{}, nil)
	s.Handle("/cluster", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "cluster page")
	}))
	h := s.Handler()

	rec := get(t, h, "/")
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/targets" {
		t.Errorf("/: %d Location %q, want 302 /targets", rec.Code, rec.Header().Get("Location"))
	}
	if rec := get(t, h, "/nope"); rec.Code != http.StatusNotFound {
		t.Errorf("/nope: %d, want 404", rec.Code)
	}
	if rec := get(t, h, "/cluster"); rec.Code != 200 || rec.Body.String() != "cluster page" {
		t.Errorf("/cluster: %d %q", rec.Code, rec.Body.String())
	}
	rec = get(t, h, "/debug/pprof/")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("/debug/pprof/: %d, body has no goroutine profile", rec.Code)
	}
	rec = get(t, h, "/debug/pprof/goroutine?debug=1")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine: %d", rec.Code)
	}
	if rec := get(t, h, "/debug/pprof/cmdline"); rec.Code != 200 {
		t.Errorf("/debug/pprof/cmdline: %d", rec.Code)
	}
}

func TestConfig(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
	if got := (Config{}).withDefaults(); got.ListenAddress != ":9464" || got.ReadTimeout != 30*time.Second || got.Now == nil {
		t.Errorf("defaults not applied: %+v", got)
	}
	for _, c := range []Config{
		{ListenAddress: "9464"},
		{ReadTimeout: -time.Second},
		{ShutdownTimeout: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: Validate accepted it", c)
		}
	}
}

// addrLogger hands the address from "web server listening" to a channel.
type addrLogger struct {
	slog.Handler
	addrs chan string
}

func (h addrLogger) Enabled(context.Context, slog.Level) bool { return true }
func (h addrLogger) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "web server listening" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "address" {
				h.addrs <- a.Value.String()
			}
			return true
		})
	}
	return nil
}

func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t)

	src := &fakeSource{jobs: testJobs()}
	src.ready.Store(true)
	addrs := make(chan string, 1)
	s := New(Config{ListenAddress: "127.0.0.1:0"}, src, prometheus.NewRegistry(),
		slog.New(addrLogger{slog.DiscardHandler, addrs}))

	// A handler that holds its request until the request's context ends,
	// like a pprof profile: shutdown must cancel it, not wait for it.
	started := make(chan struct{})
	s.Handle("/block", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	}))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not start listening")
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + addr + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "shoal is Ready.\n" {
		t.Fatalf("/-/ready over TCP: %d %q", resp.StatusCode, body)
	}

	blocked := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/block")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		blocked <- err
	}()
	<-started

	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Run took %v to return after cancel", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	<-blocked

	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Run returned", addr)
	}
}

func TestRunPortInUse(t *testing.T) {
	defer goleak.VerifyNone(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	s := New(Config{ListenAddress: ln.Addr().String()}, &fakeSource{}, prometheus.NewRegistry(), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Run(ctx)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Run on a taken port: %v, want EADDRINUSE", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Run took %v to report the taken port", d)
	}
}

func TestRunInvalidConfig(t *testing.T) {
	s := New(Config{ListenAddress: "no-port"}, &fakeSource{}, prometheus.NewRegistry(), nil)
	if err := s.Run(t.Context()); err == nil {
		t.Error("Run accepted a listen address without a port")
	}
}

// benchJobs builds n targets in jobs of 100, with realistic label sets and
// a mix of health.
func benchJobs(n int) []engine.JobStatus {
	const perJob = 100
	var jobs []engine.JobStatus
	for i := 0; i < n; i += perJob {
		job := fmt.Sprintf("job-%03d", i/perJob)
		js := engine.JobStatus{Name: job}
		for k := 0; k < perJob && i+k < n; k++ {
			inst := fmt.Sprintf("10.%d.%d.%d:9100", (i+k)>>16&255, (i+k)>>8&255, (i+k)&255)
			ts := engine.TargetStatus{
				Job: job, Key: job + "/" + inst, URL: "http://" + inst + "/metrics",
				Labels: labels.FromStrings("instance", inst, "job", job, "env", "prod",
					"region", "eu-west-1", "team", "storage"),
				DiscoveredLabels: labels.FromStrings("__address__", inst, "__metrics_path__", "/metrics",
					"__scheme__", "http", "__meta_consul_service", job, "__meta_consul_node", "node-"+inst),
				Health:       engine.HealthUp,
				LastScrape:   testNow.Add(-time.Duration(k) * 100 * time.Millisecond),
				LastDuration: 23 * time.Millisecond,
				LastSamples:  1500,
				Interval:     15 * time.Second,
				Timeout:      10 * time.Second,
				NextScrape:   testNow.Add(time.Duration(k) * 100 * time.Millisecond),
			}
			if k%10 == 0 {
				ts.Health = engine.HealthDown
				ts.LastError = "Get \"" + ts.URL + "\": context deadline exceeded"
			}
			js.Targets = append(js.Targets, ts)
		}
		jobs = append(jobs, js)
	}
	return jobs
}

// discardWriter is a ResponseWriter that counts and drops the body.
type discardWriter struct {
	h http.Header
	n int64
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

// BenchmarkTargetsPage renders the whole /targets page for a snapshot of n
// targets. Bytes/s is output bytes.
//
//	go test ./web -run '^$' -bench BenchmarkTargetsPage -benchmem -count=10 -cpu=2 | tee new.txt
//	benchstat -col /format old.txt new.txt
func BenchmarkTargetsPage(b *testing.B) {
	for _, n := range []int{10000} {
		h := newTestServer(b, &fakeSource{jobs: benchJobs(n)}, nil).Handler()
		for _, format := range []string{"json", "html"} {
			b.Run(fmt.Sprintf("targets=%d/format=%s", n, format), func(b *testing.B) {
				req := httptest.NewRequest(http.MethodGet, "/targets?format="+format, nil)
				w := &discardWriter{h: http.Header{}}
				h.ServeHTTP(w, req)
				b.SetBytes(w.n)
				b.ReportAllocs()
				for b.Loop() {
					w.h = http.Header{}
					h.ServeHTTP(w, req)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/target")
			})
		}
	}
}

// FuzzAppendRow checks appendRow's safety contract: whatever the values,
// they add no markup. Escaped values contain none of < > " ', so a row
// built from hostile values must hold exactly as many of them as the same
// row built from a harmless value.
func FuzzAppendRow(f *testing.F) {
	for _, seed := range []string{scriptVal, `" onmouseover="alert(1)`, `'&amp;<`, "\x00", "x"} {
		f.Add(seed)
	}
	markup := func(b []byte) (n [4]int) {
		for i, c := range []byte(`<>"'`) {
			n[i] = strings.Count(string(b), string(c))
		}
		return n
	}
	row := func(v string) []byte {
		t := engine.TargetStatus{
			URL:              "http://" + v,
			Labels:           labels.FromStrings("a"+v, v),
			DiscoveredLabels: labels.FromStrings("__address__", v),
			Health:           engine.Health(v),
			LastScrape:       testNow.Add(-time.Second),
			LastError:        v,
		}
		return appendRow(nil, &t, testNow)
	}
	want := markup(row("x"))
	f.Fuzz(func(t *testing.T, v string) {
		if got := markup(row(v)); got != want {
			t.Errorf("value %q: counts of <>\"' = %v, want %v:\n%s", v, got, want, row(v))
		}
	})
}

func TestAppendRowURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		link bool
	}{
		{"http://a:1/metrics", true},
		{"HTTPS://a/metrics?x=1&y=2", true},
		{"javascript:alert(1)//", false},
		{"data:text/html,<b>x</b>", false},
		{"", false},
	} {
		row := string(appendRow(nil, &engine.TargetStatus{URL: tc.url}, testNow))
		if got := strings.Contains(row, "<a href="); got != tc.link {
			t.Errorf("%q: link %v, want %v: %s", tc.url, got, tc.link, row)
		}
		if strings.Contains(row, "<b>") {
			t.Errorf("%q: unescaped markup: %s", tc.url, row)
		}
	}
}

// fakeDiscovery is a DiscoverySource with a fixed answer.
type fakeDiscovery map[string][]discovery.Status

func (f fakeDiscovery) Status() map[string][]discovery.Status { return f }

// TestTargetsDiscoveryStatus checks that a failing SD config is visible on
// /targets (HTML and JSON) and that a health filter still lists its job.
func TestTargetsDiscoveryStatus(t *testing.T) {
	sdErr := `SRV _node._tcp.example.test: NXDOMAIN (the name does not exist)`
	sd := fakeDiscovery{
		"node": {
			{Config: "dns_sd_configs[0]", Mechanism: "dns", Targets: 1, LastRefresh: testNow.Add(-4 * time.Second), Error: sdErr},
			{Config: "file_sd_configs[0]", Mechanism: "file", Targets: 0, LastRefresh: testNow.Add(-time.Minute)},
		},
	}
	s := New(Config{Version: "v", Now: func() time.Time { return testNow }, Discovery: sd}, &fakeSource{jobs: testJobs()}, prometheus.NewRegistry(), nil)
	h := s.Handler()

	body := get(t, h, "/targets").Body.String()
	for _, want := range []string{
		`dns_sd_configs[0] (dns): 1 target, refreshed 4.0s ago`,
		`Discovery failing, keeping the last good targets: ` + template.HTMLEscapeString(sdErr),
		`file_sd_configs[0] (file): 0 targets, refreshed 1m0s ago</div>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/targets lacks %q", want)
		}
	}
	// node's only target is unknown, not down; its failing discovery
	// still lists it under ?health=down.
	if body := get(t, h, "/targets?health=down").Body.String(); !strings.Contains(body, `?job=node`) {
		t.Error("?health=down hides a job whose discovery fails")
	}

	doc := getAPI(t, h, "/api/v1/targets")
	var node *apiJob
	for i := range doc.Data.Jobs {
		if doc.Data.Jobs[i].Name == "node" {
			node = &doc.Data.Jobs[i]
		}
	}
	if node == nil || len(node.Discovery) != 2 || node.Discovery[0].Error != sdErr || node.Discovery[0].Targets != 1 ||
		!node.Discovery[0].LastRefresh.Equal(testNow.Add(-4*time.Second)) || node.Discovery[1].Mechanism != "file" {
		t.Errorf("API job node: %+v", node)
	}
}
