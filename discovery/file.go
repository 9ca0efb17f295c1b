package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
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
// list of {targets, labels}, each group getting __meta_filepath. A file that
// cannot be read or parsed keeps its last good groups and is reported once
// per version of the file (it is read again when it changes, and at every
// full refresh).
type fileDiscoverer struct {
	job    string
	cfg    *config.FileSDConfig
	log    *slog.Logger
	reads  prometheus.Counter
	fails  prometheus.Counter
	poll   time.Duration
	stamps map[string]fileStamp
	groups map[string][]*targetgroup.Group // last good groups per file
	errs   map[string]error                // files whose last read failed
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
		reads:  m.refreshes.WithLabelValues(job, "file"),
		fails:  m.failures.WithLabelValues(job, "file"),
		stamps: map[string]fileStamp{},
		groups: map[string][]*targetgroup.Group{},
		errs:   map[string]error{},
	}
}

// run polls the files every d.poll and re-reads all of them every
// refresh_interval (a backstop, as in Prometheus), publishing when the
// groups or the set of failing files change, and after each full re-read.
func (d *fileDiscoverer) run(ctx context.Context, p *provider) {
	refresh := time.Duration(d.cfg.RefreshInterval)
	if refresh <= 0 {
		refresh = config.DefaultFileSDRefreshInterval
	}
	tick := time.NewTicker(d.poll)
	defer tick.Stop()
	var lastFull time.Time
	first := true
	for {
		force := first || time.Since(lastFull) >= refresh
		if force {
			lastFull = time.Now()
		}
		if changed := d.refresh(force); changed || force {
			p.publish(d.all(), d.err())
		}
		first = false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refresh re-reads files that changed (or all, with force) and reports
// whether the group set or the set of failing files changed.
func (d *fileDiscoverer) refresh(force bool) (changed bool) {
	present := map[string]bool{}
	failed := func(f string, err error) {
		if prev, ok := d.errs[f]; !ok || prev.Error() != err.Error() {
			changed = true
		}
		d.errs[f] = err
		d.fails.Inc()
		// Keep the last good groups: a half-written file must not make
		// targets vanish.
		d.log.Error("file_sd refresh failed; keeping the last good targets", "file", f, "err", err)
	}
	for _, pat := range d.cfg.Files {
		matches, err := filepath.Glob(pat)
		if err != nil {
			present[pat] = true
			if _, seen := d.errs[pat]; !seen || force {
				failed(pat, err)
			}
			continue
		}
		for _, f := range matches {
			present[f] = true
			st, err := stat(f)
			if err != nil {
				// Gone between Glob and stat: the next poll sees it.
				continue
			}
			if old, ok := d.stamps[f]; ok && old == st && !force {
				continue
			}
			// Record the stamp even when the read fails, so a broken
			// file is read (and reported) again only once it changes.
			d.stamps[f] = st
			d.reads.Inc()
			gs, err := readFile(f)
			if err != nil {
				failed(f, err)
				continue
			}
			if _, ok := d.errs[f]; ok {
				delete(d.errs, f)
				changed = true
			}
			if !reflect.DeepEqual(d.groups[f], gs) {
				d.groups[f] = gs
				changed = true
			}
		}
	}
	for f := range d.stamps {
		if !present[f] {
			delete(d.stamps, f)
		}
	}
	for f := range d.groups {
		if !present[f] {
			delete(d.groups, f)
			changed = true
		}
	}
	for f := range d.errs {
		if !present[f] {
			delete(d.errs, f)
			changed = true
		}
	}
	return changed
}

// err summarises the files whose last read failed, or nil.
func (d *fileDiscoverer) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	files := slices.Sorted(maps.Keys(d.errs))
	errs := make([]error, len(files))
	for i, f := range files {
		errs[i] = d.errs[f]
	}
	return errors.Join(errs...)
}

func (d *fileDiscoverer) all() []*targetgroup.Group {
	files := slices.Sorted(maps.Keys(d.groups))
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
