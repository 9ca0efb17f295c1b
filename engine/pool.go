package engine

import (
	"slices"
	"sync"
	"time"

	"github.com/shoal-scraper/shoal/parse"
)

const (
	// minWorkers stay up however long they are idle, so that the first
	// scrapes after a quiet spell do not each start a goroutine. Four cover
	// the scrapes sharing one wheel slot at a few thousand targets; their
	// stacks (8–16 KiB each once they have parsed a body) cost 64 KiB at
	// most.
	minWorkers = 4
	// workerIdle is how long a worker above minWorkers stays without a
	// scrape before it exits (it exits after between one and two of these:
	// see worker.wait). Starting a worker costs a few µs (a goroutine and
	// the stack growth to ~16 KiB during its first parse), so re-creating
	// one even every 5 s is below a millionth of a core, while an idle one
	// costs its stack for good: at 1000 targets × 5 s a fixed pool of 512
	// kept 7 KB of stacks per target for the one or two workers ever
	// busy. It is not shorter because the number of scrapes in flight
	// swings within an interval (targets bunch on phase slots, slow
	// targets come in waves): a sub-second timeout would chase those
	// swings, exiting workers that the next burst starts again.
	workerIdle = 5 * time.Second
)

// pool is the engine's elastic worker pool. It has no goroutine of its
// own: submit (on the wheel goroutine) hands a due target to an idle
// worker, or starts a worker when none is idle and fewer than max run, or
// queues it when max run (a full queue refuses it). A worker that finishes
// takes the oldest queued task before it goes idle, so a queued task never
// waits while a worker is idle. Idle workers form a LIFO stack: the most
// recently idle worker (warm stack and caches) gets the next task, and the
// ones at the bottom see none and exit after workerIdle.
//
// A fixed pool would be simpler, but its goroutines' stacks stay at the
// size their deepest scrape grew them to: 512 workers held 7 MB at 1000
// targets while one or two were busy.
//
// Everything is under one mutex, held for a few list operations per task
// (once in submit, once when the worker looks for its next task); that is
// the price of exact accounting (never more than max workers, never a
// queued task with an idle worker). Handing a task over is a send on the
// worker's own channel: no allocation per task.
type pool struct {
	max     int
	min     int
	idleFor time.Duration
	run     func(task, *parse.Parser)

	mu      sync.Mutex
	idle    []*worker // LIFO; each has an empty ch
	queue   []task    // ring buffer of QueueSize
	head, n int       // queue[head] is the oldest of n queued tasks
	running int
	closed  bool
	wg      sync.WaitGroup

	onExit func() // test hook: a worker exited (after closing too)
}

type worker struct {
	ch chan task // capacity 1; a task with a nil target means exit
	// idle is true while the worker is on pool.idle, under pool.mu.
	idle bool
	// served counts tasks; seen is served at the last tick of the idle
	// timer (see wait). Only the worker's goroutine uses them.
	served, seen uint64
}

func newPool(maxWorkers, queueSize, minWorkers int, idleFor time.Duration) *pool {
	return &pool{
		max:     maxWorkers,
		min:     min(minWorkers, maxWorkers),
		idleFor: idleFor,
		idle:    make([]*worker, 0, maxWorkers),
		queue:   make([]task, queueSize),
	}
}

// start starts the minimum number of workers, idle. Workers call run for
// each task, with their own parser. submit may be called only after start.
func (p *pool) start(run func(task, *parse.Parser)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.run = run
	for p.running < p.min {
		w := p.spawnLocked()
		w.idle = true
		p.idle = append(p.idle, w)
		p.wg.Go(func() { p.work(w, task{}) })
	}
}

func (p *pool) spawnLocked() *worker {
	p.running++
	return &worker{ch: make(chan task, 1)}
}

// submit hands tk to a worker or queues it; false means the queue is full
// (max workers busy and QueueSize tasks waiting). It never blocks for
// longer than the mutex is held. It must not be called after close.
func (p *pool) submit(tk task) bool {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		w.idle = false
		p.mu.Unlock()
		w.ch <- tk // empty while the worker was idle: never blocks
		return true
	}
	if p.running < p.max {
		w := p.spawnLocked()
		p.mu.Unlock()
		p.wg.Go(func() { p.work(w, tk) })
		return true
	}
	if p.n == len(p.queue) {
		p.mu.Unlock()
		return false
	}
	i := p.head + p.n
	if i >= len(p.queue) {
		i -= len(p.queue)
	}
	p.queue[i] = tk
	p.n++
	p.mu.Unlock()
	return true
}

// close drops the queued tasks and makes every worker exit once its
// current task is done; join waits for that.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for i, w := range p.idle {
		w.idle = false
		w.ch <- task{}
		p.idle[i] = nil
	}
	p.running -= len(p.idle)
	p.idle = p.idle[:0]
	clear(p.queue)
	p.head, p.n = 0, 0
}

func (p *pool) join() { p.wg.Wait() }

// workers returns the number of running workers.
func (p *pool) workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

func (p *pool) work(w *worker, tk task) {
	// One parser per worker, as before the pool became elastic (see
	// Engine.scrape): it goes with the worker.
	var ps parse.Parser
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if p.onExit != nil {
			p.onExit()
		}
	}()
	for {
		if tk.t == nil { // on the idle stack
			if timer == nil {
				timer = time.NewTimer(p.idleFor)
			}
			var ok bool
			if tk, ok = p.wait(w, timer); !ok {
				return
			}
		}
		p.run(tk, &ps)
		w.served++
		var ok bool
		if tk, ok = p.next(w); !ok {
			return
		}
	}
}

// next returns the oldest queued task, or puts w on the idle stack (a zero
// task). false: the pool is closed, w has exited.
func (p *pool) next(w *worker) (task, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.running--
		return task{}, false
	}
	if p.n > 0 {
		tk := p.queue[p.head]
		p.queue[p.head] = task{}
		p.head++
		if p.head == len(p.queue) {
			p.head = 0
		}
		p.n--
		return tk, true
	}
	w.idle = true
	p.idle = append(p.idle, w)
	return task{}, true
}

// wait blocks an idle worker until it gets a task (true) or exits (false).
//
// The idle timeout costs nothing per task: the worker's one timer is not
// reset when a task comes, it simply keeps ticking every idleFor, and at
// each tick the worker exits if it served nothing since the previous tick.
// So an idle worker exits after between idleFor and 2×idleFor; a busy one
// wakes once per idleFor for nothing.
func (p *pool) wait(w *worker, timer *time.Timer) (task, bool) {
	for {
		select {
		case tk := <-w.ch:
			// A nil target: close took w off the idle stack and counted
			// it out.
			return tk, tk.t != nil
		case <-timer.C:
		}
		timer.Reset(p.idleFor)
		if w.served != w.seen {
			w.seen = w.served
			continue
		}
		p.mu.Lock()
		if !w.idle || p.running <= p.min {
			// Taken by submit or close (its task is in ch, or about
			// to be), or one of the minimum.
			p.mu.Unlock()
			continue
		}
		i := slices.Index(p.idle, w)
		p.idle = slices.Delete(p.idle, i, i+1) // zeroes the freed slot
		w.idle = false
		p.running--
		p.mu.Unlock()
		return task{}, false
	}
}
