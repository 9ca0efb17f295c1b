package engine

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"sync"
	"time"
)

const (
	// defaultWheelTick is the wheel's resolution. A scrape that starts up to
	// 1ms after its phase is indistinguishable from one that starts on it.
	// A finer tick only costs more wake-ups.
	defaultWheelTick = time.Millisecond
	// defaultWheelSlots gives one turn of about 65s at the default tick. That
	// covers the common scrape intervals (up to 1m) without rounds. Longer
	// intervals cost one extra look at the entry per turn. The slot headers
	// take 1.5 MiB.
	defaultWheelSlots = 1 << 16
	// maxFreeSlotCap bounds the arrays kept for reuse, in entries (64 KiB
	// for an 8-byte item). A burst that piled a huge number of items into one
	// slot should not pin that array for good.
	maxFreeSlotCap = 4096
)

// wheelEntry is what a slot holds: the caller's compact handle and its due
// time. It is a plain value, not a closure, so a slot is one contiguous slice.
type wheelEntry[T any] struct {
	item T
	due  int64 // unix ns, as given to schedule or returned by fire
}

// wheel is a hashed timing wheel. One goroutine, the one in run, fires the
// items. Any goroutine may schedule them. The engine uses it to start scrapes
// at each target's phase without a goroutine or a runtime timer per target.
// T is a compact target handle (an index or a pointer), and the type is
// generic so it can be tested on its own.
//
// # Time and slots
//
// Time is divided into ticks of w.tick nanoseconds. Tick k covers the
// instants (k-1)*tick < t <= k*tick, so an item due at 'at' belongs to tick
// ceil(at/tick). Tick k is processed once the clock reads at least k*tick.
// So an item never fires before its due time and fires at most one tick
// after it (when the process is on time). Slot k&mask holds tick k and every
// tick a whole number of turns (len(slots) ticks) away. An item due more than
// one turn ahead does not store a round count. Instead, a visit to slot k
// fires an entry only if due <= k*tick, and keeps the others for a later
// turn. That comparison is the round check. It leaves no counter to
// decrement, and it stays exact when the wheel catches up after a long stall
// (see below).
//
// # Invariants (between passes of advance, with mu held)
//
//   - cur is the next tick to process. Every tick < cur has been processed,
//     so every entry that was in the wheel when its tick came has fired.
//   - An entry with t = ceil(due/tick) >= cur is in slot t&mask. An entry
//     with t < cur (scheduled in the past) is in slot cur&mask, so it fires
//     on the next tick.
//   - Bit s of nonEmpty is set if and only if len(slots[s]) > 0.
//   - Every array in free has length 0 and belongs to no slot.
//   - n counts every scheduled item, including the ones in a batch that is
//     being fired right now, until fire returns 0 for it.
//
// # The loop
//
// run repeats the following steps until ctx is done:
//
//  1. advance(time.Now()) takes mu and finds the next non-empty slot from
//     cur, using the bitmap (one TrailingZeros64 per 64 slots). Empty ticks
//     cost nothing.
//  2. For each non-empty slot up to now, in tick order, it moves the due
//     entries into batch (a reused slice) and keeps the rest in place. It
//     sets cur past the slot and releases mu.
//  3. It calls fire for each entry in the batch without holding the lock.
//     fire may call schedule.
//  4. It takes mu again. Each entry for which fire returned a next time goes
//     back into the wheel: into its new slot, or into slot cur if that time
//     is already past. The others are dropped. Then the loop goes back to
//     step 2.
//  5. It works out the next non-empty slot and records it in wakeAt. run then
//     sleeps on one reused time.Timer until that slot's time, until
//     schedule signals (through wake, capacity 1) that it added an item to
//     an earlier tick, or until ctx is done. If the wheel is empty, no timer
//     is armed at all.
//
// mu is the serialization point between schedule and the wheel goroutine.
// It is held only for list operations: draining one slot (step 2) or
// re-inserting one batch (step 4). It is never held during fire, so schedule
// waits for at most one slot's worth of appends.
//
// # Memory
//
// A fired entry that is rescheduled moves from its slot's slice to the slice
// of its new slot, and slices are only ever truncated, never shrunk. A slot
// that empties gives its backing array to a free list. The next empty slot
// that gets an entry takes that array. In steady state, schedule and fire
// therefore allocate nothing. The first design pinned each array to its
// slot. That ratchets memory up to slots × peak occupancy: with a 10s
// interval and a 65s turn, only a sixth of the slots are in use at a time,
// yet each held its peak. BenchmarkWheel measured 318 bytes of slot arrays
// per target (100k targets, 65536 slots) against 16 bytes of entry. With the
// free list, the arrays move along with the band of due times, and the
// benchmark measures about 22 bytes per target. Arrays over maxFreeSlotCap
// entries are not kept.
//
// # Lateness
//
// If the process is late (GC pause, overload, a slow fire), advance processes
// every tick from cur up to now in order, so no item is skipped. Each fire
// receives its due time and the time the pass started, and the caller
// measures lateness as now-due. If the wheel is more than one turn behind,
// for example after the machine was suspended, advance first moves cur to
// now-turn+1. The next len(slots) ticks then visit every slot exactly once,
// and the due <= k*tick check fires everything that is overdue, whatever its
// round. Such a pass costs O(items) rather than O(items × turns missed). Items
// more than one turn late fire in slot order rather than strict due order.
//
// If fire returns a time that is already past (say due+interval after a long
// stall), the item fires again on the next tick, and maybe again in the same
// pass. The wheel catches up one fire per missed interval. A caller that
// wants to skip missed intervals should return the first interval boundary
// after now.
//
// # Clock
//
// The wheel reads the wall clock through time.Now and sleeps on a
// time.Timer and, in the engine, also on a timerfd read through the
// network poller (newPollTimer: a collection on a single P then delays it
// less). It takes no injected clock, contrary to STYLE 9:
// testing/synctest fakes both time.Now and timers inside its bubble, so the
// tests get deterministic time without one. Due times are wall-clock unix
// nanoseconds, because phases are pinned to wall-clock multiples of the
// interval. A forward step of the wall clock looks like lateness and is
// handled as above. A backward step of d delays what is in the wheel by up
// to d, because cur does not go back. The engine's due+interval arithmetic
// would pause for d anyway.
//
// # Alternatives considered
//
//   - A min-heap of due times (container/heap, as with runtime timers) costs
//     O(log n) per schedule and per fire. At 1M targets that is about 20
//     dependent, cache-missing sift steps per fire, against an append and a
//     bitmap probe here.
//   - time.AfterFunc per target puts a runtime timer per target in the
//     runtime's heaps and starts a goroutine per fire, and a closure captures
//     the target. That is what "no goroutine per target" is meant to avoid.
//   - Waking every tick is simpler than the bitmap, but at a 1ms tick it costs
//     1000 wake-ups a second on an idle member.
//
// The zero value is not usable: use newWheel.
type wheel[T any] struct {
	tick int64         // ns per tick, > 0
	mask int64         // len(slots)-1; len(slots) is a power of two
	wake chan struct{} // capacity 1: schedule tells run "an earlier tick is now non-empty"
	// newPoll, if set before run (the engine sets newPollTimer; see there
	// why), makes a second timer run sleeps on besides a runtime timer. It
	// may return nil. Unset in the wheel's tests: testing/synctest fakes
	// runtime timers, not file descriptors.
	newPoll func() wheelTimer

	// batch holds the due entries of the slot being fired. Only the goroutine
	// inside advance uses it, and advance is never run concurrently with
	// itself (run is the only caller).
	batch []wheelEntry[T]

	mu       sync.Mutex
	slots    [][]wheelEntry[T]
	nonEmpty []uint64 // bit s set iff len(slots[s]) > 0
	// free holds the empty backing arrays of slots that were emptied, for
	// the next slot that gets an entry. Each has length 0.
	free [][]wheelEntry[T]
	n    int   // scheduled items, including the batch being fired
	cur  int64 // next tick to process
	// wakeAt is the tick run sleeps until. It is math.MaxInt64 when run waits
	// with an empty wheel (or has not started), and math.MinInt64 while
	// advance is working, since any slot it adds to is then looked at before
	// run sleeps. schedule signals wake only when it adds to a tick earlier
	// than wakeAt, and lowers wakeAt so a burst signals once.
	wakeAt int64
}

// newWheel returns an empty wheel with the given resolution and number of
// slots. One turn of the wheel spans tick*slots. tick <= 0 means 1ms.
// slots <= 0 means 1<<16. Any other slots value must be a power of two, and
// newWheel panics if it is not. The wheel starts at the current time, so
// items due before that fire in run's first pass.
func newWheel[T any](tick time.Duration, slots int) *wheel[T] {
	if tick <= 0 {
		tick = defaultWheelTick
	}
	if slots <= 0 {
		slots = defaultWheelSlots
	}
	if slots&(slots-1) != 0 {
		panic(fmt.Sprintf("engine: wheel slots %d is not a power of two", slots))
	}
	w := &wheel[T]{
		tick:     int64(tick),
		mask:     int64(slots - 1),
		wake:     make(chan struct{}, 1),
		slots:    make([][]wheelEntry[T], slots),
		nonEmpty: make([]uint64, (slots+63)/64),
		wakeAt:   math.MaxInt64,
	}
	w.cur = time.Now().UnixNano() / w.tick
	return w
}

// schedule adds item to fire at 'at', in unix nanoseconds. If 'at' is not
// after the last processed tick (it is in the past), the item fires on the
// next tick, and fire still receives 'at' as its due time. An item scheduled
// twice is in the wheel twice: the wheel does not identify items.
//
// schedule is safe for concurrent use with run and with itself, and it may
// be called from fire. It blocks only while the wheel goroutine drains or
// refills one slot.
func (w *wheel[T]) schedule(item T, at int64) {
	w.mu.Lock()
	t := w.insertLocked(wheelEntry[T]{item: item, due: at})
	w.n++
	signal := t < w.wakeAt
	if signal {
		w.wakeAt = t
	}
	w.mu.Unlock()
	if signal {
		select {
		case w.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// len reports the number of scheduled items. Items whose fire call is in
// progress are included. It is safe for concurrent use.
func (w *wheel[T]) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// run owns the wheel until ctx is done. It returns after ctx is done,
// leaving no goroutine behind. The items stay scheduled, and a later run
// picks them up. At most one run may be active at a time.
//
// For each due item, run calls fire(item, due, now) on its own goroutine.
// due is the time the item was scheduled for. now is the wall-clock time
// (unix ns) at which the wheel started the pass that fires it, and is never
// before due. fire returns the item's next due time, or 0 to drop it. A
// next time that is already past fires on the next tick. fire must not block
// (hand work off with a non-blocking send), because the wheel fires one item
// at a time and a slow fire makes everything after it late. fire may call
// schedule.
func (w *wheel[T]) run(ctx context.Context, fire func(item T, due, now int64) (next int64)) {
	// Two timers armed alike; whichever fires first wakes run (the other's
	// expiry then comes early, which run tolerates). The runtime timer is
	// the scheduler's own: checked at every scheduling point, and the
	// goroutine it wakes runs next. The poller's (see newPollTimer) is
	// what an idle mark worker yields to, and it is finer.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var poll wheelTimer
	var pollC <-chan time.Time // nil, never ready, without a poller's timer
	if w.newPoll != nil {
		if poll = w.newPoll(); poll != nil {
			defer poll.stop()
			pollC = poll.C()
		}
	}
	for {
		if ctx.Err() != nil {
			return
		}
		next := w.advance(time.Now().UnixNano(), fire)
		if next == 0 { // empty: sleep until schedule adds something
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			}
			continue
		}
		d := time.Duration(next - time.Now().UnixNano())
		if d <= 0 { // fell behind while firing: go again without sleeping
			continue
		}
		// Since Go 1.23, Reset discards a value the timer may have sent
		// before, so the timer needs no draining after the other cases.
		timer.Reset(d)
		if poll != nil {
			poll.reset(d)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		case <-pollC:
		}
	}
}

// advance is one step of run, separate from the sleeping so that benchmarks
// and tests can drive the wheel with synthetic times. It fires, in tick
// order, every entry due at or before now rounded down to a whole tick,
// calls fire and reschedules as described on wheel. It returns the time of
// the next non-empty slot (unix ns, a multiple of the tick), or 0 if the
// wheel is empty. It must not be called concurrently with itself or with
// run.
func (w *wheel[T]) advance(now int64, fire func(item T, due, now int64) (next int64)) (next int64) {
	nowTick := now / w.tick
	w.mu.Lock()
	w.wakeAt = math.MinInt64 // awake: schedule need not signal
	if nowTick-w.cur > w.mask {
		// More than one turn behind. Visit each slot once, from
		// nowTick-mask to nowTick. The due <= k*tick check fires every
		// overdue entry in it, however many turns late it is.
		w.cur = nowTick - w.mask
	}
	for {
		k, ok := w.nextNonEmptyLocked(w.cur)
		if !ok || k > nowTick {
			break
		}
		// Move cur past k before unlocking, so that anything scheduled
		// or rescheduled into the past from now on lands on k+1 and not
		// in the slot being fired.
		w.cur = k + 1
		w.drainLocked(k)
		if len(w.batch) == 0 {
			continue // only entries for later turns
		}
		w.mu.Unlock()
		for i := range w.batch {
			e := &w.batch[i]
			e.due = fire(e.item, e.due, now)
		}
		w.mu.Lock()
		for _, e := range w.batch {
			if e.due == 0 {
				w.n--
				continue
			}
			w.insertLocked(e)
		}
		clear(w.batch) // do not pin items that were dropped
		w.batch = w.batch[:0]
	}
	w.cur = max(w.cur, nowTick+1)
	k, ok := w.nextNonEmptyLocked(w.cur)
	if !ok {
		w.wakeAt = math.MaxInt64
		w.mu.Unlock()
		return 0
	}
	w.wakeAt = k
	w.mu.Unlock()
	return k * w.tick
}

// insertLocked puts e into the slot of its tick, or into the slot of cur if
// that tick has already been processed, and returns the tick it was placed
// on.
func (w *wheel[T]) insertLocked(e wheelEntry[T]) int64 {
	t := w.cur
	if e.due > 0 {
		// ceil(due/tick), without overflowing near MaxInt64
		t = max(t, (e.due-1)/w.tick+1)
	}
	s := t & w.mask
	es := w.slots[s]
	if cap(es) == 0 && len(w.free) > 0 {
		es = w.free[len(w.free)-1]
		w.free[len(w.free)-1] = nil
		w.free = w.free[:len(w.free)-1]
	}
	w.slots[s] = append(es, e)
	w.nonEmpty[s>>6] |= 1 << (s & 63)
	return t
}

// drainLocked moves the entries of slot k&mask that are due by tick k
// (due <= k*tick) into w.batch. It keeps the rest in place, and the slice
// keeps its capacity.
func (w *wheel[T]) drainLocked(k int64) {
	s := k & w.mask
	limit := k * w.tick
	es := w.slots[s]
	keep := es[:0]
	for _, e := range es {
		if e.due <= limit {
			w.batch = append(w.batch, e)
		} else {
			keep = append(keep, e)
		}
	}
	clear(es[len(keep):]) // do not pin moved items from the spare capacity
	if len(keep) > 0 {
		w.slots[s] = keep
		return
	}
	w.nonEmpty[s>>6] &^= 1 << (s & 63)
	w.slots[s] = nil
	if cap(keep) <= maxFreeSlotCap {
		w.free = append(w.free, keep)
	}
}

// nextNonEmptyLocked returns the first tick at or after from whose slot is
// non-empty. It looks at most one turn ahead, and reports false if every
// slot is empty.
func (w *wheel[T]) nextNonEmptyLocked(from int64) (int64, bool) {
	s := from & w.mask
	i := int(s >> 6)
	if word := w.nonEmpty[i] >> (s & 63); word != 0 {
		return from + int64(bits.TrailingZeros64(word)), true
	}
	// Scan the following words and wrap around to word i again. Its bits at
	// or after s are known to be zero, so a hit there is a slot before s,
	// one turn on.
	nw := len(w.nonEmpty)
	for j := 1; j <= nw; j++ {
		wi := i + j
		if wi >= nw {
			wi -= nw
		}
		if word := w.nonEmpty[wi]; word != 0 {
			slot := int64(wi)<<6 + int64(bits.TrailingZeros64(word))
			return from + (slot-s)&w.mask, true
		}
	}
	return 0, false
}
