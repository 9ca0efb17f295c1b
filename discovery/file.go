package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"go.yaml.in/yaml/v2"

	"github.com/shoal-scraper/shoal/config"
)

// fileDiscoverer reads one file_sd_configs entry: JSON or YAML files with a
// list of {targets, labels}, each target getting __meta_filepath. A file that
// cannot be read or parsed keeps its last good groups and is reported.
type fileDiscoverer struct {
	job    string
	cfg    *config.FileSDConfig
	log    *slog.Logger
	fails  prometheus.Counter
	poll   time.Duration
	stamps map[string]fileStamp
	groups map[string][]*targetgroup.Group // last good groups per file
}

type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

func newFileDiscoverer(job string, cfg *config.FileSDConfig, poll time.Duration, log *slog.Logger, m *metrics) *fileDiscoverer {
	return &fileDiscoverer{
		job:    job,
		poll:   poll,
		cfg:    cfg,
		log:    log.With("job", job, "mechanism", "file"),
		fails:  m.failures.WithLabelValues(job, "file"),
		stamps: map[string]fileStamp{},
		groups: map[string][]*targetgroup.Group{},
	}
}

func (d *fileDiscoverer) run(ctx context.Context, idx int, out chan<- fileUpdate) {
	refresh := time.Duration(d.cfg.RefreshInterval)
	if refresh <= 0 {
		refresh = 5 * time.Minute
	}
	tick := time.NewTicker(d.poll)
	defer tick.Stop()
	lastFull := time.Now()
	first := true
	for {
		force := first || time.Since(lastFull) >= refresh
		if force {
			lastFull = time.Now()
		}
		if d.refresh(force) || first {
			first = false
			select {
			case out <- fileUpdate{idx: idx, groups: d.all()}:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refresh re-reads files that changed (or all, with force) and reports
// whether the group set changed.
func (d *fileDiscoverer) refresh(force bool) (changed bool) {
	present := map[string]bool{}
	for _, pat := range d.cfg.Files {
		matches, err := filepath.Glob(pat)
		if err != nil {
			d.fail(pat, err)
			continue
		}
		for _, f := range matches {
			present[f] = true
			st, err := stat(f)
			if err != nil {
				d.fail(f, err)
				continue
			}
			if old, ok := d.stamps[f]; ok && old == st && !force {
				continue
			}
			gs, err := readFile(f)
			if err != nil {
				// Keep the last good groups: a half-written file must not
				// make targets vanish.
				d.fail(f, err)
				continue
			}
			d.stamps[f] = st
			d.groups[f] = gs
			changed = true
		}
	}
	for f := range d.groups {
		if !present[f] {
			delete(d.groups, f)
			delete(d.stamps, f)
			changed = true
		}
	}
	return changed
}

func (d *fileDiscoverer) fail(file string, err error) {
	d.fails.Inc()
	d.log.Error("file_sd refresh failed; keeping the last good targets", "file", file, "err", err)
}

func (d *fileDiscoverer) all() []*targetgroup.Group {
	files := make([]string, 0, len(d.groups))
	for f := range d.groups {
		files = append(files, f)
	}
	slices.Sort(files)
	var all []*targetgroup.Group
	for _, f := range files {
		all = append(all, d.groups[f]...)
	}
	return all
}

// readFile parses one file_sd file as Prometheus does.
func readFile(name string) ([]*targetgroup.Group, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var gs []*targetgroup.Group
	switch ext := filepath.Ext(name); strings.ToLower(ext) {
	case ".json":
		err = json.Unmarshal(b, &gs)
	case ".yml", ".yaml":
		err = yaml.UnmarshalStrict(b, &gs)
	default:
		return nil, fmt.Errorf("retrieval target groups from %q: unsupported file extension %q", name, ext)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for i, g := range gs {
		if g == nil {
			return nil, fmt.Errorf("%s: nil target group item found (index %d)", name, i)
		}
		g.Source = fmt.Sprintf("%s:%d", name, i)
		if g.Labels == nil {
			g.Labels = model.LabelSet{}
		}
		g.Labels["__meta_filepath"] = model.LabelValue(name)
	}
	return gs, nil
}
