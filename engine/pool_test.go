package engine

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-scraper/shoal/parse"
)

// blockingRun is a pool run function whose tasks each block until released,
// and that reports each start.
type blockingRun struct {
	started chan task
	release chan struct{}
	mu      sync.Mutex
	busy    int // tasks running now
	peak    int
	parsers map[*parse.Parser]bool
}

func newBlockingRun() *blockingRun {
	return &blockingRun{started: make(chan task, 100), release: make(chan struct{}), parsers: map[*parse.Parser]bool{}}
}

func (b *blockingRun) run(tk task, p *parse.Parser) {
	b.mu.Lock()
	b.busy++
	b.peak = max(b.peak, b.busy)
	b.parsers[p] = true
	b.mu.Unlock()
	b.started <- tk
	<-b.release
	b.mu.Lock()
	b.busy--
	b.mu.Unlock()
}

func taskN(i int) task { return task{t: &target{}, due: int64(i)} }

// TestPoolGrowsToMaxThenQueuesThenShrinks: the pool starts workers only for
// tasks that find none idle, never more than max, queues QueueSize tasks
// beyond that and refuses the rest; once the load is gone, workers above
// the minimum exit after being idle for workerIdle to 2×workerIdle.
func TestPoolGrowsToMaxThenQueuesThenShrinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxW, queue, minW = 6, 3, 2
		b := newBlockingRun()
		p := newPool(maxW, queue, minW, workerIdle)
		exits := make(chan struct{}, maxW)
		p.onExit = func() { exits <- struct{}{} }
		p.start(b.run)
		synctest.Wait()
		if n := p.workers(); n != minW {
			t.Fatalf("%d workers after start, want the minimum %d", n, minW)
		}

		// One task: an idle worker takes it, no new worker.
		if !p.submit(taskN(0)) {
			t.Fatal("submit refused with idle workers")
		}
		<-b.started
		if n := p.workers(); n != minW {
			t.Fatalf("%d workers for one task, want %d (an idle one takes it)", n, minW)
		}

		// Load beyond max: workers grow to max, then the queue fills,
		// then submit refuses.
		accepted := 1
		for i := 1; i < maxW+queue+2; i++ {
			if p.submit(taskN(i)) {
				accepted++
			}
		}
		if accepted != maxW+queue {
			t.Fatalf("%d tasks accepted, want %d workers + %d queued", accepted, maxW, queue)
		}
		for range maxW - 1 {
			<-b.started
		}
		synctest.Wait()
		if n := p.workers(); n != maxW {
			t.Fatalf("%d workers under load, want max %d", n, maxW)
		}
		p.mu.Lock()
		queued := p.n
		p.mu.Unlock()
		if queued != queue {
			t.Fatalf("%d queued, want %d", queued, queue)
		}

		// Release the running tasks one at a time: each freed worker takes
		// the oldest queued task (FIFO); none is started beyond max. (All
		// released at once, several workers dequeue concurrently and
		// report their starts in any order: under -race that failed 1 run
		// in 20.) Then release the rest.
		for i := range queue {
			b.release <- struct{}{}
			if tk := <-b.started; tk.due != int64(maxW+i) {
				t.Errorf("queued task %d ran as %d: want FIFO", maxW+i, tk.due)
			}
		}
		for range maxW {
			b.release <- struct{}{}
		}
		synctest.Wait()
		if b.peak != maxW {
			t.Errorf("peak concurrency %d, want %d", b.peak, maxW)
		}
		if len(b.parsers) != maxW {
			t.Errorf("%d parsers used, want one per worker (%d)", len(b.parsers), maxW)
		}
		if n := p.workers(); n != maxW {
			t.Fatalf("%d workers right after the load, want %d still idle", n, maxW)
		}

		// Idle: the workers above the minimum exit, after workerIdle at
		// the earliest and 2×workerIdle at the latest.
		time.Sleep(workerIdle - time.Millisecond)
		synctest.Wait()
		if n := p.workers(); n != maxW {
			t.Fatalf("%d workers before workerIdle passed, want %d", n, maxW)
		}
		time.Sleep(workerIdle + 2*time.Millisecond)
		synctest.Wait()
		if n := p.workers(); n != minW {
			t.Fatalf("%d workers after 2×workerIdle idle, want the minimum %d", n, minW)
		}
		if len(exits) != maxW-minW {
			t.Fatalf("%d workers exited, want %d", len(exits), maxW-minW)
		}

		// The minimum stays however long it idles, and still serves.
		time.Sleep(10 * workerIdle)
		if !p.submit(taskN(100)) {
			t.Fatal("submit refused")
		}
		<-b.started
		b.release <- struct{}{}
		synctest.Wait()
		if n := p.workers(); n != minW {
			t.Fatalf("%d workers, want %d", n, minW)
		}

		// close: every worker exits (synctest.Test fails on a leftover).
		p.close()
		p.join()
		if n := p.workers(); n != 0 {
			t.Fatalf("%d workers after close, want 0", n)
		}
	})
}

// TestPoolBusyWorkerDoesNotExit: a worker that keeps getting tasks never
// times out, whatever its timer says.
func TestPoolBusyWorkerDoesNotExit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlockingRun()
		p := newPool(4, 4, 0, workerIdle)
		exits := make(chan struct{}, 4)
		p.onExit = func() { exits <- struct{}{} }
		p.start(b.run)
		for i := range 20 {
			if !p.submit(taskN(i)) {
				t.Fatal("refused")
			}
			<-b.started
			time.Sleep(workerIdle / 2)
			b.release <- struct{}{}
			synctest.Wait()
			if n := p.workers(); n != 1 {
				t.Fatalf("task %d: %d workers, want 1 reused", i, n)
			}
		}
		if len(exits) != 0 {
			t.Fatal("a worker served every workerIdle/2 exited")
		}
		// With no minimum, the last one exits too.
		time.Sleep(2*workerIdle + time.Millisecond)
		synctest.Wait()
		if n := p.workers(); n != 0 {
			t.Fatalf("%d workers after idling, want 0", n)
		}
		p.close()
		p.join()
	})
}

// TestPoolCloseDropsQueueAndWaitsForBusy: close drops queued tasks, lets
// running ones finish, and every worker exits.
func TestPoolCloseDropsQueueAndWaitsForBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlockingRun()
		p := newPool(2, 4, 1, workerIdle)
		p.start(b.run)
		for i := range 5 {
			p.submit(taskN(i))
		}
		<-b.started
		<-b.started
		p.close()
		joined := make(chan struct{})
		go func() { p.join(); close(joined) }()
		synctest.Wait()
		select {
		case <-joined:
			t.Fatal("join returned while tasks were running")
		default:
		}
		b.release <- struct{}{}
		b.release <- struct{}{}
		<-joined
		if len(b.started) != 0 {
			t.Fatalf("%d queued tasks ran after close", len(b.started))
		}
	})
}

// TestPoolHandOffDoesNotAllocate: handing a task to an idle worker and
// getting it back costs no allocation.
func TestPoolHandOffDoesNotAllocate(t *testing.T) {
	done := make(chan struct{})
	p := newPool(4, 16, 1, workerIdle)
	p.start(func(task, *parse.Parser) { done <- struct{}{} })
	defer func() { p.close(); p.join() }()
	tk := taskN(1)
	allocs := testing.AllocsPerRun(1000, func() {
		p.submit(tk)
		<-done
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per task", allocs)
	}
}

// BenchmarkPoolHandOff is the pool's cost per scrape: submit on one
// goroutine, run on a worker, back to idle.
func BenchmarkPoolHandOff(b *testing.B) {
	done := make(chan struct{})
	p := newPool(4, 16, 1, workerIdle)
	p.start(func(task, *parse.Parser) { done <- struct{}{} })
	defer func() { p.close(); p.join() }()
	tk := taskN(1)
	b.ReportAllocs()
	for b.Loop() {
		p.submit(tk)
		<-done
	}
}
