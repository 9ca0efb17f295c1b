// Package discovery turns each job's service-discovery configs into target
// groups and hands the full, current set of a job's groups to a sync
// function whenever it changes. Each job's discovery runs on its own
// goroutine, owned by the Manager and stopped by its context.
package discovery

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/discovery/targetgroup"

	"github.com/shoal-scraper/shoal/config"
)

// SyncFunc receives the complete set of target groups of a job. It is called
// from the job's discovery goroutine and may block briefly.
type SyncFunc func(job string, groups []*targetgroup.Group)

// Config tunes discovery. Zero fields take the defaults.
type Config struct {
	// FilePoll is how often file_sd files are checked for changes (by
	// modification time, size and inode, which also catches atomic
	// renames). Default 1s: a stat per file per second is negligible, and
	// polling works where inotify does not (network filesystems,
	// bind-mounted ConfigMaps).
	FilePoll time.Duration
}

// Manager runs discovery for a set of jobs.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	sync SyncFunc
	m    *metrics

	mu   sync.Mutex
	ctx  context.Context // set by Run
	jobs map[string]*running
	wg   sync.WaitGroup
}

type running struct {
	cfg    *config.ScrapeConfig
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Manager; metrics are registered with reg.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, sync SyncFunc) (*Manager, error) {
	if cfg.FilePoll <= 0 {
		cfg.FilePoll = time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, log: logger, sync: sync, m: m, jobs: map[string]*running{}}, nil
}

// Run blocks until ctx is done, then stops every job's discovery and waits
// for it. ApplyConfig may be called before or during Run.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	for name, r := range m.jobs {
		if r.cancel == nil {
			m.start(name, r)
		}
	}
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	for _, r := range m.jobs {
		if r.cancel != nil {
			r.cancel()
		}
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// ApplyConfig starts discovery for new jobs, restarts it for changed ones
// and stops it for removed ones. Unchanged jobs keep running untouched.
func (m *Manager) ApplyConfig(cfgs []*config.ScrapeConfig) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[string]*running, len(cfgs))
	for _, sc := range cfgs {
		if r := m.jobs[sc.JobName]; r != nil && sameSD(r.cfg, sc) {
			next[sc.JobName] = r
			delete(m.jobs, sc.JobName)
			continue
		}
		r := &running{cfg: sc}
		next[sc.JobName] = r
		if m.ctx != nil {
			m.start(sc.JobName, r)
		}
	}
	for _, r := range m.jobs {
		if r.cancel != nil {
			r.cancel()
		}
	}
	m.jobs = next
}

func (m *Manager) start(name string, r *running) {
	ctx, cancel := context.WithCancel(m.ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	sc := r.cfg
	m.wg.Go(func() {
		defer close(r.done)
		m.runJob(ctx, name, sc)
	})
}

// runJob merges the job's providers and syncs on every change.
func (m *Manager) runJob(ctx context.Context, name string, sc *config.ScrapeConfig) {
	static := sc.StaticConfigs
	for i, g := range static {
		if g != nil && g.Source == "" {
			g.Source = "static/" + strconv.Itoa(i)
		}
	}
	// Static groups go out at once; file groups follow as they are read.
	m.sync(name, static)
	if len(sc.FileSDConfigs) == 0 {
		<-ctx.Done()
		return
	}
	updates := make(chan fileUpdate)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, fc := range sc.FileSDConfigs {
		fd := newFileDiscoverer(name, fc, m.cfg.FilePoll, m.log, m.m)
		wg.Go(func() { fd.run(ctx, i, updates) })
	}
	files := make([][]*targetgroup.Group, len(sc.FileSDConfigs))
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-updates:
			files[u.idx] = u.groups
		}
		all := append([]*targetgroup.Group(nil), static...)
		for _, gs := range files {
			all = append(all, gs...)
		}
		m.sync(name, all)
	}
}

// fileUpdate is the full group set of one file_sd_configs entry.
type fileUpdate struct {
	idx    int
	groups []*targetgroup.Group
}

func sameSD(a, b *config.ScrapeConfig) bool {
	return a.Equal(b)
}
