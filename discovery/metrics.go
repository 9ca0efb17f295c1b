package discovery

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	failures *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_sd_refresh_failures_total",
			Help: "Service discovery refreshes that failed (the last good targets were kept), by job and mechanism.",
		}, []string{"job", "mechanism"}),
	}
	if err := reg.Register(m.failures); err != nil {
		return nil, err
	}
	return m, nil
}
