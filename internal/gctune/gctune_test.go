package gctune

import (
	"context"
	"runtime/debug"
	"testing"
	"time"
)

func TestWant(t *testing.T) {
	cfg := Config{}
	cfg.defaults()
	const mb = 1 << 20
	for _, tc := range []struct {
		name string
		rate float64
		live uint64
		want int
	}{
		// 1000 node_exporter targets in steady state: 65 MB live, tens of KB/s.
		{"steady scraper", 40e3, 65 * mb, 5},
		// Targets starting: several MB/s against a growing heap.
		{"warm-up", 8 * mb, 40 * mb, 25},
		// In between: 12.5 % of the heap per Spacing, rounded up.
		{"moderate churn", 0.125 * 64 * mb / cfg.Spacing.Seconds(), 64 * mb, 13},
		{"no collection yet", 1e3, 0, 25},
		{"idle", 0, 10 * mb, 5},
	} {
		if got := want(tc.rate, tc.live, cfg); got != tc.want {
			t.Errorf("%s: want(%g B/s, %d B) = %d, expected %d", tc.name, tc.rate, tc.live, got, tc.want)
		}
	}
}

// TestNextHysteresis: GOGC goes up at once and down only after Hold ticks
// in a row wanted less, to the most they wanted.
func TestNextHysteresis(t *testing.T) {
	tu := New(Config{Hold: 3})
	steps := []struct{ want, expect int }{
		{5, 25}, {8, 25}, {6, 8}, // three ticks below 25: down to the most of them
		{7, 8}, {25, 25}, // a busy tick restarts the count and raises at once
		{5, 25}, {5, 25}, {5, 5},
		{12, 12},
	}
	cur := tu.Percent()
	for i, s := range steps {
		cur = tu.next(cur, s.want)
		if cur != s.expect {
			t.Fatalf("step %d: wanted %d, GOGC %d; expected %d", i, s.want, cur, s.expect)
		}
	}
}

// TestRun drives the loop with a scripted allocation counter: GOGC
// follows the least rate of the ticks in the last Window, with the
// hysteresis, and only changes are applied. A one-tick jump of the counter
// (what a collection does) moves nothing; a busy phase raises GOGC once
// every tick of the Window is busy.
func TestRun(t *testing.T) {
	const mb = 1 << 20
	// A Window and a Spacing of four ticks: GOGC wanted is four times the
	// least tick's allocation as a percentage of the live heap (100 MB).
	tu := New(Config{Tick: time.Millisecond, Window: 4 * time.Millisecond, Spacing: 4 * time.Millisecond, Hold: 2})
	perTick := []uint64{
		0, 0, 0, 0,
		20 * mb, // a collection's jump: one tick
		0, 0, 0, 0,
		5 * mb, 5 * mb, 5 * mb, 5 * mb, // busy: 20 % of the heap per Window
	} // then nothing
	var alloc uint64
	reads := 0
	tu.read = func() (uint64, uint64) {
		if reads > 0 && reads <= len(perTick) {
			alloc += perTick[reads-1]
		}
		reads++
		return alloc, 100 * mb
	}
	type set struct{ percent, reads int } // reads: counter reads before the set (Run's first, then one per tick)
	sets := make(chan set, 16)
	tu.set = func(p int) { sets <- set{p, reads} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tu.Run(ctx); close(done) }()

	// Run sets Max first; two quiet ticks lower it to Min; the jump at the
	// 5th tick sets nothing; the 4th busy tick (the 13th) raises it to
	// 20; two ticks after the busy phase lower it again.
	for i, expect := range []set{{25, 0}, {5, 3}, {20, 14}, {5, 16}} {
		select {
		case got := <-sets:
			if got != expect {
				t.Fatalf("set %d: GOGC %d after %d reads, expected %d after %d", i, got.percent, got.reads, expect.percent, expect.reads)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("set %d: GOGC never set to %d", i, expect.percent)
		}
	}
	cancel()
	<-done
	if got := tu.Percent(); got != 5 {
		t.Errorf("Percent() = %d after Run, expected 5", got)
	}
}

// TestReadRuntime: the runtime metrics the tuner reads exist and move.
func TestReadRuntime(t *testing.T) {
	a0, _ := readRuntime()
	for range 64 {
		kept = append(kept, make([]byte, 64<<10))
	}
	debug.FreeOSMemory() // a collection, so the live heap is known
	a1, live := readRuntime()
	if a1-a0 < 4<<20 {
		t.Errorf("allocated %d bytes while allocating 4 MiB", a1-a0)
	}
	if live < 4<<20 {
		t.Errorf("live heap %d bytes with 4 MiB reachable", live)
	}
	kept = nil
}

var kept [][]byte
