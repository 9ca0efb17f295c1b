package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/coord"
	"github.com/shoal-scraper/shoal/discovery"
	"github.com/shoal-scraper/shoal/engine"
	"github.com/shoal-scraper/shoal/ring"
)

// zkFlags are the ZooKeeper connection flags shared by run, jobs and members.
type zkFlags struct {
	servers        string
	root           string
	sessionTimeout time.Duration
}

func (f *zkFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.servers, "zookeeper.servers", "", "ZooKeeper servers, host:port,... With it, run joins the pool (cluster mode) and takes its jobs from ZooKeeper.")
	fs.StringVar(&f.root, "zookeeper.root", "/shoal", "ZooKeeper node under which shoal keeps members, slots and jobs.")
	fs.DurationVar(&f.sessionTimeout, "zookeeper.session-timeout", 10*time.Second, "ZooKeeper session timeout: how long a crashed member's targets stay unscraped before peers take them over.")
}

func (f *zkFlags) list() ([]string, error) {
	var out []string
	for s := range strings.SplitSeq(f.servers, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("--zookeeper.servers: %q: want host:port", s)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("--zookeeper.servers is required")
	}
	return out, nil
}

// clusterGlobal returns the global section cluster mode runs the jobs
// under: the configuration file's, or the defaults when the file is
// absent and was not named explicitly. A file with scrape_configs is an
// error: every member would scrape those jobs in full.
func clusterGlobal(file string, explicit bool) (config.GlobalConfig, error) {
	if _, err := os.Stat(file); err != nil && !explicit {
		return config.DefaultGlobalConfig(), nil
	}
	cfg, err := config.Load(file)
	if err != nil {
		return config.GlobalConfig{}, err
	}
	if n := len(cfg.ScrapeConfigs); n > 0 {
		return config.GlobalConfig{}, fmt.Errorf("%s: %d scrape_configs: in cluster mode jobs live in ZooKeeper (shoal jobs put); the file may only hold the global section", file, n)
	}
	return cfg.Global, nil
}

// clusterHandler feeds the engine and discovery from coord/, and keeps the
// invalid jobs for /targets.
type clusterHandler struct {
	eng  *engine.Engine
	disc *discovery.Manager
	log  *slog.Logger

	mu      sync.Mutex
	invalid []coord.JobError
}

func (h *clusterHandler) SetJobs(j coord.Jobs) {
	h.mu.Lock()
	h.invalid = j.Invalid
	h.mu.Unlock()
	if err := h.eng.ApplyConfig(j.Config); err != nil {
		h.log.Error("some jobs could not be set up and are skipped", "err", err)
	}
	h.disc.ApplyConfig(j.Config.ScrapeConfigs)
}

func (h *clusterHandler) SetOwner(r *ring.Ring, at time.Time) { h.eng.SetOwner(r, at) }
func (h *clusterHandler) Resume()                             { h.eng.Resume() }

// Jobs adds the invalid jobs from ZooKeeper to the engine's, so /targets
// shows them with their error.
func (h *clusterHandler) Jobs() []engine.JobStatus {
	js := h.eng.Jobs()
	h.mu.Lock()
	for _, je := range h.invalid {
		js = append(js, engine.JobStatus{Name: je.Name, Error: "invalid job in ZooKeeper, skipped: " + je.Err.Error()})
	}
	h.mu.Unlock()
	sort.Slice(js, func(a, b int) bool { return js[a].Name < js[b].Name })
	return js
}

func (h *clusterHandler) Ready() bool { return h.eng.Ready() }
