package engine

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's own series on /metrics. Per-job children are
// resolved once per job (forJob), never per scrape.
type metrics struct {
	scrapes     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	samples     *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	duplicates  *prometheus.CounterVec
	lateness    prometheus.Histogram
	startLate   prometheus.Histogram
	skipped     *prometheus.CounterVec
	sinkErrors  prometheus.Counter
	sinkDropped prometheus.Counter
	movedAway   prometheus.Counter
	stalls      prometheus.Counter
	skippedHeld prometheus.Counter

	skippedQueue    prometheus.Counter
	skippedInFlight prometheus.Counter
}

type jobMetrics struct {
	ok, failed prometheus.Counter
	duration   prometheus.Observer
	samples    prometheus.Counter
	bytes      prometheus.Counter
	duplicates prometheus.Counter
}

func newMetrics(e *Engine, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_scrapes_total",
			Help: "Scrapes by job and result (success or failed).",
		}, []string{"job", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_scrape_duration_seconds",
			Help:    "Duration of scrapes: fetch, decompress, parse and hand-over to the sink.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"job"}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_samples_scraped_total",
			Help: "Samples scraped after metric relabeling, by job (synthetic series and staleness markers excluded).",
		}, []string{"job"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_scrape_body_bytes_total",
			Help: "Response body bytes parsed (after decompression), by job.",
		}, []string{"job"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_samples_duplicate_total",
			Help: "Samples dropped because their series appeared twice in one scrape, by job.",
		}, []string{"job"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoal_wheel_lateness_seconds",
			Help:    "How late the timing wheel handed due targets to the worker queue.",
			Buckets: []float64{.0001, .0005, .001, .002, .005, .01, .05, .1, .5, 1, 5},
		}),
		startLate: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoal_scrape_start_lateness_seconds",
			Help:    "How long after its due instant a scrape started: wheel lateness plus time queued for a worker.",
			Buckets: []float64{.0001, .0005, .001, .002, .005, .01, .05, .1, .5, 1, 5},
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_scrapes_skipped_total",
			Help: "Scheduled scrapes not run: queue_full (all workers busy and the queue full) in_flight (the previous scrape of the target still running), or stalled (held after the process stood still, cluster mode).",
		}, []string{"reason"}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_sink_errors_total",
			Help: "Scrapes the sink refused.",
		}),
		sinkDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_sink_dropped_samples_total",
			Help: "Samples lost because the sink refused their scrape.",
		}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_stalls_total",
			Help: "Times the process stood still for longer than the stall limit (cluster mode); scraping was held until the ownership view was confirmed.",
		}),
		movedAway: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_targets_handed_over_total",
			Help: "Targets this member stopped scraping at an ownership hand-over instant because another member owns them from then on.",
		}),
	}
	m.skippedQueue = m.skipped.WithLabelValues("queue_full")
	m.skippedInFlight = m.skipped.WithLabelValues("in_flight")
	m.skippedHeld = m.skipped.WithLabelValues("stalled")
	workers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shoal_scrape_workers",
		Help: "Scrape workers running (busy or idle); at most --scrape.workers. Idle ones above a small minimum exit after a few seconds.",
	}, func() float64 { return float64(e.pool.workers()) })
	for _, c := range []prometheus.Collector{workers, m.scrapes, m.duration, m.samples, m.bytes, m.duplicates, m.lateness, m.startLate, m.skipped, m.sinkErrors, m.sinkDropped, m.movedAway, m.stalls, &targetsCollector{e}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) forJob(name string) jobMetrics {
	return jobMetrics{
		ok:         m.scrapes.WithLabelValues(name, "success"),
		failed:     m.scrapes.WithLabelValues(name, "failed"),
		duration:   m.duration.WithLabelValues(name),
		samples:    m.samples.WithLabelValues(name),
		bytes:      m.bytes.WithLabelValues(name),
		duplicates: m.duplicates.WithLabelValues(name),
	}
}

// dropJob forgets a removed job's series.
func (m *metrics) dropJob(name string) {
	m.scrapes.DeleteLabelValues(name, "success")
	m.scrapes.DeleteLabelValues(name, "failed")
	m.duration.DeleteLabelValues(name)
	m.samples.DeleteLabelValues(name)
	m.bytes.DeleteLabelValues(name)
	m.duplicates.DeleteLabelValues(name)
}

var targetsDesc = prometheus.NewDesc("shoal_targets", "Targets this member scrapes, by job and health (up, down, unknown).", []string{"job", "health"}, nil)

// targetsCollector counts targets by health at collection time rather than
// keeping gauges in step on every scrape.
type targetsCollector struct{ e *Engine }

func (c *targetsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- targetsDesc }

func (c *targetsCollector) Collect(ch chan<- prometheus.Metric) {
	type counts struct{ up, down, unknown int }
	byJob := map[string]*counts{}
	c.e.mu.Lock()
	for name, j := range c.e.jobs {
		n := &counts{}
		byJob[name] = n
		for _, t := range j.targets {
			t.statusMu.Lock()
			h := t.health
			t.statusMu.Unlock()
			switch h {
			case HealthUp:
				n.up++
			case HealthDown:
				n.down++
			default:
				n.unknown++
			}
		}
	}
	c.e.mu.Unlock()
	for name, n := range byJob {
		ch <- prometheus.MustNewConstMetric(targetsDesc, prometheus.GaugeValue, float64(n.up), name, string(HealthUp))
		ch <- prometheus.MustNewConstMetric(targetsDesc, prometheus.GaugeValue, float64(n.down), name, string(HealthDown))
		ch <- prometheus.MustNewConstMetric(targetsDesc, prometheus.GaugeValue, float64(n.unknown), name, string(HealthUnknown))
	}
}
