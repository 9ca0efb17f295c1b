package e2e

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// syntheticNames are the series shoal adds to every scrape, in Prometheus's
// order.
var syntheticNames = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}

func isSynthetic(name string) bool { return slices.Contains(syntheticNames, name) }

// nodeExporter returns SHOAL_TEST_NODE_EXPORTER, following the README's
// rule: skip only under -short, otherwise a missing variable fails.
func nodeExporter(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("SHOAL_TEST_NODE_EXPORTER")
	if addr == "" {
		if testing.Short() {
			t.Skip("SHOAL_TEST_NODE_EXPORTER not set (-short)")
		}
		t.Fatal("SHOAL_TEST_NODE_EXPORTER not set: run `make test`, or `scripts/testenv.sh up` and `set -a; . .testenv/env; set +a` first (or go test -short to skip)")
	}
	return addr
}

// one returns the single sample of name in a scrape, failing otherwise.
func one(t *testing.T, scrape []sample, name string) sample {
	t.Helper()
	var got []sample
	for _, s := range scrape {
		if s.name == name {
			got = append(got, s)
		}
	}
	if len(got) != 1 {
		t.Fatalf("want exactly one %s in the scrape, got %d: %v", name, len(got), got)
	}
	return got[0]
}

// seriesKey is a series without the target labels job and instance, in a
// canonical form, to compare shoal's output with an exporter's own.
//
// Two differences between an exposition and what a Prometheus 3 scraper
// stores are normalised away: a label with an empty value is no label, and
// le and quantile values are written in float form ("1" becomes "1.0").
func seriesKey(name string, labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	var b strings.Builder
	b.WriteString(name)
	for _, k := range keys {
		v := labels[k]
		if k == "job" || k == "instance" || v == "" {
			continue
		}
		if k == "le" || k == "quantile" {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				v = strconv.FormatFloat(f, 'g', -1, 64)
			}
		}
		fmt.Fprintf(&b, ",%s=%q", k, v)
	}
	return b.String()
}

// fetchExposition GETs a text-format exposition and returns its samples by
// series key, and the metric names.
func fetchExposition(t *testing.T, url string) (series map[string]float64, names map[string]bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("%s: Content-Type %q, want text/plain", url, resp.Header.Get("Content-Type"))
	}
	series, names = map[string]float64{}, map[string]bool{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%s: line %q: %v", url, line, err)
		}
		name, labels, err := parseSeries(line[:i])
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		series[seriesKey(name, labels)] = v
		names[name] = true
	}
	return series, names
}

// TestNodeExporter scrapes the real node_exporter and checks what comes out
// against what node_exporter serves when asked directly.
func TestNodeExporter(t *testing.T) {
	addr := nodeExporter(t)
	t.Parallel()
	p := startShoal(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [%q]
`, addr))
	tl := lbl("job", "node", "instance", addr)
	ups := p.waitSamples(20*time.Second, 0, 2, "up", tl)
	// Right after the second scrape: node_exporter's own answer, to compare.
	direct, directNames := fetchExposition(t, "http://"+addr+"/metrics")
	all := p.all()

	for i, up := range ups[:2] {
		if up.value != 1 {
			t.Fatalf("scrape %d: %v, want up 1", i+1, up)
		}
		scrape := scrapeOf(all, up.ts, func(sample) bool { return true })
		var served []sample
		for _, s := range scrape {
			if s.labels["job"] != "node" || s.labels["instance"] != addr {
				t.Errorf("sample without the target labels job=node instance=%s: %v", addr, s)
			}
			if s.stale {
				t.Errorf("staleness marker in a good scrape of an unchanged target: %v", s)
			}
			if !isSynthetic(s.name) {
				served = append(served, s)
			}
		}
		for _, name := range syntheticNames {
			one(t, scrape, name)
		}
		n := float64(len(served))
		if n < 100 {
			t.Fatalf("scrape %d: only %d samples from node_exporter", i+1, len(served))
		}
		if !slices.ContainsFunc(served, func(s sample) bool { return strings.HasPrefix(s.name, "node_") }) {
			t.Errorf("scrape %d: no node_* series", i+1)
		}
		if v := one(t, scrape, "scrape_samples_scraped").value; v != n {
			t.Errorf("scrape %d: scrape_samples_scraped %v, but %v samples written", i+1, v, n)
		}
		if v := one(t, scrape, "scrape_samples_post_metric_relabeling").value; v != n {
			t.Errorf("scrape %d: scrape_samples_post_metric_relabeling %v, but %v samples written", i+1, v, n)
		}
		added := one(t, scrape, "scrape_series_added").value
		if i == 0 && added != n {
			t.Errorf("first scrape: scrape_series_added %v, want every series (%v)", added, n)
		}
		if i == 1 && added > n/10 {
			t.Errorf("second scrape: scrape_series_added %v of %v: the series cache forgot the first scrape", added, n)
		}
		if d := one(t, scrape, "scrape_duration_seconds").value; !(d > 0 && d <= 1) {
			t.Errorf("scrape %d: scrape_duration_seconds %v, want within (0, 1s timeout]", i+1, d)
		}
	}

	// The second scrape against node_exporter's direct answer moments
	// later. Values move, and node_exporter may gain or lose a series
	// between two requests (a mount, an interface), so: the same metric
	// names, nearly the same series, and equal values for constants.
	second := scrapeOf(all, ups[1].ts, func(s sample) bool { return !isSynthetic(s.name) })
	got := map[string]float64{}
	gotNames := map[string]bool{}
	for _, s := range second {
		got[seriesKey(s.name, s.labels)] = s.value
		gotNames[s.name] = true
	}
	if !maps.Equal(gotNames, directNames) {
		var onlyShoal, onlyDirect []string
		for n := range gotNames {
			if !directNames[n] {
				onlyShoal = append(onlyShoal, n)
			}
		}
		for n := range directNames {
			if !gotNames[n] {
				onlyDirect = append(onlyDirect, n)
			}
		}
		t.Errorf("metric names differ from node_exporter's own answer: only in shoal's %v, only served directly %v", onlyShoal, onlyDirect)
	}
	compareWithDirect(t, "shoal", got, direct)

	at, ok := p.target("node", addr)
	if !ok || at.Health != "up" || at.LastError != "" || at.Labels["job"] != "node" || at.Labels["instance"] != addr {
		t.Errorf("/targets: node target %+v (found %v), want health up, no error, job and instance labels", at, ok)
	}
}

// grid is a target's schedule as docs/architecture.md defines it: due
// instants are k·interval + offset since the Unix epoch, with offset =
// (xxhash(job + "/" + instance) mod interval_ms) ms. Every member (and every
// restart) therefore scrapes a target at the same instants.
type grid struct{ iv, offset int64 } // ns

func gridFor(job, instance string, interval time.Duration) grid {
	return grid{iv: int64(interval), offset: int64(xxhash.Sum64String(job+"/"+instance)%uint64(interval/time.Millisecond)) * int64(time.Millisecond)}
}

// slot returns the index k of the last due instant whose millisecond is at
// or before tsMs, that instant (ns), and how many ms tsMs is after it.
// A scrape stamped with its due instant has late 0.
func (g grid) slot(tsMs int64) (k, due, late int64) {
	upper := tsMs*1e6 + 999_999
	k = (upper - g.offset) / g.iv
	due = k*g.iv + g.offset
	return k, due, tsMs - due/1e6
}

// checkGrid checks timestamps of consecutive scrapes of one target against
// its grid and returns how many were stamped exactly with a due instant.
// The product's rule (docs/architecture.md, "Timestamps"): a scrape that
// starts within 2ms of its due instant is stamped with it, a later one with
// its real start. So a timestamp is either on the grid or at least 2ms
// after it (1ms after would be a scrape stamped neither way), and no two
// scrapes share a slot. Slots may be skipped only when the machine stalls
// for a whole interval, which must stay rare.
func checkGrid(t *testing.T, what string, g grid, ts []int64) (onGrid int) {
	t.Helper()
	prev := int64(math.MinInt64)
	var slots []int64
	for i, tms := range ts {
		k, _, late := g.slot(tms)
		switch {
		case late == 0:
			onGrid++
		case late == 1:
			t.Errorf("%s: scrape %d at %d is 1ms after its due instant: neither stamped with the due instant nor with a start ≥2ms late", what, i, tms)
		}
		if k <= prev {
			t.Errorf("%s: scrape %d at %d is in slot %d, not after the previous scrape's slot %d: two scrapes in one interval", what, i, tms, k, prev)
		}
		prev = k
		slots = append(slots, k)
	}
	if len(slots) > 1 {
		span := slots[len(slots)-1] - slots[0] + 1
		if int64(len(slots))*2 < span {
			t.Errorf("%s: %d scrapes over %d intervals: more than half the slots skipped (slots %v)", what, len(slots), span, slots)
		}
	}
	return onGrid
}

// TestScrapeTimestampsOnGrid checks that consecutive scrapes of a target are
// one interval apart on the target's phase grid.
//
// A loaded machine delays some scrapes by many ms, and those are stamped
// with their real start (as in Prometheus). So rather than requiring every
// timestamp on the grid, the test uses the exporter's own clock as ground
// truth: each response carries its request number, so every scrape's
// timestamp is matched with when its request arrived. A timestamp must lie
// between its due instant and the request's arrival; a request that arrived
// within 2ms of the due instant was started within 2ms of it, so its
// timestamp must be exactly the due instant; and enough scrapes must land
// exactly on the grid (the test keeps scraping until they do, so a busy
// machine only makes it slower) — a drifting or wrongly phased schedule has
// none after the first.
func TestScrapeTimestampsOnGrid(t *testing.T) {
	t.Parallel()
	const iv = 400 * time.Millisecond
	ex := newExporter(t, reply{body: "e2e_tick 1\n", seq: true})
	p := startShoal(t, fmt.Sprintf(`
scrape_configs:
  - job_name: tick
    scrape_interval: %v
    static_configs:
      - targets: [%q]
`, iv, ex.addr))
	g := gridFor("tick", ex.addr, iv)
	tl := lbl("job", "tick", "instance", ex.addr)

	const minScrapes, minOnGrid, skipFirst = 10, 3, 2
	var ups []sample
	waitFor(t, 40*time.Second, fmt.Sprintf("%d scrapes, %d on the grid after the first %d", minScrapes, minOnGrid, skipFirst), func() (bool, string) {
		ups = p.find(0, "up", tl)
		n := 0
		for i, s := range ups {
			if _, _, late := g.slot(s.ts); i >= skipFirst && late == 0 {
				n++
			}
		}
		return len(ups) >= minScrapes && n >= minOnGrid, fmt.Sprintf("%d scrapes, %d on the grid", len(ups), n)
	})

	// Failed scrapes (a timeout on a very busy machine) have timestamps
	// too, so they count; they only lack e2e_seq.
	var ts []int64
	failed := 0
	for _, s := range ups {
		if s.value != 1 {
			failed++
		}
		ts = append(ts, s.ts)
	}
	onGrid := checkGrid(t, "tick", g, ts)
	if failed > len(ups)/2 {
		t.Errorf("%d of %d scrapes failed", failed, len(ups))
	}

	arrivals := ex.requests()
	quick := 0
	for _, s := range p.find(0, "e2e_seq", tl) {
		if s.stale {
			continue // after a failed scrape
		}
		n := int(s.value)
		if n < 1 || n > len(arrivals) {
			t.Fatalf("%v: no such request (%d requests)", s, len(arrivals))
		}
		arrived := arrivals[n-1]
		_, due, late := g.slot(s.ts)
		if s.ts > arrived.UnixMilli() {
			t.Errorf("%v: timestamp after the request arrived at the exporter (%d): stamped at response, not at start", s, arrived.UnixMilli())
		}
		if arrived.UnixNano()-due < int64(2*time.Millisecond) {
			quick++
			if late != 0 {
				t.Errorf("%v: the request arrived %v after its due instant %d, so the scrape started within 2ms of it, but the timestamp is %dms later", s, time.Duration(arrived.UnixNano()-due), due/1e6, late)
			}
		}
	}
	t.Logf("%d scrapes (%d failed), %d stamped on the grid, %d requests arrived within 2ms of their due instant", len(ts), failed, onGrid, quick)

	// The request itself, as Prometheus sends it.
	h := ex.requestHeaders()[0]
	if got := h.Get("X-Prometheus-Scrape-Timeout-Seconds"); got != "0.4" {
		t.Errorf("X-Prometheus-Scrape-Timeout-Seconds %q, want 0.4 (the timeout defaults to the interval)", got)
	}
	if got := h.Get("User-Agent"); !strings.Contains(got, testVersion) {
		t.Errorf("User-Agent %q does not carry the version %q", got, testVersion)
	}
	if got := h.Get("Accept"); !strings.Contains(got, "application/openmetrics-text") || !strings.Contains(got, "text/plain") {
		t.Errorf("Accept %q, want the OpenMetrics and Prometheus text formats", got)
	}
}

// fault is one way a target can fail, for TestFaults.
type fault struct {
	job     string
	extra   string // extra scrape_config lines (indented 4 spaces)
	good    reply
	bad     reply           // the reply after the switch, unless apply is set
	apply   func(*exporter) // the switch, when not a reply (closing the port)
	wantErr string          // substring of lastError on /targets
}

const goodBody = "e2e_fault{k=\"1\"} 1\ne2e_fault{k=\"2\"} 2\ne2e_fault_other 3\n"

// manyLines is n distinct valid series.
func manyLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "e2e_many{i=\"%04d\",pad=\"xxxxxxxxxxxxxxxxxxxxxxxx\"} %d\n", i, i)
	}
	return b.String()
}

// TestFaults switches each of several targets from a good reply to a
// fault, and checks that only that target goes down, with a lastError
// naming the cause, one staleness marker per series it served, and no
// effect on a healthy target in the same process; then that failing
// scrapes leak no goroutines.
func TestFaults(t *testing.T) {
	t.Parallel()
	faults := []fault{
		{job: "refused", apply: (*exporter).close, wantErr: "connection refused"},
		{job: "timeout", extra: "    scrape_timeout: 300ms\n", bad: reply{hang: true}, wantErr: "deadline exceeded"},
		{job: "status500", bad: reply{status: 500, body: "oops\n"}, wantErr: "HTTP status 500"},
		{job: "malformed", bad: reply{body: "e2e_fault{k=\"1\"} 1\nthis is { not a sample\n"}, wantErr: "line 2"},
		{job: "bodysize", extra: "    body_size_limit: 1KB\n", bad: reply{body: manyLines(40)}, wantErr: "body size limit exceeded"},
		// Small on the wire, over the limit once decompressed.
		{job: "bodysize_gzip", extra: "    body_size_limit: 1KB\n", good: reply{gzip: true}, bad: reply{body: manyLines(40), gzip: true}, wantErr: "body size limit exceeded"},
		{job: "samplelimit", extra: "    sample_limit: 5\n", bad: reply{body: manyLines(10)}, wantErr: "sample limit exceeded"},
		{job: "badutf8", bad: reply{body: "e2e_fault{k=\"1\"} 1\ne2e_bad{v=\"a\xff\xfeb\"} 1\n"}, wantErr: "invalid UTF-8"},
	}
	healthy := newExporter(t, reply{body: "e2e_healthy 1\n"})
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `global:
  scrape_interval: 500ms
scrape_configs:
  - job_name: healthy
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: [%q]
`, healthy.addr)
	exs := make([]*exporter, len(faults))
	for i, f := range faults {
		good := f.good
		good.body = goodBody
		exs[i] = newExporter(t, good)
		if f.bad.gzip && len(f.bad.body) < 1024 {
			t.Fatalf("%s: the bad body must exceed the 1KB limit", f.job)
		}
		fmt.Fprintf(&cfg, "  - job_name: %s\n%s    static_configs:\n      - targets: [%q]\n", f.job, f.extra, exs[i].addr)
	}
	p := startShoal(t, cfg.String(), "--scrape.workers=4")
	start := time.Now()
	hl := lbl("job", "healthy", "instance", healthy.addr)

	// Every target good first, with its three series.
	for i, f := range faults {
		tl := lbl("job", f.job, "instance", exs[i].addr)
		p.waitSamples(20*time.Second, 0, 1, "e2e_fault_other", tl)
		if ups := p.find(0, "up", tl); len(ups) == 0 || ups[0].value != 1 {
			t.Fatalf("%s: before the fault: up %v, want 1", f.job, ups)
		}
	}

	// Switch them all to their fault.
	mark := p.count()
	for i, f := range faults {
		if f.apply != nil {
			f.apply(exs[i])
		} else {
			exs[i].set(f.bad)
		}
	}

	for i, f := range faults {
		tl := lbl("job", f.job, "instance", exs[i].addr)
		// Wait for three failed scrapes: the first must mark the series
		// stale, the later ones must not mark them again.
		var downs []sample
		waitFor(t, 20*time.Second, f.job+": three scrapes with up 0", func() (bool, string) {
			downs = nil
			for _, s := range p.find(mark, "up", tl) {
				if s.value == 0 {
					downs = append(downs, s)
				}
			}
			return len(downs) >= 3, fmt.Sprintf("up since the switch: %v", p.find(mark, "up", tl))
		})
		firstDown := downs[0].ts
		for _, s := range p.find(mark, "up", tl) {
			if s.ts > firstDown && s.value != 0 {
				t.Errorf("%s: %v after the fault, want up 0", f.job, s)
			}
		}
		for _, k := range []string{`e2e_fault{instance="%[1]s",job="%[2]s",k="1"}`, `e2e_fault{instance="%[1]s",job="%[2]s",k="2"}`, `e2e_fault_other{instance="%[1]s",job="%[2]s"}`} {
			series := fmt.Sprintf(k, exs[i].addr, f.job)
			var stale, after []sample
			for _, s := range p.since(mark) {
				if s.series != series {
					continue
				}
				if s.stale {
					stale = append(stale, s)
				} else if s.ts >= firstDown {
					after = append(after, s)
				}
			}
			if len(stale) != 1 || stale[0].ts != firstDown {
				t.Errorf("%s: staleness markers for %s: %v, want exactly one, at the first failed scrape (%d)", f.job, series, stale, firstDown)
			}
			if len(after) > 0 {
				t.Errorf("%s: samples of %s from failed scrapes: %v", f.job, series, after)
			}
		}
		// A failed scrape writes no sample of its body, even the good
		// lines before the bad one.
		for _, s := range p.since(mark) {
			if s.labels["job"] == f.job && s.ts >= firstDown && !s.stale && !isSynthetic(s.name) {
				t.Errorf("%s: sample from a failed scrape: %v", f.job, s)
			}
		}
		for _, name := range syntheticNames {
			for _, s := range p.find(mark, name, tl) {
				if s.stale {
					t.Errorf("%s: %v: the target is still there, its synthetic series must not go stale", f.job, s)
				}
			}
		}
		if at, ok := p.target(f.job, exs[i].addr); !ok || at.Health != "down" || !strings.Contains(at.LastError, f.wantErr) {
			t.Errorf("%s: /targets: health %q, lastError %q; want down and an error containing %q", f.job, at.Health, at.LastError, f.wantErr)
		} else {
			t.Logf("%s: lastError %q", f.job, at.LastError)
		}
		if v, _ := p.metricValue("shoal_targets", lbl("job", f.job, "health", "down")); v != 1 {
			t.Errorf("%s: shoal_targets{health=\"down\"} %v, want 1", f.job, v)
		}
		if v, _ := p.metricValue("shoal_scrapes_total", lbl("job", f.job, "result", "failed")); v < 3 {
			t.Errorf("%s: shoal_scrapes_total{result=\"failed\"} %v, want at least the 3 failures seen", f.job, v)
		}
	}

	// No goroutine leak: failing scrapes go on (6 of them fail per fault
	// target between the two readings) and the count must not climb with
	// them. A leak of one goroutine per failed scrape of any one kind would
	// add 6 or more; the count is otherwise steady (workers, connections).
	before, ok := p.metricValue("go_goroutines", nil)
	if !ok {
		t.Fatal("/metrics: no go_goroutines")
	}
	m2 := p.count()
	for i, f := range faults {
		p.waitSamples(20*time.Second, m2, 6, "up", lbl("job", f.job, "instance", exs[i].addr))
	}
	after, _ := p.metricValue("go_goroutines", nil)
	t.Logf("go_goroutines: %v, then %v after 6 more failed scrapes of each fault target", before, after)
	if after > before+3 {
		t.Errorf("go_goroutines grew from %v to %v over 6 failed scrapes of each of %d fault targets: a leak", before, after, len(faults))
	}

	// The healthy target never noticed: up 1 every time, at its pace.
	hups := p.find(0, "up", hl)
	for _, s := range hups {
		if s.value != 1 {
			t.Errorf("healthy target: %v", s)
		}
	}
	if want := int(time.Since(start)/time.Second) - 2; len(hups) < want {
		t.Errorf("healthy target: %d scrapes in %v, want at least %d", len(hups), time.Since(start), want)
	}
	if at, ok := p.target("healthy", healthy.addr); !ok || at.Health != "up" || at.LastError != "" {
		t.Errorf("healthy target on /targets: %+v", at)
	}
	if v, _ := p.metricValue("shoal_scrapes_total", lbl("job", "healthy", "result", "failed")); v != 0 {
		t.Errorf("healthy target: shoal_scrapes_total{result=\"failed\"} %v", v)
	}
}

// TestStaleness: a series that disappears from a response gets exactly one
// staleness marker and comes back as a plain sample; a target that leaves
// discovery (file_sd) and a job removed from the configuration get one
// marker for each of their series, synthetic ones included, and are no
// longer scraped.
func TestStaleness(t *testing.T) {
	t.Parallel()
	exA := newExporter(t, reply{body: "e2e_keep 1\ne2e_gone{x=\"1\"} 2\n"})
	exB := newExporter(t, reply{body: "e2e_other 3\n"})
	exJ := newExporter(t, reply{body: "e2e_job 4\n"})
	sd := filepath.Join(t.TempDir(), "targets.json")
	sdTargets := func(addrs ...string) string {
		var q []string
		for _, a := range addrs {
			q = append(q, strconv.Quote(a))
		}
		return fmt.Sprintf(`[{"targets": [%s]}]`, strings.Join(q, ", "))
	}
	cfgText := func(withJob bool) string {
		c := fmt.Sprintf(`
scrape_configs:
  - job_name: stale
    scrape_interval: 500ms
    file_sd_configs:
      - files: [%q]
`, sd)
		if withJob {
			c += fmt.Sprintf(`  - job_name: gone
    scrape_interval: 500ms
    static_configs:
      - targets: [%q]
`, exJ.addr)
		}
		return c
	}
	writeFile(t, sd, sdTargets(exA.addr, exB.addr))
	p := startShoal(t, cfgText(true), "--config.reload-interval=0")
	la := lbl("job", "stale", "instance", exA.addr)
	lb := lbl("job", "stale", "instance", exB.addr)
	lj := lbl("job", "gone", "instance", exJ.addr)
	p.waitSamples(20*time.Second, 0, 1, "e2e_gone", la)
	p.waitSamples(20*time.Second, 0, 1, "e2e_other", lb)
	p.waitSamples(20*time.Second, 0, 1, "e2e_job", lj)
	goneSeries := fmt.Sprintf(`e2e_gone{instance=%q,job="stale",x="1"}`, exA.addr)

	// 1. e2e_gone disappears from A's response.
	mark := p.count()
	exA.set(reply{body: "e2e_keep 1\n"})
	stale := p.waitMatch(20*time.Second, mark, "a staleness marker for "+goneSeries, func(s sample) bool {
		return s.series == goneSeries && s.stale
	})
	// Three more scrapes of A: none may repeat the marker.
	m2 := p.count()
	p.waitSamples(20*time.Second, m2, 3, "up", la)
	var markers []sample
	for _, s := range p.since(mark) {
		if s.series == goneSeries {
			if !s.stale {
				t.Errorf("%v: the series is gone from the response", s)
			}
			markers = append(markers, s)
		}
		if s.stale && s.series != goneSeries {
			t.Errorf("%v: only %s went away", s, goneSeries)
		}
		if s.is("up", nil) && s.value != 1 {
			t.Errorf("%v: a vanished series is no failure", s)
		}
	}
	if len(markers) != 1 {
		t.Errorf("staleness markers for %s: %v, want exactly one", goneSeries, markers)
	}
	for _, s := range p.find(mark, "scrape_series_added", la) {
		if s.value != 0 {
			t.Errorf("%v after a series went away, want 0", s)
		}
	}
	up := scrapeOf(p.all(), stale.ts, func(s sample) bool { return s.is("up", la) })
	if len(up) != 1 || up[0].value != 1 {
		t.Errorf("the marker's scrape (at %d) has up %v, want one up 1", stale.ts, up)
	}

	// 2. It comes back as a plain sample, with no marker around it.
	mark = p.count()
	exA.set(reply{body: "e2e_keep 1\ne2e_gone{x=\"1\"} 2\n"})
	back := p.waitMatch(20*time.Second, mark, goneSeries+" back", func(s sample) bool { return s.series == goneSeries })
	if back.stale || back.value != 2 {
		t.Errorf("%v: want value 2", back)
	}

	// 3. Target B leaves file_sd, and job "gone" leaves the configuration.
	mark = p.count()
	writeFile(t, sd, sdTargets(exA.addr))
	writeFile(t, p.cfgPath, cfgText(false))
	p.reloadAndWait("success")
	checkRetired(t, p, mark, "stale", exB, "e2e_other")
	checkRetired(t, p, mark, "gone", exJ, "e2e_job")
	for _, s := range p.since(mark) {
		if s.labels["instance"] == exA.addr && s.stale {
			t.Errorf("%v: target A stayed", s)
		}
	}
}

// checkRetired checks that a target of job at ex's address, which served
// the metric names, has left after mark: exactly one staleness marker for
// each of its series and synthetic series, as its last line, and no
// request to ex any more.
func checkRetired(t *testing.T, p *proc, mark int, job string, ex *exporter, names ...string) {
	t.Helper()
	var series []string
	for _, n := range append(names, syntheticNames...) {
		series = append(series, fmt.Sprintf(`%s{instance=%q,job=%q}`, n, ex.addr, job))
	}
	waitFor(t, 20*time.Second, fmt.Sprintf("staleness markers for every series of %s/%s", job, ex.addr), func() (bool, string) {
		var missing []string
		for _, ser := range series {
			if !slices.ContainsFunc(p.since(mark), func(s sample) bool { return s.series == ser && s.stale }) {
				missing = append(missing, ser)
			}
		}
		return len(missing) == 0, fmt.Sprintf("none yet for %v", missing)
	})
	// Some scrapes later (other targets go on), still exactly one marker
	// each and nothing after it, and no request to the target.
	requests := len(ex.requests())
	m2 := p.count()
	p.waitSamples(20*time.Second, m2, 3, "up", nil)
	for _, ser := range series {
		var got []sample
		for _, s := range p.since(mark) {
			if s.series == ser {
				got = append(got, s)
			}
		}
		last := got[len(got)-1]
		if !last.stale || slices.ContainsFunc(got[:len(got)-1], func(s sample) bool { return s.stale }) {
			t.Errorf("%s after removal: %v, want its last line to be its only staleness marker", ser, got)
		}
	}
	if n := len(ex.requests()); n > requests {
		t.Errorf("%s/%s was scraped %d more times after its staleness markers", job, ex.addr, n-requests)
	}
	if _, ok := p.target(job, ex.addr); ok {
		t.Errorf("/targets still lists %s/%s", job, ex.addr)
	}
}

// TestStaleMarkersStaticTargetRemoved: a target removed from a job's
// static_configs (a reload that changes the job) gets staleness markers for
// all its series, synthetic ones included; so does a target whose labels
// change (it becomes a new target).
func TestStaleMarkersStaticTargetRemoved(t *testing.T) {
	t.Parallel()
	exA := newExporter(t, reply{body: "e2e_a 1\n"})
	exB := newExporter(t, reply{body: "e2e_b 1\n"})
	exC := newExporter(t, reply{body: "e2e_c 1\n"})
	cfg := func(targets, labels string) string {
		return fmt.Sprintf(`
scrape_configs:
  - job_name: static
    scrape_interval: 500ms
    static_configs:
      - targets: [%s]
  - job_name: relabeled
    scrape_interval: 500ms
    static_configs:
      - targets: [%q]
        labels: {%s}
`, targets, exC.addr, labels)
	}
	p := startShoal(t, cfg(fmt.Sprintf("%q, %q", exA.addr, exB.addr), ""), "--config.reload-interval=0")
	p.waitSamples(20*time.Second, 0, 1, "e2e_a", lbl("job", "static"))
	p.waitSamples(20*time.Second, 0, 1, "e2e_b", lbl("job", "static"))
	p.waitSamples(20*time.Second, 0, 1, "e2e_c", lbl("job", "relabeled"))

	mark := p.count()
	writeFile(t, p.cfgPath, cfg(strconv.Quote(exA.addr), "v: \"2\""))
	p.reloadAndWait("success")
	checkRetired(t, p, mark, "static", exB, "e2e_b")
	// C's old series (without v) end; new ones start.
	p.waitSamples(20*time.Second, mark, 1, "up", lbl("job", "relabeled", "v", "2"))
	for _, n := range append([]string{"e2e_c"}, syntheticNames...) {
		ser := fmt.Sprintf(`%s{instance=%q,job="relabeled"}`, n, exC.addr)
		p.waitMatch(20*time.Second, mark, "a staleness marker for "+ser, func(s sample) bool { return s.series == ser && s.stale })
	}
	for _, s := range p.since(mark) {
		if s.labels["instance"] == exA.addr && s.stale {
			t.Errorf("%v: target A stayed", s)
		}
	}
}

// TestSeriesAddedCountsReturningSeries: scrape_series_added counts, as in
// Prometheus, every series that was not in the previous successful scrape,
// so a series that comes back is counted again (that is how the metric
// shows churn).
func TestSeriesAddedCountsReturningSeries(t *testing.T) {
	t.Parallel()
	ex := newExporter(t, reply{body: "e2e_keep 1\ne2e_flap 2\n"})
	p := startShoal(t, fmt.Sprintf(`
scrape_configs:
  - job_name: flap
    scrape_interval: 500ms
    static_configs:
      - targets: [%q]
`, ex.addr))
	tl := lbl("job", "flap")
	first := p.waitSamples(20*time.Second, 0, 1, "scrape_series_added", tl)[0]
	if first.value != 2 {
		t.Errorf("first scrape: %v, want 2", first)
	}
	mark := p.count()
	ex.set(reply{body: "e2e_keep 1\n"})
	p.waitMatch(20*time.Second, mark, "e2e_flap stale", func(s sample) bool { return s.stale && s.is("e2e_flap", tl) })
	mark = p.count()
	ex.set(reply{body: "e2e_keep 1\ne2e_flap 2\n"})
	back := p.waitMatch(20*time.Second, mark, "e2e_flap back", func(s sample) bool { return !s.stale && s.is("e2e_flap", tl) })
	added := scrapeOf(p.all(), back.ts, func(s sample) bool { return s.is("scrape_series_added", tl) })
	if len(added) != 1 || added[0].value != 1 {
		t.Errorf("scrape_series_added in the scrape where e2e_flap came back: %v, want 1", added)
	}
}

// jobsConfig renders scrape configs: one job per name, each with one
// target (and the extra lines, indented for a scrape_config entry).
type jobSpec struct {
	name, addr, extra string
}

func jobsConfig(interval time.Duration, jobs ...jobSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %v\nscrape_configs:\n", interval)
	for _, j := range jobs {
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs:\n      - targets: [%q]\n%s", j.name, j.addr, j.extra)
	}
	return b.String()
}

// TestReloadSIGHUP walks through reloads on SIGHUP, with file polling off:
// a job added; a job changed beside one left alone; a broken file, which
// changes nothing; a fixed one. The steps build on each other, so they are
// one test, each failure message naming its step.
func TestReloadSIGHUP(t *testing.T) {
	t.Parallel()
	const iv = 500 * time.Millisecond
	exA := newExporter(t, reply{body: "e2e_a 1\n"})
	exB := newExporter(t, reply{body: "e2e_b 1\n"})
	exC := newExporter(t, reply{body: "e2e_c 1\n"})
	exD := newExporter(t, reply{body: "e2e_d 1\n"})
	jobA := jobSpec{"a", exA.addr, ""}
	jobB := jobSpec{"b", exB.addr, ""}
	jobC := jobSpec{"c", exC.addr, ""}
	p := startShoal(t, jobsConfig(iv, jobA, jobB), "--config.reload-interval=0")
	la := lbl("job", "a", "instance", exA.addr)
	lb := lbl("job", "b", "instance", exB.addr)
	lc := lbl("job", "c", "instance", exC.addr)
	p.waitSamples(20*time.Second, 0, 1, "e2e_a", la)
	p.waitSamples(20*time.Second, 0, 1, "e2e_b", lb)

	t.Log("step 1: SIGHUP with job c added")
	writeFile(t, p.cfgPath, jobsConfig(iv, jobA, jobB, jobC))
	mark := p.count()
	p.reloadAndWait("success")
	p.waitSamples(20*time.Second, mark, 1, "e2e_c", lc)
	if ups := p.waitSamples(20*time.Second, mark, 1, "up", lc); ups[0].value != 1 {
		t.Errorf("step 1: new job: %v", ups[0])
	}
	if a, ok := p.target("a", exA.addr); !ok || a.Health != "up" || a.LastScrape.IsZero() {
		t.Errorf("step 1: job a on /targets after a reload that only added c: %+v, want it untouched (up, scraped)", a)
	}

	t.Log("step 2: SIGHUP with job b changed (a target label added), job a unchanged")
	a0, ok := p.target("a", exA.addr)
	if !ok || a0.LastScrape.IsZero() {
		t.Fatalf("step 2: job a on /targets before the reload: %+v", a0)
	}
	mark = p.count()
	jobB2 := jobB
	jobB2.extra = "        labels: {version: \"2\"}\n"
	writeFile(t, p.cfgPath, jobsConfig(iv, jobA, jobB2, jobC))
	p.reloadAndWait("success")
	// Straight after the reload: a restarted target would be back to
	// "unknown", never scraped.
	a1, ok := p.target("a", exA.addr)
	if !ok || a1.Health != "up" || a1.LastScrape.Before(a0.LastScrape) {
		t.Errorf("step 2: job a on /targets right after a reload that changed only b: %+v; before: last scrape %v", a1, a0.LastScrape)
	}
	p.waitSamples(20*time.Second, mark, 1, "e2e_b", lbl("job", "b", "version", "2"))
	// B's old series (without the label) end.
	p.waitMatch(20*time.Second, mark, "a staleness marker for b's old series", func(s sample) bool {
		return s.stale && s.is("e2e_b", lb) && s.labels["version"] == ""
	})
	m2 := p.count()
	p.waitSamples(20*time.Second, m2, 3, "up", la)
	a2, _ := p.target("a", exA.addr)
	if !a2.LastScrape.After(a1.LastScrape) || a2.Health != "up" {
		t.Errorf("step 2: job a on /targets: last scrape %v, then %v (%s): want it to go on", a1.LastScrape, a2.LastScrape, a2.Health)
	}
	var ts []int64
	for _, s := range p.find(0, "up", la) {
		ts = append(ts, s.ts)
	}
	checkGrid(t, "step 2: job a across the reload", gridFor("a", exA.addr, iv), ts)
	for _, s := range p.since(mark) {
		if s.labels["job"] == "a" && s.stale {
			t.Errorf("step 2: %v: job a did not change", s)
		}
		if s.is("scrape_series_added", la) && s.value != 0 {
			t.Errorf("step 2: %v: job a's series cache was reset by a reload that did not change it", s)
		}
	}

	t.Log("step 3: SIGHUP with a broken file")
	good, err := os.ReadFile(p.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	mark = p.count()
	writeFile(t, p.cfgPath, string(good)+"    scrape_intervall: 1s\n")
	p.reloadAndWait("failure")
	if v, ok := p.metricValue("shoal_config_last_reload_successful", nil); !ok || v != 0 {
		t.Errorf("step 3: shoal_config_last_reload_successful %v (present %v) after a failed reload, want 0", v, ok)
	}
	for _, l := range []map[string]string{la, lc, lbl("job", "b", "version", "2")} {
		for _, s := range p.waitSamples(20*time.Second, mark, 2, "up", l) {
			if s.value != 1 {
				t.Errorf("step 3: %v after a failed reload", s)
			}
		}
	}
	for _, s := range p.since(mark) {
		if s.stale {
			t.Errorf("step 3: %v: a failed reload must leave the running jobs alone", s)
		}
	}
	if !strings.Contains(p.stderr.String(), "scrape_intervall") {
		t.Errorf("step 3: the failed reload's log does not name the bad field:\n%s", tail(p.stderr.String(), 10))
	}

	t.Log("step 4: SIGHUP with a fixed file (job b removed, job d added)")
	mark = p.count()
	writeFile(t, p.cfgPath, jobsConfig(iv, jobA, jobC, jobSpec{"d", exD.addr, ""}))
	p.reloadAndWait("success")
	if v, _ := p.metricValue("shoal_config_last_reload_successful", nil); v != 1 {
		t.Errorf("step 4: shoal_config_last_reload_successful %v after a good reload, want 1", v)
	}
	p.waitSamples(20*time.Second, mark, 1, "e2e_d", lbl("job", "d"))
	p.waitMatch(20*time.Second, mark, "a staleness marker for the removed job b", func(s sample) bool {
		return s.stale && s.is("up", lbl("job", "b"))
	})
}

// TestReloadOnFileChange: without SIGHUP, an edited file is picked up by
// the poll; a broken edit is refused and a fixed one applied.
func TestReloadOnFileChange(t *testing.T) {
	t.Parallel()
	const iv = 500 * time.Millisecond
	exA := newExporter(t, reply{body: "e2e_a 1\n"})
	exC := newExporter(t, reply{body: "e2e_c 1\n"})
	jobA := jobSpec{"a", exA.addr, ""}
	p := startShoal(t, jobsConfig(iv, jobA), "--config.reload-interval=200ms")
	la := lbl("job", "a", "instance", exA.addr)
	p.waitSamples(20*time.Second, 0, 1, "e2e_a", la)

	mark := p.count()
	writeFile(t, p.cfgPath, jobsConfig(iv, jobA, jobSpec{"c", exC.addr, ""}))
	p.waitSamples(20*time.Second, mark, 1, "e2e_c", lbl("job", "c", "instance", exC.addr))

	writeFile(t, p.cfgPath, "scrape_configs: [this is not a scrape config]\n")
	waitFor(t, 20*time.Second, "shoal_config_last_reload_successful 0", func() (bool, string) {
		v, ok := p.metricValue("shoal_config_last_reload_successful", nil)
		return ok && v == 0, fmt.Sprint(v)
	})
	mark = p.count()
	p.waitSamples(20*time.Second, mark, 2, "e2e_c", lbl("job", "c"))

	writeFile(t, p.cfgPath, jobsConfig(iv, jobA))
	waitFor(t, 20*time.Second, "shoal_config_last_reload_successful 1", func() (bool, string) {
		v, ok := p.metricValue("shoal_config_last_reload_successful", nil)
		return ok && v == 1, fmt.Sprint(v)
	})
	p.waitMatch(20*time.Second, mark, "staleness marker for the removed job c", func(s sample) bool {
		return s.stale && s.is("up", lbl("job", "c"))
	})
}

// TestCLI: exit codes and messages of a bad config at start, check config
// and version.
func TestCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := dir + "/good.yml"
	writeFile(t, good, `global:
  scrape_interval: 10s
scrape_configs:
  - job_name: a
    static_configs:
      - targets: ["127.0.0.1:9100"]
`)
	// Errors on lines 5, 8 and 11.
	bad := dir + "/bad.yml"
	writeFile(t, bad, `global:
  scrape_interval: 10s
scrape_configs:
  - job_name: a
    scrape_intervall: 5s
    static_configs:
      - targets: ["127.0.0.1:9100"]
    scheme: ftp
  - job_name: b
    static_configs:
      - lables: {a: b}
`)
	badLines := []int{5, 8, 11}

	run := func(t *testing.T, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		cmd := exec.Command(shoalBin, args...)
		var out, errb syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("shoal %v did not exit within 20s; stderr:\n%s", args, errb.String())
		}
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}

	t.Run("run with a bad config", func(t *testing.T) {
		code, stdout, stderr := run(t, "run", "--config.file="+bad, "--web.listen-address="+freePort(t))
		if code != 1 {
			t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
		}
		for _, l := range badLines {
			if want := fmt.Sprintf("%s:%d:", bad, l); !strings.Contains(stderr, want) {
				t.Errorf("stderr does not name %s:\n%s", want, stderr)
			}
		}
		if stdout != "" {
			t.Errorf("stdout: %q", stdout)
		}
	})
	t.Run("run with a missing config", func(t *testing.T) {
		code, _, stderr := run(t, "run", "--config.file="+dir+"/nope.yml", "--web.listen-address="+freePort(t))
		if code != 1 || !strings.Contains(stderr, "nope.yml") {
			t.Errorf("exit code %d, stderr:\n%s\nwant 1 and the file named", code, stderr)
		}
	})
	t.Run("check config good", func(t *testing.T) {
		code, stdout, stderr := run(t, "check", "config", good)
		if code != 0 || !strings.Contains(stdout, good) || !strings.Contains(stdout, "SUCCESS") {
			t.Errorf("exit code %d, stdout %q, stderr %q; want 0 and SUCCESS for %s", code, stdout, stderr, good)
		}
	})
	t.Run("check config bad", func(t *testing.T) {
		code, stdout, stderr := run(t, "check", "config", good, bad)
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		if !strings.Contains(stdout, good+": SUCCESS") {
			t.Errorf("the good file is not reported as such: stdout %q", stdout)
		}
		var lines []int
		for line := range strings.Lines(stderr) {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), bad+":"); ok {
				n, _, _ := strings.Cut(rest, ":")
				if l, err := strconv.Atoi(n); err == nil {
					lines = append(lines, l)
				}
			}
		}
		if !slices.Equal(lines, badLines) {
			t.Errorf("errors listed at lines %v, want one per error at %v; stderr:\n%s", lines, badLines, stderr)
		}
	})
	t.Run("version", func(t *testing.T) {
		code, stdout, _ := run(t, "version")
		if code != 0 || !strings.Contains(stdout, testVersion) {
			t.Errorf("exit code %d, stdout %q; want 0 and %q", code, stdout, testVersion)
		}
	})
}

// TestWeb: /targets lists every target with its health, and the health
// endpoints answer.
func TestWeb(t *testing.T) {
	t.Parallel()
	up := newExporter(t, reply{body: "e2e_up 1\n"})
	down := newExporter(t, reply{status: 503})
	p := startShoal(t, fmt.Sprintf(`
scrape_configs:
  - job_name: web_up
    scrape_interval: 500ms
    static_configs:
      - targets: [%q]
  - job_name: web_down
    scrape_interval: 500ms
    static_configs:
      - targets: [%q]
`, up.addr, down.addr))
	for _, path := range []string{"/-/healthy", "/-/ready"} {
		if code, body, err := p.get(path); err != nil || code != http.StatusOK {
			t.Errorf("GET %s: %d %q %v, want 200", path, code, body, err)
		}
	}
	p.waitSamples(20*time.Second, 0, 1, "up", lbl("job", "web_up"))
	p.waitSamples(20*time.Second, 0, 1, "up", lbl("job", "web_down"))

	resp, err := p.client.Get("http://" + p.web + "/targets")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/html") {
		t.Errorf("/targets: %d %q, want 200 text/html", resp.StatusCode, ct)
	}
	html := p.mustGet("/targets")
	for _, want := range []string{"web_up", "web_down", "http://" + up.addr + "/metrics", "http://" + down.addr + "/metrics", "HTTP status 503"} {
		if !strings.Contains(html, want) {
			t.Errorf("/targets HTML does not show %q", want)
		}
	}

	for _, path := range []string{"/targets?format=json", "/api/v1/targets"} {
		a := p.targets(path)
		health := map[string]string{}
		for _, at := range a.Data.ActiveTargets {
			health[at.ScrapePool+" "+at.ScrapeURL] = at.Health
		}
		want := map[string]string{
			"web_up http://" + up.addr + "/metrics":     "up",
			"web_down http://" + down.addr + "/metrics": "down",
		}
		if !maps.Equal(health, want) {
			t.Errorf("%s: targets %v, want %v", path, health, want)
		}
		var jobs []string
		for _, j := range a.Data.Jobs {
			jobs = append(jobs, j.Name)
		}
		if !slices.Equal(jobs, []string{"web_down", "web_up"}) {
			t.Errorf("%s: jobs %v", path, jobs)
		}
	}
}

// TestSIGTERM: shoal exits 0 within a few seconds of SIGTERM, also with a
// scrape hanging in flight.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	ok := newExporter(t, reply{body: "e2e_ok 1\n"})
	hang := newExporter(t, reply{hang: true})
	p := startShoal(t, fmt.Sprintf(`
scrape_configs:
  - job_name: ok
    scrape_interval: 500ms
    static_configs:
      - targets: [%q]
  - job_name: hang
    scrape_interval: 2s
    scrape_timeout: 2s
    static_configs:
      - targets: [%q]
`, ok.addr, hang.addr))
	p.waitSamples(20*time.Second, 0, 1, "up", lbl("job", "ok"))
	// In flight: more requests than finished scrapes.
	waitFor(t, 20*time.Second, "a scrape of the hanging target in flight", func() (bool, string) {
		n, done := len(hang.requests()), len(p.find(0, "up", lbl("job", "hang")))
		return n > done, fmt.Sprintf("%d requests, %d scrapes done", n, done)
	})
	start := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.waitExit(10 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to exit after SIGTERM", d)
	}
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// TestRelabeling: relabel_configs, metric_relabel_configs and honor_labels
// as Prometheus applies them; two jobs scrape the same exporter.
func TestRelabeling(t *testing.T) {
	t.Parallel()
	ex := newExporter(t, reply{body: `e2e_keep{old="v"} 1
e2e_drop_total 2
e2e_drop_too{a="b"} 3
e2e_with_job{job="from_exporter",x="y"} 4
`})
	_, port, _ := strings.Cut(ex.addr, ":")
	p := startShoal(t, fmt.Sprintf(`
scrape_configs:
  - job_name: relabel
    scrape_interval: 500ms
    honor_labels: true
    static_configs:
      - targets: [%[1]q]
    relabel_configs:
      - source_labels: [__address__]
        regex: '127\.0\.0\.1:(\d+)'
        target_label: port
      - target_label: env
        replacement: e2e
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'e2e_drop.*|up|scrape_.*'
        action: drop
      - source_labels: [old]
        target_label: new
      - action: labeldrop
        regex: old
  - job_name: plain
    scrape_interval: 500ms
    static_configs:
      - targets: [%[1]q]
`, ex.addr))
	rl := lbl("job", "relabel", "instance", ex.addr)
	pl := lbl("job", "plain", "instance", ex.addr)
	rUp := p.waitSamples(20*time.Second, 0, 1, "up", rl)[0]
	pUp := p.waitSamples(20*time.Second, 0, 1, "up", pl)[0]
	all := p.all()

	target := lbl("job", "relabel", "instance", ex.addr, "port", port, "env", "e2e")
	r := scrapeOf(all, rUp.ts, func(s sample) bool { return s.labels["instance"] == ex.addr && s.labels["env"] == "e2e" })
	want := map[string]map[string]string{
		"e2e_keep":     with(target, "new", "v"),
		"e2e_with_job": with(target, "job", "from_exporter", "x", "y"),
	}
	for _, n := range syntheticNames {
		// Synthetic series carry the target labels and are never
		// metric-relabeled: the drop rule above names them.
		want[n] = target
	}
	checkScrape(t, "job relabel", r, want)
	if v := one(t, r, "scrape_samples_scraped").value; v != 4 {
		t.Errorf("job relabel: scrape_samples_scraped %v, want 4 (before metric relabeling)", v)
	}
	if v := one(t, r, "scrape_samples_post_metric_relabeling").value; v != 2 {
		t.Errorf("job relabel: scrape_samples_post_metric_relabeling %v, want 2", v)
	}

	pt := lbl("job", "plain", "instance", ex.addr)
	pscrape := scrapeOf(all, pUp.ts, func(s sample) bool { return s.labels["instance"] == ex.addr && s.labels["env"] == "" })
	want = map[string]map[string]string{
		"e2e_keep":       with(pt, "old", "v"),
		"e2e_drop_total": pt,
		"e2e_drop_too":   with(pt, "a", "b"),
		// honor_labels false: the exporter's job is kept as exported_job.
		"e2e_with_job": with(pt, "exported_job", "from_exporter", "x", "y"),
	}
	for _, n := range syntheticNames {
		want[n] = pt
	}
	checkScrape(t, "job plain", pscrape, want)

	at, ok := p.target("relabel", ex.addr)
	if !ok || !maps.Equal(at.Labels, target) {
		t.Errorf("/targets labels of job relabel: %v, want %v", at.Labels, target)
	}
}

// with returns a copy of m with more label pairs.
func with(m map[string]string, kv ...string) map[string]string {
	out := maps.Clone(m)
	maps.Copy(out, lbl(kv...))
	return out
}

// checkScrape checks that a scrape has exactly one sample per metric name in
// want, with exactly those labels.
func checkScrape(t *testing.T, what string, scrape []sample, want map[string]map[string]string) {
	t.Helper()
	got := map[string]map[string]string{}
	for _, s := range scrape {
		if _, dup := got[s.name]; dup {
			t.Errorf("%s: %s twice in one scrape", what, s.name)
		}
		got[s.name] = s.labels
	}
	for name, labels := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: no %s in the scrape", what, name)
		} else if !maps.Equal(g, labels) {
			t.Errorf("%s: %s has labels %v, want %v", what, name, g, labels)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: unexpected %s%v", what, name, got[name])
		}
	}
}

// compareWithDirect checks series scraped through shoal (what: "shoal" or
// "record") against node_exporter's own answer fetched directly: at most 1%
// of series may differ (node_exporter's series come and go a little between
// two scrapes), and two values that do not change between scrapes must be
// equal.
func compareWithDirect(t *testing.T, what string, got, direct map[string]float64) {
	t.Helper()
	var diff []string
	for k := range got {
		if _, ok := direct[k]; !ok {
			diff = append(diff, what+" only: "+k)
		}
	}
	for k := range direct {
		if _, ok := got[k]; !ok {
			diff = append(diff, "direct only: "+k)
		}
	}
	if len(diff) > max(3, len(direct)/100) {
		sort.Strings(diff)
		t.Errorf("node_exporter: %d of %d series differ between %s and its own answer: %v", len(diff), len(direct), what, diff)
	}
	for _, k := range []string{"process_start_time_seconds", "process_max_fds"} {
		if got[k] != direct[k] {
			t.Errorf("node_exporter: %s: %s %v, served %v", k, what, got[k], direct[k])
		}
	}
}
