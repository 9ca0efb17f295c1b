// Package yieldtest measures whether code yields the processor, for tests
// of the places that must (a scrape of a huge exposition, the Kafka sink's
// batch compressor): on one P the runtime preempts a goroutine only after
// 10 ms, and everything else, the timing wheel above all, waits meanwhile.
package yieldtest

import (
	"runtime"
	"sync/atomic"
)

// Turns runs f with GOMAXPROCS=1 beside a goroutine that yields whenever it
// runs, and returns how many turns that goroutine got while f ran: one per
// runtime.Gosched in f, and none otherwise unless f runs past the runtime's
// 10 ms preemption. It restores GOMAXPROCS; tests that use it must not run
// in parallel with others.
func Turns(f func()) int64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var turns atomic.Int64
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			turns.Add(1)
			runtime.Gosched()
		}
	}()
	runtime.Gosched() // the counter starts
	before := turns.Load()
	f()
	got := turns.Load() - before
	stop.Store(true)
	<-done
	return got
}
