package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/internal/zkdial"
	"github.com/shoal-scraper/shoal/ring"
)

// Config configures a Coordinator. Zero fields take the defaults.
type Config struct {
	Servers        []string      // host:port of the ZooKeeper ensemble
	Root           string        // default /shoal
	SessionTimeout time.Duration // default 10s
	MemberID       string        // required, stable across restarts
	Address        string        // this member's web address, for peers and `shoal members`
	Version        string
	// HandoverDelay is how far ahead a member announces its join or
	// leave. Every peer switches ownership at that announced instant, so
	// it must exceed the time ZooKeeper takes to notify every member
	// (milliseconds) plus GC pauses. Default 2s.
	HandoverDelay time.Duration
	// Coalesce is how long a burst of ZooKeeper events is gathered before
	// the members and jobs are re-read and pushed. Default 20ms.
	Coalesce time.Duration
	// Global holds the defaults the jobs in ZooKeeper inherit.
	Global config.GlobalConfig
}

func (c *Config) setDefaults() {
	if c.Root == "" {
		c.Root = "/shoal"
	}
	c.Root = path.Clean("/" + c.Root)
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.HandoverDelay <= 0 {
		c.HandoverDelay = 2 * time.Second
	}
	if c.Coalesce <= 0 {
		c.Coalesce = 20 * time.Millisecond
	}
}

// Jobs is the complete job set read from ZooKeeper.
type Jobs struct {
	Config  *config.Config // valid jobs, resolved against Config.Global, sorted by name
	Invalid []JobError     // jobs skipped, sorted by name
}

// JobError is a job node whose content is not a valid scrape_config.
type JobError struct {
	Name string
	Err  error
}

// Handler receives what the Coordinator reads. Both methods are called
// from the Coordinator's goroutine, one at a time; they may take a while
// (the engine recomputes its targets) but must not call back into the
// Coordinator.
type Handler interface {
	// SetJobs receives the full job set on every change.
	SetJobs(Jobs)
	// SetOwner installs the ring in force from at on (engine.SetOwner).
	// A ring that owns nothing means: stop scraping (session lost).
	SetOwner(r *ring.Ring, at time.Time)
	// Resume says the session, and so the ownership view, is confirmed
	// after a stall (see Coordinator.Stalled, engine.Config.StallLimit).
	Resume()
}

// Coordinator keeps this member registered in ZooKeeper and feeds the
// Handler with jobs and ownership. One goroutine (Run) owns the connection.
type Coordinator struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	h   Handler

	// inbox: ZooKeeper events, handed over from the client's goroutine.
	inMu      sync.Mutex
	inbox     []zk.Event
	newGlobal *config.GlobalConfig // SetGlobal's, until Run takes it
	wake      chan struct{}
	stall     chan struct{} // Stalled's signal

	// Run's state: touched by Run's goroutine only.
	conn           *zk.Conn
	paths          paths
	state          State
	armed          map[string]bool // data watches set, by path
	regSession     int64           // session our member node belongs to; 0: not registered
	waitingID      bool            // our ID is held by another session; waiting for it to go
	connected      bool
	lostAt         time.Time // when the connection dropped; zero while connected
	connectedSince time.Time
	warnedLost     bool // logged that the connection is gone for a session timeout
	suspended      bool // ownership withdrawn: session lost or expired
	pushed         pushedView
	jobData        map[string][]byte // job name → node data as last read
	jobsOut        Jobs
	dirty          dirt
	globalChanged  bool // SetGlobal: re-resolve and push the jobs

	client *http.Client // asks peers' /api/v1/cluster while disconnected

	statusMu sync.Mutex
	status   Status
}

type paths struct{ members, slots, jobs string }

func (p paths) member(id string) string { return p.members + "/" + id }
func (p paths) slot(i int) string       { return p.slots + "/" + slotName(i) }
func (p paths) job(name string) string  { return p.jobs + "/" + name }

// pushedView is what the Handler was last told: cur before at, next from at.
type pushedView struct {
	cur, next []string
	at        time.Time
	valid     bool
}

// dirt says what must be re-read.
type dirt struct {
	members, slots, jobs bool
	data                 map[string]bool // node paths whose data changed
}

// New returns a Coordinator; metrics are registered with reg.
func New(cfg Config, h Handler, reg prometheus.Registerer, logger *slog.Logger) (*Coordinator, error) {
	cfg.setDefaults()
	if len(cfg.Servers) == 0 {
		return nil, errors.New("coord: no ZooKeeper servers")
	}
	if err := ValidMemberID(cfg.MemberID); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	c := &Coordinator{
		cfg:    cfg,
		log:    logger,
		m:      m,
		h:      h,
		wake:   make(chan struct{}, 1),
		stall:  make(chan struct{}, 1),
		client: &http.Client{},
		paths:  paths{members: cfg.Root + "/members", slots: cfg.Root + "/slots", jobs: cfg.Root + "/jobs"},
	}
	c.status.Self = cfg.MemberID
	return c, nil
}

// ValidMemberID checks that id can name a ZooKeeper node.
func ValidMemberID(id string) error {
	switch {
	case id == "":
		return errors.New("member ID is empty")
	case strings.ContainsAny(id, "/\x00"), id == "." || id == "..":
		return fmt.Errorf("member ID %q: must not contain '/' or be '.' or '..'", id)
	}
	return nil
}

// event is the ZooKeeper client's callback: it runs on the client's
// receive goroutine and must not block.
func (c *Coordinator) event(ev zk.Event) {
	c.inMu.Lock()
	c.inbox = append(c.inbox, ev)
	c.inMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Coordinator) takeInbox() []zk.Event {
	c.inMu.Lock()
	defer c.inMu.Unlock()
	evs := c.inbox
	c.inbox = nil
	if g := c.newGlobal; g != nil {
		c.newGlobal = nil
		c.cfg.Global = *g
		c.globalChanged = true
	}
	return evs
}

// Run connects, registers this member and keeps the Handler up to date until
// ctx is done. Then it leaves gracefully: it announces its leave
// HandoverDelay ahead, keeps ownership until that instant (the caller keeps
// scraping), deletes its member node and closes the connection. Run returns
// only after that; the caller then stops scraping and flushes the sink.
func (c *Coordinator) Run(ctx context.Context) error {
	conn, _, err := zk.Connect(c.cfg.Servers, c.cfg.SessionTimeout, zk.WithDialer(zkdial.Dialer(c.cfg.SessionTimeout)),
		zk.WithEventCallback(c.event), zk.WithLogger(zkLogger{c.log}), zk.WithLogInfo(false))
	if err != nil {
		return fmt.Errorf("zookeeper %s: %w", strings.Join(c.cfg.Servers, ","), err)
	}
	c.conn = conn
	defer conn.Close()
	c.armed = map[string]bool{}
	c.dirty = dirt{members: true, slots: true, jobs: true, data: map[string]bool{}}
	c.state = State{Members: map[string]Member{}, Slots: map[int]slotInfo{}}
	c.jobData = map[string][]byte{}

	var (
		coalesce = time.NewTimer(time.Hour)
		change   = time.NewTimer(time.Hour) // next ring change instant
		retry    = time.NewTimer(time.Hour) // a failed read or registration
		probe    = time.NewTimer(time.Hour) // while disconnected: ask peers whether we are still a member
	)
	coalesce.Stop()
	change.Stop()
	retry.Stop()
	probe.Stop()
	defer func() { coalesce.Stop(); change.Stop(); retry.Stop(); probe.Stop() }()
	gathering := false

	for {
		select {
		case <-ctx.Done():
			c.leave()
			return nil
		case <-c.wake:
			c.absorb(c.takeInbox(), probe)
			if !gathering {
				gathering = true
				coalesce.Reset(c.cfg.Coalesce)
			}
			continue
		case <-coalesce.C:
			gathering = false
			c.absorb(c.takeInbox(), probe)
		case <-change.C:
		case <-retry.C:
		case <-probe.C:
			c.probePeers(ctx, probe)
			continue
		case <-c.stall:
			c.confirmSession()
			continue
		}
		if err := c.sync(); err != nil {
			c.m.errors.Inc()
			c.log.Warn("ZooKeeper read failed; retrying", "err", err)
			retry.Reset(time.Second)
		}
		if next, ok := c.pushOwnership(time.Now()); ok {
			change.Reset(time.Until(next))
		}
		c.publishStatus()
	}
}

// absorb applies client events to the dirty flags and session state.
func (c *Coordinator) absorb(evs []zk.Event, probe *time.Timer) {
	for _, ev := range evs {
		switch ev.Type {
		case zk.EventSession:
			switch ev.State {
			case zk.StateHasSession:
				if !c.connected {
					c.connectedSince = time.Now()
				}
				c.connected = true
				c.lostAt = time.Time{}
				c.warnedLost = false
				probe.Stop()
				c.m.connected.Set(1)
				if c.conn.SessionID() != c.regSession {
					c.dirty.members, c.dirty.slots, c.dirty.jobs = true, true, true
				} else {
					if c.suspended {
						// Suspended while cut off, but the session survived: our
						// node and our targets are still ours.
						c.log.Info("ZooKeeper session confirmed after the disconnection; scraping resumes")
						c.suspended = false
						c.dirty.members = true
					}
					c.h.Resume() // a hold after a stall, if any: the session lives
				}
			case zk.StateDisconnected:
				if c.connected {
					c.log.Warn("ZooKeeper connection lost; reconnecting", "server", ev.Server)
					c.lostAt = time.Now()
					probe.Reset(c.probeEvery())
				}
				c.connected = false
				c.m.connected.Set(0)
			case zk.StateExpired:
				c.m.expirations.Inc()
				c.log.Warn("ZooKeeper session expired: peers own our targets now; scraping stops until re-registered")
				c.regSession = 0
				clear(c.armed)
				c.suspend()
			}
		case zk.EventNotWatching:
			// Watches were dropped with the session: read everything
			// again once a new session is up.
			clear(c.armed)
			c.dirty.members, c.dirty.slots, c.dirty.jobs = true, true, true
		case zk.EventNodeChildrenChanged:
			c.markChildren(ev.Path)
		case zk.EventNodeDataChanged, zk.EventNodeDeleted, zk.EventNodeCreated:
			delete(c.armed, ev.Path)
			c.dirty.data[ev.Path] = true
			c.markChildren(path.Dir(ev.Path))
			if ev.Path == c.paths.member(c.cfg.MemberID) {
				c.dirty.members = true
			}
		}
	}
}

func (c *Coordinator) markChildren(p string) {
	switch p {
	case c.paths.members:
		c.dirty.members = true
	case c.paths.slots:
		c.dirty.slots = true
	case c.paths.jobs:
		c.dirty.jobs = true
	}
}

// probeEvery is how often a disconnected member asks its peers about
// ZooKeeper.
func (c *Coordinator) probeEvery() time.Duration {
	return min(c.cfg.SessionTimeout/4, 500*time.Millisecond)
}

// probePeers runs while the connection is down. Losing ZooKeeper alone is
// no reason to stop scraping: if the whole ensemble is down, nobody can
// take our targets over, and a monitoring system must not go dark with its
// coordinator. But if only this member is cut off, ZooKeeper expires its
// session after the timeout and peers take its targets, and the client
// would learn that only on reconnecting. So the member asks its peers'
// /api/v1/cluster. A peer that has a session and no longer lists us means
// our session is gone. A peer that has kept its session since before we
// lost ours means ZooKeeper is up and we alone are cut off: our session
// will expire, so we stop before it does (a gap, never a double scrape)
// and resume if the session turns out to have survived. Peers that lost
// their connection too (ZooKeeper restarted, or lost its quorum), or that
// we cannot reach, prove nothing: we scrape on.
func (c *Coordinator) probePeers(ctx context.Context, probe *time.Timer) {
	if c.connected || c.regSession == 0 {
		return
	}
	probe.Reset(c.probeEvery())
	if !c.warnedLost && time.Since(c.lostAt) >= c.cfg.SessionTimeout {
		c.warnedLost = true
		c.log.Warn("no ZooKeeper connection for a session timeout, and no peer has one either: scraping on (if ZooKeeper is down for all members, nobody else can scrape our targets)",
			"session_timeout", c.cfg.SessionTimeout, "since", c.lostAt.Format(time.RFC3339))
	}
	if c.suspended {
		return
	}
	peer, dropped, connected := c.askPeers(ctx)
	switch {
	case dropped:
		c.log.Warn("a peer with a ZooKeeper session no longer counts us as a member: our session is gone and the peers own our targets; scraping stops until we have registered again", "peer", peer)
		c.suspend()
	case connected && time.Since(c.lostAt) >= 2*c.probeEvery():
		c.log.Warn("cut off from ZooKeeper while a peer is not: scraping stops until our session is confirmed", "peer", peer, "disconnected_for", time.Since(c.lostAt).Round(time.Millisecond))
		c.suspend()
	}
}

// askPeers asks every peer, concurrently, for its view: whether one that
// has a session no longer lists us (dropped), or at least one has had a
// session since before we lost ours (connected), and which.
func (c *Coordinator) askPeers(ctx context.Context) (peer string, dropped, connected bool) {
	ctx, cancel := context.WithTimeout(ctx, c.probeEvery())
	defer cancel()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for id, m := range c.state.Members {
		if id == c.cfg.MemberID || m.Address == "" {
			continue
		}
		wg.Go(func() {
			var st Status
			err := FetchCluster(ctx, c.client, m.Address, &st)
			if err != nil || !st.Connected || !st.Registered {
				return
			}
			// A peer whose connection came up after ours went down was
			// cut off too: ZooKeeper itself was away (a restart, an
			// election), sessions get a fresh timeout, and ours is not
			// about to expire. Only a peer that stayed connected
			// throughout proves that we alone are cut off.
			steady := st.ConnectedSince.Before(c.lostAt)
			listed := false
			for _, pm := range st.Members {
				listed = listed || pm.ID == c.cfg.MemberID
			}
			mu.Lock()
			defer mu.Unlock()
			if !dropped {
				peer = id
			}
			connected = connected || steady
			dropped = dropped || !listed
		})
	}
	wg.Wait()
	return peer, dropped, connected
}

// FetchCluster GETs a member's /api/v1/cluster at addr and decodes it into
// v: a Status, or web's view that embeds one. Members ask each other with
// it, and so do /cluster and `shoal members`.
func FetchCluster(ctx context.Context, client *http.Client, addr string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/cluster", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %s", addr, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	return nil
}

// Stalled tells the Coordinator that the process stood still (the engine
// saw a due instant handled far too late): its session may have expired
// meanwhile. Run confirms the session and resumes the Handler, or finds it
// gone and goes through expiry and registration. It does not block.
func (c *Coordinator) Stalled() {
	select {
	case c.stall <- struct{}{}:
	default:
	}
}

// confirmSession checks, with a round trip, that our member node is still
// there under our session. If it is, scraping resumes; if not, the session
// is gone: suspend (the expiry event and a new registration follow).
func (c *Coordinator) confirmSession() {
	if c.regSession == 0 || c.suspended {
		return // registration resumes the handler
	}
	type result struct {
		ok    bool
		owner int64
		err   error
	}
	ch := make(chan result, 1)
	p := c.paths.member(c.cfg.MemberID)
	go func() {
		ok, st, err := c.conn.Exists(p)
		var owner int64
		if st != nil {
			owner = st.EphemeralOwner
		}
		ch <- result{ok, owner, err}
	}()
	select {
	case r := <-ch:
		switch {
		case r.err == nil && r.ok && r.owner == c.regSession:
			c.log.Info("session confirmed after a stall", "session", fmt.Sprintf("%#x", c.regSession))
			c.h.Resume()
		case r.err == nil || errors.Is(r.err, zk.ErrSessionExpired):
			c.log.Warn("after a stall, our member node is gone: the session expired and peers own our targets", "err", r.err)
			c.suspend()
		default:
			// Disconnected: the session events decide (a reconnect to
			// the same session resumes, an expiry suspends).
			c.log.Warn("after a stall, the session could not be confirmed yet", "err", r.err)
		}
	case <-time.After(c.cfg.SessionTimeout):
		c.log.Warn("after a stall, the session could not be confirmed within the session timeout; scraping stays held")
	}
}

// suspend withdraws all ownership at once (DESIGN invariant 6).
func (c *Coordinator) suspend() {
	c.suspended = true
	c.pushed = pushedView{valid: true, at: time.Now()}
	c.h.SetOwner(ring.New(nil, c.cfg.MemberID), time.Time{})
	c.m.ringChanges.Inc()
	c.statusMu.Lock()
	c.status.Suspended = true
	c.status.RingChanged = time.Now()
	c.statusMu.Unlock()
}

// sync re-reads what is dirty and registers if needed. With no session it
// does nothing: the session event brings it back.
func (c *Coordinator) sync() error {
	if c.globalChanged {
		// From the jobs as last read: a reload needs no ZooKeeper.
		c.globalChanged = false
		c.pushJobs()
	}
	if !c.connected {
		return nil
	}
	if c.regSession == 0 || c.conn.SessionID() != c.regSession {
		if err := c.ensureRoot(); err != nil {
			return err
		}
	}
	if c.dirty.jobs || c.anyDirtyUnder(c.paths.jobs) {
		if err := c.readJobs(); err != nil {
			return err
		}
	}

	if c.dirty.slots {
		if err := c.readSlots(); err != nil {
			return err
		}
	}
	if c.dirty.members || c.anyDirtyUnder(c.paths.members) {
		if err := c.readMembers(); err != nil {
			return err
		}
	}
	if c.conn.SessionID() != c.regSession && !c.waitingID {
		if err := c.register(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Coordinator) anyDirtyUnder(dir string) bool {
	for p := range c.dirty.data {
		if path.Dir(p) == dir {
			return true
		}
	}
	return false
}

func (c *Coordinator) ensureRoot() error {
	for _, p := range []string{c.cfg.Root, c.paths.members, c.paths.slots, c.paths.jobs} {
		if err := createPath(c.conn, p); err != nil {
			return err
		}
	}
	return nil
}

// createPath creates p and its parents as persistent nodes if missing.
func createPath(conn *zk.Conn, p string) error {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := ""
	for _, part := range parts {
		cur += "/" + part
		_, err := conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("creating %s: %w", cur, err)
		}
	}
	return nil
}

// readChildren lists dir with a child watch, and reads the data of every
// child whose data watch is not armed (new or changed), arming it.
func (c *Coordinator) readChildren(dir string, got func(name string, data []byte, st *zk.Stat), gone func(name string), have func() []string) error {
	names, _, _, err := c.conn.ChildrenW(dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
		p := dir + "/" + n
		if c.armed[p] && !c.dirty.data[p] {
			continue
		}
		data, st, _, err := c.conn.GetW(p)
		if errors.Is(err, zk.ErrNoNode) {
			delete(set, n) // deleted between the listing and the read
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		c.armed[p] = true
		delete(c.dirty.data, p)
		got(n, data, st)
	}
	for _, n := range have() {
		if !set[n] {
			gone(n)
			delete(c.armed, dir+"/"+n)
		}
	}
	return nil
}

func (c *Coordinator) readMembers() error {
	err := c.readChildren(c.paths.members,
		func(id string, data []byte, st *zk.Stat) {
			m, err := decodeMember(id, data)
			if err != nil {
				c.log.Warn("ignoring a member node", "path", c.paths.member(id), "err", err)
				delete(c.state.Members, id)
				return
			}
			if id == c.cfg.MemberID && st.EphemeralOwner != c.conn.SessionID() {
				// Our ID, held by another session: a previous run of this
				// member not yet expired, or a duplicate --cluster.member-id.
				// It counts as a member like any other until it goes.
				c.waitFor(id)
			}
			c.state.Members[id] = m
		},
		func(id string) {
			delete(c.state.Members, id)
			if id == c.cfg.MemberID {
				c.waitingID = false
				if c.regSession == c.conn.SessionID() {
					// Someone deleted our node: register again.
					c.log.Warn("our member node was deleted by someone else; registering again")
					c.regSession = 0
				}
			}
		},
		func() []string { return mapKeys(c.state.Members) })
	if err == nil {
		c.dirty.members = false
	}
	return err
}

func (c *Coordinator) waitFor(id string) {
	if c.waitingID {
		return
	}
	c.waitingID = true
	c.log.Warn("our member ID is held by another ZooKeeper session (a previous run not yet expired, or another process with the same --cluster.member-id); waiting for it to go",
		"member", id, "session_timeout", c.cfg.SessionTimeout)
}

func (c *Coordinator) readSlots() error {
	slots, err := c.slotNodes(c.state.Slots)
	if err != nil {
		return err
	}
	c.state.Slots = slots
	c.dirty.slots = false
	return nil
}

// slotNodes lists the slot nodes, with a child watch, and reads those not
// in known (their created_ms never changes; register passes nil to get
// fresh versions of all).
func (c *Coordinator) slotNodes(known map[int]slotInfo) (map[int]slotInfo, error) {
	names, _, _, err := c.conn.ChildrenW(c.paths.slots)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", c.paths.slots, err)
	}
	out := make(map[int]slotInfo, len(names))
	for _, n := range names {
		i, ok := parseSlotName(n)
		if !ok {
			continue
		}
		if si, have := known[i]; have {
			out[i] = si
			continue
		}
		data, st, err := c.conn.Get(c.paths.slot(i))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", c.paths.slot(i), err)
		}
		si, err := decodeSlot(data)
		if err != nil {
			c.log.Warn("ignoring a slot node", "path", c.paths.slot(i), "err", err)
			continue
		}
		si.version = st.Version
		out[i] = si
	}
	return out, nil
}

// register claims a slot and creates our member node in one transaction
// (see the package doc for why it cannot double-claim).
func (c *Coordinator) register() error {
	for attempt := 0; attempt < 20; attempt++ {
		// Fresh slot versions first, then the members: a claim committed
		// after the slot read fails our version check, one committed
		// before it is visible in the member read.
		slots, err := c.slotNodes(nil)
		if err != nil {
			return err
		}
		c.state.Slots = slots
		c.dirty.members = true
		if err := c.readMembers(); err != nil {
			return err
		}
		if c.waitingID {
			return nil
		}
		// Instants travel as Unix milliseconds: use exactly what peers
		// will read, or this member and they would disagree on a due
		// instant that falls within the truncated part of a millisecond.
		now := time.Now().Truncate(time.Millisecond)
		since := now.Add(c.cfg.HandoverDelay)
		if !c.othersActive(now) {
			since = now // nobody to take targets from
		}
		slot, exists := c.state.claim(c.cfg.MemberID)
		me := Member{ID: c.cfg.MemberID, Address: c.cfg.Address, Version: c.cfg.Version, Started: now, Slot: slot, Since: since}
		ops := []any{&zk.CreateRequest{Path: c.paths.member(me.ID), Data: me.encode(), Acl: zk.WorldACL(zk.PermAll), Flags: zk.FlagEphemeral}}
		si := slotInfo{Member: me.ID, Created: since}
		if exists {
			si.Created = slots[slot].Created
			ops = append(ops, &zk.SetDataRequest{Path: c.paths.slot(slot), Data: si.encode(), Version: slots[slot].version})
		} else {
			if slot > maxSlot {
				return fmt.Errorf("no free ring slot: %d slots in use", slot)
			}
			ops = append(ops, &zk.CreateRequest{Path: c.paths.slot(slot), Data: si.encode(), Acl: zk.WorldACL(zk.PermAll)})
		}
		_, err = c.conn.Multi(ops...)
		switch {
		case err == nil:
			c.regSession = c.conn.SessionID()
			c.suspended = false
			c.state.Members[me.ID] = me
			c.state.Slots[slot] = si
			c.m.registrations.Inc()
			c.h.Resume() // a fresh registration: nothing stale to hold for
			c.log.Info("registered in ZooKeeper", "member", me.ID, "slot", slot, "owns_from", since.Format(time.RFC3339Nano), "session", fmt.Sprintf("%#x", c.regSession))
			return nil
		case errors.Is(err, zk.ErrNodeExists), errors.Is(err, zk.ErrBadVersion):
			continue // lost a race for the slot (or our ID): look again
		default:
			return fmt.Errorf("registering member %q: %w", me.ID, err)
		}
	}
	return errors.New("registering: lost the race for a slot 20 times")
}

func (c *Coordinator) othersActive(t time.Time) bool {
	for id, m := range c.state.Members {
		if id != c.cfg.MemberID && (m.Leaving.IsZero() || t.Before(m.Leaving)) {
			return true
		}
	}
	return false
}

// readJobs re-reads the job nodes and pushes the job set if it changed.
func (c *Coordinator) readJobs() error {
	err := c.readChildren(c.paths.jobs,
		func(name string, data []byte, _ *zk.Stat) { c.jobData[name] = data },
		func(name string) { delete(c.jobData, name) },
		func() []string { return mapKeys(c.jobData) })
	if err != nil {
		return err
	}
	c.dirty.jobs = false
	c.pushJobs()
	return nil
}

// pushJobs parses the job nodes as last read against the current globals,
// and hands the job set to the Handler if it changed.
func (c *Coordinator) pushJobs() {
	jobs := ParseJobs(c.jobData, c.cfg.Global, c.paths.jobs)
	if jobsEqual(jobs, c.jobsOut) {
		return
	}
	old := map[string]string{}
	for _, je := range c.jobsOut.Invalid {
		old[je.Name] = je.Err.Error()
	}
	for _, je := range jobs.Invalid {
		if old[je.Name] != je.Err.Error() {
			c.log.Error("skipping an invalid job in ZooKeeper; the other jobs run on", "job", je.Name, "path", c.paths.job(je.Name), "err", strings.ReplaceAll(je.Err.Error(), "\n", "; "))
		}
	}
	c.m.setJobs(jobs)
	c.jobsOut = jobs
	c.h.SetJobs(jobs)
	c.log.Info("jobs from ZooKeeper", "valid", len(jobs.Config.ScrapeConfigs), "invalid", len(jobs.Invalid))
}

// SetGlobal replaces the global section the jobs inherit (a reload of the
// member's configuration file); the jobs are re-resolved and pushed if
// that changes them. It does not block.
func (c *Coordinator) SetGlobal(g config.GlobalConfig) {
	c.inMu.Lock()
	c.newGlobal = &g
	c.inMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// ParseJobs turns job node data (name → YAML) into a job set: each job is
// parsed and validated by config/, must be named like its node, and
// inherits global. Invalid ones are listed, never fatal.
func ParseJobs(data map[string][]byte, global config.GlobalConfig, dir string) Jobs {
	out := Jobs{Config: &config.Config{Global: global}}
	names := mapKeys(data)
	sort.Strings(names)
	for _, name := range names {
		sc, err := ParseJob(name, data[name], global, dir+"/"+name)
		if err != nil {
			out.Invalid = append(out.Invalid, JobError{Name: name, Err: err})
			continue
		}
		out.Config.ScrapeConfigs = append(out.Config.ScrapeConfigs, sc)
	}
	return out
}

// ParseJob validates one job node: a scrape_config named like its node,
// resolved against global. source names it in errors.
func ParseJob(name string, data []byte, global config.GlobalConfig, source string) (*config.ScrapeConfig, error) {
	sc, err := config.ParseJob(data, source)
	if err != nil {
		return nil, err
	}
	if sc.JobName != name {
		return nil, fmt.Errorf("%s: job_name %q does not match the node name %q", source, sc.JobName, name)
	}
	if err := sc.SetDefaults(global); err != nil {
		return nil, err
	}
	return sc, nil
}

func jobsEqual(a, b Jobs) bool {
	if a.Config == nil || b.Config == nil {
		return a.Config == b.Config
	}
	if !reflect.DeepEqual(a.Config.Global, b.Config.Global) {
		return false
	}
	if len(a.Invalid) != len(b.Invalid) || len(a.Config.ScrapeConfigs) != len(b.Config.ScrapeConfigs) {
		return false
	}
	for i := range a.Invalid {
		if a.Invalid[i].Name != b.Invalid[i].Name || a.Invalid[i].Err.Error() != b.Invalid[i].Err.Error() {
			return false
		}
	}
	for i, sc := range a.Config.ScrapeConfigs {
		if !sc.Equal(b.Config.ScrapeConfigs[i]) {
			return false
		}
	}
	return true
}

// pushOwnership tells the Handler the ring in force now and the next
// change, if either differs from what it was told. It returns the instant
// of the next change, for the caller's timer.
func (c *Coordinator) pushOwnership(now time.Time) (time.Time, bool) {
	if c.suspended || c.regSession == 0 || c.regSession != c.conn.SessionID() {
		return time.Time{}, false
	}
	self := c.cfg.MemberID
	d0 := c.state.slotsAt(now)
	inForce := c.pushed.next
	if now.Before(c.pushed.at) {
		inForce = c.pushed.cur
	}
	start := time.Now()
	changed := false
	if !c.pushed.valid || !sameSlots(inForce, d0) {
		c.h.SetOwner(ring.New(d0, self), now)
		c.pushed = pushedView{cur: d0, next: d0, at: now, valid: true}
		changed = true
	}
	next, ok := c.state.NextChange(now)
	if ok {
		d1 := c.state.slotsAt(next)
		if !c.pushed.at.Equal(next) || !sameSlots(c.pushed.next, d1) {
			c.h.SetOwner(ring.New(d1, self), next)
			c.pushed = pushedView{cur: d0, next: d1, at: next, valid: true}
			changed = true
		}
	} else if c.pushed.at.After(now) {
		// A pending change was withdrawn (a joiner left before its
		// instant): cancel it.
		c.h.SetOwner(ring.New(d0, self), now)
		c.pushed = pushedView{cur: d0, next: d0, at: now, valid: true}
		changed = true
	}
	if changed {
		c.m.ringChanges.Inc()
		c.m.applySeconds.Observe(time.Since(start).Seconds())
		c.statusMu.Lock()
		c.status.RingChanged = time.Now()
		c.status.Suspended = false
		c.statusMu.Unlock()
	}
	return next, ok
}

// leave announces our leave, keeps ownership until the announced instant,
// then deletes our member node.
func (c *Coordinator) leave() {
	if c.regSession == 0 || c.regSession != c.conn.SessionID() || !c.connected {
		return
	}
	me, ok := c.state.Members[c.cfg.MemberID]
	if !ok {
		return
	}
	now := time.Now().Truncate(time.Millisecond) // see register
	me.Leaving = now.Add(c.cfg.HandoverDelay)
	if !c.othersActive(now) || c.suspended {
		me.Leaving = now
	}
	p := c.paths.member(me.ID)
	if _, err := c.conn.Set(p, me.encode(), -1); err != nil {
		c.log.Warn("announcing our leave failed; deleting our member node now", "err", err)
		me.Leaving = now
	} else {
		c.state.Members[me.ID] = me
		c.pushOwnership(now)
		c.log.Info("leaving the pool; scraping until the hand-over instant", "at", me.Leaving.Format(time.RFC3339Nano))
		time.Sleep(time.Until(me.Leaving))
	}
	if err := c.conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		c.log.Warn("deleting our member node failed; it goes with the session", "err", err)
	}
	c.log.Info("left the pool")
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// zkLogger routes the client's log lines to slog at debug level: it logs
// every reconnect attempt, which the Coordinator already reports once.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	z.l.Debug("zookeeper client: " + fmt.Sprintf(format, args...))
}
