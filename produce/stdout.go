package produce

import (
	"bufio"
	"encoding/binary"
	"io"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Text writes one line per sample:
//
//	metric_name{label="value",...} VALUE TIMESTAMP_MS
//
// in the Prometheus text exposition syntax, so the output can be grepped and
// read by anything that reads that format. A staleness marker is written
// with the value "stale" (it is a NaN with a special bit pattern, which the
// text format cannot tell apart from an ordinary NaN).
//
// Safe for concurrent use: each scrape is formatted into a pooled buffer and
// written under a lock, so the lines of one scrape stay together.
type Text struct {
	mu sync.Mutex
	w  *bufio.Writer
	// bufs holds *[]byte scratch buffers for formatting one scrape.
	bufs sync.Pool
	// tmp is the memo of scrapes that come without one, under tmpMu.
	tmpMu   sync.Mutex
	tmp     encMemo
	samples atomic.Int64
}

// NewText returns a Text sink writing to w (typically os.Stdout).
func NewText(w io.Writer) *Text {
	return &Text{w: bufio.NewWriterSize(w, 256<<10)}
}

// Write formats s and writes it. The text of each series is kept in the
// target's memo (Scrape.Memo), so a steady-state scrape allocates nothing
// here.
func (t *Text) Write(s *Scrape) error {
	bp, _ := t.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := (*bp)[:0]
	m := s.Memo.part(0)
	if m == nil {
		m = &t.tmp
		t.tmpMu.Lock()
	}
	t.memoize(m, s.Samples)
	off := 0
	for i := range s.Samples {
		smp := &s.Samples[i]
		var text []byte
		text, off = m.chunk(off)
		b = append(b, text...)
		b = append(b, ' ')
		if IsStale(smp.V) {
			b = append(b, "stale"...)
		} else {
			b = AppendValue(b, smp.V)
		}
		b = append(b, ' ')
		b = strconv.AppendInt(b, smp.T, 10)
		b = append(b, '\n')
	}
	t.mu.Lock()
	_, err := t.w.Write(b)
	if err == nil {
		err = t.w.Flush()
	}
	t.mu.Unlock()
	t.samples.Add(int64(len(s.Samples)))
	if m == &t.tmp {
		m.reset(textFormat)
		t.tmpMu.Unlock()
	}
	if cap(b) <= 4<<20 { // do not keep outliers
		*bp = b
		t.bufs.Put(bp)
	}
	return err
}

// memoize brings m up to date with samples: the text of every series
// after those that repeat m's, each prefixed with its length.
func (t *Text) memoize(m *encMemo, samples []Sample) {
	if m.format != textFormat {
		m.reset(textFormat)
	}
	n := m.hits(samples)
	if n == len(samples) {
		return
	}
	m.truncate(n)
	var text []byte
	for _, smp := range samples[n:] {
		text = appendSeriesText(text[:0], smp.Series.Range)
		m.enc = binary.AppendUvarint(m.enc, uint64(len(text)))
		m.enc = append(m.enc, text...)
		m.series = append(m.series, smp.Series)
	}
}

// Flush writes out anything buffered.
func (t *Text) Flush() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.w.Flush()
}

// Samples is how many samples were written.
func (t *Text) Samples() int64 { return t.samples.Load() }

// AppendValue appends v as the text format writes floats.
func AppendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// AppendSeriesText appends ls as name{label="value",...}, escaping values as
// the text format does. A metric name that is not a legacy-valid name is
// written quoted inside the braces, as Prometheus 3 does.
func AppendSeriesText(b []byte, ls labels.Labels) []byte {
	return appendSeriesText(b, ls.Range)
}

// appendSeriesText is AppendSeriesText for labels given by their Range.
func appendSeriesText(b []byte, rng func(func(labels.Label))) []byte {
	var name string
	rng(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			name = l.Value
		}
	})
	quoted := !legacyName(name)
	if !quoted {
		b = append(b, name...)
	}
	b = append(b, '{')
	first := true
	if quoted {
		b = strconv.AppendQuote(b, name)
		first = false
	}
	rng(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			return
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		if legacyName(l.Name) {
			b = append(b, l.Name...)
		} else {
			b = appendEscaped(append(b, '"'), l.Name)
			b = append(b, '"')
		}
		b = append(b, '=', '"')
		b = appendEscaped(b, l.Value)
		b = append(b, '"')
	})
	if first && !quoted {
		return b[:len(b)-1] // no labels: drop the '{'
	}
	return append(b, '}')
}

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			if c < utf8.RuneSelf {
				b = append(b, c)
			} else {
				_, n := utf8.DecodeRuneInString(s[i:])
				b = append(b, s[i:i+n]...)
				i += n
				continue
			}
		}
		i++
	}
	return b
}

func legacyName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// Discard drops every scrape, counting samples: the sink for benchmarks.
type Discard struct {
	samples atomic.Int64
	scrapes atomic.Int64
}

// Write counts s and drops it.
func (d *Discard) Write(s *Scrape) error {
	d.samples.Add(int64(len(s.Samples)))
	d.scrapes.Add(1)
	return nil
}

// Samples is how many samples were discarded.
func (d *Discard) Samples() int64 { return d.samples.Load() }

// Scrapes is how many scrapes were discarded.
func (d *Discard) Scrapes() int64 { return d.scrapes.Load() }
