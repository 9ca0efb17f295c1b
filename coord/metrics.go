package coord

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connected     prometheus.Gauge
	expirations   prometheus.Counter
	registrations prometheus.Counter
	errors        prometheus.Counter
	ringChanges   prometheus.Counter
	applySeconds  prometheus.Histogram
	members       prometheus.Gauge
	jobs          *prometheus.GaugeVec
	jobInvalid    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_zookeeper_connected",
			Help: "Whether this member has a ZooKeeper session right now (1) or is reconnecting (0).",
		}),
		expirations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_zookeeper_session_expirations_total",
			Help: "ZooKeeper sessions that expired: each one withdrew this member's targets until it registered again.",
		}),
		registrations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_cluster_registrations_total",
			Help: "Times this member registered in ZooKeeper (1 + re-registrations after a lost session).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_zookeeper_errors_total",
			Help: "Failed ZooKeeper reads or writes (retried).",
		}),
		ringChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_cluster_ring_changes_total",
			Help: "Ownership changes handed to the engine (now or at an announced hand-over instant).",
		}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoal_cluster_rebalance_seconds",
			Help:    "Time to apply an ownership change: recomputing every target's owner and rescheduling.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .25, .5, 1, 2.5},
		}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_cluster_members",
			Help: "Members owning targets now, in this member's view.",
		}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_cluster_jobs",
			Help: "Jobs in ZooKeeper by state: valid (scraped) or invalid (skipped, see shoal_cluster_job_invalid).",
		}, []string{"state"}),
		jobInvalid: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_cluster_job_invalid",
			Help: "1 for each job node in ZooKeeper whose content is invalid; the job is skipped, the others run.",
		}, []string{"job"}),
	}
	for _, c := range []prometheus.Collector{m.connected, m.expirations, m.registrations, m.errors, m.ringChanges, m.applySeconds, m.members, m.jobs, m.jobInvalid} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) setJobs(j Jobs) {
	m.jobs.WithLabelValues("valid").Set(float64(len(j.Config.ScrapeConfigs)))
	m.jobs.WithLabelValues("invalid").Set(float64(len(j.Invalid)))
	m.jobInvalid.Reset()
	for _, je := range j.Invalid {
		m.jobInvalid.WithLabelValues(je.Name).Set(1)
	}
}
