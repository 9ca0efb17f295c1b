package bench

// The end-to-end workload (RunE2E): a real scraper process against a farm
// in other processes, measured from outside through /proc and the farm's
// counters. Unlike Run, which embeds an engine, this measures what a user
// runs: the shoal binary, or Prometheus in agent mode, or a floor.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shoal-scraper/shoal/bench/farm"
	"github.com/shoal-scraper/shoal/bench/internal/proc"
)

// Scrapers RunE2E can measure.
const (
	// ScraperFloor fetches every target and discards the body (FloorConfig).
	ScraperFloor = "floor"
	// ScraperFloorGunzip fetches and gunzips (FloorConfig.Gunzip).
	ScraperFloorGunzip = "floor-gunzip"
	// ScraperShoal is the shoal binary (E2EConfig.ShoalBinary).
	ScraperShoal = "shoal"
	// ScraperPrometheus is Prometheus in agent mode remote-writing to a
	// null receiver the harness runs (E2EConfig.PrometheusBinary).
	ScraperPrometheus = "prometheus"
)

// Scrapers lists every scraper, floors first.
func Scrapers() []string {
	return []string{ScraperFloor, ScraperFloorGunzip, ScraperShoal, ScraperPrometheus}
}

// Child roles: E2EConfig.Child(role) must return a command whose program
// calls farm.ServeProcess (RoleFarm) or ServeFloor (RoleFloor) with its
// stdin and stdout.
const (
	RoleFarm  = "farm"
	RoleFloor = "floor"
)

// E2EConfig is one end-to-end measurement: one scraper, one target count.
type E2EConfig struct {
	// Scraper is one of Scrapers().
	Scraper string
	// Targets, Interval: the farm's size and the scrape interval (whole
	// milliseconds). Defaults 1000 and 5s.
	Targets  int
	Interval time.Duration
	// Duration is the measured window. Default 4 intervals, at least 10s:
	// /proc's CPU times have 10 ms ticks.
	Duration time.Duration
	// MaxWarmup bounds the warm-up, which lasts until the scraper is in
	// its steady state (see waitWarm). Default 4 intervals + 30s.
	MaxWarmup time.Duration
	// Payload every target serves (see farm.Config.Payload); PayloadName
	// labels the results.
	Payload     []byte
	PayloadName string
	// BigPayload is served instead of Payload by the first BigTargets
	// targets (farm.Config.BigPayload): one huge exposition among many
	// ordinary ones. PayloadName should say so.
	BigPayload []byte
	BigTargets int
	// NoGzip makes the farm answer with identity bodies.
	NoGzip bool
	// Faults are injected by the farm (farm.Faults).
	Faults farm.Faults
	// Sink is shoal's sink: "discard" (default), "kafka" (needs Kafka) or
	// "kafka-fastest" (the same with --kafka.compression=zstd-fastest).
	Sink string
	// Kafka is the broker shoal's Kafka sink writes to; the bytes per
	// sample are read from the topic's segment files under LogDir.
	Kafka KafkaBroker
	// ShoalBinary and PrometheusBinary are the programs run. Defaults
	// "bin/shoal" and "/usr/bin/prometheus".
	ShoalBinary, PrometheusBinary string
	// Child returns a new, unstarted command for a child role (RoleFarm,
	// RoleFloor). Required: a binary can re-execute itself (see
	// bench/cmd/shoal-bench).
	Child func(role string) *exec.Cmd
	// ScraperCPU and FarmCPU are the cores the scraper and the farm are
	// pinned to with taskset; -1 leaves one unpinned. The scraper also
	// runs with GOMAXPROCS=1. Defaults 0 and 1 (set NoPin to keep both
	// unpinned).
	ScraperCPU, FarmCPU int
	NoPin               bool
	// Dir holds configs, logs and data of the run. Required.
	Dir string
	// CPUProfile and AllocProfile, when set, receive shoal's CPU profile
	// of the window and its allocation profile at the window's end (pprof
	// format, from its /debug/pprof endpoints). Profiling at 100 Hz costs
	// shoal about 1% more CPU.
	CPUProfile, AllocProfile io.Writer
	// Logf, when set, receives progress lines.
	Logf func(format string, args ...any)
}

// KafkaBroker is a Kafka broker the harness may create topics on.
type KafkaBroker struct {
	Broker     string // host:port
	LogDir     string // the broker's log.dirs
	Partitions int    // of each new topic; default 6
}

func (c *E2EConfig) setDefaults() {
	if c.Targets == 0 {
		c.Targets = 1000
	}
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.Duration == 0 {
		c.Duration = max(4*c.Interval, 10*time.Second)
	}
	if c.MaxWarmup == 0 {
		c.MaxWarmup = 4*c.Interval + 30*time.Second
	}
	if c.Sink == "" {
		c.Sink = "discard"
	}
	if c.ShoalBinary == "" {
		c.ShoalBinary = "bin/shoal"
	}
	if c.PrometheusBinary == "" {
		c.PrometheusBinary = "/usr/bin/prometheus"
	}
	if c.Kafka.Partitions == 0 {
		c.Kafka.Partitions = 6
	}
	if c.NoPin {
		c.ScraperCPU, c.FarmCPU = -1, -1
	}
}

// IsKafkaSink reports whether sink is one of the harness's Kafka sinks:
// "kafka" (shoal's defaults) or "kafka-fastest" (zstd's fastest level).
func IsKafkaSink(sink string) bool { return sink == "kafka" || sink == "kafka-fastest" }

// Validate reports the first problem with c (after defaults).
func (c *E2EConfig) Validate() error {
	switch {
	case !slices.Contains(Scrapers(), c.Scraper):
		return fmt.Errorf("e2e: scraper %q: want one of %s", c.Scraper, strings.Join(Scrapers(), ", "))
	case c.Targets <= 0:
		return fmt.Errorf("e2e: targets %d: must be positive", c.Targets)
	case c.Interval < time.Millisecond || c.Interval%time.Millisecond != 0:
		return fmt.Errorf("e2e: interval %s: must be a positive whole number of milliseconds", c.Interval)
	case len(c.Payload) == 0:
		return errors.New("e2e: empty payload")
	case c.BigTargets < 0 || c.BigTargets > c.Targets || (c.BigTargets > 0 && len(c.BigPayload) == 0):
		return fmt.Errorf("e2e: %d big targets of %d, big payload of %d bytes: need 0 to %d, and a big payload", c.BigTargets, c.Targets, len(c.BigPayload), c.Targets)
	case c.Sink != "discard" && !IsKafkaSink(c.Sink):
		return fmt.Errorf("e2e: sink %q: want discard, kafka or kafka-fastest", c.Sink)
	case IsKafkaSink(c.Sink) && (c.Kafka.Broker == "" || c.Kafka.LogDir == ""):
		return errors.New("e2e: the kafka sink needs a broker and its log directory (scripts/testenv.sh up kafka writes them to .testenv/env)")
	case c.Child == nil:
		return errors.New("e2e: no Child command")
	case c.Dir == "":
		return errors.New("e2e: no Dir")
	}
	return nil
}

// E2EResult is one end-to-end measurement over its window.
type E2EResult struct {
	Scraper  string        `json:"scraper"`
	Sink     string        `json:"sink,omitempty"` // shoal's
	Payload  string        `json:"payload"`
	Targets  int           `json:"targets"`
	Interval time.Duration `json:"interval"`
	Window   time.Duration `json:"window"`
	Warmup   time.Duration `json:"warmup"`
	// WarmedUp is false when MaxWarmup cut the warm-up short.
	WarmedUp bool `json:"warmed_up"`

	// Counted at the farm.
	Scrapes   int64   `json:"scrapes"`
	Samples   int64   `json:"samples"`
	Scheduled float64 `json:"scheduled"` // Targets × Window / Interval
	Served    float64 `json:"served"`    // Scrapes / Scheduled

	// The scraper process alone, from /proc/PID.
	CPU           time.Duration `json:"cpu"`
	CPUPerSample  float64       `json:"cpu_us_per_sample"` // µs
	CoreUtil      float64       `json:"core_util"`         // CPU / Window: the share of its one core
	SamplesPerSec float64       `json:"samples_per_sec"`
	RSS           int64         `json:"rss"` // VmRSS at the window's end
	RSSPerTarget  float64       `json:"rss_per_target"`

	// FarmCoreUtil is the farm's share of its core: near 1 means the farm,
	// not the scraper, was the bottleneck.
	FarmCoreUtil float64 `json:"farm_core_util"`
	// Steal is the share of the window the hypervisor kept the scraper's
	// core (the mean core, when the scraper is not pinned) from running
	// although it had work (/proc/stat). On a shared virtual machine a
	// window with much of it measured the neighbours too: lateness most.
	Steal float64 `json:"steal"`

	// Scrape-start lateness quantiles in ms (shoal only; -1 otherwise),
	// from shoal_scrape_start_lateness_seconds over the window.
	LatenessP50 float64 `json:"lateness_p50_ms"`
	LatenessP99 float64 `json:"lateness_p99_ms"`

	// Shoal only, from its Go runtime metrics at the window's end (bytes):
	// where the RSS goes. HeapInuse is spans in use (live objects and
	// garbage not yet collected), HeapIdle minus HeapReleased memory the
	// runtime holds but does not use, StackInuse goroutine stacks.
	// HeapLive is the heap right after a GC forced once the window's
	// figures are taken (go_memstats_alloc_bytes then): what is reachable;
	// 0 (not measured) when the scraper's core was saturated (see RunE2E).
	HeapInuse  int64 `json:"heap_inuse,omitempty"`
	HeapLive   int64 `json:"heap_live,omitempty"`
	HeapIdle   int64 `json:"heap_idle,omitempty"`
	HeapRelsd  int64 `json:"heap_released,omitempty"`
	StackInuse int64 `json:"stack_inuse,omitempty"`
	Goroutines int64 `json:"goroutines,omitempty"`
	// GCCycles and Allocated are the collections the Go runtime ran in the
	// window and the bytes it allocated (go_gc_duration_seconds_count,
	// go_memstats_alloc_bytes_total): in a steady state both are near
	// zero, and each cycle marks the whole live heap.
	GCCycles  int64 `json:"gc_cycles,omitempty"`
	Allocated int64 `json:"allocated,omitempty"`

	// Kafka sink only: bytes the broker stored in the window (segment
	// files) per sample shoal had acknowledged in it; -1 otherwise.
	BytesPerSample float64 `json:"bytes_per_sample"`
}

// String prints r on one line.
func (r E2EResult) String() string {
	name := r.Scraper
	if r.Scraper == ScraperShoal {
		name += "/" + r.Sink
	}
	s := fmt.Sprintf("%-18s targets=%-6d interval=%-4s served=%6.2f%% samples/s=%-8.0f cpu/sample=%.3fµs core=%3.0f%% rss/target=%.1fKB farm-core=%3.0f%% steal=%.1f%%",
		name, r.Targets, r.Interval, 100*r.Served, r.SamplesPerSec, r.CPUPerSample, 100*r.CoreUtil, r.RSSPerTarget/1e3, 100*r.FarmCoreUtil, 100*r.Steal)
	if r.LatenessP99 >= 0 {
		s += fmt.Sprintf(" late p50=%.3fms p99=%.3fms", r.LatenessP50, r.LatenessP99)
	}
	if r.BytesPerSample >= 0 {
		s += fmt.Sprintf(" bytes/sample=%.3f", r.BytesPerSample)
	}
	if r.HeapLive > 0 {
		s += fmt.Sprintf(" heap-live=%.1fKB/target", float64(r.HeapLive)/1e3/float64(r.Targets))
	}
	if r.HeapInuse > 0 {
		s += fmt.Sprintf(" heap-inuse=%.1fKB/target heap-idle-unreleased=%.1fKB/target stacks=%.1fKB/target goroutines=%d gc=%d alloc=%.0fKB/s",
			float64(r.HeapInuse)/1e3/float64(r.Targets),
			float64(r.HeapIdle-r.HeapRelsd)/1e3/float64(r.Targets), float64(r.StackInuse)/1e3/float64(r.Targets), r.Goroutines,
			r.GCCycles, float64(r.Allocated)/1e3/r.Window.Seconds())
	}
	if !r.WarmedUp {
		s += " (warm-up cut short)"
	}
	return s
}

// RunE2E measures one scraper against a fresh farm. It blocks for the
// warm-up and window, and stops everything it started before returning.
func RunE2E(ctx context.Context, cfg E2EConfig) (res E2EResult, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return E2EResult{}, err
	}
	dir := filepath.Join(cfg.Dir, fmt.Sprintf("%s-%d-%s", cfg.Scraper, cfg.Targets, cfg.Interval))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return E2EResult{}, err
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}

	bc := Config{
		Targets: cfg.Targets, Payload: cfg.Payload, Gzip: !cfg.NoGzip, Faults: cfg.Faults,
		BigPayload: cfg.BigPayload, BigTargets: cfg.BigTargets,
		FarmCommand: func() *exec.Cmd { return pinned(cfg.Child(RoleFarm), cfg.FarmCPU) },
	}
	bc.setDefaults()
	fs, err := startFarms(ctx, &bc)
	if err != nil {
		return E2EResult{}, err
	}
	defer func() {
		if cerr := fs.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	sc, err := startScraper(ctx, &cfg, dir, fs.addrs)
	if err != nil {
		return E2EResult{}, err
	}
	defer func() {
		if serr := sc.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	logf("%s: %d targets every %s: started (pid %d), warming up", cfg.Scraper, cfg.Targets, cfg.Interval, sc.cmd.Process.Pid)

	start := time.Now()
	warmed, err := waitWarm(ctx, fs, sc, cfg.Targets, cfg.Interval, cfg.MaxWarmup)
	if err != nil {
		return E2EResult{}, err
	}
	warmup := time.Since(start)

	var prof chan error
	if cfg.CPUProfile != nil && sc.web != "" {
		prof = make(chan error, 1)
		go func() {
			prof <- fetchTo(ctx, cfg.CPUProfile, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", sc.web, int(cfg.Duration.Seconds())))
		}()
	}
	a, err := e2eSnapshot(ctx, fs, sc, cfg.ScraperCPU)
	if err != nil {
		return E2EResult{}, err
	}
	if err := sleep(ctx, cfg.Duration); err != nil {
		return E2EResult{}, err
	}
	b, err := e2eSnapshot(ctx, fs, sc, cfg.ScraperCPU)
	if err != nil {
		return E2EResult{}, err
	}
	if prof != nil {
		if err := <-prof; err != nil {
			return E2EResult{}, fmt.Errorf("e2e: cpu profile: %w", err)
		}
	}
	r := E2EResult{
		Scraper: cfg.Scraper, Payload: cfg.PayloadName, Targets: cfg.Targets, Interval: cfg.Interval,
		Window: b.at.Sub(a.at), Warmup: warmup, WarmedUp: warmed,
		CPU: b.cpu - a.cpu, RSS: b.rss, LatenessP50: -1, LatenessP99: -1, BytesPerSample: -1,
	}
	if cfg.Scraper == ScraperShoal {
		r.Sink = cfg.Sink
	}
	for i := range b.farm {
		d := b.farm[i].Sub(a.farm[i])
		r.Scrapes += d.Scrapes
		r.Samples += d.Samples
	}
	r.Scheduled = float64(cfg.Targets) * r.Window.Seconds() / cfg.Interval.Seconds()
	r.Served = float64(r.Scrapes) / r.Scheduled
	r.SamplesPerSec = float64(r.Samples) / r.Window.Seconds()
	if r.Samples > 0 {
		r.CPUPerSample = float64(r.CPU.Nanoseconds()) / 1e3 / float64(r.Samples)
	}
	r.CoreUtil = r.CPU.Seconds() / r.Window.Seconds()
	r.FarmCoreUtil = (b.farmCPU - a.farmCPU).Seconds() / r.Window.Seconds()
	r.Steal = (b.steal - a.steal).Seconds() / r.Window.Seconds()
	r.RSSPerTarget = float64(r.RSS) / float64(cfg.Targets)
	if late := b.late.sub(a.late); late.count > 0 {
		r.LatenessP50 = late.quantile(0.5) * 1e3
		r.LatenessP99 = late.quantile(0.99) * 1e3
	}
	// After the window (its figures are taken): a forced GC, so that the
	// allocation profile's in-use figures and HeapLive are the live heap
	// now, not as of whichever GC ran last (in a steady state that
	// allocates little that may be one from the warm-up, before the caches
	// were full). The profile is /debug/pprof/heap: the same samples as
	// allocs (both sample types), but only heap honours gc=1. Not when the
	// scraper's core was saturated and no profile is asked for (ramp
	// steps at their top): a forced GC on one busy P with the workers
	// allocating took 122 s at 2853 targets × 1 s, and it would measure a
	// heap no steady state has.
	var heapLive int64
	if sc.kind == ScraperShoal && sc.web != "" && (cfg.AllocProfile != nil || r.CoreUtil < saturatedCore) {
		w := cfg.AllocProfile
		if w == nil {
			w = io.Discard
		}
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := fetchTo(hctx, w, "http://"+sc.web+"/debug/pprof/heap?gc=1")
		var g gathered
		if err == nil {
			g, err = scrapeMetrics(hctx, "http://"+sc.web+"/metrics")
		}
		cancel()
		if err != nil {
			return E2EResult{}, fmt.Errorf("e2e: live heap (allocation profile): %w", err)
		}
		heapLive = int64(g.counters["go_memstats_alloc_bytes"])
	}
	if m := b.metrics; m != nil {
		r.HeapInuse, r.HeapLive = int64(m["go_memstats_heap_inuse_bytes"]), heapLive
		r.HeapIdle, r.HeapRelsd = int64(m["go_memstats_heap_idle_bytes"]), int64(m["go_memstats_heap_released_bytes"])
		r.StackInuse, r.Goroutines = int64(m["go_memstats_stack_inuse_bytes"]), int64(m["go_goroutines"])
		r.GCCycles = int64(m["go_gc_duration_seconds_count"] - a.metrics["go_gc_duration_seconds_count"])
		r.Allocated = int64(m["go_memstats_alloc_bytes_total"] - a.metrics["go_memstats_alloc_bytes_total"])
	}
	if IsKafkaSink(cfg.Sink) && cfg.Scraper == ScraperShoal {
		if n := b.kafkaSamples - a.kafkaSamples; n > 0 {
			r.BytesPerSample = float64(b.kafkaBytes-a.kafkaBytes) / n
		}
	}
	logf("%s", r)
	return r, nil
}

// pinned wraps cmd in taskset -c cpu (cpu < 0: cmd as is).
func pinned(cmd *exec.Cmd, cpu int) *exec.Cmd {
	if cpu < 0 {
		return cmd
	}
	c := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), cmd.Path}, cmd.Args[1:]...)...)
	c.Env, c.Dir, c.Stderr, c.Stdout = cmd.Env, cmd.Dir, cmd.Stderr, cmd.Stdout
	return c
}

// scraperProc is a running scraper.
type scraperProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // floors: closing it stops them
	web    string         // host:port of its HTTP endpoints, if any
	kind   string
	topic  string // shoal's Kafka topic
	kafka  KafkaBroker
	null   *nullReceiver
	log    *os.File
	exited chan error
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startScraper(ctx context.Context, cfg *E2EConfig, dir string, addrs []string) (*scraperProc, error) {
	sp := &scraperProc{kind: cfg.Scraper, kafka: cfg.Kafka, exited: make(chan error, 1)}
	var cmd *exec.Cmd
	var err error
	switch cfg.Scraper {
	case ScraperFloor, ScraperFloorGunzip:
		cmd = cfg.Child(RoleFloor)
	case ScraperShoal:
		if sp.web, err = freePort(); err != nil {
			return nil, err
		}
		file := filepath.Join(dir, "shoal.yml")
		if err := os.WriteFile(file, jobConfig(&Config{Interval: cfg.Interval, Timeout: min(cfg.Interval, 10*time.Second)}, addrs), 0o644); err != nil {
			return nil, err
		}
		args := []string{"run", "--config.file=" + file, "--web.listen-address=" + sp.web, "--log.level=warn", "--config.reload-interval=0"}
		if !IsKafkaSink(cfg.Sink) {
			args = append(args, "--sink="+cfg.Sink)
		} else {
			sp.topic = fmt.Sprintf("shoal-bench-%d", time.Now().UnixNano())
			if err := createTopic(ctx, cfg.Kafka, sp.topic); err != nil {
				return nil, err
			}
			args = append(args, "--sink=kafka", "--kafka.brokers="+cfg.Kafka.Broker, "--kafka.topic="+sp.topic)
			if cfg.Sink == "kafka-fastest" {
				args = append(args, "--kafka.compression=zstd-fastest")
			}
		}
		cmd = exec.Command(cfg.ShoalBinary, args...)
	case ScraperPrometheus:
		if sp.web, err = freePort(); err != nil {
			return nil, err
		}
		if sp.null, err = startNullReceiver(); err != nil {
			return nil, err
		}
		file := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(file, prometheusConfig(cfg, addrs, sp.null.url()), 0o644); err != nil {
			sp.null.close()
			return nil, err
		}
		agent, err := agentFlag(cfg.PrometheusBinary)
		if err != nil {
			sp.null.close()
			return nil, err
		}
		cmd = exec.Command(cfg.PrometheusBinary, agent, "--config.file="+file, "--web.listen-address="+sp.web,
			"--storage.agent.path="+filepath.Join(dir, "agent-data"), "--log.level=warn")
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "GOMAXPROCS=1")
	cmd = pinned(cmd, cfg.ScraperCPU)
	if sp.log, err = os.Create(filepath.Join(dir, cfg.Scraper+".log")); err != nil {
		sp.cleanup()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = sp.log, sp.log
	if cfg.Scraper == ScraperFloor || cfg.Scraper == ScraperFloorGunzip {
		if sp.stdin, err = cmd.StdinPipe(); err != nil {
			sp.cleanup()
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		sp.cleanup()
		return nil, fmt.Errorf("e2e: starting %s: %w", cfg.Scraper, err)
	}
	sp.cmd = cmd
	go func() { sp.exited <- cmd.Wait() }()
	if sp.stdin != nil {
		fc := FloorConfig{Addrs: addrs, Interval: cfg.Interval, Gunzip: cfg.Scraper == ScraperFloorGunzip}
		if err := jsonLine(sp.stdin, fc); err != nil {
			sp.stop()
			return nil, fmt.Errorf("e2e: configuring the floor: %w", err)
		}
	}
	if sp.web != "" {
		if err := sp.waitReady(ctx, 60*time.Second); err != nil {
			sp.stop()
			return nil, err
		}
	}
	return sp, nil
}

// agentFlag is how binary wants agent mode asked for: Prometheus 3 has
// --agent, Prometheus 2 (Debian 12 ships 2.42) --enable-feature=agent.
func agentFlag(binary string) (string, error) {
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if len(out) == 0 && err != nil {
		return "", fmt.Errorf("e2e: %s --help: %w (install it: apt-get install -y prometheus)", binary, err)
	}
	if strings.Contains(string(out), "--agent ") || strings.Contains(string(out), "--agent\n") {
		return "--agent", nil
	}
	return "--enable-feature=agent", nil
}

func prometheusConfig(cfg *E2EConfig, addrs []string, rw string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %dms\n  scrape_timeout: %dms\n", cfg.Interval.Milliseconds(), min(cfg.Interval, 10*time.Second).Milliseconds())
	fmt.Fprintf(&b, "remote_write:\n  - url: %q\n", rw)
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets:\n", jobName)
	for _, a := range addrs {
		fmt.Fprintf(&b, "          - %q\n", a)
	}
	return []byte(b.String())
}

func jsonLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

func (sp *scraperProc) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get("http://" + sp.web + "/-/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-sp.exited:
			sp.exited <- err
			return fmt.Errorf("e2e: %s exited before it was ready: %v%s", sp.kind, err, sp.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("e2e: %s not ready after %s%s", sp.kind, limit, sp.logTail())
		}
	}
}

func (sp *scraperProc) logTail() string {
	if sp.log == nil {
		return ""
	}
	b, _ := os.ReadFile(sp.log.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return "; its log ends: " + s
	}
	return ""
}

// stop ends the scraper (SIGTERM, or closing a floor's stdin; SIGKILL 20 s
// later) and waits for it.
func (sp *scraperProc) stop() error {
	if sp.stdin != nil {
		sp.stdin.Close()
	}
	if sp.cmd != nil && sp.cmd.Process != nil {
		sp.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-sp.exited:
		case <-time.After(20 * time.Second):
			sp.cmd.Process.Kill()
			<-sp.exited
		}
	}
	sp.cleanup()
	return nil
}

func (sp *scraperProc) cleanup() {
	if sp.null != nil {
		sp.null.close()
	}
	if sp.log != nil {
		sp.log.Close()
	}
	if sp.topic != "" {
		deleteTopic(sp.kafka, sp.topic)
	}
}

// waitWarm waits for the scraper's steady state: every target served
// twice (the first scrape of a target is cold: a TCP connect, cache misses,
// buffers growing), then a poll of at least one interval (and 2 s) in
// which the farm served the scheduled rate within ±2%. A scraper that fell
// behind in its cold first round serves more than the schedule while it
// catches up, one that cannot keep up less; measuring either would say
// nothing about its steady state. It gives up at limit and reports false.
func waitWarm(ctx context.Context, fs *farms, sp *scraperProc, targets int, interval, limit time.Duration) (bool, error) {
	deadline := time.Now().Add(limit)
	wait := func(d time.Duration) error {
		select {
		case err := <-sp.exited:
			sp.exited <- err
			return fmt.Errorf("e2e: %s exited during warm-up: %v%s", sp.kind, err, sp.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	total := func() (int64, bool, error) {
		st, _, err := fs.stats()
		if err != nil {
			return 0, false, err
		}
		var n int64
		all := true
		for _, s := range st {
			n += s.Scrapes
			all = all && s.Scrapes >= 2
		}
		return n, all, nil
	}
	for {
		_, all, err := total()
		if err != nil {
			return false, err
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		if err := wait(250 * time.Millisecond); err != nil {
			return false, err
		}
	}
	poll := max(interval, 2*time.Second)
	for time.Now().Add(poll).Before(deadline) {
		n0, _, err := total()
		if err != nil {
			return false, err
		}
		t0 := time.Now()
		if err := wait(poll); err != nil {
			return false, err
		}
		n1, _, err := total()
		if err != nil {
			return false, err
		}
		due := float64(targets) * time.Since(t0).Seconds() / interval.Seconds()
		if r := float64(n1-n0) / due; r >= 0.98 && r <= 1.02 {
			return true, nil
		}
	}
	return false, nil
}

type e2eSnap struct {
	at                       time.Time
	farm                     []farm.Stats
	farmCPU, cpu             time.Duration
	steal                    time.Duration // of the scraper's core (mean over cores when not pinned)
	rss                      int64
	late                     histogram
	kafkaSamples, kafkaBytes float64
	metrics                  map[string]float64 // shoal's counters and gauges
}

// e2eSnapshot reads the farm's counters and the scraper's figures; core is
// the scraper's core (< 0: not pinned), whose steal it reads.
func e2eSnapshot(ctx context.Context, fs *farms, sp *scraperProc, core int) (e2eSnap, error) {
	var s e2eSnap
	var err error
	if s.farm, s.farmCPU, err = fs.stats(); err != nil {
		return s, err
	}
	s.at = time.Now()
	if s.steal, err = proc.Steal(core); err != nil {
		return s, fmt.Errorf("e2e: %w", err)
	}
	if core < 0 {
		s.steal /= time.Duration(runtime.NumCPU())
	}
	pid := sp.cmd.Process.Pid
	if s.cpu, err = proc.PidCPU(pid); err != nil {
		return s, fmt.Errorf("e2e: %s: %w", sp.kind, err)
	}
	if s.rss, err = proc.PidRSS(pid); err != nil {
		return s, fmt.Errorf("e2e: %s: %w", sp.kind, err)
	}
	if sp.kind != ScraperShoal {
		return s, nil
	}
	g, err := scrapeMetrics(ctx, "http://"+sp.web+"/metrics")
	if err != nil {
		return s, err
	}
	if s.late, err = g.histogram("shoal_scrape_start_lateness_seconds"); err != nil {
		return s, err
	}
	s.metrics = g.counters
	if sp.topic != "" {
		s.kafkaSamples = g.counters["shoal_kafka_samples_total"]
		if s.kafkaBytes, err = topicBytes(sp.kafka.LogDir, sp.topic); err != nil {
			return s, err
		}
	}
	return s, nil
}

// scrapeMetrics reads a process's /metrics (text format) like a registry.
func scrapeMetrics(ctx context.Context, url string) (gathered, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return gathered{}, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return gathered{}, fmt.Errorf("e2e: %w", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bufio.NewReader(resp.Body))
	if err != nil {
		return gathered{}, fmt.Errorf("e2e: parsing %s: %w", url, err)
	}
	return gather(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return slices.Collect(maps.Values(mfs)), nil
	}))
}

func fetchTo(ctx context.Context, w io.Writer, url string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// nullReceiver accepts remote-write requests and drops them: Prometheus
// agent's remote-write destination, so that only the scraper's side of
// remote write is measured.
type nullReceiver struct {
	srv      *http.Server
	ln       net.Listener
	done     chan struct{}
	requests atomic.Int64
	bytes    atomic.Int64
}

func startNullReceiver() (*nullReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n := &nullReceiver{ln: ln, done: make(chan struct{})}
	n.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, _ := io.Copy(io.Discard, r.Body)
		n.requests.Add(1)
		n.bytes.Add(m)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() {
		defer close(n.done)
		n.srv.Serve(ln)
	}()
	return n, nil
}

func (n *nullReceiver) url() string { return "http://" + n.ln.Addr().String() + "/api/v1/write" }

func (n *nullReceiver) close() {
	n.srv.Close()
	<-n.done
}

func newAdmin(k KafkaBroker) (*kadm.Client, *kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Broker))
	if err != nil {
		return nil, nil, fmt.Errorf("e2e: kafka: %w", err)
	}
	return kadm.NewClient(cl), cl, nil
}

func createTopic(ctx context.Context, k KafkaBroker, topic string) error {
	adm, cl, err := newAdmin(k)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, int32(k.Partitions), 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("e2e: creating topic %q at %s: %w", topic, k.Broker, err)
	}
	return nil
}

func deleteTopic(k KafkaBroker, topic string) {
	adm, cl, err := newAdmin(k)
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm.DeleteTopics(ctx, topic)
}

// topicBytes sums the sizes of topic's segment files (*.log) under the
// broker's log directory: what the broker stores, record batch headers and
// compression included.
func topicBytes(logDir, topic string) (float64, error) {
	dirs, err := filepath.Glob(filepath.Join(logDir, topic+"-*"))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, d := range dirs {
		segs, _ := filepath.Glob(filepath.Join(d, "*.log"))
		for _, s := range segs {
			if fi, err := os.Stat(s); err == nil {
				n += fi.Size()
			}
		}
	}
	if len(dirs) == 0 {
		return 0, fmt.Errorf("e2e: no partition directories of topic %q under %s", topic, logDir)
	}
	return float64(n), nil
}
