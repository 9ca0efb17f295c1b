package engine

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/shoal-scraper/shoal/internal/gunzip"
	"github.com/shoal-scraper/shoal/parse"
	"github.com/shoal-scraper/shoal/produce"
)

// timestampTolerance: a scrape that starts within this much of its due
// instant (and within 1% of the interval) is stamped with the due instant,
// as Prometheus's ScrapeTimestampTolerance does. Perfectly regular timestamps compress far
// better downstream (delta-of-delta is zero) and the error is below what a
// 1 ms timestamp can tell anyway.
const timestampTolerance = 2 * time.Millisecond

var errSampleLimit = errors.New("sample limit exceeded")

// A scrape yields the processor every yieldSamples samples it parses and
// every yieldBytes it gunzips (runtime.Gosched). Why: on one P (one core, a
// container limited to one CPU, the bench) the runtime preempts a goroutine
// only after 10 ms, and a huge exposition (kube-state-metrics of a large
// cluster: hundreds of thousands of series, tens of megabytes) takes tens
// of ms to gunzip and parse; the timing wheel, whose timers fall due
// meanwhile, and every other target's scrape would wait in stretches of
// 10 ms. Each yield costs a few hundred ns, and neither count is reached by
// an ordinary exporter (a node_exporter has about 500 samples in 100 KB), so
// they cost nothing there; between yields are about 1 to 3 ms of work. The
// Kafka sink's compressor yields likewise (produce.batchCompressor).
const (
	yieldSamples = 4096              // a power of two
	yieldBytes   = gunzip.YieldBytes // internal/gunzip yields itself
)

// scrape performs one scrape of t due at due and writes the result to the
// sink. The caller holds t.scrapeMu. p is the calling worker's parser: a
// parser holds buffers sized for the largest body it has seen, so one per
// worker rather than one per target keeps memory proportional to the
// worker count.
//
// Steps: fetch → parse, where every line first costs a cache lookup by its
// raw series bytes (a hit skips label parsing, relabeling and hashing) →
// staleness markers for series seen last time and not now → synthetic
// series → sink. A failure anywhere fails the whole scrape as in Prometheus:
// none of its samples are written, every series of the previous scrape gets
// a staleness marker, and up is 0.
func (e *Engine) scrape(t *target, due time.Time, p *parse.Parser) {
	j := t.job
	start := time.Now()
	ts := start
	// As Prometheus: the tolerance is at most 1% of the interval.
	if d := start.Sub(due); d >= 0 && d <= min(timestampTolerance, t.interval/100) {
		ts = due
	}
	tms := ts.UnixMilli()
	if t.cache == nil {
		t.cache = parse.NewCache[*cached]()
		t.lb = labels.NewBuilder(labels.EmptyLabels())
	}
	out := e.getScrape(t.lastOut)
	defer e.putScrape(out)
	out.Key, out.Job, out.Instance, out.T = t.key, j.cfg.JobName, t.instance, tms
	out.Memo = &t.memo

	t.cache.Begin()
	var (
		scraped, post, added int
		err                  = j.forcedErr()
	)
	if err == nil {
		var r response
		err = j.client.fetch(&t.conns, t.url, t.timeout, start.Add(t.timeout), t.lastSize, &r)
		if err == nil {
			t.lastSize = len(r.Body)
			j.m.bytes.Add(float64(len(r.Body)))
			var f parse.Format
			if f, err = parse.FormatFor(r.ContentType, string(j.cfg.FallbackScrapeProtocol)); err == nil {
				scraped, post, added, err = e.appendSamples(t, p, out, r.Body, f, tms)
			}
		}
		r.release()
	}
	stale := func(c *cached) {
		if !c.dropped && !c.noStale {
			out.Samples = append(out.Samples, produce.Sample{Series: &c.Series, T: tms, V: produce.StaleNaN})
		}
	}
	if err != nil {
		clear(out.Samples) // before it is truncated: a pooled Scrape pins no series
		out.Samples = out.Samples[:0]
		post, added = 0, 0
		t.cache.Abort()
		t.cache.Stale(stale)
	} else {
		t.cache.Stale(stale)
	}
	dur := time.Since(start)

	up := 1.0
	if err != nil {
		up = 0
	}
	e.appendReport(t, out, tms, [numReport]float64{up, dur.Seconds(), float64(scraped), float64(post), float64(added)})

	t.lastOut = len(out.Samples)
	if werr := e.sink.Write(out); werr != nil {
		e.sinkError(werr, len(out.Samples))
	}
	if err != nil {
		j.m.failed.Inc()
	} else {
		j.m.ok.Inc()
		j.m.samples.Add(float64(post))
	}
	j.m.duration.Observe(dur.Seconds())

	t.statusMu.Lock()
	t.lastScrape, t.lastDuration, t.lastSamples = start, dur, post
	t.nextScrape = due.Add(t.interval)
	if err != nil {
		t.health = HealthDown
		if t.lastErr != err.Error() { // keep the old string: no allocation per failing scrape
			t.lastErr = err.Error()
		}
	} else {
		t.health, t.lastErr = HealthUp, ""
	}
	t.statusMu.Unlock()
}

// appendSamples parses body and appends its samples to out.
func (e *Engine) appendSamples(t *target, p *parse.Parser, out *produce.Scrape, body []byte, f parse.Format, tms int64) (scraped, post, added int, err error) {
	j := t.job
	cfg := j.cfg
	p.Reset(body, f)
	defer p.Reset(nil, f) // drop references to the body
	limit := int(cfg.SampleLimit)
	for p.Next() {
		scraped++
		if scraped&(yieldSamples-1) == 0 {
			runtime.Gosched()
		}
		ser := p.Series()
		pts, hasTS := p.Timestamp()
		noStale := hasTS && !cfg.TrackTimestampsStaleness
		c, seen, ok := t.cache.Get(ser)
		switch {
		case !ok || c.gen != t.gen || c.noStale != noStale:
			// Slow path: a series new to this target (or a job config
			// change since it was cached): parse and relabel its labels.
			var nc *cached
			if nc, err = e.newSeries(t, p, noStale); err != nil {
				return scraped, post, added, err
			}
			if ok && !c.dropped && (nc.dropped || !labels.Equal(c.Labels(), nc.Labels())) {
				// The job's relabeling changed what this line becomes:
				// the old series ends here.
				out.Samples = append(out.Samples, produce.Sample{Series: &c.Series, T: tms, V: produce.StaleNaN})
			} else if ok && !c.dropped && !nc.dropped {
				// Same labels: keep the series (and its sink encoding).
				c.gen, c.noStale = nc.gen, nc.noStale
				nc = c
			}
			t.cache.Put(ser, nc)
			if !nc.dropped && (!ok || c.dropped || seen == parse.SeenEarlier) {
				added++
			}
			c = nc
		case seen == parse.SeenEarlier:
			// Back after missing the previous scrape: Prometheus counts it
			// as added (its cache forgets series at once; ours keeps them
			// a while to skip re-parsing).
			if !c.dropped {
				added++
			}
		case seen == parse.SeenThisScrape:
			// The same series twice in one scrape: the first wins, as in
			// Prometheus's appender (duplicate sample for timestamp).
			j.m.duplicates.Inc()
			continue
		}
		if c.dropped {
			continue // by metric_relabel_configs
		}
		post++
		if limit > 0 && post > limit {
			return scraped, post, added, errSampleLimit
		}
		st := tms
		if hasTS && cfg.HonorTimestamps {
			st = pts
		}
		out.Samples = append(out.Samples, produce.Sample{Series: &c.Series, T: st, V: p.Value()})
	}
	return scraped, post, added, p.Err()
}

// newSeries computes the final series of the parser's current sample:
// target labels per honor_labels, metric_relabel_configs, external labels,
// then the label limits, as a new cache value (or the target's shared one
// for a dropped series).
func (e *Engine) newSeries(t *target, p *parse.Parser, noStale bool) (*cached, error) {
	j := t.job
	cfg := j.cfg
	lset, err := p.Labels()
	if err != nil {
		return nil, err
	}
	lb := t.lb
	lb.Reset(lset)
	if cfg.HonorLabels {
		t.labels.Range(func(l labels.Label) {
			if !lset.Has(l.Name) {
				lb.Set(l.Name, l.Value)
			}
		})
	} else {
		var conflicts []labels.Label
		t.labels.Range(func(l labels.Label) {
			if v := lset.Get(l.Name); v != "" {
				conflicts = append(conflicts, labels.Label{Name: l.Name, Value: v})
			}
			lb.Set(l.Name, l.Value)
		})
		// Prometheus's resolveConflictingExposedLabels: shortest names first,
		// prefixing exported_ until the name is free.
		slices.SortStableFunc(conflicts, func(a, b labels.Label) int { return len(a.Name) - len(b.Name) })
		for _, l := range conflicts {
			name := l.Name
			for {
				name = model.ExportedLabelPrefix + name
				if lb.Get(name) == "" {
					lb.Set(name, l.Value)
					break
				}
			}
		}
	}
	if len(cfg.MetricRelabelConfigs) > 0 && !relabel.ProcessBuilder(lb, cfg.MetricRelabelConfigs...) {
		return t.droppedValue(noStale), nil
	}
	e.addExternal(lb)
	final := lb.Labels()
	if final.IsEmpty() || final.Get(model.MetricNameLabel) == "" {
		return t.droppedValue(noStale), nil
	}
	if !final.IsValid(model.UTF8Validation) {
		return nil, fmt.Errorf("invalid metric name or label names: %s", final.String())
	}
	if err := checkLabelLimits(final, cfg.LabelLimit, cfg.LabelNameLengthLimit, cfg.LabelValueLengthLimit); err != nil {
		return nil, err
	}
	c := &cached{gen: t.gen, noStale: noStale}
	t.baseLabels(e).Init(&c.Series, final)
	return c, nil
}

// addExternal adds the global external labels a series does not carry.
func (e *Engine) addExternal(lb *labels.Builder) {
	ext := e.external.Load()
	if ext == nil {
		return
	}
	ext.Range(func(l labels.Label) {
		if lb.Get(l.Name) == "" {
			lb.Set(l.Name, l.Value)
		}
	})
}

// checkLabelLimits applies label_limit, label_name_length_limit and
// label_value_length_limit with Prometheus's messages.
func checkLabelLimits(ls labels.Labels, limit, nameLimit, valueLimit uint) error {
	if limit == 0 && nameLimit == 0 && valueLimit == 0 {
		return nil
	}
	name := ls.Get(model.MetricNameLabel)
	if n := ls.Len(); limit > 0 && uint(n) > limit {
		return fmt.Errorf("label_limit exceeded (metric: %.50s, number of labels: %d, limit: %d)", name, n, limit)
	}
	var err error
	ls.Range(func(l labels.Label) {
		if err != nil {
			return
		}
		if nameLimit > 0 && uint(len(l.Name)) > nameLimit {
			err = fmt.Errorf("label_name_length_limit exceeded (metric: %.50s, label name: %.50s, length: %d, limit: %d)", name, l.Name, len(l.Name), nameLimit)
		} else if valueLimit > 0 && uint(len(l.Value)) > valueLimit {
			err = fmt.Errorf("label_value_length_limit exceeded (metric: %.50s, label name: %.50s, value: %.50q, length: %d, limit: %d)", name, l.Name, l.Value, len(l.Value), valueLimit)
		}
	})
	return err
}

// appendReport appends the synthetic series. Their labels are the target
// labels plus external labels, never relabeled, as in Prometheus.
func (e *Engine) appendReport(t *target, out *produce.Scrape, tms int64, v [numReport]float64) {
	for i := range numReport {
		s := t.reportSeries(e, i)
		out.Samples = append(out.Samples, produce.Sample{Series: s, T: tms, V: v[i]})
	}
}

// reportSeries returns the i-th synthetic series of t, creating it once.
func (t *target) reportSeries(e *Engine, i int) *produce.Series {
	if s := t.report[i]; s != nil {
		return s
	}
	lb := labels.NewBuilder(t.labels)
	lb.Set(model.MetricNameLabel, reportNames[i])
	e.addExternal(lb)
	s := t.baseLabels(e).Series(lb.Labels())
	t.report[i] = s
	return s
}

// baseLabels returns what every series of t shares: its target labels and
// the external labels it does not carry (see produce.Series, "Memory"),
// made once, and again if the external labels change (series made before
// keep theirs, as they keep their labels). The caller holds t.scrapeMu.
func (t *target) baseLabels(e *Engine) *produce.BaseLabels {
	ext := e.external.Load()
	if t.base != nil && t.baseExt == ext {
		return t.base
	}
	lb := labels.NewBuilder(t.labels)
	e.addExternal(lb)
	t.base, t.baseExt = produce.NewBaseLabels(lb.Labels()), ext
	return t.base
}

// endOfLife writes staleness markers for every live series of t, report
// series included: the target left discovery (or its job was removed). The
// caller holds t.scrapeMu.
func (e *Engine) endOfLife(t *target, now time.Time) {
	if t.cache == nil {
		return // never scraped: nothing to mark
	}
	tms := now.UnixMilli()
	out := e.getScrape(t.lastOut)
	defer e.putScrape(out)
	out.Key, out.Job, out.Instance, out.T = t.key, t.job.cfg.JobName, t.instance, tms
	out.Memo = &t.memo
	t.cache.Live(func(c *cached) {
		if !c.dropped && !c.noStale {
			out.Samples = append(out.Samples, produce.Sample{Series: &c.Series, T: tms, V: produce.StaleNaN})
		}
	})
	for _, s := range t.report {
		if s != nil {
			out.Samples = append(out.Samples, produce.Sample{Series: s, T: tms, V: produce.StaleNaN})
		}
	}
	if err := e.sink.Write(out); err != nil {
		e.sinkError(err, len(out.Samples))
	}
}

// getScrape returns an empty Scrape with room for n samples, to fill and
// hand to the sink. A Scrape holds a sample slice as long as the target's
// largest scrape; one per target was 12 KiB of a node_exporter target's
// memory, while only the scrapes in flight need one, so they are pooled,
// by capacity (sizedPool): a huge target's Scrape serves the next huge
// scrape, not a small one.
func (e *Engine) getScrape(n int) *produce.Scrape {
	if s, _ := e.scrapes.get(n).(*produce.Scrape); s != nil {
		return s
	}
	return &produce.Scrape{Samples: make([]produce.Sample, 0, e.scrapes.alloc(n))}
}

// putScrape empties s (Reset drops its series pointers, so a pooled Scrape
// pins no series of a removed target) and returns it to the pool. s must
// not be used after putScrape. Outliers are not kept: one target with
// millions of series must not pin their samples' slice.
func (e *Engine) putScrape(s *produce.Scrape) {
	s.Reset()
	e.scrapes.put(s, cap(s.Samples))
}

// scrapeClasses: Scrapes are pooled for 1024 to 1M samples (24 KiB to
// 24 MiB); those for 32K samples and more are also kept.
const scrapeMinShift, scrapeClasses = 10, 11
