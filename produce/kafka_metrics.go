package produce

import (
	"github.com/prometheus/client_golang/prometheus"
)

// kafkaMetrics are the Kafka sink's own metrics. Every update is an atomic
// operation, so they are safe to touch from Write, the pump and promises.
type kafkaMetrics struct {
	records         prometheus.Counter
	bytes           prometheus.Counter
	batches         prometheus.Counter
	compressedBytes prometheus.Counter
	samples         prometheus.Counter
	latency         prometheus.Histogram
	bufferBytes     prometheus.Gauge
	bufferLimit     prometheus.Gauge
	errors          *prometheus.CounterVec
	errorsBy        map[string]prometheus.Counter // errors by kind, resolved once
	dropped         prometheus.Counter
}

func newKafkaMetrics(reg prometheus.Registerer, limit int64) *kafkaMetrics {
	m := &kafkaMetrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_kafka_records_total",
			Help: "Records acknowledged by Kafka (acks=all).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_kafka_bytes_total",
			Help: "Value bytes of acknowledged records, before Kafka's batch compression.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_kafka_batches_total",
			Help: "Record batches acknowledged by Kafka: records_total / batches_total is how many records zstd compresses together (see --kafka.linger).",
		}),
		compressedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_kafka_compressed_bytes_total",
			Help: "Bytes of the records of acknowledged batches after zstd, as stored by the broker (without the 61-byte header of each batch).",
		}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_kafka_samples_total",
			Help: "Samples in acknowledged records.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoal_kafka_produce_latency_seconds",
			Help:    "Time from a record's enqueue in the sink to its acknowledgement by Kafka.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 17), // 1 ms to 65 s
		}),
		bufferBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_kafka_buffer_bytes",
			Help: "Bytes held by records not yet acknowledged: queued in the sink or handed to the Kafka client (buffer capacity plus bookkeeping).",
		}),
		bufferLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_kafka_buffer_limit_bytes",
			Help: "The bound on shoal_kafka_buffer_bytes (--kafka.buffer-bytes); at the bound the oldest queued records are dropped.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kafka_errors_total",
			Help: "Errors by kind (see produce.ErrorKind): each record given up, each sample alone larger than the maximum record size (too_large), and each failed broker connection (dial, TLS, SASL). Buffer-full drops are not errors: see shoal_kafka_dropped_samples_total.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_kafka_dropped_samples_total",
			Help: "Samples that will never reach Kafka: dropped from a full buffer, in records Kafka failed, too large, or undelivered at shutdown.",
		}),
		errorsBy: map[string]prometheus.Counter{},
	}
	for _, k := range errKinds {
		m.errorsBy[k] = m.errors.WithLabelValues(k)
	}
	m.bufferLimit.Set(float64(limit))
	if reg != nil {
		reg.MustRegister(m.records, m.bytes, m.batches, m.compressedBytes, m.samples, m.latency, m.bufferBytes, m.bufferLimit, m.errors, m.dropped)
	}
	return m
}
