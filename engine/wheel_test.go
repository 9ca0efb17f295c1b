package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The timing tests run inside synctest bubbles. Time is fake there: it moves
// only when every goroutine in the bubble is blocked, and timers fire exactly
// on time. So a wheel that is on time fires each item at exactly
// ceil(due/tick)*tick, and the tests can check that exactly. When the bubble's
// function returns, synctest.Test fails the test if any goroutine the test
// started is still blocked. That is the leak check for run: every test stops
// its wheel and waits for run to return.

type wheelFire struct {
	item     int
	due, now int64
}

// startWheel runs w.run on a new goroutine and returns a function that
// cancels it and waits until run has returned.
func startWheel[T any](w *wheel[T], fire func(item T, due, now int64) int64) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, fire)
	}()
	return func() {
		cancel()
		<-done
	}
}

// ceilTick is the time at which an on-time wheel fires an item due at due:
// the end of the tick that contains due.
func ceilTick(due int64, tick time.Duration) int64 {
	t := int64(tick)
	return (due + t - 1) / t * t
}

// checkWheelInvariants checks the invariants listed on wheel. Call it only
// between passes of advance.
func checkWheelInvariants[T any](t *testing.T, w *wheel[T]) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	total := 0
	for s, es := range w.slots {
		bit := w.nonEmpty[s>>6]>>(s&63)&1 == 1
		if bit != (len(es) > 0) {
			t.Fatalf("slot %d: bitmap bit %v, %d entries", s, bit, len(es))
		}
		total += len(es)
		for _, e := range es {
			tk := w.cur
			if e.due > 0 {
				tk = max(tk, (e.due-1)/w.tick+1)
			}
			if want := tk & w.mask; int64(s) != want {
				t.Fatalf("entry due %d (cur %d) in slot %d, want slot %d", e.due, w.cur, s, want)
			}
		}
	}
	for i, es := range w.free {
		if len(es) != 0 {
			t.Fatalf("free array %d has %d entries", i, len(es))
		}
	}
	if len(w.batch) != 0 {
		t.Fatalf("batch holds %d entries between passes", len(w.batch))
	}
	if total != w.n {
		t.Fatalf("slots hold %d entries, n = %d", total, w.n)
	}
}

func TestWheelFiresAtDueInOrder(t *testing.T) {
	for _, slots := range []int{16, 1 << 10, 0} {
		t.Run(fmt.Sprintf("slots=%d", slots), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const tick = time.Millisecond
				w := newWheel[int](tick, slots)
				start := time.Now().UnixNano()
				// Shuffled, several turns for the small wheels, not
				// aligned to the tick.
				offsets := []time.Duration{
					5*time.Second + 300*time.Microsecond,
					time.Millisecond,
					0,
					2500 * time.Microsecond,
					999 * time.Millisecond,
					16 * time.Millisecond,
					15 * time.Millisecond,
					17*time.Millisecond + 1,
					1024 * time.Millisecond,
					3 * time.Second,
					100 * time.Second,
				}
				for i, off := range offsets {
					w.schedule(i, start+int64(off))
				}
				var fires []wheelFire
				stop := startWheel(w, func(item int, due, now int64) int64 {
					fires = append(fires, wheelFire{item, due, now})
					return 0
				})
				time.Sleep(101 * time.Second)
				stop()

				if len(fires) != len(offsets) {
					t.Fatalf("got %d fires, want %d: %v", len(fires), len(offsets), fires)
				}
				seen := make(map[int]bool)
				for i, f := range fires {
					if seen[f.item] {
						t.Errorf("item %d fired twice", f.item)
					}
					seen[f.item] = true
					if want := start + int64(offsets[f.item]); f.due != want {
						t.Errorf("item %d: due %d, want %d", f.item, f.due, want)
					}
					if want := ceilTick(f.due, tick); f.now != want {
						t.Errorf("item %d: fired %v after due, want %v", f.item, time.Duration(f.now-f.due), time.Duration(want-f.due))
					}
					if i > 0 && f.due < fires[i-1].due {
						t.Errorf("item %d (due +%v) fired after item %d (due +%v)", f.item, time.Duration(f.due-start), fires[i-1].item, time.Duration(fires[i-1].due-start))
					}
				}
				if n := w.len(); n != 0 {
					t.Errorf("len() = %d after all items were dropped, want 0", n)
				}
			})
		})
	}
}

func TestWheelRescheduleNoDrift(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		slots    int
		n        int
	}{
		{interval: time.Second, slots: 0, n: 100},
		{interval: 333333333 * time.Nanosecond, slots: 0, n: 100}, // not a whole number of ticks
		{interval: 15 * time.Second, slots: 1 << 10, n: 20},       // about 15 turns a fire
		{interval: 5 * time.Minute, slots: 0, n: 5},               // about 4.6 turns a fire
	} {
		t.Run(fmt.Sprintf("interval=%v/slots=%d", tc.interval, tc.slots), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const tick = time.Millisecond
				w := newWheel[int](tick, tc.slots)
				start := time.Now().UnixNano()
				first := start + int64(tc.interval)/3 + 12345 // off the tick
				w.schedule(7, first)
				var fires []wheelFire
				stop := startWheel(w, func(item int, due, now int64) int64 {
					fires = append(fires, wheelFire{item, due, now})
					return due + int64(tc.interval)
				})
				// Stop half an interval after the n-th fire.
				time.Sleep(time.Duration(first-start) + time.Duration(tc.n-1)*tc.interval + tc.interval/2)
				stop()

				if len(fires) != tc.n {
					t.Fatalf("got %d fires over %d intervals, want %d", len(fires), tc.n, tc.n)
				}
				for i, f := range fires {
					if want := first + int64(i)*int64(tc.interval); f.due != want {
						t.Fatalf("fire %d: due %d, want %d (drift %v)", i, f.due, want, time.Duration(f.due-want))
					}
					if want := ceilTick(f.due, tick); f.now != want {
						t.Errorf("fire %d: fired %v after due, want %v", i, time.Duration(f.now-f.due), time.Duration(want-f.due))
					}
				}
				if n := w.len(); n != 1 {
					t.Errorf("len() = %d, want 1", n)
				}
			})
		})
	}
}

func TestWheelScheduleWakesSleepingRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		early bool // whether a later item is already scheduled, so run sleeps on its timer
	}{
		{name: "timer", early: true},
		{name: "empty", early: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWheel[int](time.Millisecond, 0)
				start := time.Now().UnixNano()
				if tc.early {
					w.schedule(1, start+int64(10*time.Second))
				}
				var fires []wheelFire
				stop := startWheel(w, func(item int, due, now int64) int64 {
					fires = append(fires, wheelFire{item, due, now})
					return 0
				})
				time.Sleep(100 * time.Millisecond)
				synctest.Wait() // run is asleep: on its timer, or on wake alone

				go w.schedule(2, start+int64(time.Second))
				time.Sleep(11 * time.Second)
				stop()

				if len(fires) == 0 || fires[0].item != 2 {
					t.Fatalf("fires = %v, want item 2 first", fires)
				}
				if got, want := fires[0].now, start+int64(time.Second); got != want {
					t.Errorf("item 2 fired at +%v, want +1s", time.Duration(got-start))
				}
				if tc.early && (len(fires) != 2 || fires[1].now != start+int64(10*time.Second)) {
					t.Errorf("fires = %v, want item 1 at +10s after item 2", fires)
				}
			})
		})
	}
}

func TestWheelDrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWheel[int](time.Millisecond, 0)
		start := time.Now().UnixNano()
		for i := range 10 {
			w.schedule(i, start+int64(i+1)*int64(time.Millisecond))
		}
		if n := w.len(); n != 10 {
			t.Fatalf("len() = %d before run, want 10", n)
		}
		counts := make([]int, 10)
		stop := startWheel(w, func(item int, due, now int64) int64 {
			counts[item]++
			if item%2 == 0 {
				return 0 // drop the even items
			}
			return due + int64(20*time.Millisecond)
		})
		time.Sleep(55 * time.Millisecond) // odd items fire 3 times: +i, +20+i, +40+i ms
		if n := w.len(); n != 5 {
			t.Errorf("len() = %d after dropping the even items, want 5", n)
		}
		stop()
		for i, c := range counts {
			want := 1
			if i%2 == 1 {
				want = 3
			}
			if c != want {
				t.Errorf("item %d fired %d times, want %d", i, c, want)
			}
		}
	})
}

func TestWheelPastDueFiresOnNextTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const tick = time.Millisecond
		w := newWheel[int](tick, 1<<10)
		start := time.Now().UnixNano()
		w.schedule(1, start-int64(5*time.Second))
		w.schedule(2, 0)
		var fires []wheelFire
		stop := startWheel(w, func(item int, due, now int64) int64 {
			fires = append(fires, wheelFire{item, due, now})
			return 0
		})
		synctest.Wait()
		time.Sleep(100*time.Millisecond + 300*time.Microsecond)
		synctest.Wait()
		// run is asleep with an empty wheel, and every tick since start is
		// unprocessed. A past item goes on the next unprocessed tick, which
		// is already over, so it must wake run and fire at once.
		now := time.Now().UnixNano()
		w.schedule(3, start-int64(time.Hour))
		time.Sleep(time.Second)
		stop()

		want := []wheelFire{
			{1, start - int64(5*time.Second), start},
			{2, 0, start},
			{3, start - int64(time.Hour), now},
		}
		if fmt.Sprint(fires) != fmt.Sprint(want) {
			t.Errorf("fires = %v, want %v", fires, want)
		}
	})
}

// A fire that blocks (which fire must not do) makes the wheel late. The
// wheel must then catch up without skipping anything, even when it is more
// than a turn behind.
func TestWheelLateFiresEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			tick     = time.Millisecond
			slots    = 64 // a 64ms turn
			items    = 100
			interval = 100 * time.Millisecond               // more than a turn
			stall    = time.Second                          // about 15 turns
			end      = 3*time.Second + 500*time.Microsecond // off the tick, so no fire races the test's wake-up
		)
		w := newWheel[int](tick, slots)
		start := time.Now().UnixNano()
		for i := range items {
			w.schedule(i, start+int64(i+1)*int64(time.Millisecond))
		}
		var fires []wheelFire
		stalled := false
		stop := startWheel(w, func(item int, due, now int64) int64 {
			fires = append(fires, wheelFire{item, due, now})
			if item == 10 && !stalled {
				stalled = true
				time.Sleep(stall)
			}
			return due + int64(interval)
		})
		time.Sleep(end)
		stop()

		var late int
		dues := make([][]int64, items)
		for _, f := range fires {
			if f.now < f.due {
				t.Fatalf("item %d fired %v early", f.item, time.Duration(f.due-f.now))
			}
			if f.now-f.due >= int64(tick) {
				late++
			}
			dues[f.item] = append(dues[f.item], f.due)
		}
		if late == 0 {
			t.Error("no fire was late: the stall did not happen")
		}
		for i, ds := range dues {
			first := start + int64(i+1)*int64(time.Millisecond)
			want := int((start+int64(end)-first)/int64(interval)) + 1
			if len(ds) != want {
				t.Errorf("item %d fired %d times, want %d", i, len(ds), want)
				continue
			}
			for j, d := range ds {
				if d != first+int64(j)*int64(interval) {
					t.Errorf("item %d fire %d: due +%v, want +%v", i, j, time.Duration(d-start), time.Duration(first+int64(j)*int64(interval)-start))
					break
				}
			}
		}
	})
}

func TestWheelCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWheel[int](time.Millisecond, 0)
		start := time.Now().UnixNano()
		for i := range 100 {
			w.schedule(i, start+int64(i)*int64(10*time.Millisecond))
		}
		var count int
		fire := func(item int, due, now int64) int64 {
			count++
			return due + int64(time.Second)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.run(ctx, fire)
		}()
		time.Sleep(505 * time.Millisecond)
		cancel()
		synctest.Wait() // without advancing time
		select {
		case <-done:
		default:
			t.Fatal("run did not return when its context was cancelled")
		}
		if count != 51 {
			t.Errorf("%d fires before cancel, want 51", count)
		}
		if n := w.len(); n != 100 {
			t.Errorf("len() = %d after cancel, want 100", n)
		}

		// A second run picks up where the first stopped.
		stop := startWheel(w, fire)
		time.Sleep(490 * time.Millisecond) // to +995ms: items 51..99, not item 0 again at +1s
		stop()
		if count != 100 {
			t.Errorf("%d fires after the second run, want 100", count)
		}
	})
	// synctest.Test has returned, so no goroutine started in the bubble
	// (run included) is left.
}

func TestWheelManyTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("100k targets over 3 intervals")
	}
	synctest.Test(t, func(t *testing.T) {
		const (
			tick     = time.Millisecond
			targets  = 100_000
			interval = 10 * time.Second
			turns    = 3
		)
		w := newWheel[int32](tick, 0)
		start := time.Now().UnixNano()
		rng := rand.New(rand.NewPCG(1, 2))
		first := make([]int64, targets)
		for i := range first {
			// Up to one tick before the end of the interval, so the
			// last fire is over before the test wakes up.
			first[i] = start + rng.Int64N(int64(interval-tick))
			w.schedule(int32(i), first[i])
		}
		counts := make([]int, targets)
		var bad int
		stop := startWheel(w, func(item int32, due, now int64) int64 {
			want := first[item] + int64(counts[item])*int64(interval)
			if due != want || now != ceilTick(due, tick) {
				bad++
			}
			counts[item]++
			return due + int64(interval)
		})
		time.Sleep(turns*interval - tick/2)
		stop()
		if bad != 0 {
			t.Errorf("%d fires had the wrong due time or fired off their tick", bad)
		}
		for i, c := range counts {
			if c != turns {
				t.Fatalf("target %d (phase %v) fired %d times in %d intervals", i, time.Duration(first[i]-start), c, turns)
			}
		}
		if n := w.len(); n != targets {
			t.Errorf("len() = %d, want %d", n, targets)
		}
	})
}

// TestWheelConcurrentSchedule is mostly for the race detector. Goroutines
// schedule while run fires, and fire schedules too. Everything must fire
// exactly once.
func TestWheelConcurrentSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			goroutines = 4
			perG       = 1000
			fromFire   = 1 << 20 // items scheduled by fire get this bit
		)
		w := newWheel[int](time.Millisecond, 1<<8)
		start := time.Now().UnixNano()
		counts := make(map[int]int)
		stop := startWheel(w, func(item int, due, now int64) int64 {
			counts[item]++
			if item&fromFire == 0 {
				w.schedule(item|fromFire, now+int64(3*time.Millisecond))
			}
			return 0
		})
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 0))
				for i := range perG {
					w.schedule(g*perG+i, start+rng.Int64N(int64(2*time.Second)))
					if i%100 == 0 {
						time.Sleep(time.Duration(rng.Int64N(int64(50 * time.Millisecond))))
					}
				}
			})
		}
		wg.Wait()
		time.Sleep(3 * time.Second)
		stop()
		if len(counts) != 2*goroutines*perG {
			t.Errorf("%d distinct items fired, want %d", len(counts), 2*goroutines*perG)
		}
		for item, c := range counts {
			if c != 1 {
				t.Errorf("item %#x fired %d times", item, c)
			}
		}
		if n := w.len(); n != 0 {
			t.Errorf("len() = %d, want 0", n)
		}
	})
}

// TestWheelAdvanceModel drives advance directly with random schedules, random
// reschedules (past, near, many turns away, dropped) and random jumps of the
// clock, some of them longer than a turn. It checks the wheel against a model
// of what is pending and on which tick it must fire, and checks the
// invariants after every pass.
func TestWheelAdvanceModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			const tick = 1000 // ns
			rng := rand.New(rand.NewPCG(seed, 99))
			slots := 1 << rng.IntN(8) // 1 .. 128
			w := newWheel[int](tick, slots)
			turn := int64(slots) * tick
			now := w.cur * tick

			// The model: every pending item's due time, and the tick it
			// must fire on. That is ceil(due/tick), or the wheel's next
			// unprocessed tick if that one has been processed already.
			// During fire, that next tick is the one after the slot being
			// fired.
			type want struct{ due, tick int64 }
			pending := make(map[int]want)
			place := func(item int, due int64) {
				pending[item] = want{due, max((due+tick-1)/tick, w.cur)}
			}
			nextItem := 0
			add := func(due int64) {
				place(nextItem, due)
				w.schedule(nextItem, due)
				nextItem++
			}
			randDue := func() int64 {
				switch rng.IntN(5) {
				case 0:
					return now - rng.Int64N(3*turn) // past
				case 1:
					return now + rng.Int64N(5*turn) // rounds away
				default:
					return now + rng.Int64N(10*tick)
				}
			}
			for range 20 {
				add(randDue())
			}
			for pass := range 2000 {
				nowTick := now / tick
				lastTick := int64(-1)
				// More than a turn behind, the wheel fires overdue
				// items in slot order, not tick order.
				inOrder := nowTick-w.cur < int64(slots)
				fire := func(item int, due, fnow int64) int64 {
					p, ok := pending[item]
					switch {
					case fnow != now:
						t.Fatalf("pass %d: fire got now %d, want %d", pass, fnow, now)
					case !ok || due != p.due:
						t.Fatalf("pass %d: item %d fired with due %d, pending %v (due %d)", pass, item, due, ok, p.due)
					case p.tick > nowTick:
						t.Fatalf("pass %d: item %d fired early: its tick %d, now's tick %d", pass, item, p.tick, nowTick)
					case inOrder && p.tick < lastTick:
						t.Fatalf("pass %d: item %d (tick %d) fired after an item of tick %d", pass, item, p.tick, lastTick)
					}
					lastTick = p.tick
					if rng.IntN(10) == 0 { // schedule from inside fire
						add(randDue())
					}
					if rng.IntN(4) == 0 {
						delete(pending, item)
						return 0
					}
					next := randDue()
					place(item, next)
					return next
				}
				w.advance(now, fire)
				checkWheelInvariants(t, w)
				for item, p := range pending {
					if p.tick <= nowTick {
						t.Fatalf("pass %d: item %d (due %d, tick %d) not fired by tick %d", pass, item, p.due, p.tick, nowTick)
					}
				}
				if n := w.len(); n != len(pending) {
					t.Fatalf("pass %d: len() = %d, want %d", pass, n, len(pending))
				}
				for range rng.IntN(3) {
					add(randDue())
				}
				switch rng.IntN(20) {
				case 0:
					now += rng.Int64N(4 * turn) // a stall, often more than a turn
				case 1:
					// no time passes
				default:
					now += rng.Int64N(3 * tick)
				}
			}
		})
	}
}

// Once every slot's slice has grown to its high-water mark, firing and
// rescheduling allocate nothing.
func TestWheelSteadyStateAllocs(t *testing.T) {
	const (
		tick  = time.Millisecond
		slots = 1 << 10
		items = 10_000
	)
	w := newWheel[int32](tick, slots)
	interval := int64(slots) * int64(tick) // each item comes back to its slot
	now := w.cur * int64(tick)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range items {
		w.schedule(int32(i), now+rng.Int64N(interval))
	}
	fire := func(item int32, due, now int64) int64 { return due + interval }
	step := func() {
		now += int64(tick)
		w.advance(now, fire)
	}
	for range 2 * slots {
		step()
	}
	if allocs := testing.AllocsPerRun(5*slots, step); allocs != 0 {
		t.Errorf("%v allocations per advance in steady state, want 0", allocs)
	}
}

func TestNewWheelDefaults(t *testing.T) {
	w := newWheel[int](0, 0)
	if w.tick != int64(defaultWheelTick) || int(w.mask+1) != defaultWheelSlots {
		t.Errorf("newWheel(0, 0): tick %v, %d slots; want %v, %d", time.Duration(w.tick), w.mask+1, defaultWheelTick, defaultWheelSlots)
	}
	defer func() {
		if recover() == nil {
			t.Error("newWheel with 1000 slots did not panic")
		}
	}()
	newWheel[int](time.Millisecond, 1000)
}
