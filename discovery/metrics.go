package discovery

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	refreshes *prometheus.CounterVec
	failures  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_sd_refreshes_total",
			Help: "Service discovery lookups (a DNS name, a Consul watch query, a file read), by job and mechanism.",
		}, []string{"job", "mechanism"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_sd_refresh_failures_total",
			Help: "Service discovery lookups that failed (the last good targets were kept), by job and mechanism.",
		}, []string{"job", "mechanism"}),
	}
	for _, c := range []prometheus.Collector{m.refreshes, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// dropJob forgets a removed job's series.
func (m *metrics) dropJob(job string) {
	m.refreshes.DeletePartialMatch(prometheus.Labels{"job": job})
	m.failures.DeletePartialMatch(prometheus.Labels{"job": job})
}
