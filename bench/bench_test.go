package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-scraper/shoal/bench/farm"
	"github.com/shoal-scraper/shoal/config"
)

// farmChildEnv makes this test binary serve as a farm child process: see
// farmCommand. childRoleEnv makes it serve a RunE2E child role (RoleFarm,
// RoleFloor): see childCommand.
const (
	farmChildEnv = "SHOAL_BENCH_FARM_CHILD"
	childRoleEnv = "SHOAL_BENCH_TEST_ROLE"
)

// windowProfile names a file for a CPU profile of BenchmarkEngine's
// measured window (Config.CPUProfile); -cpuprofile would include the
// warm-up, whose cold first scrapes dominate it.
var (
	windowProfile = flag.String("windowprofile", "", "write a CPU profile of BenchmarkEngine's measured window to this `file`")
	heapProfile   = flag.String("heapprofile", "", "write a heap profile at the end of BenchmarkEngine's window to this `file`")
)

func TestMain(m *testing.M) {
	switch os.Getenv(childRoleEnv) {
	case RoleFarm:
		os.Setenv(farmChildEnv, "1")
	case RoleFloor:
		if err := ServeFloor(context.Background(), os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(farmChildEnv) == "1" {
		if err := farm.ServeProcess(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m,
		// The engine's fasthttp client: cleaners that exit on their own
		// timers after the client is closed (as in engine's own tests), and
		// the DNS cache cleaner of fasthttp's package-level dialer, which
		// never exits.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*Client).mCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"))
}

// farmCommand re-executes this test binary as a farm child (TestMain), so
// the farm's descriptors, CPU and memory are not the engine's.
func farmCommand(tb testing.TB) func() *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	return func() *exec.Cmd {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), farmChildEnv+"=1")
		return cmd
	}
}

func nodeFixture(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("../parse/testdata/node_exporter.prom")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestRunServesAllTargets runs the engine against 200 farm targets for 3
// intervals of 500ms and checks it scraped every target on schedule: at
// least 99% of the scheduled scrapes served, no target left out, none
// scraped more often than it was due. It catches scheduling bugs (lost or
// doubled targets, a stuck wheel, a starved queue); it asserts nothing
// about CPU or lateness, which depend on the machine. The payload is the
// head of the node_exporter fixture, so that the test does not saturate
// two cores under -race.
func TestRunServesAllTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 2 s")
	}
	cfg := Config{
		Targets:  200,
		Interval: 500 * time.Millisecond,
		Duration: 1500 * time.Millisecond,
		Payload:  headLines(nodeFixture(t), 100),
		Gzip:     true,
	}
	// A host saturated by something else (other test binaries of the same
	// `go test ./...`, a neighbour) delays scrapes past the window's end:
	// that measures the machine, so such a run gets one more try. A 2-core
	// CI run with an engine test under -race beside it served 98.76% at
	// host 100% (scrape-start lateness p99 69 ms).
	var r Result
	for try := 1; ; try++ {
		var err error
		if r, err = Run(t.Context(), cfg); err != nil {
			t.Fatal(err)
		}
		t.Log(r)
		if r.ServedRatio >= 0.99 || r.HostCPUUtil < 0.9 || try == 2 {
			break
		}
		t.Logf("served %.2f%% with the host %.0f%% busy: once more", 100*r.ServedRatio, 100*r.HostCPUUtil)
	}
	if r.ServedRatio < 0.99 {
		t.Errorf("served %.2f%% of the scheduled scrapes (%d of %.0f), want ≥ 99%%", 100*r.ServedRatio, r.Scrapes, r.ScheduledScrapes)
	}
	if r.Unscraped != 0 {
		t.Errorf("%d of %d targets not scraped in the window", r.Unscraped, r.Targets)
	}
	// A target is due ⌈window/interval⌉ times at most; one more scrape
	// can straddle the window's start. The engine never catches up on
	// missed instants, so more means a target is scheduled twice.
	if due := int64(math.Ceil(float64(r.Window) / float64(cfg.Interval))); r.MaxTargetScrapes > due+1 {
		t.Errorf("a target was scraped %d times in %s, at most %d were due", r.MaxTargetScrapes, r.Window, due)
	}
	if r.SinkSamples < r.Samples {
		t.Errorf("sink got %d samples, the farm served %d", r.SinkSamples, r.Samples)
	}
}

// headLines returns the first n lines of b.
func headLines(b []byte, n int) []byte {
	end := 0
	for i := 0; i < n && end < len(b); i++ {
		if j := bytes.IndexByte(b[end:], '\n'); j >= 0 {
			end += j + 1
		} else {
			end = len(b)
		}
	}
	return b[:end]
}

// TestRunFarmProcesses is TestRunServesAllTargets' plumbing with the farm
// in two child processes.
func TestRunFarmProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 1 s")
	}
	r, err := Run(t.Context(), Config{
		Targets:       10,
		Interval:      250 * time.Millisecond,
		Duration:      500 * time.Millisecond,
		Payload:       nodeFixture(t),
		FarmCommand:   farmCommand(t),
		FarmProcesses: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.FarmInProcess || r.FarmCPU <= 0 {
		t.Errorf("FarmInProcess %v, FarmCPU %s: want a child farm with CPU", r.FarmInProcess, r.FarmCPU)
	}
	if r.Unscraped != 0 || r.Scrapes == 0 {
		t.Errorf("%d scrapes, %d targets unscraped", r.Scrapes, r.Unscraped)
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, Config{Targets: 5, Interval: time.Second, Payload: []byte("a 1\n")})
	if err != context.DeadlineExceeded {
		t.Errorf("Run with an ending context: %v, want %v", err, context.DeadlineExceeded)
	}
}

func TestConfigValidate(t *testing.T) {
	p := []byte("a 1\n")
	for _, c := range []Config{
		{Payload: p, Targets: -1},
		{Payload: p, Interval: 1500 * time.Microsecond},
		{Payload: p, Interval: time.Second, Timeout: 2 * time.Second},
		{Payload: p, Warmup: -1},
		{},
		{Payload: p, Targets: 2, FarmCommand: func() *exec.Cmd { return nil }, FarmProcesses: 3},
	} {
		c.setDefaults()
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v): no error", c)
		}
	}
	c := Config{Payload: p, Targets: 1 << 20}
	c.setDefaults()
	if err := c.checkFDs(); err == nil || !strings.Contains(err.Error(), "FarmCommand") {
		t.Errorf("a million in-process targets: checkFDs = %v, want advice to use FarmCommand", err)
	}
}

// TestJobConfig: the generated config parses into one job with the farm's
// targets, interval and timeout.
func TestJobConfig(t *testing.T) {
	cfg := Config{Interval: 1500 * time.Millisecond, Timeout: 250 * time.Millisecond}
	c, err := config.Parse(jobConfig(&cfg, []string{"127.0.0.1:1", "127.0.0.1:2"}), "x.yml")
	if err != nil {
		t.Fatal(err)
	}
	sc := c.ScrapeConfigs[0]
	if sc.JobName != jobName || sc.Interval() != cfg.Interval || time.Duration(sc.ScrapeTimeout) != cfg.Timeout {
		t.Errorf("job %q interval %s timeout %s", sc.JobName, sc.Interval(), time.Duration(sc.ScrapeTimeout))
	}
	if len(sc.StaticConfigs) != 1 || len(sc.StaticConfigs[0].Targets) != 2 {
		t.Fatalf("static configs %v", sc.StaticConfigs)
	}
}

func TestHistogram(t *testing.T) {
	// Bounds 1, 2, 4; 10 observations: 2 ≤ 1, 6 in (1,2], 1 in (2,4], 1 above.
	h := histogram{bounds: []float64{1, 2, 4}, counts: []uint64{2, 8, 9}, count: 10}
	for _, c := range []struct{ q, want float64 }{
		{0.1, 0.5},   // rank 1 of 2 in [0,1]
		{0.2, 1},     // rank 2: the top of the first bucket
		{0.5, 1.5},   // rank 5: 3 of 6 into (1,2]
		{0.85, 3},    // rank 8.5: half of the one in (2,4]
		{0.99, 4},    // rank 9.9: in +Inf, the highest finite bound
		{0.8, 2},     // rank 8: exactly the top of (1,2]
		{0.05, 0.25}, // rank 0.5
	} {
		if got := h.quantile(c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	for _, c := range []struct{ x, want float64 }{
		{1, 0.2}, {2, 0.8}, {1.5, 0.5}, {3, 0.85}, {4, 0.9}, {100, 0.9}, {0.5, 0.1},
	} {
		if got := h.fractionBelow(c.x); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("fractionBelow(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	prev := histogram{bounds: h.bounds, counts: []uint64{1, 1, 1}, count: 1}
	d := h.sub(prev)
	if d.count != 9 || d.counts[0] != 1 || d.counts[1] != 7 || d.counts[2] != 8 {
		t.Errorf("sub = %+v", d)
	}
	if q := (histogram{bounds: h.bounds, counts: make([]uint64, 3)}).quantile(0.5); !math.IsNaN(q) {
		t.Errorf("empty quantile = %v, want NaN", q)
	}
}

// BenchmarkEngine is the load benchmark: a whole engine scraping a farm of
// node_exporter targets (about 500 samples, 57 KB, gzip) on loopback, the
// farm in child processes (this test binary, see farmCommand). One b.Loop
// iteration is one Run: a warm-up until the engine has caught up with its
// cold first round, then a fixed measured window. So ns/op is the run's
// wall time and B/op and allocs/op are mostly the warm-up's; run it with
// -benchtime=1x (any -benchtime shorter than one Run also stops after one
// iteration). targets=1000 takes about 7 s, targets=10000 25 to 35 s; the
// metrics below cover the window only, averaged over iterations:
//
//	cpu-µs/sample  this process's CPU per sample served in the window
//	samples/s      samples served per second
//	served-%       scrapes served / scrapes scheduled
//	p50-late-ms    scrape-start lateness quantiles (due → worker starts)
//	p99-late-ms
//	within-2ms-%   scrapes started within 2 ms of their due instant
//	host-cpu-%     the whole host's CPU use (the farm shares the cores)
//	rss-KB/target  RSS growth from before the engine to the end, per target
//
//	go test -run '^$' -bench 'BenchmarkEngine' -benchtime=1x -count=1 -cpu=2 ./bench/ | tee engine.txt
//
// One sub-benchmark at a time, with a profile of the scraper alone during
// the measured window (-cpuprofile would add the warm-up and its cold
// first scrapes):
//
//	go test -run '^$' -bench 'BenchmarkEngine/targets=10000/' -benchtime=1x -cpu=2 -o bench.test ./bench/ -windowprofile=cpu.out
//	go tool pprof -top -nodecount=15 bench.test cpu.out
//
// -heapprofile=heap.out likewise writes a heap profile at the end of the
// window (go tool pprof -sample_index=inuse_space).
func BenchmarkEngine(b *testing.B) {
	if testing.Short() {
		b.Skip("load benchmark (tens of seconds): make bench-load")
	}
	payload := nodeFixture(b)
	for _, c := range []struct {
		targets            int
		interval, duration time.Duration
	}{
		{1000, time.Second, 5 * time.Second},
		{10000, 10 * time.Second, 10 * time.Second},
	} {
		b.Run(fmt.Sprintf("targets=%d/interval=%s", c.targets, c.interval), func(b *testing.B) {
			b.ReportAllocs()
			cfg := Config{
				Targets:     c.targets,
				Interval:    c.interval,
				Duration:    c.duration,
				Payload:     payload,
				Gzip:        true,
				FarmCommand: farmCommand(b),
			}
			if *windowProfile != "" {
				f, err := os.Create(*windowProfile)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				cfg.CPUProfile = f
			}
			if *heapProfile != "" {
				f, err := os.Create(*heapProfile)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				cfg.HeapProfile = f
			}
			var rs []Result
			for b.Loop() {
				r, err := Run(b.Context(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.Log(r)
				rs = append(rs, r)
			}
			avg := func(f func(Result) float64) float64 {
				var s float64
				for _, r := range rs {
					s += f(r)
				}
				return s / float64(len(rs))
			}
			b.ReportMetric(avg(func(r Result) float64 { return r.CPUPerSample }), "cpu-µs/sample")
			b.ReportMetric(avg(func(r Result) float64 { return float64(r.Samples) / r.Window.Seconds() }), "samples/s")
			b.ReportMetric(avg(func(r Result) float64 { return 100 * r.ServedRatio }), "served-%")
			b.ReportMetric(avg(func(r Result) float64 { return r.LatenessP50.Seconds() * 1e3 }), "p50-late-ms")
			b.ReportMetric(avg(func(r Result) float64 { return r.LatenessP99.Seconds() * 1e3 }), "p99-late-ms")
			b.ReportMetric(avg(func(r Result) float64 { return 100 * r.WithinTwoMs }), "within-2ms-%")
			b.ReportMetric(avg(func(r Result) float64 { return 100 * r.HostCPUUtil }), "host-cpu-%")
			b.ReportMetric(avg(func(r Result) float64 { return r.RSSPerTarget / 1e3 }), "rss-KB/target")
		})
	}
}
