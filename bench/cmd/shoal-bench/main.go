// Command shoal-bench runs the end-to-end load harness (package bench): the
// floors, shoal and Prometheus in agent mode against one exporter farm, each
// scraper pinned to one core and the farm to another, and prints a table of
// CPU per sample, samples/s, scrapes served, RSS per target, lateness and
// Kafka bytes per sample. `make bench-e2e` runs it with the defaults.
//
//	go build -o bin/shoal-bench ./bench/cmd/shoal-bench
//	bin/shoal-bench -targets=1000 -interval=5s -duration=30s -payload=node -sinks=discard,kafka-fastest,kafka
//
// Phases (each can be turned off): the fixed point (every scraper at
// -targets × -interval, -count times, interleaved so that each repetition
// compares scrapers under the same machine load), a lateness run (shoal at
// -lateness.targets), and a ramp per scraper at a 1 s interval (see
// bench.RunRamp). Results go to -out: results.json, results.md (the table)
// and e2e.svg (CPU per sample and RSS per target against target count,
// from the ramps); with -profile, shoal's CPU and allocation profiles of
// its fixed-point window.
//
// The same binary serves as the harness's child processes: the farm and
// the floors (SHOAL_BENCH_ROLE=farm|floor, talking JSON on stdin/stdout).
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/shoal-scraper/shoal/bench"
	"github.com/shoal-scraper/shoal/bench/farm"
)

const roleEnv = "SHOAL_BENCH_ROLE"

// ksmPods is the size of the cluster of the "ksm" payload.
const ksmPods = 5000

// payloads maps -payload names to fixtures, relative to the repository
// root (the harness runs from there).
func payloads() map[string]string {
	return map[string]string{
		"node":       "parse/testdata/node_exporter.prom",
		"prometheus": "bench/farm/testdata/prometheus_agent.prom",
		"python":     "parse/testdata/python_client.prom",
	}
}

type flags struct {
	scrapers, sinks, payload, out, shoal, prom string
	bigPayload                                 string
	targets, count, bigTargets                 int
	interval, duration                         time.Duration
	latTargets                                 int
	latInterval, latDuration                   time.Duration
	ramp                                       bool
	rampStart, rampMax                         int
	rampFactor, rampPrecision                  float64
	rampDuration                               time.Duration
	profile, noGzip                            bool
	scraperCPU, farmCPU                        int
	faultErrors, faultResets                   float64
}

func main() {
	switch os.Getenv(roleEnv) {
	case bench.RoleFarm:
		exit(farm.ServeProcess(context.Background(), os.Stdin, os.Stdout))
	case bench.RoleFloor:
		exit(bench.ServeFloor(context.Background(), os.Stdin))
	}
	var f flags
	fs := flag.NewFlagSet("shoal-bench", flag.ExitOnError)
	fs.StringVar(&f.scrapers, "scrapers", strings.Join(bench.Scrapers(), ","), "scrapers to measure: floor, floor-gunzip, shoal, prometheus")
	fs.StringVar(&f.sinks, "sinks", "discard,kafka-fastest,kafka", "shoal's sinks at the fixed point: discard, kafka, kafka-fastest (--kafka.compression=zstd-fastest); the Kafka sinks need SHOAL_TEST_KAFKA and SHOAL_TEST_KAFKA_LOGDIR and are skipped with a note when unset; -profile profiles the last")
	fs.StringVar(&f.payload, "payload", "node", "what each target serves: node, prometheus, python, ksm, or a file")
	fs.IntVar(&f.bigTargets, "big.targets", 0, "how many targets (the first) serve -big.payload instead, in every run: a huge exposition among ordinary ones")
	fs.StringVar(&f.bigPayload, "big.payload", "ksm", "what the -big.targets serve (ksm: a kube-state-metrics of 5000 pods, 90,000 series, 17 MB)")
	fs.BoolVar(&f.noGzip, "no-gzip", false, "the farm answers with identity bodies")
	fs.IntVar(&f.targets, "targets", 1000, "fixed point: targets (0 skips the fixed point)")
	fs.DurationVar(&f.interval, "interval", 5*time.Second, "fixed point: scrape interval")
	fs.DurationVar(&f.duration, "duration", 30*time.Second, "fixed point: measured window")
	fs.IntVar(&f.count, "count", 1, "fixed point: repetitions (the table shows medians)")
	fs.IntVar(&f.latTargets, "lateness.targets", 10000, "lateness run: shoal's targets (0 skips it)")
	fs.DurationVar(&f.latInterval, "lateness.interval", 15*time.Second, "lateness run: interval (long enough that one core is not saturated)")
	fs.DurationVar(&f.latDuration, "lateness.duration", 30*time.Second, "lateness run: measured window")
	fs.BoolVar(&f.ramp, "ramp", true, "ramp each scraper at a 1s interval to its max sustained samples/s")
	fs.IntVar(&f.rampStart, "ramp.start", 375, "ramp: first step's targets")
	fs.Float64Var(&f.rampFactor, "ramp.factor", 1.5, "ramp: growth per step")
	fs.IntVar(&f.rampMax, "ramp.max", 10000, "ramp: most targets")
	fs.Float64Var(&f.rampPrecision, "ramp.precision", 1.15, "ramp: after a step fails, steps in between until the closest that kept up and that did not are at most this ratio apart")
	fs.DurationVar(&f.rampDuration, "ramp.duration", 5*time.Second, "ramp: window per step")
	fs.Float64Var(&f.faultErrors, "faults.errors", 0, "fraction of scrapes the farm answers with 500")
	fs.Float64Var(&f.faultResets, "faults.resets", 0, "fraction of scrapes the farm answers by closing the connection")
	fs.StringVar(&f.out, "out", "bench/results", "directory for results.json, results.md, e2e.svg and profiles")
	fs.BoolVar(&f.profile, "profile", false, "write shoal's CPU and allocation profiles of the fixed-point window to -out")
	fs.StringVar(&f.shoal, "shoal", "bin/shoal", "the shoal binary")
	fs.StringVar(&f.prom, "prometheus", "/usr/bin/prometheus", "the Prometheus binary (Debian: apt-get install -y prometheus)")
	fs.IntVar(&f.scraperCPU, "scraper-cpu", 0, "core the scraper is pinned to (-1: not pinned)")
	fs.IntVar(&f.farmCPU, "farm-cpu", 1, "core the farm and this harness are pinned to (-1: not pinned)")
	fs.Parse(os.Args[1:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &f); err != nil {
		fmt.Fprintln(os.Stderr, "shoal-bench:", err)
		os.Exit(1)
	}
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// results is everything one invocation measured: results.json.
type results struct {
	Date     string             `json:"date"`
	Command  string             `json:"command"`
	Machine  string             `json:"machine"`
	Versions map[string]string  `json:"versions"`
	Fixed    []bench.E2EResult  `json:"fixed"`
	Lateness []bench.E2EResult  `json:"lateness"`
	Ramps    []bench.RampResult `json:"ramps"`
	Notes    []string           `json:"notes"`
}

func run(ctx context.Context, f *flags) error {
	if f.farmCPU >= 0 {
		// The harness (farm stats, null receiver, /metrics reads) stays
		// off the scraper's core.
		if err := setAffinity(os.Getpid(), f.farmCPU); err != nil {
			return err
		}
	}
	payload, name, err := loadPayload(f.payload)
	if err != nil {
		return err
	}
	var bigPayload []byte
	if f.bigTargets > 0 {
		var bigName string
		if bigPayload, bigName, err = loadPayload(f.bigPayload); err != nil {
			return err
		}
		name += fmt.Sprintf("+%d×%s", f.bigTargets, bigName)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "shoal-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	scrapers := splitList(f.scrapers)
	res := results{
		Date:     time.Now().UTC().Format(time.RFC3339),
		Command:  strings.Join(os.Args, " "),
		Machine:  machine(),
		Versions: versions(f),
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	kafka := bench.KafkaBroker{Broker: os.Getenv("SHOAL_TEST_KAFKA"), LogDir: os.Getenv("SHOAL_TEST_KAFKA_LOGDIR")}
	base := bench.E2EConfig{
		Payload: payload, PayloadName: name, NoGzip: f.noGzip,
		BigPayload: bigPayload, BigTargets: f.bigTargets,
		Faults:      farm.Faults{Errors: f.faultErrors, Resets: f.faultResets},
		Kafka:       kafka,
		ShoalBinary: f.shoal, PrometheusBinary: f.prom,
		Child: func(role string) *exec.Cmd {
			c := exec.Command(exe)
			c.Env = append(os.Environ(), roleEnv+"="+role)
			return c
		},
		ScraperCPU: f.scraperCPU, FarmCPU: f.farmCPU,
		Dir:  work,
		Logf: logf,
	}
	if f.scraperCPU < 0 && f.farmCPU < 0 {
		base.NoPin = true
	}
	if kafka.Broker != "" && f.farmCPU >= 0 {
		// The broker is the Kafka sink's world, like the null receiver
		// is Prometheus's: it goes on the farm's core. Left to float, its
		// JVM (5 to 9 % of a core even when idle) ran on the scraper's
		// core half the time, where it took the core from the scraper's
		// timing wheel and evicted its caches.
		if pid := brokerPID(); pid == 0 {
			res.Notes = append(res.Notes, "kafka broker not pinned: its PID is unknown (SHOAL_TEST_KAFKA_TESTENV_DIR unset: not started by scripts/testenv.sh)")
		} else if err := setAffinity(pid, f.farmCPU); err != nil {
			return fmt.Errorf("kafka broker (pid %d): %w", pid, err)
		} else {
			res.Notes = append(res.Notes, fmt.Sprintf("kafka broker pinned to core %d, the farm's", f.farmCPU))
		}
	}

	// 1. The fixed point, interleaved repetitions.
	if f.targets > 0 {
		sinks := splitList(f.sinks)
		if slices.ContainsFunc(sinks, bench.IsKafkaSink) && kafka.Broker == "" {
			sinks = slices.DeleteFunc(sinks, bench.IsKafkaSink)
			res.Notes = append(res.Notes, "kafka sinks skipped: SHOAL_TEST_KAFKA is not set (scripts/testenv.sh up kafka; set -a; . .testenv/env)")
			logf("%s", res.Notes[len(res.Notes)-1])
		}
		for rep := range f.count {
			for _, s := range scrapers {
				ss := []string{""}
				if s == bench.ScraperShoal {
					ss = sinks
				}
				for _, sink := range ss {
					c := base
					c.Scraper, c.Sink, c.Targets, c.Interval, c.Duration = s, sink, f.targets, f.interval, f.duration
					var closers []io.Closer
					// Profile the last repetition of shoal's richest sink.
					if f.profile && s == bench.ScraperShoal && rep == f.count-1 && sink == sinks[len(sinks)-1] {
						cpu, err1 := os.Create(filepath.Join(f.out, "shoal-"+sink+".cpu.pprof"))
						alloc, err2 := os.Create(filepath.Join(f.out, "shoal-"+sink+".allocs.pprof"))
						if err1 != nil || err2 != nil {
							return fmt.Errorf("profiles: %v %v", err1, err2)
						}
						c.CPUProfile, c.AllocProfile = cpu, alloc
						closers = append(closers, cpu, alloc)
					}
					r, err := bench.RunE2E(ctx, c)
					for _, cl := range closers {
						cl.Close()
					}
					if err != nil {
						return err
					}
					res.Fixed = append(res.Fixed, r)
				}
			}
		}
	}
	// 2. Lateness at many targets.
	if f.latTargets > 0 && slices.Contains(scrapers, bench.ScraperShoal) {
		c := base
		c.Scraper, c.Sink, c.Targets, c.Interval, c.Duration = bench.ScraperShoal, "discard", f.latTargets, f.latInterval, f.latDuration
		// 10,000 cold first scrapes take longer than an interval on
		// one core, and the catching up after them can outlast the
		// default bound (4 intervals + 30s): a window that starts
		// before the steady state measures the catching up.
		c.MaxWarmup = 8*c.Interval + 30*time.Second
		r, err := bench.RunE2E(ctx, c)
		if err != nil {
			return err
		}
		res.Lateness = append(res.Lateness, r)
	}
	// 3. Ramps.
	if f.ramp {
		for _, s := range scrapers {
			c := base
			c.Scraper, c.Sink, c.Duration = s, "discard", f.rampDuration
			rr, err := bench.RunRamp(ctx, bench.RampConfig{Base: c, Start: f.rampStart, Factor: f.rampFactor, MaxTargets: f.rampMax, Precision: f.rampPrecision})
			if err != nil {
				return err
			}
			logf("ramp %s: max sustained %.0f samples/s at %d targets; stopped: %s", s, rr.MaxSustained, rr.MaxSustainedTargets, rr.Stop)
			res.Ramps = append(res.Ramps, rr)
		}
	}
	return write(f, &res)
}

func write(f *flags, res *results) error {
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.out, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	md := table(res)
	if err := os.WriteFile(filepath.Join(f.out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	if len(res.Ramps) == 0 {
		return nil
	}
	var cpu, rss bench.Panel
	cpu = bench.Panel{Title: "CPU per sample (one core, 1 s interval)", XLabel: "targets", YLabel: "µs per sample"}
	rss = bench.Panel{Title: "RSS per target", XLabel: "targets", YLabel: "KB per target"}
	for _, rr := range res.Ramps {
		lc, lr := bench.Line{Name: rr.Scraper}, bench.Line{Name: rr.Scraper}
		for _, s := range rr.Steps {
			if s.Served < 0.99 || !s.WarmedUp {
				continue // a scraper that does not keep up has meaningless per-sample costs
			}
			lc.Points = append(lc.Points, [2]float64{float64(s.Targets), s.CPUPerSample})
			lr.Points = append(lr.Points, [2]float64{float64(s.Targets), s.RSSPerTarget / 1e3})
		}
		// The ramp's last step (between two others) is not in order.
		byX := func(a, b [2]float64) int { return cmp.Compare(a[0], b[0]) }
		slices.SortFunc(lc.Points, byX)
		slices.SortFunc(lr.Points, byX)
		cpu.Lines, rss.Lines = append(cpu.Lines, lc), append(rss.Lines, lr)
	}
	svg, err := os.Create(filepath.Join(f.out, "e2e.svg"))
	if err != nil {
		return err
	}
	defer svg.Close()
	return bench.PlotSVG(svg, []bench.Panel{cpu, rss})
}

// table renders res as Markdown: medians per scraper at the fixed point,
// with ratios to the fetch+gunzip floor and to Prometheus taken from the
// medians of the same run.
func table(res *results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Date: %s  \nMachine: %s  \nCommand: `%s`  \n", res.Date, res.Machine, res.Command)
	keys := slices.Sorted(mapsKeys(res.Versions))
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s  \n", k, res.Versions[k])
	}
	b.WriteString("\n")
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "Note: %s\n\n", n)
	}
	if len(res.Fixed) > 0 {
		groups := map[string][]bench.E2EResult{}
		var order []string
		for _, r := range res.Fixed {
			k := name(r)
			if groups[k] == nil {
				order = append(order, k)
			}
			groups[k] = append(groups[k], r)
		}
		r0 := res.Fixed[0]
		fmt.Fprintf(&b, "Fixed point: %d targets × %s, payload %s, window %s, medians of %d run(s).\n\n", r0.Targets, r0.Interval, r0.Payload, r0.Window.Round(time.Second), len(groups[order[0]]))
		med := func(k string, f func(bench.E2EResult) float64) float64 {
			var xs []float64
			for _, r := range groups[k] {
				xs = append(xs, f(r))
			}
			return median(xs)
		}
		cpuOf := func(r bench.E2EResult) float64 { return r.CPUPerSample }
		floorCPU := med(bench.ScraperFloorGunzip, cpuOf)
		promCPU := med(bench.ScraperPrometheus, cpuOf)
		b.WriteString("| scraper | CPU µs/sample | × fetch+gunzip | ÷ Prometheus | samples/s | served | core | steal | RSS KB/target | lateness p50 / p99 ms | bytes/sample at broker |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, k := range order {
			c := med(k, cpuOf)
			fmt.Fprintf(&b, "| %s | %.3f | %s | %s | %.0f | %.2f%% | %.0f%% | %.1f%% | %.1f | %s | %s |\n", k, c,
				ratio(c, floorCPU), ratio(promCPU, c),
				med(k, func(r bench.E2EResult) float64 { return r.SamplesPerSec }),
				100*med(k, func(r bench.E2EResult) float64 { return r.Served }),
				100*med(k, func(r bench.E2EResult) float64 { return r.CoreUtil }),
				100*med(k, func(r bench.E2EResult) float64 { return r.Steal }),
				med(k, func(r bench.E2EResult) float64 { return r.RSSPerTarget })/1e3,
				optMs(med(k, func(r bench.E2EResult) float64 { return r.LatenessP50 }), med(k, func(r bench.E2EResult) float64 { return r.LatenessP99 })),
				opt(med(k, func(r bench.E2EResult) float64 { return r.BytesPerSample }), "%.3f"))
		}
		b.WriteString("\n")
	}
	for _, r := range res.Lateness {
		fmt.Fprintf(&b, "Lateness: %s, %d targets × %s: scrape-start lateness p50 %.3f ms, p99 %.3f ms; %.2f%% served; core %.0f%%; steal %.1f%%; CPU %.3f µs/sample; RSS %.1f KB/target.\n\n",
			name(r), r.Targets, r.Interval, r.LatenessP50, r.LatenessP99, 100*r.Served, 100*r.CoreUtil, 100*r.Steal, r.CPUPerSample, r.RSSPerTarget/1e3)
	}
	if len(res.Ramps) > 0 {
		var promMax float64
		for _, rr := range res.Ramps {
			if rr.Scraper == bench.ScraperPrometheus {
				promMax = rr.MaxSustained
			}
		}
		b.WriteString("Ramp (1 s interval, one core): max sustained samples/s with ≥ 99% of scrapes served.\n\n")
		b.WriteString("| scraper | max samples/s | at targets | × Prometheus | stopped because | steps (targets: µs/sample, served) |\n| --- | ---: | ---: | ---: | --- | --- |\n")
		for _, rr := range res.Ramps {
			var steps []string
			for _, s := range rr.Steps {
				steps = append(steps, fmt.Sprintf("%d: %.2f, %.0f%%", s.Targets, s.CPUPerSample, 100*s.Served))
			}
			fmt.Fprintf(&b, "| %s | %.0f | %d | %s | %s | %s |\n", rr.Scraper, rr.MaxSustained, rr.MaxSustainedTargets, ratio(rr.MaxSustained, promMax), rr.Stop, strings.Join(steps, "; "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func name(r bench.E2EResult) string {
	if r.Scraper == bench.ScraperShoal {
		return r.Scraper + " (" + r.Sink + ")"
	}
	return r.Scraper
}

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func opt(v float64, format string) string {
	if v < 0 {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

func optMs(p50, p99 float64) string {
	if p99 < 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f / %.3f", p50, p99)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	sort.Float64s(xs)
	if n := len(xs); n%2 == 1 {
		return xs[n/2]
	} else {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func loadPayload(p string) ([]byte, string, error) {
	if p == "ksm" {
		return farm.KSMPayload(ksmPods), p, nil
	}
	file, name := p, filepath.Base(p)
	if f, ok := payloads()[p]; ok {
		file, name = f, p
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("payload %q: %w (names: node, prometheus, python, ksm; run from the repository root)", p, err)
	}
	return b, name, nil
}

// machine describes the host: CPU model, cores, memory, kernel.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if l, _, ok := strings.Cut(string(b), "\n"); ok {
			mem = strings.Join(strings.Fields(l)[1:], " ") + " RAM"
		}
	}
	var u syscall.Utsname
	syscall.Uname(&u)
	return fmt.Sprintf("%s, %d cores, %s, Linux %s", model, runtime.NumCPU(), mem, cstr(u.Release[:]))
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func versions(f *flags) map[string]string {
	v := map[string]string{"go (harness)": runtime.Version()}
	if out, err := exec.Command(f.shoal, "version").Output(); err == nil {
		v["shoal"] = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command(f.prom, "--version").CombinedOutput(); err == nil {
		v["prometheus"], _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	return v
}

// setAffinity pins process pid (every thread it has, hence every thread
// they create from now on, and its children) to one core:
// sched_setaffinity applies to one thread, so it is done for every thread
// in /proc/PID/task.
func setAffinity(pid, cpu int) error {
	var mask [16]uint64
	mask[cpu/64] |= 1 << (cpu % 64)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask)))
		if e != 0 && e != syscall.ESRCH { // ESRCH: the thread has exited since ReadDir
			return fmt.Errorf("pinning to core %d: %w", cpu, e)
		}
	}
	return nil
}

// brokerPID returns the PID of the Kafka broker scripts/testenv.sh
// started (its pid file, "PID STARTTIME", under
// SHOAL_TEST_KAFKA_TESTENV_DIR), or 0 when there is none.
func brokerPID() int {
	dir := os.Getenv("SHOAL_TEST_KAFKA_TESTENV_DIR")
	if dir == "" {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(dir, "pids", "kafka", "kafka.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.Fields(string(b) + " 0")[0])
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
