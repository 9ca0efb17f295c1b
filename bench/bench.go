// Package bench is shoal's load harness: workloads that run a whole engine
// against an exporter farm (package bench/farm) and measure what it costs.
//
// Each workload is a Config and a Run (the split of pebble's bench
// package): Run builds everything it needs from the Config, keeps no
// package-level state, and returns a Result. `go test -bench` drives it
// (bench_test.go), and a cmd/ binary can drive the same Run for long runs.
//
// # The engine workload (Run)
//
// Run starts a farm of Config.Targets exporters, an engine writing to a
// produce.Discard sink with a fresh Prometheus registry, and one job
// scraping every farm target at Config.Interval. It lets the engine warm
// up until every target's first scrape (TCP connect, series-cache misses,
// buffer growth: several times the cost of a later scrape) is over, then
// measures a window of Config.Duration between two snapshots of:
//
//   - the farm's per-target counters: scrapes and samples served;
//   - this process's CPU time (getrusage: user + system, all threads) and
//     the host's (/proc/stat), and the farm children's own CPU;
//   - the engine's histograms shoal_scrape_start_lateness_seconds (due
//     instant → scrape start, the number that matters) and
//     shoal_wheel_lateness_seconds (due instant → handed to the queue),
//     and its skip and failure counters.
//
// Memory is measured from before the engine exists (after a forced GC and
// a return of free memory to the OS) to the end of the window: VmRSS, and
// as a cross-check the Go live heap plus goroutine stacks
// (runtime/metrics), each divided by the number of targets.
//
// Where the farm runs matters. In process (Config.FarmCommand nil), its
// CPU and per-connection memory are counted as the scraper's, and the
// process needs about three file descriptors per target (listener, server
// side, client side). With FarmCommand the farm runs in child processes,
// its cost is reported apart (Result.FarmCPU), and the scraper needs one
// descriptor per target. Either way the farm shares the machine's cores.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-scraper/shoal/bench/farm"
	"github.com/shoal-scraper/shoal/bench/internal/proc"
	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/engine"
	"github.com/shoal-scraper/shoal/produce"
)

// MaxTargetsPerFarmProcess is the default share of one farm child: about
// two descriptors per target (listener and connection) must fit under a
// 20000-descriptor limit with room to spare.
const MaxTargetsPerFarmProcess = 5000

// jobName is the one job Run configures.
const jobName = "bench"

// Config describes one engine workload. Zero fields take the defaults
// documented on each.
type Config struct {
	// Targets is how many farm targets the engine scrapes. Default 1000.
	Targets int
	// Interval is the job's scrape_interval, in whole milliseconds.
	// Default 1s.
	Interval time.Duration
	// Timeout is the job's scrape_timeout. Default Interval capped at 10s
	// (Prometheus's default).
	Timeout time.Duration
	// Warmup is the least time run before measuring. Default one
	// Interval, in which every target is due once. Warm-up then goes on
	// until the engine has caught up: every target scraped once, and for
	// two polls in a row (200ms apart) every scrape that started did so
	// within 100ms of its due instant, so no backlog is left. A target's
	// first scrape costs several times a later one, and at 10000 targets
	// on two cores the first round outlasts a 10s interval. MaxWarmup
	// bounds the whole warm-up (default 5×Warmup); Result.WarmupCaughtUp
	// says whether it ended by catching up.
	Warmup, MaxWarmup time.Duration
	// Duration is the measured window. Default 3×Interval. A multiple of
	// Interval makes ScheduledScrapes exact: each target is due exactly
	// Duration/Interval times in any window that long.
	Duration time.Duration
	// Payload is what every target serves. Required: the benchmarks pass
	// parse/testdata/node_exporter.prom (about 500 samples, 57 KB).
	Payload []byte
	// Gzip makes the farm answer with gzip bodies (the engine always asks
	// for gzip, as Prometheus does).
	Gzip bool
	// Latency delays every farm response.
	Latency time.Duration
	// Faults the farm injects (farm.Faults); zero: none.
	Faults farm.Faults
	// BigPayload is served instead of Payload by the first BigTargets
	// targets (farm.Config.BigPayload).
	BigPayload []byte
	BigTargets int
	// Workers is engine.Config.Workers. Zero: the engine's default.
	Workers int
	// FarmCommand, when set, runs the farm in child processes instead of
	// in this one: each call returns a new, unstarted command whose program
	// calls farm.ServeProcess with its stdin and stdout (a test binary can
	// re-execute itself; see bench_test.go). Nil: the farm runs in process.
	FarmCommand func() *exec.Cmd
	// FarmProcesses is how many children share the targets when
	// FarmCommand is set. Default Targets/MaxTargetsPerFarmProcess,
	// rounded up.
	FarmProcesses int
	// Logger receives the engine's logs. Nil: discarded.
	Logger *slog.Logger
	// CPUProfile, when set, receives a CPU profile (pprof format) of the
	// measured window alone, warm-up excluded. `go test -cpuprofile`
	// cannot be used at the same time: the runtime runs one CPU profile
	// per process.
	CPUProfile io.Writer
	// HeapProfile, when set, receives a heap profile (pprof format) taken
	// at the end of the window, after the measurements and a forced GC:
	// what the engine holds for its targets.
	HeapProfile io.Writer
}

func (c *Config) setDefaults() {
	if c.Targets == 0 {
		c.Targets = 1000
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = min(c.Interval, 10*time.Second)
	}
	if c.Warmup == 0 {
		c.Warmup = c.Interval
	}
	if c.MaxWarmup == 0 {
		c.MaxWarmup = 5 * c.Warmup
	}
	if c.Duration == 0 {
		c.Duration = 3 * c.Interval
	}
	if c.FarmCommand != nil && c.FarmProcesses == 0 {
		c.FarmProcesses = (c.Targets + MaxTargetsPerFarmProcess - 1) / MaxTargetsPerFarmProcess
	}
}

// Validate reports the first problem with c (after defaults).
func (c *Config) Validate() error {
	switch {
	case c.Targets <= 0:
		return fmt.Errorf("bench: targets %d: must be positive", c.Targets)
	case c.Interval < time.Millisecond || c.Interval%time.Millisecond != 0:
		return fmt.Errorf("bench: interval %s: must be a positive whole number of milliseconds", c.Interval)
	case c.Timeout < time.Millisecond || c.Timeout%time.Millisecond != 0 || c.Timeout > c.Interval:
		return fmt.Errorf("bench: timeout %s: must be whole milliseconds, at most the interval %s", c.Timeout, c.Interval)
	case c.Warmup < 0 || c.MaxWarmup < c.Warmup || c.Duration <= 0:
		return fmt.Errorf("bench: warmup %s, max warmup %s, duration %s: need 0 ≤ warmup ≤ max warmup and duration > 0", c.Warmup, c.MaxWarmup, c.Duration)
	case len(c.Payload) == 0:
		return errors.New("bench: empty payload (pass e.g. parse/testdata/node_exporter.prom)")
	case c.BigTargets < 0 || c.BigTargets > c.Targets || (c.BigTargets > 0 && len(c.BigPayload) == 0):
		return fmt.Errorf("bench: %d big targets of %d, big payload of %d bytes: need 0 to %d, and a big payload", c.BigTargets, c.Targets, len(c.BigPayload), c.Targets)
	case c.FarmCommand != nil && (c.FarmProcesses <= 0 || c.FarmProcesses > c.Targets):
		return fmt.Errorf("bench: farm processes %d: need 1 to %d", c.FarmProcesses, c.Targets)
	}
	return nil
}

// fdHeadroom is descriptors kept free for everything but targets (the
// runtime's poller, stdio, pipes to farm children, the odd file).
const fdHeadroom = 256

// checkFDs fails early, with the arithmetic, when the workload cannot get
// the descriptors it needs: running out midway shows up as failed scrapes
// and a confusing Result instead.
func (c *Config) checkFDs() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // cannot tell; let it run
	}
	have := int64(lim.Cur)
	if c.FarmCommand == nil {
		if need := 3*int64(c.Targets) + fdHeadroom; need > have {
			return fmt.Errorf("bench: %d targets with an in-process farm need about %d file descriptors (listener, server and client connection per target), the limit is %d: set FarmCommand to run the farm in child processes", c.Targets, need, have)
		}
		return nil
	}
	if need := int64(c.Targets) + fdHeadroom; need > have {
		return fmt.Errorf("bench: %d targets need about %d file descriptors in the scraper, the limit is %d", c.Targets, need, have)
	}
	per := (c.Targets + c.FarmProcesses - 1) / c.FarmProcesses
	if need := 2*int64(per) + fdHeadroom; need > have {
		return fmt.Errorf("bench: %d targets per farm process need about %d file descriptors, the limit is %d: raise FarmProcesses", per, need, have)
	}
	return nil
}

// Result is what Run measured over its window (warm-up excluded).
type Result struct {
	Targets  int
	Interval time.Duration
	Window   time.Duration // measured wall time (≈ Config.Duration)

	// Scrapes and Samples the farm served in the window.
	Scrapes, Samples int64
	// ScheduledScrapes is Targets × Window / Interval: the scrapes due.
	ScheduledScrapes float64
	// ServedRatio is Scrapes / ScheduledScrapes. Scrapes in flight at the
	// window's edges make it wobble by a few per mille around 1.
	ServedRatio float64
	// MinTargetScrapes and MaxTargetScrapes bound one target's scrapes in
	// the window; Unscraped counts targets with none.
	MinTargetScrapes, MaxTargetScrapes int64
	Unscraped                          int
	// Warmup is how long the warm-up took (see Config.Warmup).
	// WarmupCaughtUp is false when MaxWarmup cut it short: the window then
	// holds a backlog of late scrapes, and ServedRatio can exceed 1.
	// WarmupUnscraped counts targets not scraped once when the window
	// opened: their first, cold scrapes are in the window.
	Warmup          time.Duration
	WarmupCaughtUp  bool
	WarmupUnscraped int
	// SinkSamples reached the Discard sink: Samples plus the synthetic
	// series (and staleness markers, if any).
	SinkSamples int64
	// Failed scrapes (shoal_scrapes_total{result="failed"}) and skipped
	// ones (shoal_scrapes_skipped_total by reason) in the window.
	Failed, SkippedQueue, SkippedInFlight int64

	// CPU is this process's CPU time (user + system) in the window; with
	// an in-process farm it includes the farm's.
	CPU time.Duration
	// CPUPerSample is CPU / Samples, in microseconds.
	CPUPerSample float64
	// CPUUtil is CPU / (Window × GOMAXPROCS): this process's share of the
	// cores it may use.
	CPUUtil float64
	// HostCPUUtil is the whole host's busy fraction in the window
	// (/proc/stat): near 1 means everything, farm included, was starved
	// and the lateness figures say more about the machine than the engine.
	HostCPUUtil float64
	// FarmCPU is the farm children's CPU in the window; zero with an
	// in-process farm.
	FarmCPU time.Duration
	// FarmInProcess: the farm ran in this process (see CPU and the
	// memory figures).
	FarmInProcess bool

	// LatenessP50 and LatenessP99 are quantiles of scrape-start lateness
	// (due instant → a worker starts the scrape), interpolated linearly
	// within the buckets of shoal_scrape_start_lateness_seconds; WithinTwoMs
	// is the fraction that started within 2 ms (exact: 2 ms is a bucket
	// bound). -1 (durations) and NaN when no scrape started in the window.
	LatenessP50, LatenessP99 time.Duration
	WithinTwoMs              float64
	// WheelLatenessP99 is the 99th percentile of the wheel's lateness
	// alone (due → queued): when it is much smaller than LatenessP99 the
	// time is spent waiting for a worker, not in the wheel.
	WheelLatenessP99 time.Duration

	// RSSPerTarget is the growth of VmRSS from before the engine existed
	// to the end of the window, per target, in bytes. HeapPerTarget is the
	// same for the Go live heap (as of the last GC) plus goroutine stacks:
	// RSS also holds garbage not yet collected and freed pages the runtime
	// has not returned.
	RSSPerTarget, HeapPerTarget float64
}

// String prints r on one line.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "targets=%d interval=%s window=%s served=%.2f%% (%d/%.0f, per target %d..%d, unscraped %d)",
		r.Targets, r.Interval, r.Window.Round(time.Millisecond), 100*r.ServedRatio, r.Scrapes, r.ScheduledScrapes,
		r.MinTargetScrapes, r.MaxTargetScrapes, r.Unscraped)
	fmt.Fprintf(&b, " warmup=%s", r.Warmup.Round(time.Millisecond))
	if !r.WarmupCaughtUp {
		fmt.Fprintf(&b, " (cut short: not caught up, %d targets unscraped)", r.WarmupUnscraped)
	}
	if r.Failed+r.SkippedQueue+r.SkippedInFlight > 0 {
		fmt.Fprintf(&b, " failed=%d skipped(queue=%d in_flight=%d)", r.Failed, r.SkippedQueue, r.SkippedInFlight)
	}
	fmt.Fprintf(&b, " samples/s=%.0f cpu=%s (%.0f%% of GOMAXPROCS, host %.0f%%) cpu/sample=%.3fµs",
		float64(r.Samples)/r.Window.Seconds(), r.CPU.Round(time.Millisecond), 100*r.CPUUtil, 100*r.HostCPUUtil, r.CPUPerSample)
	if r.FarmInProcess {
		b.WriteString(" (farm in process)")
	} else {
		fmt.Fprintf(&b, " farm-cpu=%s", r.FarmCPU.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, " start-late p50=%s p99=%s ≤2ms=%.2f%% wheel-p99=%s rss/target=%.1fKiB heap/target=%.1fKiB",
		fmtDur(r.LatenessP50), fmtDur(r.LatenessP99), 100*r.WithinTwoMs, fmtDur(r.WheelLatenessP99),
		r.RSSPerTarget/1024, r.HeapPerTarget/1024)
	return b.String()
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "n/a"
	}
	return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) + "ms"
}

// Run runs the engine workload cfg describes and returns its measurements.
// It blocks for the warm-up and cfg.Duration, and returns early with
// ctx's error if ctx ends. Everything it starts (farm, children, engine) is
// stopped and waited for before it returns.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if err := cfg.checkFDs(); err != nil {
		return Result{}, err
	}

	fs, err := startFarms(ctx, &cfg)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if cerr := fs.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	// Memory baseline: the farm (if in process) and payload are in it, the
	// engine is not. Collect and return free pages so that memory left
	// over by an earlier Run in this process does not hide this one's.
	runtime.GC()
	debug.FreeOSMemory()
	rss0, err := proc.RSS()
	if err != nil {
		return Result{}, err
	}
	heap0 := goMemory()

	reg := prometheus.NewRegistry()
	sink := &produce.Discard{}
	eng, err := engine.New(engine.Config{Workers: cfg.Workers, Version: "bench"}, sink, reg, cfg.Logger)
	if err != nil {
		return Result{}, fmt.Errorf("bench: %w", err)
	}
	c, err := config.Parse(jobConfig(&cfg, fs.addrs), "bench.yml")
	if err != nil {
		return Result{}, fmt.Errorf("bench: generated config: %w", err)
	}
	if err := eng.ApplyConfig(c); err != nil {
		return Result{}, fmt.Errorf("bench: %w", err)
	}
	// The binary's discovery manager does this for static_configs.
	eng.SyncTargets(jobName, c.ScrapeConfigs[0].StaticConfigs)

	start := time.Now()
	ectx, stop := context.WithCancel(ctx)
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(ectx) }()
	defer func() {
		stop()
		if rerr := <-engDone; rerr != nil && err == nil {
			err = fmt.Errorf("bench: engine: %w", rerr)
		}
	}()

	warmup, caughtUp, err := warmUp(ctx, &cfg, fs, reg, start)
	if err != nil {
		return Result{}, err
	}
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return Result{}, fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile() // idempotent; the normal path stops it below
	}
	a, err := takeSnapshot(fs, reg, sink)
	if err != nil {
		return Result{}, err
	}
	if err := sleep(ctx, cfg.Duration); err != nil {
		return Result{}, err
	}
	b, err := takeSnapshot(fs, reg, sink)
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return Result{}, err
	}
	if cfg.HeapProfile != nil {
		runtime.GC()
		if err := pprof.Lookup("heap").WriteTo(cfg.HeapProfile, 0); err != nil {
			return Result{}, fmt.Errorf("bench: heap profile: %w", err)
		}
	}
	r := result(&cfg, fs, a, b, rss0, heap0)
	r.Warmup, r.WarmupCaughtUp = warmup, caughtUp
	return r, nil
}

// warmUp waits out the warm-up (see Config.Warmup) of a run started at
// start. It returns its length and whether the engine caught up.
func warmUp(ctx context.Context, cfg *Config, fs *farms, reg prometheus.Gatherer, start time.Time) (time.Duration, bool, error) {
	const (
		poll     = 200 * time.Millisecond
		onTime   = 0.1 // seconds: a bucket bound of the lateness histogram
		needPass = 2   // consecutive polls
	)
	if err := sleep(ctx, cfg.Warmup); err != nil {
		return 0, false, err
	}
	deadline := start.Add(cfg.MaxWarmup)
	var prev histogram
	passed := 0
	for {
		st, _, err := fs.stats()
		if err != nil {
			return 0, false, err
		}
		g, err := gather(reg)
		if err != nil {
			return 0, false, err
		}
		late, err := g.histogram("shoal_scrape_start_lateness_seconds")
		if err != nil {
			return 0, false, err
		}
		recent := late.sub(prev)
		prev = late
		allScraped := !slices.ContainsFunc(st, func(s farm.Stats) bool { return s.Scrapes == 0 })
		// No scrape started in the poll counts as on time: at long
		// intervals and few targets a poll can be empty.
		if allScraped && (recent.count == 0 || recent.fractionBelow(onTime) == 1) {
			passed++
		} else {
			passed = 0
		}
		if passed >= needPass {
			return time.Since(start), true, nil
		}
		if time.Now().Add(poll).After(deadline) {
			return time.Since(start), false, nil
		}
		if err := sleep(ctx, poll); err != nil {
			return 0, false, err
		}
	}
}

// jobConfig renders the workload's prometheus.yml: one job, the farm's
// addresses as one static group.
func jobConfig(cfg *Config, addrs []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %dms\n  scrape_timeout: %dms\n", cfg.Interval.Milliseconds(), cfg.Timeout.Milliseconds())
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets:\n", jobName)
	for _, a := range addrs {
		fmt.Fprintf(&b, "          - %q\n", a)
	}
	return []byte(b.String())
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// goMemory is the Go live heap (as of the last GC) plus goroutine stacks.
func goMemory() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	var n uint64
	for _, x := range s {
		if x.Value.Kind() == metrics.KindUint64 {
			n += x.Value.Uint64()
		}
	}
	return n
}

// farms is the farm of a run: in this process, or split over children.
// Target i of the run is addrs[i].
type farms struct {
	local    *farm.Farm
	children []*farm.Process
	addrs    []string
	spp      int // samples per scrape
}

func startFarms(ctx context.Context, cfg *Config) (*farms, error) {
	fc := farm.Config{Targets: cfg.Targets, Payload: cfg.Payload, Gzip: cfg.Gzip, Latency: cfg.Latency, Faults: cfg.Faults,
		BigPayload: cfg.BigPayload, BigTargets: cfg.BigTargets}
	if cfg.FarmCommand == nil {
		f, err := farm.Start(ctx, fc)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		return &farms{local: f, addrs: f.Addrs(), spp: f.SamplesPerScrape()}, nil
	}
	fs := &farms{}
	bigLeft := cfg.BigTargets
	for i := range cfg.FarmProcesses {
		// Spread the remainder: shares differ by at most one target.
		fc.Targets = cfg.Targets/cfg.FarmProcesses + btoi(i < cfg.Targets%cfg.FarmProcesses)
		// The big targets are the run's first: the first children's.
		fc.BigTargets = min(bigLeft, fc.Targets)
		bigLeft -= fc.BigTargets
		fc.BigPayload = nil
		if fc.BigTargets > 0 {
			fc.BigPayload = cfg.BigPayload
		}
		p, err := farm.StartProcess(ctx, fc, cfg.FarmCommand())
		if err != nil {
			fs.close()
			return nil, fmt.Errorf("bench: farm process %d of %d: %w", i+1, cfg.FarmProcesses, err)
		}
		fs.children = append(fs.children, p)
		fs.addrs = append(fs.addrs, p.Addrs()...)
		fs.spp = p.SamplesPerScrape()
	}
	return fs, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// stats returns every target's counters and the children's CPU so far.
func (fs *farms) stats() ([]farm.Stats, time.Duration, error) {
	if fs.local != nil {
		return fs.local.Stats(), 0, nil
	}
	var all []farm.Stats
	var cpu time.Duration
	for _, p := range fs.children {
		s, err := p.Stats()
		if err != nil {
			return nil, 0, err
		}
		all = append(all, s.Targets...)
		cpu += s.CPU
	}
	return all, cpu, nil
}

func (fs *farms) close() error {
	if fs.local != nil {
		return fs.local.Close()
	}
	var errs []error
	for _, p := range fs.children {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// snapshot is everything Run compares between the window's two ends.
type snapshot struct {
	at                          time.Time
	cpu, farmCPU                time.Duration
	hostBusy, hostTotal         uint64
	targets                     []farm.Stats
	startLate, wheelLate        histogram
	failed, skipQueue, skipBusy float64
	sinkSamples                 int64
	rss                         int64
	goMem                       uint64
}

func takeSnapshot(fs *farms, reg *prometheus.Registry, sink *produce.Discard) (snapshot, error) {
	var s snapshot
	var err error
	// Farm counters first and CPU last, so the CPU window covers at least
	// the samples counted.
	if s.targets, s.farmCPU, err = fs.stats(); err != nil {
		return s, fmt.Errorf("bench: %w", err)
	}
	s.at = time.Now()
	s.sinkSamples = sink.Samples()
	g, err := gather(reg)
	if err != nil {
		return s, err
	}
	if s.startLate, err = g.histogram("shoal_scrape_start_lateness_seconds"); err != nil {
		return s, err
	}
	if s.wheelLate, err = g.histogram("shoal_wheel_lateness_seconds"); err != nil {
		return s, err
	}
	// Counter-vector children appear on first use: absent means 0.
	s.failed = g.counters[`shoal_scrapes_total{job="`+jobName+`",result="failed"}`]
	s.skipQueue = g.counters[`shoal_scrapes_skipped_total{reason="queue_full"}`]
	s.skipBusy = g.counters[`shoal_scrapes_skipped_total{reason="in_flight"}`]
	if s.rss, err = proc.RSS(); err != nil {
		return s, err
	}
	s.goMem = goMemory()
	if s.hostBusy, s.hostTotal, err = proc.HostCPU(); err != nil {
		return s, err
	}
	if s.cpu, err = proc.CPU(); err != nil {
		return s, err
	}
	return s, nil
}

func result(cfg *Config, fs *farms, a, b snapshot, rss0 int64, heap0 uint64) Result {
	r := Result{
		Targets:         cfg.Targets,
		Interval:        cfg.Interval,
		Window:          b.at.Sub(a.at),
		SinkSamples:     b.sinkSamples - a.sinkSamples,
		Failed:          int64(b.failed - a.failed),
		SkippedQueue:    int64(b.skipQueue - a.skipQueue),
		SkippedInFlight: int64(b.skipBusy - a.skipBusy),
		CPU:             b.cpu - a.cpu,
		FarmCPU:         b.farmCPU - a.farmCPU,
		FarmInProcess:   fs.local != nil,
	}
	r.MinTargetScrapes = math.MaxInt64
	for i := range b.targets {
		if a.targets[i].Scrapes == 0 {
			r.WarmupUnscraped++
		}
		d := b.targets[i].Sub(a.targets[i])
		r.Scrapes += d.Scrapes
		r.Samples += d.Samples
		r.MinTargetScrapes = min(r.MinTargetScrapes, d.Scrapes)
		r.MaxTargetScrapes = max(r.MaxTargetScrapes, d.Scrapes)
		if d.Scrapes == 0 {
			r.Unscraped++
		}
	}
	r.ScheduledScrapes = float64(cfg.Targets) * r.Window.Seconds() / cfg.Interval.Seconds()
	r.ServedRatio = float64(r.Scrapes) / r.ScheduledScrapes
	if r.Samples > 0 {
		r.CPUPerSample = float64(r.CPU.Microseconds()) / float64(r.Samples)
	}
	r.CPUUtil = r.CPU.Seconds() / (r.Window.Seconds() * float64(runtime.GOMAXPROCS(0)))
	if dt := b.hostTotal - a.hostTotal; dt > 0 {
		r.HostCPUUtil = float64(b.hostBusy-a.hostBusy) / float64(dt)
	}

	late := b.startLate.sub(a.startLate)
	r.LatenessP50 = seconds(late.quantile(0.5))
	r.LatenessP99 = seconds(late.quantile(0.99))
	r.WithinTwoMs = late.fractionBelow(0.002)
	r.WheelLatenessP99 = seconds(b.wheelLate.sub(a.wheelLate).quantile(0.99))

	r.RSSPerTarget = float64(b.rss-rss0) / float64(cfg.Targets)
	r.HeapPerTarget = (float64(b.goMem) - float64(heap0)) / float64(cfg.Targets)
	return r
}

// seconds converts a histogram value to a Duration; NaN becomes -1.
func seconds(s float64) time.Duration {
	if math.IsNaN(s) {
		return -1
	}
	return time.Duration(s * 1e9)
}
