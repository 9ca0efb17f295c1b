package produce

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
)

// RecordFormat selects the remote-write message a Kafka record carries.
// The zero value is not a format; use RW1, RW2 or ParseRecordFormat.
type RecordFormat uint8

const (
	RW1 RecordFormat = iota + 1 // prometheus.WriteRequest (remote write 1.0)
	RW2                         // io.prometheus.write.v2.Request (remote write 2.0)
)

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
// # The per-series cache in Series.Enc
//
// Both formats keep an encoding of each series' labels in Series.Enc (see
// its ownership rule: only the worker scraping the series' target writes
// it, here during Append) so that a steady-state scrape copies bytes and
// writes only values and timestamps. The first byte of Enc says which
// format wrote it; a series encoded alternately in both formats is
// re-encoded each time (correct, but slow: a process uses one format).
//
// RW1: Enc is the tag byte and the series' `repeated Label labels` field,
// which depends on the labels alone. It is built once per series.
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
// one in a batch.
//
// Enc caches, per series, what its last encoding computed: the id of that
// message (ids come from a process-wide counter and are never reused), the
// series' position in it, its encoded labels_refs field, and the symbol
// entries it added to the table (those of its strings no series before it
// had used), ready to copy. A series is a hit when it is at the same
// position as in its last message and every series before it in this
// message was a hit on that same message: then this message so far repeats
// that message's prefix series for series, the table before the series is
// the same, and the cached refs and new symbols are exactly what interning
// would compute. A hit costs two header loads and stores and a copy of its
// new symbols; no string is hashed or compared.
//
// The first series that is not a hit (a new series, one that moved, one
// encoded last in a different message or format) ends the run for the rest
// of the message: the slow path then interns through a map[string]uint32,
// filled first by replaying the labels of the series before it (which
// rebuilds the same numbering), and rewrites the series' Enc in place. A
// string equal to the one at the same place in the previous series (metric
// name, label names, job, instance) takes that one's ref without a lookup.
// The map is cleared at the end of such a message; clear keeps its
// buckets, so the slow path does not allocate once a target's shape has
// been seen. It costs about 110 ns/sample on the node fixture, against 14
// for hits: a target whose series set changes pays it for the part of that
// one scrape after the first change, and is back to hits on the next
// scrape.
//
// Sub-slices of a scrape are messages of their own, whose first series are
// hits only if they started the previous message too: a sink that splits a
// scrape should split it at the same places scrape after scrape (for
// example by sample count) rather than encode it whole, find it too big and
// split it, which makes every series of the second part a slow-path miss
// on every scrape (still correct, still allocation-free).
//
// # Layout of a message, and lengths
//
// RW1 writes one TimeSeries per sample. RW2 writes the symbols field first
// (consumers that decode as they read see the table before the series that
// use it), then one TimeSeries per sample. Both need every length prefix
// before the bytes it covers; all are known before writing: a TimeSeries is
// its cached labels field plus a Sample of at most 20 bytes. RW2 therefore
// makes two passes over the samples: the first checks or rebuilds each
// series' cache and writes the symbols, the second writes the series. There
// is no reserve-and-shift and no per-message scratch buffer.
//
// Sample fields are written as value then timestamp, as the .proto
// declares them, and both always, even when zero (proto3 encoders omit
// zero fields; decoders accept either), so -0 keeps its sign (gogo's
// marshaller drops it), every sample has the same shape, and RW1 output is
// byte-identical to prompb's when no field is zero.
//
// # Tried and dropped
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

	// RW2 state, valid during one Append.
	msg   uint64 // this message's id
	nsyms uint32 // symbols in this message's table so far, "" included
	// syms maps symbol → index for the slow path. It is filled (from
	// the start of the message) only once a message needs it, and cleared
	// at the end of that message, so it never keeps label strings alive
	// between calls.
	syms    map[string]uint32
	symsSet bool
	// prev holds the strings and refs of the last series interned by the
	// slow path, in label order; cleared with syms.
	prev    []symRef
	fresh   []byte // one series' new symbol entries, slow path
	scratch []byte // one series' new Enc, slow path
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
// s. Bytes of dst before len(dst) are left alone. Only s.Samples is read; a
// shallow copy of s whose Samples is a sub-slice encodes as a complete
// message too. Each Series.Enc may be rewritten, so Append must run where
// Series' ownership rule allows a sink to write Enc: on the worker scraping
// the target, during Sink.Write. Steady state (series seen before by this
// process's encoders, and dst with room): 0 allocations.
func (e *Encoder) Append(dst []byte, s *Scrape) []byte {
	start := len(dst)
	if n := len(s.Samples); n > 0 && e.bps > 0 {
		dst = slices.Grow(dst, n*e.bps+16)
	}
	if e.format == RW1 {
		dst = e.appendRW1(dst, s.Samples)
	} else {
		dst = e.appendRW2(dst, s.Samples)
	}
	if n := len(s.Samples); n > 0 {
		e.bps = (len(dst)-start)/n + 1
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

// Enc tags: the first byte of Series.Enc says which format wrote the rest.
// 0 is never written, so a nil or foreign Enc is a miss.
const (
	encRW1 = 0x31
	encRW2 = 0x32
)

// RW2 Enc header: tag, message id (8 bytes), position (4), number of new
// symbols (4), then the labels_refs field, then the new symbol entries.
const (
	rw2Msg    = 1
	rw2Pos    = 9
	rw2New    = 13
	rw2Header = 17
)

// rw2Messages numbers RW2 messages across the process. It is the one
// package-level variable: ids must differ between encoders (a series' Enc
// names the message that wrote it, whichever pooled Encoder that was), and
// nothing about it is configurable or observable. One atomic add per
// message.
var rw2Messages atomic.Uint64

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

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

func (e *Encoder) appendRW1(dst []byte, samples []Sample) []byte {
	for i := range samples {
		smp := &samples[i]
		enc := smp.Series.Enc
		if len(enc) == 0 || enc[0] != encRW1 {
			enc = rw1Labels(smp.Series)
		}
		lb := enc[1:]
		sl := sampleLen(smp.T)
		dst = append(dst, tagRW1TimeSeries)
		dst = binary.AppendUvarint(dst, uint64(len(lb)+2+sl))
		dst = append(dst, lb...)
		dst = append(dst, tagRW1Samples, byte(sl))
		dst = appendSample(dst, smp.V, smp.T)
	}
	return dst
}

// rw1Labels stores in sr.Enc the RW1 tag and sr's labels as a TimeSeries'
// labels field, reusing Enc's memory if it is big enough.
func rw1Labels(sr *Series) []byte {
	size := 1
	sr.Range(func(l labels.Label) { size += rw1LabelSize(l) })
	b := sr.Enc[:0]
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	b = append(b, encRW1)
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
	sr.Enc = b
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

func (e *Encoder) appendRW2(dst []byte, samples []Sample) []byte {
	e.msg = rw2Messages.Add(1)
	e.nsyms = 1
	dst = append(dst, tagRW2Symbols, 0) // symbols[0] = ""

	// Pass 1: check or rebuild each series' cache, write the symbols.
	// run is the id of the message whose prefix this one has repeated so
	// far, 0 once it does not.
	run := uint64(0)
	for i := range samples {
		sr := samples[i].Series
		if enc := sr.Enc; len(enc) >= rw2Header+2 && enc[0] == encRW2 {
			last := binary.LittleEndian.Uint64(enc[rw2Msg:])
			if last == e.msg {
				// A second sample of the series in this message: its
				// refs are valid and it adds no symbols, but the
				// message no longer repeats a previous one.
				run = 0
				continue
			}
			if binary.LittleEndian.Uint32(enc[rw2Pos:]) == uint32(i) && (i == 0 || last == run) {
				run = last
				binary.LittleEndian.PutUint64(enc[rw2Msg:], e.msg)
				if n := binary.LittleEndian.Uint32(enc[rw2New:]); n > 0 {
					e.nsyms += n
					_, end := rw2Refs(enc)
					dst = append(dst, enc[end:]...)
				}
				continue
			}
		}
		run = 0
		dst = e.internRW2(dst, samples[:i], sr, uint32(i))
	}
	if e.symsSet {
		e.symsSet = false
		if len(e.syms) > 1<<16 {
			e.syms = nil // do not keep an outlier's table
		} else {
			clear(e.syms)
		}
		clear(e.prev)
		e.prev = e.prev[:0]
	}

	// Pass 2: the series.
	for i := range samples {
		smp := &samples[i]
		start, end := rw2Refs(smp.Series.Enc)
		refs := smp.Series.Enc[start:end]
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

// rw2Refs returns where the labels_refs field of an RW2 Enc starts and ends
// (where its new symbol entries start).
func rw2Refs(enc []byte) (start, end int) {
	n, k := uint64(enc[rw2Header+1]), 1
	if n >= 0x80 {
		n, k = binary.Uvarint(enc[rw2Header+1:])
	}
	return rw2Header, rw2Header + 1 + k + int(n)
}

// internRW2 is the slow path: it interns sr's labels through e.syms, appends
// the symbols new to this message to dst, and rewrites sr.Enc. prefix is the
// message's samples before sr.
func (e *Encoder) internRW2(dst []byte, prefix []Sample, sr *Series, pos uint32) []byte {
	if !e.symsSet {
		// Replay the series before this one: interning in the same order
		// gives the same numbering as the table written so far.
		e.symsSet = true
		if e.syms == nil {
			e.syms = make(map[string]uint32)
		}
		e.syms[""] = 0
		e.prev = e.prev[:0]
		n := e.nsyms
		e.nsyms = 1
		for j := range prefix {
			e.internLabels(prefix[j].Series, false)
		}
		if n != e.nsyms {
			panic(fmt.Sprintf("produce: remote-write 2.0 symbol replay found %d symbols, want %d", e.nsyms, n))
		}
	}

	e.fresh = e.fresh[:0]
	nsyms := e.nsyms
	e.internLabels(sr, true)
	size := 0
	for _, p := range e.prev {
		size += uvarintLen(uint64(p.ref))
	}

	b := append(e.scratch[:0], encRW2)
	b = binary.LittleEndian.AppendUint64(b, e.msg)
	b = binary.LittleEndian.AppendUint32(b, pos)
	b = binary.LittleEndian.AppendUint32(b, e.nsyms-nsyms)
	b = append(b, tagRW2LabelsRefs)
	b = binary.AppendUvarint(b, uint64(size))
	for _, p := range e.prev {
		b = binary.AppendUvarint(b, uint64(p.ref))
	}
	b = append(b, e.fresh...)
	e.scratch = b

	if cap(sr.Enc) < len(b) {
		// Room for refs to grow by a byte each when the series lands
		// later in a bigger table.
		sr.Enc = make([]byte, 0, len(b)+len(e.prev))
	}
	sr.Enc = append(sr.Enc[:0], b...)
	return append(dst, e.fresh...)
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
