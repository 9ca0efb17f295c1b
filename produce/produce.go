// Package produce turns finished scrapes into output: the types the engine
// hands over (Scrape, Sample, Series) and the sinks that consume them.
//
// The engine owns every Scrape and Series it passes to a sink. A sink's Write
// runs on the scraping worker's goroutine, must not block on I/O for long
// (the Kafka sink enqueues into a bounded buffer), and must copy whatever it
// keeps past the call.
package produce

import (
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

// StaleNaN is Prometheus's staleness marker: a NaN with a fixed bit pattern.
// Compare with IsStale, never with ==.
var StaleNaN = math.Float64frombits(value.StaleNaN)

// IsStale reports whether v is a staleness marker.
func IsStale(v float64) bool { return math.Float64bits(v) == value.StaleNaN }

// Series is one series of one target, with its final labels (after target
// labels, honor_labels, metric_relabel_configs and external labels).
//
// A Series lives as long as the target's series cache keeps it, so the same
// *Series comes back scrape after scrape while the exporter keeps writing the
// series the same way. Labels and Hash never change after creation.
type Series struct {
	Labels labels.Labels
	Hash   uint64 // Labels.Hash()

	// Enc is scratch space owned by the process's sink: a sink may keep an
	// encoding of Labels here and reuse it on the next scrape. Only the
	// worker scraping the series' target touches a Series during Write, so
	// no lock is needed. The engine never reads or writes it.
	Enc []byte
}

// Sample is one value of one series at one time.
type Sample struct {
	Series *Series
	T      int64 // milliseconds since the Unix epoch
	V      float64
}

// Scrape is one scrape of one target: every sample it produced, including
// the synthetic series (up, scrape_duration_seconds, ...) and staleness
// markers. It is valid only during Sink.Write.
type Scrape struct {
	Key      string // target key: job + "/" + instance; the Kafka record key
	Job      string
	Instance string
	T        int64 // scrape timestamp, ms
	Samples  []Sample
}

// Reset empties s for reuse, keeping its capacity. Series pointers are
// cleared so a pooled Scrape does not pin series of removed targets.
func (s *Scrape) Reset() {
	clear(s.Samples)
	s.Samples = s.Samples[:0]
	s.Key, s.Job, s.Instance, s.T = "", "", "", 0
}
