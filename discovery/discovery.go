// Package discovery turns each job's service-discovery configs into target
// groups and hands the full, current set of a job's groups to a sync
// function whenever it changes.
//
// # Shape
//
// Each SD config entry of a job (one dns_sd_configs item, one
// consul_sd_configs item, …) is a provider: a goroutine that refreshes on
// its own schedule and publishes its complete current group set, keeping
// the last good groups of whatever failed. A job runner per job merges its
// providers' sets and calls the sync function when the merged set differs
// from the last one it sent. Providers wake their runner through a
// capacity-one channel, so a burst of refreshes costs one merge.
//
// On reload, a provider whose config (mechanism and every field) is
// unchanged keeps running with its state; only new providers start and
// removed ones stop. A job's first sync, and its first sync after new
// providers start, waits until each provider has finished one refresh
// (successful or not), so a restart never syncs a half-discovered set: the
// engine keeps the previous groups meanwhile.
//
// Every goroutine is started by the Manager (runners, providers) or by a
// provider (its lookups and watches), stopped by context and waited for:
// Run returns only after all of them have exited.
package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"go.yaml.in/yaml/v3"

	"github.com/shoal-scraper/shoal/config"
)

// SyncFunc receives the complete set of target groups of a job. It is called
// from the job's runner goroutine and may block briefly. The groups are not
// modified afterwards by discovery.
type SyncFunc func(job string, groups []*targetgroup.Group)

// Config tunes discovery. Zero fields take the defaults.
type Config struct {
	// FilePoll is how often file_sd files are checked for changes (by
	// modification time, size and inode, which also catches atomic
	// renames). Default 1s: a stat per file per second is negligible, and
	// polling works where inotify does not (network filesystems,
	// bind-mounted ConfigMaps).
	FilePoll time.Duration
	// DNS is how dns_sd_configs names are resolved.
	DNS DNSConfig
	// Consul tunes consul_sd_configs watches.
	Consul ConsulConfig
	// Now is the clock for status times; default time.Now.
	Now func() time.Time
}

// Manager runs discovery for a set of jobs.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	sync SyncFunc
	m    *metrics

	mu   sync.Mutex
	ctx  context.Context // set by Run
	jobs map[string]*jobRunner
	wg   sync.WaitGroup
}

// New returns a Manager; metrics are registered with reg.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, sync SyncFunc) (*Manager, error) {
	if cfg.FilePoll <= 0 {
		cfg.FilePoll = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.DNS = cfg.DNS.withDefaults()
	cfg.Consul = cfg.Consul.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, log: logger, sync: sync, m: m, jobs: map[string]*jobRunner{}}, nil
}

// Run blocks until ctx is done, then stops every job's discovery and waits
// for it. ApplyConfig may be called before or during Run.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	for _, r := range m.jobs {
		m.startRunner(r)
	}
	m.mu.Unlock()
	<-ctx.Done()
	m.wg.Wait()
}

// ApplyConfig starts discovery for new jobs and stops it for removed ones.
// Within a job, SD configs that are unchanged keep running untouched (their
// targets, schedule and last good state); new ones start, removed ones
// stop. Fields other than the SD configs do not concern discovery.
func (m *Manager) ApplyConfig(cfgs []*config.ScrapeConfig) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[string]*jobRunner, len(cfgs))
	for _, sc := range cfgs {
		r := m.jobs[sc.JobName]
		if r == nil {
			r = &jobRunner{name: sc.JobName, trigger: make(chan struct{}, 1)}
		}
		delete(m.jobs, sc.JobName)
		next[sc.JobName] = r
		m.setProviders(r, sc)
		if m.ctx != nil && r.cancel == nil {
			m.startRunner(r)
		}
	}
	for name, r := range m.jobs {
		if r.cancel != nil {
			r.cancel()
		}
		// The engine drops a removed job's targets itself; the metrics
		// of a job that no longer exists would only mislead.
		m.m.dropJob(name)
	}
	m.jobs = next
}

// setProviders gives r the providers of sc, reusing running providers
// whose key is unchanged. Caller holds m.mu.
func (m *Manager) setProviders(r *jobRunner, sc *config.ScrapeConfig) {
	specs := m.specs(sc)
	r.mu.Lock()
	old := r.providers
	r.mu.Unlock()
	used := make([]bool, len(old))
	ps := make([]*provider, 0, len(specs))
	for _, s := range specs {
		var p *provider
		for i, o := range old {
			if !used[i] && o.key == s.key {
				used[i], p = true, o
				break
			}
		}
		if p == nil {
			p = &provider{key: s.key, mech: s.mech, run: s.run, notify: r.wake, now: m.cfg.Now}
			if s.run == nil {
				p.groups, p.ready = s.static, true
			}
			if r.ctx != nil {
				m.startProvider(r, p)
			}
		}
		p.setName(s.name)
		ps = append(ps, p)
	}
	for i, o := range old {
		if !used[i] && o.cancel != nil {
			o.cancel()
		}
	}
	r.mu.Lock()
	r.providers = ps
	r.mu.Unlock()
	r.wake()
}

// spec is one provider a job's config asks for.
type spec struct {
	key, mech, name string
	static          []*targetgroup.Group // for static_configs
	run             func(context.Context, *provider)
}

// specs lists the providers of a job, in config order.
func (m *Manager) specs(sc *config.ScrapeConfig) []spec {
	job := sc.JobName
	var out []spec
	if len(sc.StaticConfigs) > 0 {
		static := slices.Clone(sc.StaticConfigs)
		out = append(out, spec{key: key("static", static), mech: "static", name: "static_configs", static: static})
	}
	for i, c := range sc.FileSDConfigs {
		d := newFileDiscoverer(job, c, m.cfg.FilePoll, m.log, m.m)
		out = append(out, spec{key: key("file", c), mech: "file", name: fmt.Sprintf("file_sd_configs[%d]", i), run: d.run})
	}
	for i, c := range sc.DNSSDConfigs {
		d := newDNSDiscoverer(job, c, m.cfg.DNS, m.log, m.m)
		out = append(out, spec{key: key("dns", c), mech: "dns", name: fmt.Sprintf("dns_sd_configs[%d]", i), run: d.run})
	}
	for i, c := range sc.ConsulSDConfigs {
		d := newConsulDiscoverer(job, c, m.cfg.Consul, m.log, m.m)
		out = append(out, spec{key: key("consul", c), mech: "consul", name: fmt.Sprintf("consul_sd_configs[%d]", i), run: d.run})
	}
	return out
}

// key identifies a provider by mechanism and canonical config: two
// providers with equal keys discover the same targets.
func key(mech string, cfg any) string {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		// Unreachable for the config types; a unique key only costs a
		// restart of the provider.
		return fmt.Sprintf("%s/%p", mech, cfg)
	}
	return mech + "\n" + string(b)
}

func (m *Manager) startRunner(r *jobRunner) {
	r.ctx, r.cancel = context.WithCancel(m.ctx)
	r.mu.Lock()
	for _, p := range r.providers {
		if p.cancel == nil {
			m.startProvider(r, p)
		}
	}
	r.mu.Unlock()
	ctx := r.ctx
	m.wg.Go(func() { r.loop(ctx, m.sync) })
	r.wake()
}

func (m *Manager) startProvider(r *jobRunner, p *provider) {
	if p.run == nil {
		p.cancel = func() {}
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	p.cancel = cancel
	m.wg.Go(func() { p.run(ctx, p) })
}

// jobRunner merges a job's providers and syncs.
type jobRunner struct {
	name    string
	trigger chan struct{} // capacity 1: wakes loop, bursts coalesce

	// ctx and cancel are set when the runner starts; guarded by the
	// Manager's mu.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	providers []*provider
}

func (r *jobRunner) wake() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// loop syncs the merged groups each time a provider publishes, once all
// providers are ready, and only when the merged set changed.
func (r *jobRunner) loop(ctx context.Context, sync SyncFunc) {
	var last []*targetgroup.Group
	synced := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.trigger:
		}
		r.mu.Lock()
		ps := slices.Clone(r.providers)
		r.mu.Unlock()
		var all []*targetgroup.Group
		ready := true
		for _, p := range ps {
			gs, ok := p.snapshot()
			ready = ready && ok
			all = append(all, gs...)
		}
		if !ready || (synced && reflect.DeepEqual(all, last)) {
			continue
		}
		sync(r.name, all)
		last, synced = all, true
	}
}

// provider is one SD config of a job: its goroutine (run) publishes the
// provider's whole current group set after every refresh.
type provider struct {
	key  string
	mech string
	run  func(context.Context, *provider) // nil for static_configs
	// notify wakes the job runner; now is the clock for status times.
	notify func()
	now    func() time.Time
	cancel context.CancelFunc // set when started; guarded by Manager.mu

	mu          sync.Mutex
	name        string // e.g. "dns_sd_configs[0]"; changes if reused at another index
	groups      []*targetgroup.Group
	ready       bool
	lastRefresh time.Time
	err         string
	targets     int
}

func (p *provider) setName(n string) {
	p.mu.Lock()
	p.name = n
	p.mu.Unlock()
}

// publish records the outcome of a refresh: groups is the provider's full
// current set (the last good groups of whatever failed included), err the
// problems of this refresh or nil. The groups must not be modified
// afterwards.
func (p *provider) publish(groups []*targetgroup.Group, err error) {
	n := 0
	for _, g := range groups {
		n += len(g.Targets)
	}
	p.mu.Lock()
	p.groups, p.ready, p.lastRefresh, p.targets = groups, true, p.now(), n
	p.err = ""
	if err != nil {
		p.err = err.Error()
	}
	p.mu.Unlock()
	p.notify()
}

// touch records a refresh that changed nothing.
func (p *provider) touch() {
	p.mu.Lock()
	p.lastRefresh = p.now()
	p.mu.Unlock()
}

func (p *provider) snapshot() ([]*targetgroup.Group, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.groups, p.ready
}

// Status is the state of one SD config of a job, for /targets.
type Status struct {
	// Config names the entry, e.g. "dns_sd_configs[0]".
	Config string `json:"config"`
	// Mechanism is file, dns or consul.
	Mechanism string `json:"mechanism"`
	// Targets is how many targets it currently contributes (the last
	// good ones when refreshes fail).
	Targets int `json:"targets"`
	// LastRefresh is when its last refresh ended; zero before the first.
	LastRefresh time.Time `json:"lastRefresh"`
	// Error is what went wrong in the last refresh ("" if nothing did).
	Error string `json:"error"`
}

// Status returns the discovery state of every job's SD configs (static
// configs left out), by job name, each job's in config order.
func (m *Manager) Status() map[string][]Status {
	m.mu.Lock()
	runners := make([]*jobRunner, 0, len(m.jobs))
	for _, r := range m.jobs {
		runners = append(runners, r)
	}
	m.mu.Unlock()
	out := make(map[string][]Status, len(runners))
	for _, r := range runners {
		r.mu.Lock()
		ps := slices.Clone(r.providers)
		r.mu.Unlock()
		var st []Status
		for _, p := range ps {
			if p.run == nil {
				continue
			}
			p.mu.Lock()
			st = append(st, Status{Config: p.name, Mechanism: p.mech, Targets: p.targets, LastRefresh: p.lastRefresh, Error: p.err})
			p.mu.Unlock()
		}
		if st != nil {
			out[r.name] = st
		}
	}
	return out
}
