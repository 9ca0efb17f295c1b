package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"go.uber.org/goleak"

	"github.com/shoal-scraper/shoal/config"
)

// syncRec records every sync per job and signals each.
type syncRec struct {
	mu    sync.Mutex
	calls map[string][][]*targetgroup.Group
	ch    chan string
}

func newSyncRec() *syncRec {
	return &syncRec{calls: map[string][][]*targetgroup.Group{}, ch: make(chan string, 100)}
}

func (r *syncRec) sync(job string, gs []*targetgroup.Group) {
	r.mu.Lock()
	r.calls[job] = append(r.calls[job], gs)
	r.mu.Unlock()
	r.ch <- job
}

// waitFor waits until the latest sync of job satisfies ok.
func (r *syncRec) waitFor(t *testing.T, job string, what string, ok func([]*targetgroup.Group) bool) []*targetgroup.Group {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		calls := r.calls[job]
		var last []*targetgroup.Group
		if len(calls) > 0 {
			last = calls[len(calls)-1]
		}
		r.mu.Unlock()
		if len(calls) > 0 && ok(last) {
			return last
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("job %s: never got %s; last sync %v", job, what, addrs(last))
		}
	}
}

// mark returns how many syncs job has had, for waitSince.
func (r *syncRec) mark(job string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls[job])
}

// waitSince waits until a sync of job after the first from (a mark)
// satisfies ok, whether or not a later one replaced it: for states that may
// last only a few milliseconds.
func (r *syncRec) waitSince(t *testing.T, job string, from int, what string, ok func([]*targetgroup.Group) bool) []*targetgroup.Group {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		calls := r.calls[job]
		r.mu.Unlock()
		for _, gs := range calls[min(from, len(calls)):] {
			if ok(gs) {
				return gs
			}
		}
		from = len(calls)
		select {
		case <-r.ch:
		case <-deadline:
			var last []*targetgroup.Group
			if len(calls) > 0 {
				last = calls[len(calls)-1]
			}
			t.Fatalf("job %s: never got %s; last sync %v", job, what, addrs(last))
		}
	}
}

func addrs(gs []*targetgroup.Group) []string {
	var out []string
	for _, g := range gs {
		for _, tl := range g.Targets {
			out = append(out, string(tl["__address__"]))
		}
	}
	slices.Sort(out)
	return out
}

func hasAddrs(want ...string) func([]*targetgroup.Group) bool {
	slices.Sort(want)
	return func(gs []*targetgroup.Group) bool { return slices.Equal(addrs(gs), want) }
}

func start(t *testing.T, yml string) (*Manager, *syncRec, *prometheus.Registry, func(string)) {
	t.Helper()
	return startWith(t, Config{FilePoll: 10 * time.Millisecond}, yml)
}

// startWith runs a Manager with cfg on yml (DIR in it is a temporary
// directory) until the test ends, and checks that it leaves no goroutine
// behind.
func startWith(t *testing.T, cfg Config, yml string) (*Manager, *syncRec, *prometheus.Registry, func(string)) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	dir := t.TempDir()
	rec := newSyncRec()
	reg := prometheus.NewRegistry()
	m, err := New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)), reg, rec.sync)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(yml string) {
		c, err := config.Parse([]byte(strings.ReplaceAll(yml, "DIR", dir)), filepath.Join(dir, "shoal.yml"))
		if err != nil {
			t.Fatal(err)
		}
		m.ApplyConfig(c.ScrapeConfigs)
	}
	apply(yml)
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		// A dnsmasq a test restarted runs on (its cleanup stops it
		// later); discovery itself starts no processes.
		goleak.VerifyNone(t, ignore,
			goleak.IgnoreAnyFunction("github.com/shoal-scraper/shoal/discovery/dnsmasqtest.(*Server).start.func1"),
			goleak.IgnoreAnyFunction("os/exec.(*Cmd).writerDescriptor.func1"))
	})
	return m, rec, reg, apply
}

// testWriter sends the Manager's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeAtomic replaces name by renaming a temporary file over it, as config
// management tools and Kubernetes do.
func writeAtomic(t *testing.T, name, content string) {
	t.Helper()
	tmp := name + ".tmp"
	write(t, tmp, content)
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

func TestStaticGroups(t *testing.T) {
	_, rec, _, _ := start(t, `
scrape_configs:
- job_name: s
  static_configs:
  - targets: [a:1, b:2]
  - targets: [c:3]
`)
	gs := rec.waitFor(t, "s", "the static targets", hasAddrs("a:1", "b:2", "c:3"))
	if gs[0].Source == gs[1].Source {
		t.Errorf("groups share source %q", gs[0].Source)
	}
}

func TestFileSD(t *testing.T) {
	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "t.json")
	yamlFile := filepath.Join(dir, "t.yml")
	write(t, jsonFile, `[{"targets": ["a:1"], "labels": {"team": "x"}}]`)
	_, rec, reg, _ := start(t, fmt.Sprintf(`
scrape_configs:
- job_name: f
  static_configs:
  - targets: [s:1]
  file_sd_configs:
  - files: [%q, %q]
`, jsonFile, filepath.Join(dir, "*.yml")))
	gs := rec.waitFor(t, "f", "the JSON file's target", hasAddrs("s:1", "a:1"))
	for _, g := range gs {
		if len(g.Targets) == 1 && g.Targets[0]["__address__"] == "a:1" {
			if g.Labels["team"] != "x" || string(g.Labels["__meta_filepath"]) != jsonFile {
				t.Errorf("file group labels %v", g.Labels)
			}
		}
	}

	// A new file matching the glob, written in place (non-atomically).
	write(t, yamlFile, "- targets: [b:2]\n")
	rec.waitFor(t, "f", "the YAML file's target", hasAddrs("s:1", "a:1", "b:2"))

	// Atomic replacement.
	writeAtomic(t, jsonFile, `[{"targets": ["a:1", "a:2"]}]`)
	rec.waitFor(t, "f", "the renamed file's targets", hasAddrs("s:1", "a:1", "a:2", "b:2"))

	// A half-written file keeps the last good targets and is counted.
	write(t, jsonFile, `[{"targets": ["a:1", "a:`)
	deadline := time.Now().Add(10 * time.Second)
	for failures(t, reg, "f") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a malformed file was not reported in shoal_sd_refresh_failures_total")
		}
		time.Sleep(10 * time.Millisecond) // polling a counter: no event to wait on
	}
	rec.waitFor(t, "f", "the last good targets kept", hasAddrs("s:1", "a:1", "a:2", "b:2"))

	// Fixed again.
	write(t, jsonFile, `[{"targets": ["a:3"]}]`)
	rec.waitFor(t, "f", "the fixed file's target", hasAddrs("s:1", "a:3", "b:2"))

	// A file that goes away takes its targets with it.
	if err := os.Remove(yamlFile); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "f", "the removed file's targets gone", hasAddrs("s:1", "a:3"))
}

// failures reads shoal_sd_refresh_failures_total{job,mechanism="file"}.
func failures(t *testing.T, reg *prometheus.Registry, job string) float64 {
	t.Helper()
	return counter(t, reg, "shoal_sd_refresh_failures_total", job, "file")
}

// counter reads a discovery counter of job and mechanism (0 if absent).
func counter(t *testing.T, reg *prometheus.Registry, name, job, mech string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["job"] == job && labels["mechanism"] == mech {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestApplyConfigRestartsOnlyChangedJobs(t *testing.T) {
	_, rec, _, apply := start(t, `
scrape_configs:
- job_name: a
  static_configs: [{targets: [a:1]}]
- job_name: b
  static_configs: [{targets: [b:1]}]
`)
	rec.waitFor(t, "a", "a", hasAddrs("a:1"))
	rec.waitFor(t, "b", "b", hasAddrs("b:1"))
	rec.mu.Lock()
	aCalls := len(rec.calls["a"])
	rec.mu.Unlock()
	apply(`
scrape_configs:
- job_name: a
  static_configs: [{targets: [a:1]}]
- job_name: b
  static_configs: [{targets: [b:2]}]
`)
	rec.waitFor(t, "b", "b's new target", hasAddrs("b:2"))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := len(rec.calls["a"]); n != aCalls {
		t.Errorf("unchanged job a was re-synced (%d → %d syncs)", aCalls, n)
	}
}
