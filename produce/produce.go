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
	"unique"

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
// series the same way. Its labels never change after creation.
//
// # Memory: labels in two shared parts
//
// A target holds one Series per series it exposes, so a Series' size is
// most of what a target costs (a node_exporter exposes about 500). Most of
// a series' final labels are either the series' own (metric name and the
// labels the exporter wrote, the same for every target of a kind) or its
// target's (job, instance, other target labels, external labels, the same
// for every series of the target). BaseLabels.Series keeps the two apart: the
// own part is interned (one copy per process for a fleet of targets of one
// kind) and the target part shared by pointer; the final labels are their
// merge, built or walked on demand. A series whose labels are no such merge
// (metric relabeling rewrote a target label, honor_labels kept an exposed
// one) keeps its whole label set, interned as well.
//
// Sinks read labels only to rebuild their Memo of a target, on a series'
// first scrape or when the series order changed, so the merge is off the
// steady-state path. A Series is 16 bytes and immutable: what a sink
// remembers between scrapes lives in the target's Memo, not here.
type Series struct {
	// own is the series' labels without base's, or all its labels when
	// base is nil. A handle (a pointer) keeps the interned copy alive.
	// The zero Series has no labels.
	own  unique.Handle[labels.Labels]
	base *BaseLabels
}

// BaseLabels are labels shared by every series of one target (its target
// labels and external labels), sorted by name. Immutable once made.
type BaseLabels struct {
	ls []labels.Label
}

// NewBaseLabels returns ls as base labels (BaseLabels.Series).
func NewBaseLabels(ls labels.Labels) *BaseLabels {
	b := &BaseLabels{ls: make([]labels.Label, 0, ls.Len())}
	ls.Range(func(l labels.Label) { b.ls = append(b.ls, l) })
	return b
}

// NewSeries returns a series whose labels are ls, kept whole.
func NewSeries(ls labels.Labels) *Series {
	return &Series{own: unique.Make(ls)}
}

// Series returns a series whose labels are ls. When ls has every label of
// b, with the same value, the series keeps only its other labels and
// shares b's; otherwise it keeps ls whole, as NewSeries.
func (b *BaseLabels) Series(ls labels.Labels) *Series {
	s := new(Series)
	b.Init(s, ls)
	return s
}

// Init sets *s to the series Series(ls) returns, for a Series inside a
// caller's own struct: the engine's series cache keeps a series' cache
// fields beside it (a Series is 16 bytes; with them, one 24-byte object).
func (b *BaseLabels) Init(s *Series, ls labels.Labels) {
	n := 0
	ls.Range(func(l labels.Label) {
		for _, bl := range b.ls {
			if bl.Name == l.Name {
				if bl.Value == l.Value {
					n++
				}
				break
			}
		}
	})
	if n != len(b.ls) {
		*s = Series{own: unique.Make(ls)}
		return
	}
	own := labels.NewScratchBuilder(ls.Len() - n)
	ls.Range(func(l labels.Label) {
		if !b.has(l.Name) {
			own.Add(l.Name, l.Value)
		}
	})
	*s = Series{own: unique.Make(own.Labels()), base: b}
}

func (b *BaseLabels) has(name string) bool {
	for _, l := range b.ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

// ownLabels returns own's labels; the zero Series has none.
func (s *Series) ownLabels() labels.Labels {
	if s.own == (unique.Handle[labels.Labels]{}) {
		return labels.EmptyLabels()
	}
	return s.own.Value()
}

// Range calls f for each label of the series, sorted by name, without
// allocating.
func (s *Series) Range(f func(l labels.Label)) {
	if s.base == nil {
		s.ownLabels().Range(f)
		return
	}
	base, i := s.base.ls, 0
	s.ownLabels().Range(func(l labels.Label) {
		for ; i < len(base) && base[i].Name < l.Name; i++ {
			f(base[i])
		}
		f(l)
	})
	for ; i < len(base); i++ {
		f(base[i])
	}
}

// Labels returns the series' labels. It allocates unless the series keeps
// them whole (NewSeries); sinks on a hot path use Range.
func (s *Series) Labels() labels.Labels {
	if s.base == nil {
		return s.ownLabels()
	}
	b := labels.NewScratchBuilder(s.ownLabels().Len() + len(s.base.ls))
	s.Range(func(l labels.Label) { b.Add(l.Name, l.Value) })
	return b.Labels()
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
	// Memo is the target's Memo, or nil: sinks then work from scratch.
	Memo *Memo
}

// Reset empties s for reuse, keeping its capacity. Series pointers are
// cleared so a pooled Scrape does not pin series of removed targets.
func (s *Scrape) Reset() {
	clear(s.Samples)
	s.Samples = s.Samples[:0]
	s.Key, s.Job, s.Instance, s.T, s.Memo = "", "", "", 0, nil
}

// Memo is what the process's sink remembers about one target from one
// scrape to the next: the encoding of its last messages (see Encoder) and
// how its scrapes are split into records (Kafka). The engine keeps one per
// target, hands it over in every Scrape of the target and drops it with
// the target; only the worker scraping the target touches it, during
// Sink.Write, so it needs no lock. The engine never looks inside. The zero
// Memo is empty and ready.
//
// # Why per target, not per series
//
// A sink used to keep each series' encoded labels in the Series itself: a
// 24-byte slice header in every Series and a separate allocation behind
// it, about 85 bytes per series in all, 43 KB per node_exporter target.
// Encodings repeat per target, though: a target exposes its series in the
// same order scrape after scrape, and a message's symbol references
// depend on that order anyway. Kept per target, in a few slices, the same
// memory is about 28 bytes per series (a pointer to compare, the
// references, a handle on the symbols the series adds, which are interned
// and so shared by all targets of a kind), and a Series shrinks to 16
// bytes.
type Memo struct {
	parts []encMemo // one per message of the last scrape (records, when split)
	split int       // Kafka: samples per record when the target's scrapes are split; 0 when whole
}
