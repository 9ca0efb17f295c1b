package produce

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"unique"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

// RecordFormat selects the remote-write message a Kafka record carries.
// The zero value is not a format; use RW1, RW2 or ParseRecordFormat.
type RecordFormat uint8

const (
	RW1 RecordFormat = iota + 1 // prometheus.WriteRequest (remote write 1.0)
	RW2                         // io.prometheus.write.v2.Request (remote write 2.0)
)

// textFormat marks a memo the Text sink wrote; it is not a record format.
const textFormat RecordFormat = 0xff

// ParseRecordFormat parses a format as a flag or config file spells it:
// "rw1", "1.0" or "prometheus.WriteRequest" for RW1, and "rw2", "2.0" or
// "io.prometheus.write.v2.Request" for RW2. The error names the accepted
// values.
func ParseRecordFormat(s string) (RecordFormat, error) {
	switch s {
	case "rw1", "1.0", "prometheus.WriteRequest":
		return RW1, nil
	case "rw2", "2.0", "io.prometheus.write.v2.Request":
		return RW2, nil
	}
	return 0, fmt.Errorf("parse record format %q: want rw1 (or 1.0, prometheus.WriteRequest) or rw2 (or 2.0, io.prometheus.write.v2.Request)", s)
}

// String returns "rw1" or "rw2", which ParseRecordFormat reads back, or
// "RecordFormat(N)" for anything else.
func (f RecordFormat) String() string {
	switch f {
	case RW1:
		return "rw1"
	case RW2:
		return "rw2"
	}
	return fmt.Sprintf("RecordFormat(%d)", uint8(f))
}

// ContentType returns the remote-write specification's Content-Type for
// the format's message, the value of a record's content-type header, or ""
// for an invalid format.
func (f RecordFormat) ContentType() string {
	switch f {
	case RW1:
		return "application/x-protobuf;proto=prometheus.WriteRequest"
	case RW2:
		return "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	}
	return ""
}

// MarshalText returns String's text, so that a RecordFormat works with
// flag.TextVar and in YAML and JSON. It fails for an invalid format.
func (f RecordFormat) MarshalText() ([]byte, error) {
	if f != RW1 && f != RW2 {
		return nil, fmt.Errorf("marshal record format: invalid %s", f)
	}
	return []byte(f.String()), nil
}

// UnmarshalText sets f with ParseRecordFormat.
func (f *RecordFormat) UnmarshalText(b []byte) error {
	v, err := ParseRecordFormat(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Encoder encodes scrapes as remote-write messages, writing the protobuf
// wire format by hand. Not safe for concurrent use: keep one per goroutine
// or in a sync.Pool. Between calls it holds only reusable scratch memory
// and no references to scrapes or series, so it needs no Reset.
//
// # The target's memo
//
// Both formats keep what encoding a target's last message computed in the
// target's Memo (Scrape.Memo; see its ownership rule: only the worker
// scraping the target writes it, here during Append), so that a
// steady-state scrape copies bytes and writes only values and timestamps.
// The memo holds the last message's series, in order, and per series its
// encoded labels: RW1 the labels field, RW2 the labels_refs field and the
// symbol entries the series added. A memo written in one format is reset
// by the other (correct, but slow: a process uses one format).
//
// A series is a hit when it is the memo's series at the same position and
// every series before it in this message was a hit: then this message so
// far repeats the memo's message, series for series (a *Series is
// immutable and the memo's pointers keep it alive, so pointer equality is
// label equality). For RW1 that is more than needed (a series' labels field
// depends on its labels alone), but the memo is walked in order, so after
// the first miss the rest is encoded again.
//
// # RW2: interning without hashing
//
// A 2.0 message refers to label strings by their index in the message's own
// symbol table. Symbols are numbered in order of first use, walking the
// series in sample order and each series' labels as name, value, name,
// value, ... (the order of Prometheus's writev2.SymbolsTable), after the
// empty string at index 0 that the specification requires. So the table,
// and every series' labels_refs, are a function of the sequence of series
// before it in the message, and a target that exposes the same series in
// the same order produces byte-identical tables and refs scrape after
// scrape, which also lets zstd match a whole scrape against the previous
// one in a batch. For a run of hits the cached refs and new symbols are
// exactly what interning would compute: a hit costs a pointer comparison
// and a copy of its refs and new symbols; no string is hashed or compared.
//
// The first series that is not a hit (a new series, one that moved) ends
// the run for the rest of the message: the slow path then interns through
// a map[string]uint32, filled first by replaying the labels of the series
// before it (which rebuilds the same numbering), and rewrites the rest of
// the memo. A string equal to the one at the same place in the previous
// series (metric name, label names, job, instance) takes that one's ref
// without a lookup. The map is cleared at the end of such a message;
// clear keeps its buckets, so the slow path does not allocate once a
// target's shape has been seen. It costs about 230 ns/sample on the node
// fixture (BenchmarkEncode, shape=inserted; a third more than when each
// series kept its own encoding, for the unique.Make of the symbols a
// series adds), against 23 for hits: a target whose series set changes
// pays it for the part of that one scrape after the first change, and is
// back to hits on the next scrape.
//
// A scrape written as several messages (a sink splitting it into records)
// keeps a memo per message (AppendPart): a sink should split a scrape at
// the same places scrape after scrape (for example by sample count) so
// that each part repeats its own last message.
//
// # Layout of a message, and lengths
//
// RW1 writes one TimeSeries per sample. RW2 writes the symbols field first
// (consumers that decode as they read see the table before the series that
// use it), then one TimeSeries per sample. Both need every length prefix
// before the bytes it covers; all are known before writing: a TimeSeries is
// its cached labels field plus a Sample of at most 20 bytes. RW2 therefore
// makes two passes over the samples: the first checks or rebuilds the
// memo and writes the symbols, the second writes the series. There is no
// reserve-and-shift and no per-message scratch buffer.
//
// Sample fields are written as value then timestamp, as the .proto
// declares them, and both always, even when zero (proto3 encoders omit
// zero fields; decoders accept either), so -0 keeps its sign (gogo's
// marshaller drops it), every sample has the same shape, and RW1 output is
// byte-identical to prompb's when no field is zero.
//
// # Tried and dropped
//
// Each series' encoding kept in the Series itself (a []byte owned by the
// sink), with the id of the message that wrote it and its position there
// to tell a hit: as fast, but about 85 bytes per series against 28 (see
// Memo), 43 KB per node_exporter target.
//
// Timestamp before value in Sample (any field order is valid protobuf):
// zstd batches of ten scrapes grew by 16% (RW2) and 35% (RW1), since the
// timestamp, which changes every scrape, then splits the match between
// a series' unchanged labels and its unchanged value. Omitting zero values
// saved 2% (RW2) and cost 2% (RW1) compressed.
//
// Per-message interning through a map for every label string (what
// writev2.SymbolsTable does) costs a hash and a lookup per string, about
// 10 strings per series: several times the 30 ns/sample budget. A
// process-wide table of strings numbered once would make interning an
// array lookup, but it grows with every label value ever seen (pod names
// churn) and needs a lock or a concurrent structure; the run-of-hits rule
// needs neither.
type Encoder struct {
	format RecordFormat
	// bps is the size per sample of the last message, to grow dst once
	// per Append instead of letting append double it repeatedly.
	bps int
	// tmp stands in for the memo of a Scrape without one; it is emptied
	// after each such message so it keeps no series alive.
	tmp encMemo
	// slow counts the series encoded from their labels rather than from
	// a memo: what tests check the memo against.
	slow int

	// RW2 slow-path state, valid during one Append.
	nsyms uint32 // symbols in this message's table so far, "" included
	// syms maps symbol → index. It is filled (from the start of the
	// message) only once a message needs it, and cleared at the end of
	// that message, so it never keeps label strings alive between calls.
	syms map[string]uint32
	// prev holds the strings and refs of the last series interned by the
	// slow path, in label order; cleared with syms.
	prev  []symRef
	fresh []byte // one series' new symbol entries
	// refs gathers the labels_refs chunks of one slow-path run before
	// they go to the memo in one copy: the memo outlives the scrape, so
	// it is allocated once at its final size rather than grown by append,
	// whose outgrown arrays (about 18 KB per node_exporter target on its
	// first scrape, in a dozen size classes) would leave holes in spans
	// that long-lived objects keep in use.
	refs []byte
}

// NewEncoder returns an Encoder for format f. It panics if f is neither RW1
// nor RW2.
func NewEncoder(f RecordFormat) *Encoder {
	if f != RW1 && f != RW2 {
		panic(fmt.Sprintf("produce.NewEncoder: invalid %s", f))
	}
	return &Encoder{format: f}
}

// Format returns the encoder's format.
func (e *Encoder) Format() RecordFormat { return e.format }

// Append appends the encoding of s (all s.Samples, in order) to dst and
// returns the extended slice: one complete message, sharing no memory with
// s. Bytes of dst before len(dst) are left alone. Only s.Samples and
// s.Memo are read; a shallow copy of s whose Samples is a sub-slice
// encodes as a complete message too (but see AppendPart). s.Memo, if not
// nil, is rewritten, so Append must run where Memo's ownership rule allows
// a sink to write it: on the worker scraping the target, during
// Sink.Write. Steady state (the target's series in the same order as last
// time, and dst with room): 0 allocations.
func (e *Encoder) Append(dst []byte, s *Scrape) []byte { return e.AppendPart(dst, s, 0) }

// AppendPart is Append for the part-th (from 0) of several messages that
// together carry a scrape: each part is remembered in s.Memo apart from
// the others.
func (e *Encoder) AppendPart(dst []byte, s *Scrape, part int) []byte {
	m := s.Memo.part(part)
	if m == nil {
		m = &e.tmp
	}
	if m.format != e.format {
		m.reset(e.format)
	}
	start := len(dst)
	// The target's last message scaled to this scrape's samples (a
	// target back from an outage has many more than its last message),
	// a sixteenth more: values and timestamps vary in length. Else the
	// encoder's last bytes per sample.
	if n := len(s.Samples); m.count > 0 {
		want := int(uint64(m.size) * uint64(n) / uint64(m.count))
		dst = slices.Grow(dst, want+want/16+16)
	} else if e.bps > 0 {
		dst = slices.Grow(dst, n*e.bps+16)
	}
	slow := e.slow
	if e.format == RW1 {
		dst = e.appendRW1(dst, s.Samples, m)
	} else {
		dst = e.appendRW2(dst, s.Samples, m)
	}
	if e.slow != slow && m != &e.tmp {
		m.fit()
	}
	if n := len(s.Samples); n > 0 {
		e.bps = (len(dst)-start)/n + 1
	}
	if m == &e.tmp {
		m.reset(e.format)
	} else {
		m.size = uint32(min(len(dst)-start, math.MaxUint32))
		m.count = uint32(min(len(s.Samples), math.MaxUint32))
	}
	return dst
}

// Field tags: field number << 3 | wire type (0 varint, 1 fixed64, 2 bytes).
const (
	// prometheus.WriteRequest
	tagRW1TimeSeries = 1<<3 | 2 // repeated TimeSeries timeseries = 1
	tagRW1Labels     = 1<<3 | 2 // TimeSeries: repeated Label labels = 1
	tagRW1Samples    = 2<<3 | 2 // TimeSeries: repeated Sample samples = 2
	tagRW1Name       = 1<<3 | 2 // Label: string name = 1
	tagRW1Value      = 2<<3 | 2 // Label: string value = 2

	// io.prometheus.write.v2.Request
	tagRW2Symbols    = 4<<3 | 2 // repeated string symbols = 4
	tagRW2TimeSeries = 5<<3 | 2 // repeated TimeSeries timeseries = 5
	tagRW2LabelsRefs = 1<<3 | 2 // TimeSeries: repeated uint32 labels_refs = 1 (packed)
	tagRW2Samples    = 2<<3 | 2 // TimeSeries: repeated Sample samples = 2

	// Sample in both: double value = 1; int64 timestamp = 2.
	tagSampleValue     = 1<<3 | 1
	tagSampleTimestamp = 2 << 3 // wire type 0 (varint)
)

// encMemo is one message's part of a target's Memo: the series of the
// target's last message in that place (its whole scrape, or one record of
// a split scrape), in order, and what encoding them computed. A message
// whose first n series are the memo's first n, pointer for pointer,
// encodes them exactly as the memo says (see Encoder); the rest of it is
// encoded on the slow path and replaces the rest of the memo.
type encMemo struct {
	format RecordFormat
	// size is the length of the message encoded last time, which sizes
	// the output for the next (a memo part grows by 8 bytes): a pooled
	// encoder's bytes per sample are those of whatever target it served
	// last, and a huge target's 1 MB message grew by appending when it
	// followed a small one. count is its samples.
	size, count uint32
	series      []*Series
	// enc holds one chunk per series, in order. RW2: the series'
	// labels_refs field (tag, length, packed refs), which is
	// self-delimiting. RW1: the length of the series' labels field, as a
	// uvarint, then the field (one tag, length, Label per label). Text
	// (the Text sink): the length of the series' text, then the text.
	enc []byte
	// syms (RW2) holds, per series, the symbols field entries (tag,
	// length, string) for the strings the series added to the table,
	// interned: the metric-name entries of a node_exporter are the same
	// bytes for every target, so a fleet keeps one copy. The zero handle
	// when it added none.
	syms []unique.Handle[string]
}

// reset empties m, dropping its series pointers, keeping its memory.
func (m *encMemo) reset(f RecordFormat) {
	clear(m.series)
	m.series = m.series[:0]
	clear(m.syms)
	m.syms = m.syms[:0]
	m.enc = m.enc[:0]
	m.format = f
}

// truncate keeps the memo of the first n series: the slow path rewrites
// the rest. Finding where their chunks end takes a walk over them, which
// steady state, a hit to the end, never needs.
func (m *encMemo) truncate(n int) {
	off := 0
	for range n {
		if m.format == RW2 {
			off += fieldLen(m.enc[off:])
		} else {
			l, k := binary.Uvarint(m.enc[off:])
			off += k + int(l)
		}
	}
	clear(m.series[n:])
	m.series = m.series[:n]
	if len(m.syms) > n {
		clear(m.syms[n:])
		m.syms = m.syms[:n]
	}
	m.enc = m.enc[:off]
}

// fit trims m's slices to their length plus a sixteenth once the slow
// path has left them a quarter or more unused: append grows a slice by up
// to half again, and a memo is kept for the target's life. The headroom
// keeps a target whose shape alternates (a series that comes and goes)
// from reallocating every scrape; a steady target reallocates nothing.
func (m *encMemo) fit() {
	m.series = fitSlice(m.series, 8)
	m.syms = fitSlice(m.syms, 8)
	m.enc = fitSlice(m.enc, 64)
}

func fitSlice[S ~[]E, E any](s S, extra int) S {
	n := len(s)
	if cap(s) <= n+n/4+extra {
		return s
	}
	return append(make(S, 0, n+n/16+extra), s...)
}

// part returns the memo of the i-th message of the target's scrape, or nil
// for a nil Memo.
func (m *Memo) part(i int) *encMemo {
	if m == nil {
		return nil
	}
	for len(m.parts) <= i {
		m.parts = append(m.parts, encMemo{})
	}
	return &m.parts[i]
}

// trim forgets the memos of messages after the first n: the target's
// scrapes now take fewer records.
func (m *Memo) trim(n int) {
	if m == nil || len(m.parts) <= n {
		return
	}
	clear(m.parts[n:])
	m.parts = m.parts[:n]
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// fieldLen is the size of the length-delimited field (tag, uvarint length,
// bytes) at the start of b.
func fieldLen(b []byte) int {
	if n := b[1]; n < 0x80 {
		return 2 + int(n)
	}
	n, k := binary.Uvarint(b[1:])
	return 1 + k + int(n)
}

// sampleLen is the size of a Sample message with both fields written.
func sampleLen(t int64) int { return 1 + 8 + 1 + uvarintLen(uint64(t)) }

// appendSample appends a Sample message's length and fields. The value's
// bits are written unchanged (staleness markers, NaN payloads, -0); the
// timestamp is an int64 varint, 10 bytes when negative.
func appendSample(b []byte, v float64, t int64) []byte {
	b = append(b, tagSampleValue)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	b = append(b, tagSampleTimestamp)
	return binary.AppendUvarint(b, uint64(t))
}

// hits returns how many series at the start of samples are the memo's, in
// the same places.
func (m *encMemo) hits(samples []Sample) int {
	n, k := 0, min(len(samples), len(m.series))
	for n < k && samples[n].Series == m.series[n] {
		n++
	}
	return n
}

// chunk returns the length-prefixed chunk (RW1, text) at off in m.enc and
// the offset after it.
func (m *encMemo) chunk(off int) ([]byte, int) {
	l, k := binary.Uvarint(m.enc[off:])
	end := off + k + int(l)
	return m.enc[off+k : end], end
}

func (e *Encoder) appendRW1(dst []byte, samples []Sample, m *encMemo) []byte {
	// The labels field depends on the labels alone, so the memo's chunks
	// stay valid for every series that is where it was; the rest are
	// encoded again.
	n := m.hits(samples)
	if n < len(samples) {
		m.truncate(n)
		e.slow += len(samples) - n
		for _, smp := range samples[n:] {
			m.series = append(m.series, smp.Series)
			m.enc = appendRW1Labels(m.enc, smp.Series)
		}
	}
	off := 0
	for i := range samples {
		smp := &samples[i]
		var lb []byte
		lb, off = m.chunk(off)
		sl := sampleLen(smp.T)
		dst = append(dst, tagRW1TimeSeries)
		dst = binary.AppendUvarint(dst, uint64(len(lb)+2+sl))
		dst = append(dst, lb...)
		dst = append(dst, tagRW1Samples, byte(sl))
		dst = appendSample(dst, smp.V, smp.T)
	}
	return dst
}

// appendRW1Labels appends the length of sr's labels as a TimeSeries'
// labels field, as a uvarint, then the field.
func appendRW1Labels(b []byte, sr *Series) []byte {
	size := 0
	sr.Range(func(l labels.Label) { size += rw1LabelSize(l) })
	b = binary.AppendUvarint(b, uint64(size))
	sr.Range(func(l labels.Label) {
		b = append(b, tagRW1Labels)
		b = binary.AppendUvarint(b, uint64(rw1LabelMsgSize(l)))
		b = append(b, tagRW1Name)
		b = binary.AppendUvarint(b, uint64(len(l.Name)))
		b = append(b, l.Name...)
		b = append(b, tagRW1Value)
		b = binary.AppendUvarint(b, uint64(len(l.Value)))
		b = append(b, l.Value...)
	})
	return b
}

// rw1LabelMsgSize is the size of l as a Label message.
func rw1LabelMsgSize(l labels.Label) int {
	return 1 + uvarintLen(uint64(len(l.Name))) + len(l.Name) + 1 + uvarintLen(uint64(len(l.Value))) + len(l.Value)
}

// rw1LabelSize is the size of l as one element of the labels field: tag,
// length and the Label message.
func rw1LabelSize(l labels.Label) int {
	n := rw1LabelMsgSize(l)
	return 1 + uvarintLen(uint64(n)) + n
}

func (e *Encoder) appendRW2(dst []byte, samples []Sample, m *encMemo) []byte {
	dst = append(dst, tagRW2Symbols, 0) // symbols[0] = ""

	// Pass 1: the symbols. The series that repeat the memo's prefix add
	// what they added last time; the rest are interned on the slow path,
	// which rewrites the memo from there.
	n := m.hits(samples)
	for _, h := range m.syms[:n] {
		if h != (unique.Handle[string]{}) {
			dst = append(dst, h.Value()...)
		}
	}
	if n < len(samples) {
		m.truncate(n)
		e.slow += len(samples) - n
		dst = e.internRW2(dst, samples, n, m)
	}

	// Pass 2: the series.
	off := 0
	for i := range samples {
		smp := &samples[i]
		l := fieldLen(m.enc[off:])
		refs := m.enc[off : off+l]
		off += l
		sl := sampleLen(smp.T)
		dst = append(dst, tagRW2TimeSeries)
		dst = binary.AppendUvarint(dst, uint64(len(refs)+2+sl))
		dst = append(dst, refs...)
		dst = append(dst, tagRW2Samples, byte(sl))
		dst = appendSample(dst, smp.V, smp.T)
	}
	return dst
}

type symRef struct {
	s   string
	ref uint32
}

// internRW2 is the slow path: it interns the labels of samples[from:]
// through e.syms, appends the symbols they add to dst, and appends their
// chunks to m, which holds those of samples[:from].
func (e *Encoder) internRW2(dst []byte, samples []Sample, from int, m *encMemo) []byte {
	// Replay the series before: interning in the same order gives the
	// same numbering as the table written so far.
	if e.syms == nil {
		e.syms = make(map[string]uint32)
	}
	e.syms[""] = 0
	e.nsyms = 1
	e.prev = e.prev[:0]
	for j := range from {
		e.internLabels(samples[j].Series, false)
	}
	m.series = slices.Grow(m.series, len(samples)-from)
	m.syms = slices.Grow(m.syms, len(samples)-from)
	e.refs = e.refs[:0]
	for _, smp := range samples[from:] {
		sr := smp.Series
		e.fresh = e.fresh[:0]
		e.internLabels(sr, true)
		size := 0
		for _, p := range e.prev {
			size += uvarintLen(uint64(p.ref))
		}
		e.refs = append(e.refs, tagRW2LabelsRefs)
		e.refs = binary.AppendUvarint(e.refs, uint64(size))
		for _, p := range e.prev {
			e.refs = binary.AppendUvarint(e.refs, uint64(p.ref))
		}
		var h unique.Handle[string]
		if len(e.fresh) > 0 {
			// Make copies the string only when it is new; a view of
			// fresh is enough to look it up.
			h = unique.Make(unsafe.String(&e.fresh[0], len(e.fresh)))
			dst = append(dst, e.fresh...)
		}
		m.series = append(m.series, sr)
		m.syms = append(m.syms, h)
	}
	m.enc = append(slices.Grow(m.enc, len(e.refs)), e.refs...)
	if cap(e.refs) > 1<<20 {
		e.refs = nil // do not keep an outlier's buffer
	}
	if len(e.syms) > 1<<16 {
		e.syms = nil // do not keep an outlier's table
	} else {
		clear(e.syms)
	}
	clear(e.prev)
	e.prev = e.prev[:0]
	return dst
}

// internLabels interns sr's label strings (name, value, name, value, ...) into
// e.syms, leaving their refs in e.prev, and, if emit, the entries of the
// symbols it adds in e.fresh.
//
// Neighbouring series share most strings (the metric name, label names,
// job and instance, often a label value): a string equal to the one at the
// same place in the previous series takes that one's ref, which costs a
// string comparison instead of a hash and a probe.
func (e *Encoder) internLabels(sr *Series, emit bool) {
	i := 0
	intern := func(s string) {
		if i < len(e.prev) && e.prev[i].s == s {
			i++
			return
		}
		ref, ok := e.syms[s]
		if !ok {
			ref = e.nsyms
			e.nsyms++
			e.syms[s] = ref
			if emit {
				e.fresh = append(e.fresh, tagRW2Symbols)
				e.fresh = binary.AppendUvarint(e.fresh, uint64(len(s)))
				e.fresh = append(e.fresh, s...)
			}
		}
		if i < len(e.prev) {
			e.prev[i] = symRef{s, ref}
		} else {
			e.prev = append(e.prev, symRef{s, ref})
		}
		i++
	}
	sr.Range(func(l labels.Label) {
		intern(l.Name)
		intern(l.Value)
	})
	clear(e.prev[i:]) // do not keep strings of a longer series alive
	e.prev = e.prev[:i]
}
