package engine

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/shoal-scraper/shoal/parse"
	"github.com/shoal-scraper/shoal/produce"
)

// target is one scrape target. Its identity fields are set at creation and
// never change; a target whose labels or job config change is replaced by a
// new target (which may inherit the old one's series cache, see adopt).
//
// Concurrency: the wheel and the workers share a *target. scrapeMu is held by
// the one worker scraping it, and by whoever retires it, so scrape state
// (cache, report) is only ever touched by one goroutine at a time. The
// status fields are guarded by statusMu and read by /targets.
type target struct {
	job      *job
	key      string // job + "/" + instance: ownership, phase and Kafka key
	instance string
	id       uint64 // hash of all labels and the URL: identity across syncs
	labels   labels.Labels
	disc     labels.Labels // discovered labels, before relabeling
	url      string
	interval time.Duration
	timeout  time.Duration
	offset   time.Duration // phase within the interval: hash(key) mod interval

	// removed is set when the target leaves the active set; the wheel drops
	// it at its next fire and workers skip it.
	removed atomic.Bool
	// from and until (unix ns, 0: unbounded) bound the due instants this
	// member scrapes, around an ownership hand-over (Engine.SetOwner).
	from, until atomic.Int64

	scrapeMu sync.Mutex
	// dead: the target was retired; nothing may be written for it any more.
	dead  bool
	cache *parse.Cache[*cached]
	gen   uint32 // job generation the cache entries must match
	// dropped: the cache values of series that metric relabeling
	// dropped, without and with noStale (droppedValue).
	dropped  [2]*cached
	report   [numReport]*produce.Series
	memo     produce.Memo // the sink's, handed over in every Scrape (produce.Memo)
	lastSize int          // last body size, to size the next buffer
	lastOut  int          // samples in the last Scrape, to pick the next one's pool class
	// conns: the target's keep-alive connections (httpClient.fetch),
	// closed when it is retired.
	conns conns
	lb    *labels.Builder
	// base: the labels all of the target's series share, made for the
	// external labels baseExt (target.baseLabels).
	base    *produce.BaseLabels
	baseExt *labels.Labels

	statusMu     sync.Mutex
	health       Health
	lastErr      string
	lastScrape   time.Time
	lastDuration time.Duration
	lastSamples  int
	nextScrape   time.Time
}

// cached is the series cache's value for a series: the final series (or
// dropped: metric_relabel_configs dropped it) and the job generation and
// noStale it was made with. The cache holds a *cached, an 8-byte value,
// which makes its entries 24 bytes instead of 32 (see parse.Cache), and
// the series lives in the same object: a produce.Series is 16 bytes, and
// with gen, noStale and dropped a cached is one 24-byte allocation
// (TestCachedSize) where a separate Series and cache value took 16 + 16.
// Dropped series share one value per target and noStale
// (target.droppedValue).
//
// A series whose value is remade (a config change, a change of noStale)
// keeps its *cached when its labels did not change: gen and noStale are
// updated in place, by the worker scraping the target, the only one that
// reads them.
type cached struct {
	produce.Series
	gen uint32
	// noStale: the series carried an explicit timestamp and
	// track_timestamps_staleness is off, so it gets no staleness markers.
	noStale bool
	dropped bool
}

// droppedValue returns the cache value of a series that metric relabeling
// dropped.
func (t *target) droppedValue(noStale bool) *cached {
	i := 0
	if noStale {
		i = 1
	}
	if d := t.dropped[i]; d == nil || d.gen != t.gen {
		t.dropped[i] = &cached{gen: t.gen, noStale: noStale, dropped: true}
	}
	return t.dropped[i]
}

// Synthetic series, in Prometheus's order.
const (
	repUp = iota
	repDuration
	repScraped
	repPostRelabel
	repSeriesAdded
	numReport
)

var reportNames = [numReport]string{
	"up",
	"scrape_duration_seconds",
	"scrape_samples_scraped",
	"scrape_samples_post_metric_relabeling",
	"scrape_series_added",
}

// targetsFromGroups turns discovered groups into targets the way
// Prometheus's PopulateLabels does. Targets that relabeling drops are left
// out; targets with invalid labels are reported in errs and left out.
func targetsFromGroups(j *job, groups []*targetgroup.Group) (ts []*target, errs []error) {
	lb := labels.NewBuilder(labels.EmptyLabels())
	seen := make(map[uint64]bool)
	for _, g := range groups {
		if g == nil {
			continue
		}
		for i, tl := range g.Targets {
			t, err := newTarget(j, lb, tl, g.Labels)
			if err != nil {
				errs = append(errs, fmt.Errorf("instance %d in group %q: %w", i, g.Source, err))
				continue
			}
			if t == nil || seen[t.id] {
				continue
			}
			seen[t.id] = true
			ts = append(ts, t)
		}
	}
	return ts, errs
}

func newTarget(j *job, lb *labels.Builder, tLabels, gLabels model.LabelSet) (*target, error) {
	sc := j.cfg
	lb.Reset(labels.EmptyLabels())
	for n, v := range tLabels {
		lb.Set(string(n), string(v))
	}
	for n, v := range gLabels {
		if _, ok := tLabels[n]; !ok {
			lb.Set(string(n), string(v))
		}
	}
	for _, l := range [...]labels.Label{
		{Name: model.JobLabel, Value: sc.JobName},
		{Name: model.ScrapeIntervalLabel, Value: sc.ScrapeInterval.String()},
		{Name: model.ScrapeTimeoutLabel, Value: sc.ScrapeTimeout.String()},
		{Name: model.MetricsPathLabel, Value: sc.MetricsPath},
		{Name: model.SchemeLabel, Value: sc.Scheme},
	} {
		if lb.Get(l.Name) == "" {
			lb.Set(l.Name, l.Value)
		}
	}
	for k, v := range sc.Params {
		if name := model.ParamLabelPrefix + k; len(v) > 0 && lb.Get(name) == "" {
			lb.Set(name, v[0])
		}
	}
	disc := lb.Labels()
	if !relabel.ProcessBuilder(lb, sc.RelabelConfigs...) {
		return nil, nil
	}
	addr := lb.Get(model.AddressLabel)
	if addr == "" {
		return nil, errors.New("no address")
	}
	if strings.Contains(addr, "/") {
		return nil, fmt.Errorf("%q is not a valid hostname", addr)
	}
	interval, err := model.ParseDuration(lb.Get(model.ScrapeIntervalLabel))
	if err != nil {
		return nil, fmt.Errorf("error parsing scrape interval: %w", err)
	}
	if interval == 0 {
		return nil, errors.New("scrape interval cannot be 0")
	}
	timeout, err := model.ParseDuration(lb.Get(model.ScrapeTimeoutLabel))
	if err != nil {
		return nil, fmt.Errorf("error parsing scrape timeout: %w", err)
	}
	if timeout == 0 {
		return nil, errors.New("scrape timeout cannot be 0")
	}
	if timeout > interval {
		return nil, fmt.Errorf("scrape timeout cannot be greater than scrape interval (%q > %q)", timeout, interval)
	}
	lb.Range(func(l labels.Label) {
		if strings.HasPrefix(l.Name, model.MetaLabelPrefix) {
			lb.Del(l.Name)
		}
	})
	if lb.Get(model.InstanceLabel) == "" {
		lb.Set(model.InstanceLabel, addr)
	}
	all := lb.Labels()
	var verr error
	all.Range(func(l labels.Label) {
		if verr == nil && !model.LabelValue(l.Value).IsValid() {
			verr = fmt.Errorf("invalid label value for %q: %q", l.Name, l.Value)
		}
	})
	if verr != nil {
		return nil, verr
	}

	// URL: Prometheus's Target.URL.
	params := url.Values{}
	for k, v := range sc.Params {
		params[k] = append([]string(nil), v...)
	}
	all.Range(func(l labels.Label) {
		if !strings.HasPrefix(l.Name, model.ParamLabelPrefix) {
			return
		}
		k := l.Name[len(model.ParamLabelPrefix):]
		if len(params[k]) > 0 {
			params[k][0] = l.Value
		} else {
			params[k] = []string{l.Value}
		}
	})
	u := (&url.URL{
		Scheme:   all.Get(model.SchemeLabel),
		Host:     addr,
		Path:     all.Get(model.MetricsPathLabel),
		RawQuery: params.Encode(),
	}).String()

	// Public labels: everything without the reserved "__" prefix.
	pub := labels.NewBuilder(all)
	all.Range(func(l labels.Label) {
		if strings.HasPrefix(l.Name, model.ReservedLabelPrefix) {
			pub.Del(l.Name)
		}
	})
	public := pub.Labels()
	instance := public.Get(model.InstanceLabel)
	key := sc.JobName + "/" + instance

	h := xxhash.New()
	all.Range(func(l labels.Label) {
		h.WriteString(l.Name)
		h.Write([]byte{0xff})
		h.WriteString(l.Value)
		h.Write([]byte{0xff})
	})
	h.WriteString(u)

	return &target{
		job:      j,
		key:      key,
		instance: instance,
		id:       h.Sum64(),
		labels:   public,
		disc:     disc,
		url:      u,
		interval: time.Duration(interval),
		timeout:  time.Duration(timeout),
		offset:   phase(key, time.Duration(interval)),
		health:   HealthUnknown,
	}, nil
}

// fresh returns a new target with t's identity (everything newTarget
// computes) and no state: the job keeps one template per discovered target
// and builds the live target from it when it becomes owned, so an
// ownership change costs a ring lookup per target, not a relabeling.
func (t *target) fresh() *target {
	return &target{
		job:      t.job,
		key:      t.key,
		instance: t.instance,
		id:       t.id,
		labels:   t.labels,
		disc:     t.disc,
		url:      t.url,
		interval: t.interval,
		timeout:  t.timeout,
		offset:   t.offset,
		health:   HealthUnknown,
	}
}

// phase is the target's offset within its interval: a pure function of the
// key, so every member that owns the target scrapes it at the same instants
// (DESIGN invariant 2). No per-member seed: a hand-over must not shift the
// phase, and spreading comes from the key hash alone.
//
// The offset is a whole number of milliseconds: due instants then fall on
// the wheel's 1 ms ticks, so the wheel fires them on time rather than up to
// a tick late, and the sample timestamp (in ms) is the due instant exactly.
func phase(key string, interval time.Duration) time.Duration {
	ms := uint64(interval / time.Millisecond)
	if ms == 0 {
		return 0
	}
	return time.Duration(xxhash.Sum64String(key)%ms) * time.Millisecond
}

// nextDue is the first instant at or after now that is aligned to the
// target's phase: a multiple of the interval since the Unix epoch plus the
// offset.
func (t *target) nextDue(now time.Time) time.Time {
	iv := int64(t.interval)
	n := now.UnixNano()
	base := n - n%iv + int64(t.offset)
	if base < n {
		base += iv
	}
	return time.Unix(0, base)
}

// status copies the target's state for /targets.
func (t *target) status() TargetStatus {
	t.statusMu.Lock()
	defer t.statusMu.Unlock()
	return TargetStatus{
		Job:              t.job.cfg.JobName,
		Key:              t.key,
		URL:              t.url,
		Labels:           t.labels,
		DiscoveredLabels: t.disc,
		Health:           t.health,
		LastScrape:       t.lastScrape,
		LastDuration:     t.lastDuration,
		LastError:        t.lastErr,
		LastSamples:      t.lastSamples,
		Interval:         t.interval,
		Timeout:          t.timeout,
		NextScrape:       t.nextScrape,
	}
}
