// Package engine schedules and scrapes targets: it owns the target set, the
// timing wheel, the worker pool and each target's state (series cache for
// staleness, health, last error, durations).
//
// # Design
//
// Jobs arrive from a job source (ApplyConfig), their targets from discovery
// (SyncTargets), and an Owner decides which targets this member scrapes
// (SetOwner; nil owns everything). Each owned target sits on one hashed
// timing wheel at a phase that is a pure function of its key, aligned to
// wall-clock multiples of its interval, so any member that owns the target
// scrapes it at the same instants. One goroutine runs the wheel; when a
// target is due the wheel hands it to an idle worker, or starts one if
// none is idle and fewer than Config.Workers run, or else puts it on a
// bounded queue, never blocking: a full queue skips that scrape and counts
// it. Workers idle for a few seconds exit, down to a small minimum (see
// pool). A worker fetches, parses, applies labels and limits, and writes
// the finished scrape to the Sink on its own goroutine.
//
// There is no goroutine per target. Prometheus runs one per target, which
// costs a stack, a timer and scheduler work per target; at a million
// targets the wheel plus the workers busy at once is far cheaper.
//
// Per-target scrape state is touched only by the goroutine holding the
// target's scrapeMu: a worker during a scrape, or the sync path while it
// retires the target. Job and target sets are guarded by Engine.mu; they
// change on config reload, discovery and membership changes, never per
// scrape.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/parse"
	"github.com/shoal-scraper/shoal/produce"
)

// Sink receives every finished scrape. Write runs on a worker goroutine; the
// Scrape is valid only during the call (see produce.Scrape). Write must not
// block for long: it holds up one worker.
type Sink interface {
	Write(*produce.Scrape) error
}

// Owner says whether this member scrapes the target with the given key
// (job + "/" + instance). It must be cheap and pure: the engine calls it for
// every target on each sync.
type Owner interface {
	Owns(key string) bool
}

// Config tunes the engine. Zero fields take the defaults below.
type Config struct {
	// Workers is the most scrapes that run at once. Default 512: scrapes
	// are mostly waiting on the network, and a slow target holds a worker
	// until its timeout, so it must cover (targets × scrape latency ÷
	// interval) with a wide margin. Workers are started on demand and exit
	// after a few seconds idle (minWorkers stay), so a high limit costs
	// nothing until the load needs it: at 1000 node_exporter targets × 5 s
	// a handful run, where a fixed pool of 512 kept 8–16 KiB of stack each.
	Workers int
	// QueueSize bounds due targets waiting for a worker. Default 8×Workers:
	// absorbs a burst of targets sharing a phase slot without letting a
	// backlog grow past one interval unnoticed.
	QueueSize int
	// Version goes into the User-Agent header.
	Version string
	// RequireOwner: scrape nothing until SetOwner was called once (cluster
	// mode, DESIGN invariant 5).
	RequireOwner bool
	// StallLimit (cluster mode): a due instant fired this late means the
	// whole process stood still (SIGSTOP, a VM pause, a swap storm) for
	// long enough that its ZooKeeper session may have expired and peers
	// may own its targets by now. The engine then holds every scrape and
	// calls OnStall, until Resume says the ownership view is good. Without it, the overdue targets would all fire once on
	// resume, before the ZooKeeper client learns of the expiry: doubled
	// scrapes. 0 disables the check.
	StallLimit time.Duration
	// OnStall is called from the wheel or a worker goroutine when a
	// stall is detected, once per stall; it must not block.
	OnStall func()
	// WheelTick and WheelSlots shape the timing wheel. Defaults 1ms and
	// 65536: 1ms is the resolution of a sample timestamp, and 65536 slots
	// cover intervals up to 65s in one turn.
	WheelTick  time.Duration
	WheelSlots int
}

func (c *Config) setDefaults() {
	if c.Workers <= 0 {
		c.Workers = 512
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 8 * c.Workers
	}
	if c.WheelTick <= 0 {
		c.WheelTick = time.Millisecond
	}
	if c.WheelSlots <= 0 {
		c.WheelSlots = 1 << 16
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}

// Engine scrapes targets. Create with New, start with Run.
type Engine struct {
	cfg     Config
	sink    Sink
	log     *slog.Logger
	m       *metrics
	wheel   *wheel[*target]
	pool    *pool
	bg      sync.WaitGroup // retirements in flight
	errLog  atomic.Int64   // unix ns of the last logged sink error
	held    atomic.Bool    // scraping held after a stall (Config.StallLimit)
	scrapes sizedPool      // *produce.Scrape, see getScrape
	// Connections of retired targets waiting to be closed (closeLater).
	closeMu  sync.Mutex
	toClose  []conns
	closing  bool
	external atomic.Pointer[labels.Labels]

	mu   sync.Mutex
	jobs map[string]*job
	// Ownership: owner decides for scrapes due at or after switchAt, prev
	// (with prevSet) before it. See SetOwner.
	owner, prev       Owner
	ownerSet, prevSet bool
	switchAt          int64 // unix ns
	switchTimer       *time.Timer
	configured        bool
	running           bool
}

type task struct {
	t   *target
	due int64
}

// job is one scrape config and its targets. A job whose config changes is
// replaced by a new job with the next gen.
type job struct {
	cfg     *config.ScrapeConfig
	gen     uint32
	client  *httpClient
	err     string // job-level problem shown on /targets
	forced  atomic.Pointer[error]
	groups  []*targetgroup.Group
	targets map[uint64]*target // owned targets, by id
	// cands are templates of every target discovered for the job (owned
	// or not), computed from groups once per change of groups; nil when
	// groups changed since.
	cands []*target
	m     jobMetrics
}

func (j *job) forcedErr() error {
	if p := j.forced.Load(); p != nil {
		return *p
	}
	return nil
}

// New returns an engine writing to sink. Metrics are registered with reg.
func New(cfg Config, sink Sink, reg prometheus.Registerer, logger *slog.Logger) (*Engine, error) {
	cfg.setDefaults()
	if cfg.WheelSlots&(cfg.WheelSlots-1) != 0 {
		return nil, fmt.Errorf("wheel slots %d: not a power of two", cfg.WheelSlots)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg:     cfg,
		sink:    sink,
		log:     logger,
		wheel:   newWheel[*target](cfg.WheelTick, cfg.WheelSlots),
		jobs:    make(map[string]*job),
		scrapes: newSizedPool(scrapeMinShift, scrapeClasses, 15, func(x any) int { return cap(x.(*produce.Scrape).Samples) }),
	}
	e.wheel.newPoll = newPollTimer
	e.pool = newPool(cfg.Workers, cfg.QueueSize, minWorkers, workerIdle)
	m, err := newMetrics(e, reg)
	if err != nil {
		return nil, err
	}
	e.m = m
	return e, nil
}

// Run starts the workers and the wheel and blocks until ctx is done. Then it
// shuts down in order:
//  1. the wheel stops handing out targets;
//  2. queued scrapes are dropped and in-flight scrapes finish (each is
//     bounded by its scrape timeout, so this step is bounded too);
//  3. pending retirements (staleness markers) finish;
//  4. the targets' keep-alive connections are closed.
//
// The caller flushes and closes the sink after Run returns.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("engine already running")
	}
	e.running = true
	e.mu.Unlock()

	e.pool.start(func(tk task, p *parse.Parser) { e.work(ctx, tk, p) })
	e.wheel.run(ctx, e.fire) // 1.
	e.pool.close()           // 2.
	e.pool.join()
	e.bg.Wait() // 3.

	e.mu.Lock()
	if e.switchTimer != nil {
		e.switchTimer.Stop()
	}
	for _, j := range e.jobs {
		for _, t := range j.targets {
			// 4. The targets' idle connections. Workers and
			// retirements are done; scrapeMu guards conns all the same.
			t.scrapeMu.Lock()
			t.conns.close()
			t.scrapeMu.Unlock()
		}
	}
	e.mu.Unlock()
	return nil
}

// fire runs on the wheel goroutine for each due target. It must not block.
func (e *Engine) fire(t *target, due, now int64) int64 {
	if t.removed.Load() {
		return 0
	}
	if u := t.until.Load(); u != 0 && due >= u {
		// Ownership moved to another member from this instant on (see
		// SetOwner); the new owner scrapes this very due time. No staleness
		// markers: the series go on from there.
		e.retireMoved(t)
		return 0
	}
	if f := t.from.Load(); due < f {
		// Gained at a hand-over instant still ahead: the previous owner
		// scrapes this due time.
		return e.nextFire(t, due, now)
	}
	if e.stalled(now - due) {
		e.m.skippedHeld.Inc()
		return e.nextFire(t, due, now)
	}
	e.m.lateness.Observe(float64(now-due) / 1e9)
	if !e.pool.submit(task{t, due}) {
		e.m.skippedQueue.Inc()
	}
	return e.nextFire(t, due, now)
}

// stalled reports whether scraping is held: it is after a stall (a due
// instant handled late by more than StallLimit), until Resume.
func (e *Engine) stalled(late int64) bool {
	if e.cfg.StallLimit <= 0 {
		return false
	}
	if late > int64(e.cfg.StallLimit) && e.held.CompareAndSwap(false, true) {
		e.m.stalls.Inc()
		e.log.Warn("the process stood still: scraping is held until the ownership view is confirmed", "late", time.Duration(late).Round(time.Millisecond))
		if e.cfg.OnStall != nil {
			e.cfg.OnStall()
		}
	}
	return e.held.Load()
}

// Resume lifts the hold a stall put on scraping (Config.StallLimit): the
// caller has confirmed that the ownership view is still good.
func (e *Engine) Resume() {
	if e.held.CompareAndSwap(true, false) {
		e.log.Info("ownership view confirmed after a stall: scraping resumes")
	}
}

// nextFire re-arms t on its grid. After a stall (GC, suspend, overload) it
// skips the instants already missed instead of firing them back to back: a
// burst of catch-up scrapes would only be skipped as in_flight.
func (e *Engine) nextFire(t *target, due, now int64) int64 {
	iv := int64(t.interval)
	next := due + iv
	if next <= now {
		next += ((now-next)/iv + 1) * iv
	}
	return next
}

// work runs one due target on a pool worker; p is the worker's parser.
func (e *Engine) work(ctx context.Context, tk task, p *parse.Parser) {
	if ctx.Err() != nil {
		return // shutting down: the wheel stops, queued tasks are dropped
	}
	t := tk.t
	if !t.scrapeMu.TryLock() {
		// The previous scrape of this target is still running: it
		// cannot be, unless the queue backed up for a whole interval.
		e.m.skippedInFlight.Inc()
		return
	}
	if e.cfg.StallLimit > 0 && e.stalled(time.Now().UnixNano()-tk.due) {
		// Queued before the stall, picked up after it.
		e.m.skippedHeld.Inc()
		t.scrapeMu.Unlock()
		return
	}
	if !t.dead && !t.removed.Load() {
		due := time.Unix(0, tk.due)
		e.m.startLate.Observe(time.Since(due).Seconds())
		e.scrape(t, due, p)
	}
	t.scrapeMu.Unlock()
}

// ApplyConfig installs a new set of jobs. Jobs whose config is unchanged
// keep their targets, schedule and state; changed jobs restart their
// targets (a target that survives the change keeps its series cache, so
// series that disappear still get staleness markers); removed jobs' targets
// get staleness markers. Discovery is expected to call SyncTargets for new
// and changed jobs; until then a changed job keeps its previous groups.
//
// A job that cannot be set up (an unreadable TLS file, say) is skipped and
// reported on /targets; the others apply. The returned error lists them.
func (e *Engine) ApplyConfig(c *config.Config) error {
	ext := c.Global.ExternalLabels
	e.external.Store(&ext)

	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	next := make(map[string]*job, len(c.ScrapeConfigs))
	for _, sc := range c.ScrapeConfigs {
		old := e.jobs[sc.JobName]
		if old != nil && old.client != nil && old.cfg.Equal(sc) {
			next[sc.JobName] = old
			continue
		}
		j := &job{cfg: sc, targets: make(map[uint64]*target)}
		if old != nil {
			j.gen = old.gen + 1
			j.groups = old.groups
		}
		j.m = e.m.forJob(sc.JobName)
		cl, err := newHTTPClient(sc, e.cfg.Version)
		if err != nil {
			errs = append(errs, err)
			j.err = err.Error()
			ferr := err
			j.forced.Store(&ferr)
			cl = nil
		}
		j.client = cl
		next[sc.JobName] = j
		var pred map[uint64]*target
		if old != nil {
			pred = old.targets
			old.targets = nil
		}
		if cl != nil {
			e.syncJob(j, pred)
		} else {
			e.retireAll(pred, true)
		}
	}
	for name, old := range e.jobs {
		if next[name] == nil {
			e.retireAll(old.targets, true)
			e.m.dropJob(name)
		}
	}
	e.jobs = next
	e.configured = true
	return errors.Join(errs...)
}

// SyncTargets replaces the discovered target groups of a job (all of them:
// discovery passes the full current set). Unknown jobs are ignored:
// discovery may lag a config change by a moment.
func (e *Engine) SyncTargets(jobName string, groups []*targetgroup.Group) {
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.jobs[jobName]
	if j == nil {
		return
	}
	j.groups = groups
	j.cands = nil
	if j.client != nil {
		e.syncJob(j, nil)
	}
}

// SetOwner installs the ownership predicate (nil: own everything) from the
// instant at on, and re-evaluates every target. Scrapes due before at stay
// with the previous predicate, scrapes due at or after at follow o: every
// member of a pool that receives the same (o, at) — coord/ derives both from
// ZooKeeper — hands each target over between two consecutive due instants,
// so a hand-over neither doubles nor skips a scrape as long as the call
// arrives before at (DESIGN invariant 2). A zero or past at switches now.
//
// Targets that move away get no staleness markers: their series go on from
// the new owner (DESIGN invariant 3). A call while an earlier switch is
// still ahead replaces it: the predicate in force now becomes the previous
// one.
func (e *Engine) SetOwner(o Owner, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now().UnixNano()
	if e.ownerSet && now < e.switchAt {
		// Still before the pending switch: what is in force now is prev.
	} else {
		e.prev, e.prevSet = e.owner, e.ownerSet
	}
	e.owner, e.ownerSet = o, true
	e.switchAt = at.UnixNano()
	if at.IsZero() || e.switchAt <= now {
		e.switchAt = now
		e.prev, e.prevSet = o, true
	}
	if e.switchTimer != nil {
		e.switchTimer.Stop()
		e.switchTimer = nil
	}
	if e.switchAt+int64(switchLag) > now {
		// Once the switch has passed, targets that moved away are
		// dropped from the books (the wheel stopped scraping them at
		// their first due instant after at).
		e.switchTimer = time.AfterFunc(time.Duration(e.switchAt+int64(switchLag)-now), e.resync)
	}
	e.resyncLocked()
}

func (e *Engine) resync() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resyncLocked()
}

func (e *Engine) resyncLocked() {
	for _, j := range e.jobs {
		if j.client != nil {
			e.syncJob(j, nil)
		}
	}
}

// switchLag is how long after a hand-over instant the targets that moved
// away stay in the books. A due instant just before the switch may fire a
// little after it (wheel lateness); until then the target must stay
// scheduled, so a sync right after the switch must not retire it.
const switchLag = time.Second

// owns reports whether this member should scrape key before and after the
// pending (or just passed) switch. Caller holds e.mu.
func (e *Engine) owns(key string, now int64) (before, after bool) {
	after = e.ownedBy(e.owner, e.ownerSet, key)
	if now >= e.switchAt+int64(switchLag) {
		return after, after
	}
	return e.ownedBy(e.prev, e.prevSet, key), after
}

func (e *Engine) ownedBy(o Owner, set bool, key string) bool {
	if e.cfg.RequireOwner && !set {
		return false
	}
	return o == nil || o.Owns(key)
}

// syncJob recomputes j's targets from j.groups and the owner. pred holds a
// replaced job's targets: survivors hand their state to their successor.
// Caller holds e.mu.
func (e *Engine) syncJob(j *job, pred map[uint64]*target) {
	if j.cands == nil {
		ts, errs := targetsFromGroups(j, j.groups)
		for _, err := range errs {
			e.log.Warn("dropping invalid target", "job", j.cfg.JobName, "err", err)
		}
		if ts == nil {
			ts = []*target{}
		}
		j.cands = ts
	}
	ts := j.cands
	j.err = ""
	j.forced.Store(nil)
	if limit := j.cfg.TargetLimit; limit > 0 && uint(len(ts)) > limit {
		// As Prometheus: every target of the job fails with this error
		// until the job fits again. Counted over all discovered targets,
		// not only this member's, so every member agrees.
		err := fmt.Errorf("target_limit exceeded (number of targets: %d, limit: %d)", len(ts), limit)
		j.err = err.Error()
		j.forced.Store(&err)
	}
	now := time.Now()
	nowNs := now.UnixNano()
	next := make(map[uint64]*target, len(ts))
	for _, t := range ts {
		before, after := e.owns(t.key, nowNs)
		if !before && !after {
			continue
		}
		// The part of the timeline this member scrapes: [from, until).
		var from, until int64
		if !before && after {
			from = e.switchAt
		}
		if before && !after {
			until = e.switchAt
		}
		if old := j.targets[t.id]; old != nil {
			old.from.Store(from)
			old.until.Store(until)
			next[t.id] = old
			continue
		}
		if _, dup := next[t.id]; dup {
			continue
		}
		t = t.fresh()
		t.from.Store(from)
		t.until.Store(until)
		if p := pred[t.id]; p != nil {
			t.adopt(p)
			delete(pred, t.id)
		}
		t.gen = j.gen
		next[t.id] = t
		due := t.nextDue(now)
		if from > nowNs {
			due = t.nextDue(time.Unix(0, from))
		}
		t.statusMu.Lock()
		t.nextScrape = due
		t.statusMu.Unlock()
		e.wheel.schedule(t, due.UnixNano())
	}
	for id, old := range j.targets {
		if next[id] == nil {
			// Gone from discovery (staleness) or moved to another member
			// (none: the new owner carries its series on).
			before, _ := e.owns(old.key, nowNs)
			e.retire(old, before)
		}
	}
	e.retireAll(pred, true)
	j.targets = next
}

// adopt takes over p's scrape state: p is the same target under the
// previous config of its job. Waits for an in-flight scrape of p to end.
func (t *target) adopt(p *target) {
	p.removed.Store(true)
	p.scrapeMu.Lock()
	p.dead = true
	// Not the connections: the job's config changed, maybe its TLS.
	p.conns.close()
	t.cache, t.lb, t.lastSize, t.lastOut = p.cache, p.lb, p.lastSize, p.lastOut
	t.memo, p.memo = p.memo, produce.Memo{} // the sink's memo holds the cache's series
	// The synthetic series carry over too: if the target is later retired,
	// its up and scrape_* series need their staleness markers.
	t.report = p.report
	p.cache = nil
	p.scrapeMu.Unlock()
	p.statusMu.Lock()
	t.health, t.lastErr, t.lastScrape, t.lastDuration, t.lastSamples = p.health, p.lastErr, p.lastScrape, p.lastDuration, p.lastSamples
	p.statusMu.Unlock()
}

// retireMoved retires a target whose ownership moved away at a hand-over
// instant, from the wheel goroutine: no staleness markers, and the books
// (j.targets) are cleaned up by the resync that follows the switch.
func (e *Engine) retireMoved(t *target) {
	e.m.movedAway.Inc()
	e.retire(t, false)
}

func (e *Engine) retireAll(ts map[uint64]*target, stale bool) {
	for _, t := range ts {
		e.retire(t, stale)
	}
}

// retire takes t out of service. With stale, its live series get staleness
// markers once any in-flight scrape of it has ended; that wait happens on a
// goroutine the engine waits for at shutdown, so a sync never blocks on a
// slow target.
func (e *Engine) retire(t *target, stale bool) {
	t.removed.Store(true)
	if !stale && t.scrapeMu.TryLock() {
		// Nothing to write and no scrape in flight: done here, without a
		// goroutine (a rebalance retires thousands of targets at once).
		t.dead = true
		t.cache, t.memo = nil, produce.Memo{}
		e.closeLater(t.conns)
		t.conns = conns{}
		t.scrapeMu.Unlock()
		return
	}
	e.bg.Go(func() {
		t.scrapeMu.Lock()
		defer t.scrapeMu.Unlock()
		if t.dead {
			return
		}
		t.dead = true
		t.conns.close()
		if stale {
			e.endOfLife(t, time.Now())
		}
		t.cache, t.memo = nil, produce.Memo{}
	})
}

// closeLater closes cs on a goroutine the engine waits for at shutdown.
// retire's fast path runs on the wheel goroutine at an ownership hand-over
// (retireMoved), for thousands of targets at once; closing their sockets
// there (a close(2) each, and a TLS close_notify write) would make the
// scrapes due after them late. One goroutine drains what piles up.
func (e *Engine) closeLater(cs conns) {
	if cs.empty() {
		return
	}
	e.closeMu.Lock()
	e.toClose = append(e.toClose, cs)
	start := !e.closing
	e.closing = true
	e.closeMu.Unlock()
	if start {
		e.bg.Go(e.closeLoop)
	}
}

func (e *Engine) closeLoop() {
	var batch []conns
	for {
		e.closeMu.Lock()
		batch, e.toClose = e.toClose, batch[:0]
		if len(batch) == 0 {
			e.closing = false
			e.closeMu.Unlock()
			return
		}
		e.closeMu.Unlock()
		for i := range batch {
			batch[i].close()
		}
		clear(batch)
	}
}

// sinkError counts a failed Write and logs at most once per second.
func (e *Engine) sinkError(err error, samples int) {
	e.m.sinkErrors.Inc()
	e.m.sinkDropped.Add(float64(samples))
	now := time.Now().UnixNano()
	last := e.errLog.Load()
	if now-last > int64(time.Second) && e.errLog.CompareAndSwap(last, now) {
		e.log.Error("sink write failed; samples dropped", "err", err, "samples", samples)
	}
}

// Ready reports whether the engine has its jobs (and, in cluster mode, its
// first ownership view): before that it scrapes nothing.
func (e *Engine) Ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.configured && (!e.cfg.RequireOwner || e.ownerSet)
}

// Jobs returns a snapshot of every job and its owned targets, sorted by job
// name and target key.
func (e *Engine) Jobs() []JobStatus {
	e.mu.Lock()
	js := make([]JobStatus, 0, len(e.jobs))
	tss := make([][]*target, 0, len(e.jobs))
	for _, j := range e.jobs {
		js = append(js, JobStatus{Name: j.cfg.JobName, Error: j.err})
		ts := make([]*target, 0, len(j.targets))
		for _, t := range j.targets {
			ts = append(ts, t)
		}
		tss = append(tss, ts)
	}
	e.mu.Unlock()
	for i := range js {
		js[i].Targets = make([]TargetStatus, len(tss[i]))
		for k, t := range tss[i] {
			js[i].Targets[k] = t.status()
		}
		sort.Slice(js[i].Targets, func(a, b int) bool { return js[i].Targets[a].Key < js[i].Targets[b].Key })
	}
	sort.Slice(js, func(a, b int) bool { return js[a].Name < js[b].Name })
	return js
}
