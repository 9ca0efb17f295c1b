// Package gctune sets the garbage collector's GOGC from the process's
// allocation rate: low while the process allocates little (a scraper in
// its steady state), higher while it allocates much (targets starting,
// series churning), so that memory follows the live heap closely without
// making busy phases collect more often.
//
// Why: the Go runtime keeps about (1 + GOGC/100) × 1.1 of the live heap
// (the heap goal, plus the tenth the scavenger retains), and a collection
// costs about the same, marking the whole live heap, whenever it comes. At
// a fixed GOGC a scraper must choose: low keeps RSS near the live heap but
// collects often while targets start and series churn (at GOGC=10 the
// ramp of bench/ reached two thirds of the samples/s it reaches at 25); high
// keeps those phases cheap but holds idle heap for good. In steady state
// shoal allocates little (about 160 KB/s at 1000 node_exporter targets
// with the Kafka sink, as the pacer counts it: a span's free slots count as
// allocated when a P takes the span), and a collection of its 60 MB live
// heap costs about 75 ms of CPU, so at the default Spacing (20 s) a low
// GOGC costs about 0.4 % of a core there.
//
// The rule: every Tick, from the allocation rate and the live heap of the
// last collection, the GOGC at which collections come no more often than
// once per Spacing; clamped to [Min, Max]. It is raised at once and
// lowered only after Hold ticks in a row wanted less, so a pause in a busy
// phase does not cause a run of collections.
//
// The rate is the least of the rates of the ticks in the last Window (or
// since Run started, if that is shorter), not their mean, because a
// collection itself looks like allocation: the runtime counts what a P
// allocated from a span when the span leaves the P's cache, and every
// collection empties the caches, so the counter jumps by what sat in them
// (about 1.6 MB at once for shoal at 1000 targets). Over one 5 s tick that
// alone would want GOGC 16, averaged over 10 s 11: after every collection,
// and after every lowering that brought one on, GOGC went up again, and
// two heap profiles taken with gc=1 sent it from 5 to 25. The least
// ignores one such tick in a Window; a busy phase (targets starting,
// series churning) is busy in every tick and is seen a Window late. A
// fresh process starts at Max and reaches its low GOGC about Window + Hold
// ticks after its targets warmed up.
package gctune

import (
	"context"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// Config bounds the tuner. The zero value of a field means its default.
type Config struct {
	Min, Max int           // GOGC bounds, percent; defaults 5 and 25
	Spacing  time.Duration // the least time between collections wanted; default 20s
	Window   time.Duration // the rate is the least of the Ticks in this; default 10s
	Tick     time.Duration // how often the rate is measured; default 5s
	Hold     int           // ticks that must want less before GOGC is lowered; default 2
}

func (c *Config) defaults() {
	if c.Min <= 0 {
		c.Min = 5
	}
	if c.Max < c.Min {
		c.Max = max(25, c.Min)
	}
	if c.Spacing <= 0 {
		c.Spacing = 20 * time.Second
	}
	if c.Tick <= 0 {
		c.Tick = 5 * time.Second
	}
	if c.Window < c.Tick {
		c.Window = max(10*time.Second, c.Tick)
	}
	if c.Hold <= 0 {
		c.Hold = 2
	}
}

// Tuner adjusts GOGC. Make it with New, start it with Run.
type Tuner struct {
	cfg     Config
	percent atomic.Int64

	// read returns the bytes allocated so far and the live heap of the
	// last collection; set applies a GOGC. Tests replace both.
	read func() (allocated, live uint64)
	set  func(percent int)

	// State of Run's loop. allocs holds the allocation counter at the
	// last ticks, oldest first, at most Window/Tick+1 of them.
	allocs []uint64
	below  int // ticks in a row that wanted less than the current GOGC
	lowest int // the most any of those ticks wanted
}

// New returns a tuner that starts at cfg.Max (defaults filled in). It
// changes nothing until Run.
func New(cfg Config) *Tuner {
	cfg.defaults()
	t := &Tuner{cfg: cfg, read: readRuntime, set: func(p int) { debug.SetGCPercent(p) }}
	t.percent.Store(int64(cfg.Max))
	return t
}

// Percent returns the GOGC the tuner set last (Max before Run).
func (t *Tuner) Percent() int { return int(t.percent.Load()) }

// Run sets GOGC to Max, then adjusts it every Tick until ctx is done. It
// leaves the last value in place when it returns.
func (t *Tuner) Run(ctx context.Context) {
	t.set(t.Percent())
	a, _ := t.read()
	t.allocs = append(make([]uint64, 0, t.window()+1), a)
	tick := time.NewTicker(t.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.step()
		}
	}
}

// window is how many ticks the rate is measured over.
func (t *Tuner) window() int { return max(1, int(t.cfg.Window/t.cfg.Tick)) }

// step measures the last ticks and applies what they want.
func (t *Tuner) step() {
	alloc, live := t.read()
	if len(t.allocs) > t.window() {
		t.allocs = append(t.allocs[:0], t.allocs[1:]...)
	}
	t.allocs = append(t.allocs, alloc)
	rate := math.Inf(1)
	for i := 1; i < len(t.allocs); i++ {
		rate = min(rate, float64(t.allocs[i]-t.allocs[i-1])/t.cfg.Tick.Seconds())
	}
	cur := t.Percent()
	p := t.next(cur, want(rate, live, t.cfg))
	if p != cur {
		t.percent.Store(int64(p))
		t.set(p)
	}
}

// want returns the GOGC, within the bounds, at which a heap of live bytes
// allocating rate bytes/s collects once per Spacing.
func want(rate float64, live uint64, cfg Config) int {
	if live == 0 {
		return cfg.Max
	}
	p := math.Ceil(100 * rate * cfg.Spacing.Seconds() / float64(live))
	return int(max(float64(cfg.Min), min(float64(cfg.Max), p)))
}

// next applies the hysteresis: w above cur is taken at once; below cur it
// is taken after Hold ticks in a row, as the most any of them wanted.
func (t *Tuner) next(cur, w int) int {
	if w >= cur {
		t.below = 0
		return w
	}
	if t.below == 0 || w > t.lowest {
		t.lowest = w
	}
	t.below++
	if t.below < t.cfg.Hold {
		return cur
	}
	t.below = 0
	return t.lowest
}

var runtimeSamples = []string{"/gc/heap/allocs:bytes", "/gc/heap/live:bytes"}

func readRuntime() (allocated, live uint64) {
	s := make([]metrics.Sample, len(runtimeSamples))
	for i, n := range runtimeSamples {
		s[i].Name = n
	}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		allocated = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		live = s[1].Value.Uint64()
	}
	return allocated, live
}
