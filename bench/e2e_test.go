package bench

import (
	"bytes"
	"context"
	"encoding/xml"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-scraper/shoal/bench/farm"
)

// childCommand re-executes this test binary in a child role (TestMain).
func childCommand(tb testing.TB) func(role string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	return func(role string) *exec.Cmd {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), childRoleEnv+"="+role)
		return cmd
	}
}

// TestRunE2EFloor measures the fetch+gunzip floor end to end against a
// small farm: the farm counts every scheduled scrape as served, and the
// floor process's CPU and RSS are read from /proc.
func TestRunE2EFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 2 s")
	}
	r, err := RunE2E(t.Context(), E2EConfig{
		Scraper:  ScraperFloorGunzip,
		Targets:  20,
		Interval: 200 * time.Millisecond,
		Duration: time.Second,
		Payload:  nodeFixture(t),
		Child:    childCommand(t),
		NoPin:    true,
		Dir:      t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if !r.WarmedUp || r.Served < 0.95 || r.Served > 1.05 {
		t.Errorf("served %.2f%% of the scheduled scrapes (warmed up: %v), want about 100%%", 100*r.Served, r.WarmedUp)
	}
	if r.Samples != r.Scrapes*int64(len(values(nodeFixture(t)))) {
		t.Errorf("%d samples in %d scrapes", r.Samples, r.Scrapes)
	}
	if r.RSS < 1<<20 || r.LatenessP99 != -1 || r.BytesPerSample != -1 {
		t.Errorf("RSS %d, lateness %v, bytes/sample %v: want a real RSS and no shoal-only figures", r.RSS, r.LatenessP99, r.BytesPerSample)
	}
}

// values counts the sample lines of a text exposition body.
func values(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && l[0] != '#' {
			out = append(out, l)
		}
	}
	return out
}

// TestRunRamp: a ramp with a low target limit runs its steps in order and
// ends at the limit, the floor keeping up all the way.
func TestRunRamp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 3 s")
	}
	rr, err := RunRamp(t.Context(), RampConfig{
		Base: E2EConfig{
			Scraper: ScraperFloor, Interval: 200 * time.Millisecond, Duration: 600 * time.Millisecond,
			Payload: headLines(nodeFixture(t), 100), Child: childCommand(t), NoPin: true, Dir: t.TempDir(),
		},
		Start: 5, Factor: 2, MaxTargets: 12,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, s := range rr.Steps {
		got = append(got, s.Targets)
	}
	if len(got) != 2 || got[0] != 5 || got[1] != 10 {
		t.Fatalf("steps %v, want [5 10]", got)
	}
	if rr.MaxSustainedTargets != 10 || rr.MaxSustained <= 0 || !strings.Contains(rr.Stop, "limit") {
		t.Errorf("max sustained %.0f samples/s at %d targets, stop %q", rr.MaxSustained, rr.MaxSustainedTargets, rr.Stop)
	}
}

func TestE2EConfigValidate(t *testing.T) {
	ok := E2EConfig{Scraper: ScraperShoal, Payload: []byte("a 1\n"), Child: func(string) *exec.Cmd { return nil }, Dir: "/tmp"}
	for name, mod := range map[string]func(*E2EConfig){
		"unknown scraper":          func(c *E2EConfig) { c.Scraper = "vmagent" },
		"kafka, no broker":         func(c *E2EConfig) { c.Sink = "kafka" },
		"kafka-fastest, no broker": func(c *E2EConfig) { c.Sink = "kafka-fastest" },
		"bad sink":                 func(c *E2EConfig) { c.Sink = "stdout" },
		"no child":                 func(c *E2EConfig) { c.Child = nil },
		"sub-ms interval":          func(c *E2EConfig) { c.Interval = 1500 * time.Microsecond },
		"no payload":               func(c *E2EConfig) { c.Payload = nil },
		"no work directory":        func(c *E2EConfig) { c.Dir = "" },
	} {
		c := ok
		mod(&c)
		c.setDefaults()
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	c := ok
	c.setDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	c.Sink, c.Kafka = "kafka-fastest", KafkaBroker{Broker: "127.0.0.1:9092", LogDir: "/tmp"}
	if err := c.Validate(); err != nil {
		t.Errorf("kafka-fastest with a broker: %v", err)
	}
}

// TestFloorServed: RunFloor in process scrapes every target once per
// interval, and with Gunzip reads gzip answers.
func TestFloorServed(t *testing.T) {
	f, err := farm.Start(t.Context(), farm.Config{Targets: 4, Payload: []byte("a 1\nb 2\n"), Gzip: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 1050*time.Millisecond)
	defer cancel()
	if err := RunFloor(ctx, FloorConfig{Addrs: f.Addrs(), Interval: 100 * time.Millisecond, Gunzip: true}); err != nil {
		t.Fatal(err)
	}
	for i, s := range f.Stats() {
		// 10 or 11 instants fall in 1.05 s, depending on the phase.
		if s.Scrapes < 9 || s.Scrapes > 11 || s.Gzipped != s.Scrapes {
			t.Errorf("target %d: %+v, want about 10 gzip scrapes", i, s)
		}
	}
}

// TestPlotSVG: the plot is well-formed XML with one polyline per line and
// panel, and a legend entry per scraper.
func TestPlotSVG(t *testing.T) {
	var b bytes.Buffer
	lines := []Line{
		{Name: "shoal", Points: [][2]float64{{1000, 0.9}, {250, 1.1}, {2000, 0.8}}},
		{Name: "prometheus", Points: [][2]float64{{250, 3.5}, {500, 3.4}}},
	}
	if err := PlotSVG(&b, []Panel{{Title: "cpu", Lines: lines}, {Title: "rss <KB>", Lines: lines[:1]}}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Polylines []struct{} `xml:"polyline"`
		Texts     []string   `xml:"text"`
	}
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, b.String())
	}
	if len(doc.Polylines) != 3 {
		t.Errorf("%d polylines, want 3", len(doc.Polylines))
	}
	for _, want := range []string{"shoal", "prometheus", "rss <KB>", "1k"} {
		found := false
		for _, s := range doc.Texts {
			found = found || s == want
		}
		if !found {
			t.Errorf("no text %q in %q", want, doc.Texts)
		}
	}
}

func TestNiceScale(t *testing.T) {
	for _, c := range []struct{ max, top, step float64 }{
		{3.4, 4, 1}, {0.9, 1, 0.2}, {220, 250, 50}, {1, 1, 0.2}, {0, 1, 0.2},
	} {
		if top, step := niceScale(c.max); top != c.top || step != c.step {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", c.max, top, step, c.top, c.step)
		}
	}
}

// TestRampSteps: the ramp's decisions, over a scraper that keeps up to 1000
// targets and whose core fills at 1100. A failed step is run again unless
// its core was full, and the first failure is followed by one step at the
// geometric mean of it and the last step that kept up; a window disturbed
// once does not end the ramp.
func TestRampSteps(t *testing.T) {
	disturbed := map[int]bool{375: true} // the first run at 375 targets fails
	run := func(_ context.Context, c E2EConfig) (E2EResult, error) {
		r := E2EResult{Targets: c.Targets, Served: 1, WarmedUp: true, CoreUtil: min(1, float64(c.Targets)/1100)}
		r.SamplesPerSec = 100 * float64(c.Targets)
		if c.Targets > 1000 || disturbed[c.Targets] {
			r.Served = 0.9
			r.SamplesPerSec *= 0.9
		}
		if c.Targets == 845 { // works off a backlog from its start
			r.Served = 1.2
			r.SamplesPerSec *= 1.2
		}
		delete(disturbed, c.Targets)
		return r, nil
	}
	rr, err := RunRamp(t.Context(), RampConfig{Start: 250, Factor: 1.5, run: run})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, s := range rr.Steps {
		got = append(got, s.Targets)
	}
	// 1268 fails with its core full: not run again. 1035 =
	// round(√(845·1268)) fails with room on its core: run again. 1035
	// is more than 1.15 times 845: 935 = round(√(845·1035)) keeps up,
	// and 1035 is less than 1.15 times 935, which ends the ramp.
	want := []int{250, 375, 375, 563, 845, 1268, 1035, 1035, 935}
	if !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v", got, want)
	}
	if rr.MaxSustainedTargets != 935 || math.Abs(rr.MaxSustained-93500) > 1e-6 {
		t.Errorf("max sustained %.0f samples/s at %d targets, want 93500 at 935", rr.MaxSustained, rr.MaxSustainedTargets)
	}
	for _, w := range []string{"1268 targets", "core saturated", "1035 targets did not keep up", "935 targets kept up"} {
		if !strings.Contains(rr.Stop, w) {
			t.Errorf("stop %q does not say %q", rr.Stop, w)
		}
	}
	// 845 served 120 % of its schedule: it sustains its schedule's rate,
	// 84 500 samples/s, not the catch-up's 101 400 (which would beat 935).
	rr2, err := RunRamp(t.Context(), RampConfig{Start: 250, Factor: 1.5, Precision: 2, run: run})
	if err != nil {
		t.Fatal(err)
	}
	if rr2.MaxSustainedTargets != 845 || math.Abs(rr2.MaxSustained-84500) > 1e-6 {
		t.Errorf("Precision 2: max sustained %.0f samples/s at %d targets, want 84500 at 845", rr2.MaxSustained, rr2.MaxSustainedTargets)
	}
	if strings.Contains(rr.Stop, "twice") {
		t.Errorf("stop %q: the saturated step ran once", rr.Stop)
	}
}
