package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"
)

// BenchmarkWheel measures how fast the wheel fires and reschedules in steady
// state, without run's sleeping. Each iteration moves a synthetic clock one
// tick on and calls advance. advance fires everything due in that tick, and
// every fired target is rescheduled one interval later, as the engine does.
// The targets have random phases over a 10s interval. ns/op is per tick
// (about targets/10000 fires). fires/s is the throughput on one core.
//
//	go test -run '^$' -bench '^BenchmarkWheel$' -benchmem -count=10 -cpu=1 ./engine/ | tee wheel.txt
//	benchstat -col /slots wheel.txt
func BenchmarkWheel(b *testing.B) {
	for _, bc := range []struct{ targets, slots int }{
		{100_000, 4096}, // a 4s turn: each target goes round about 2.4 times per interval
		{100_000, 65536},
		{1_000_000, 65536},
	} {
		b.Run(fmt.Sprintf("targets=%d/slots=%d", bc.targets, bc.slots), func(b *testing.B) {
			const (
				tick     = int64(time.Millisecond)
				interval = int64(10 * time.Second)
			)
			w := newWheel[uint32](time.Duration(tick), bc.slots)
			now := w.cur * tick
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range bc.targets {
				w.schedule(uint32(i), now+rng.Int64N(interval))
			}
			var fires int64
			fire := func(item uint32, due, now int64) int64 {
				fires++
				return due + interval
			}
			// Warm-up: two intervals and two turns, so that the slot
			// slices have grown to about their high-water marks.
			for range max(2*interval/tick, 2*int64(bc.slots)) {
				now += tick
				w.advance(now, fire)
			}
			fires = 0
			b.ReportAllocs()
			for b.Loop() {
				now += tick
				w.advance(now, fire)
			}
			b.ReportMetric(float64(fires)/float64(b.N), "fires/op")
			b.ReportMetric(float64(fires)/b.Elapsed().Seconds(), "fires/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(fires), "ns/fire")
			b.ReportMetric(float64(w.slotBytes())/float64(bc.targets), "slotB/target")
		})
	}
}

// slotBytes is the memory held by the slot slices' backing arrays.
func (w *wheel[T]) slotBytes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var entries int
	for _, es := range w.slots {
		entries += cap(es)
	}
	for _, es := range w.free {
		entries += cap(es)
	}
	return entries * int(unsafe.Sizeof(wheelEntry[T]{}))
}
