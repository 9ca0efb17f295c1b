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
	// see pool.tick). Starting a worker costs a few µs (a goroutine and
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
// own (each worker's idle timer runs tick for a moment every workerIdle):
// submit (on the wheel goroutine) hands a due target to an idle
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
	ch    chan task   // capacity 1; a task with a nil target means exit
	timer *time.Timer // ticks every idleFor: pool.tick
	// Under pool.mu: idle is true while the worker is on pool.idle; gone
	// once it was told to exit (or exits); served counts its tasks, seen
	// is served at the previous tick.
	idle, gone   bool
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
	w := &worker{ch: make(chan task, 1)}
	w.timer = time.AfterFunc(p.idleFor, func() { p.tick(w) })
	return w
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
		p.exitLocked(w)
		p.idle[i] = nil
	}
	p.idle = p.idle[:0]
	clear(p.queue)
	p.head, p.n = 0, 0
}

// exitLocked tells idle worker w, already off the idle stack or about to
// be, to exit, and counts it out.
func (p *pool) exitLocked(w *worker) {
	w.idle, w.gone = false, true
	w.timer.Stop()
	p.running--
	w.ch <- task{} // empty while w was idle: never blocks
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
	if p.onExit != nil {
		defer p.onExit()
	}
	for {
		if tk.t == nil { // on the idle stack: wait
			if tk = <-w.ch; tk.t == nil {
				return // told to exit by tick or close
			}
		}
		p.run(tk, &ps)
		var ok bool
		if tk, ok = p.next(w); !ok {
			return
		}
	}
}

// next counts the task w finished and returns the oldest queued task, or
// puts w on the idle stack (a zero task). false: the pool is closed, w
// exits.
func (p *pool) next(w *worker) (task, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w.served++
	if p.closed {
		w.gone = true
		w.timer.Stop()
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

// tick runs every idleFor for each worker (its timer's own goroutine, for
// a moment) and makes the worker exit if it is idle, served nothing since
// the previous tick, and more than min run. So an idle worker exits after
// between idleFor and 2×idleFor.
//
// The timer is never reset per task, and an idle worker waits on its
// channel alone. An earlier version selected on the channel and a
// per-worker timer: BenchmarkPoolHandOff (submit, run, back to idle) took
// 1.2–1.5 µs, against 0.7–0.8 µs for the fixed pool's shared channel; now
// 0.8–0.9 µs, the channel plus a mutex round, on a scrape of ~1 ms.
func (p *pool) tick(w *worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || w.gone {
		return
	}
	if w.idle && w.served == w.seen && p.running > p.min {
		p.idle = slices.DeleteFunc(p.idle, func(x *worker) bool { return x == w }) // zeroes the freed slot
		p.exitLocked(w)
		return
	}
	w.seen = w.served
	w.timer.Reset(p.idleFor)
}
