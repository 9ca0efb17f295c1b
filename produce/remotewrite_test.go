package produce

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/shoal-scraper/shoal/parse"
)

var formats = []RecordFormat{RW1, RW2}

func TestRecordFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want RecordFormat
	}{
		{"rw1", RW1}, {"1.0", RW1}, {"prometheus.WriteRequest", RW1},
		{"rw2", RW2}, {"2.0", RW2}, {"io.prometheus.write.v2.Request", RW2},
	} {
		got, err := ParseRecordFormat(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRecordFormat(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "rw3", "RW1 ", "v2", "application/x-protobuf"} {
		_, err := ParseRecordFormat(in)
		if err == nil || !strings.Contains(err.Error(), "rw1") || !strings.Contains(err.Error(), "io.prometheus.write.v2.Request") {
			t.Errorf("ParseRecordFormat(%q) error %v, want one naming the accepted values", in, err)
		}
	}
	for _, tc := range []struct {
		f          RecordFormat
		str, ctype string
	}{
		{RW1, "rw1", "application/x-protobuf;proto=prometheus.WriteRequest"},
		{RW2, "rw2", "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
		{0, "RecordFormat(0)", ""},
		{9, "RecordFormat(9)", ""},
	} {
		if got := tc.f.String(); got != tc.str {
			t.Errorf("%d.String() = %q, want %q", uint8(tc.f), got, tc.str)
		}
		if got := tc.f.ContentType(); got != tc.ctype {
			t.Errorf("%v.ContentType() = %q, want %q", tc.f, got, tc.ctype)
		}
	}
	for _, f := range formats {
		b, err := f.MarshalText()
		var back RecordFormat
		if err != nil || back.UnmarshalText(b) != nil || back != f {
			t.Errorf("%v: text round trip gave %v (%v)", f, back, err)
		}
		if got := NewEncoder(f).Format(); got != f {
			t.Errorf("NewEncoder(%v).Format() = %v", f, got)
		}
	}
	if _, err := RecordFormat(0).MarshalText(); err == nil {
		t.Error("MarshalText of the zero format succeeded")
	}
	defer func() {
		if recover() == nil {
			t.Error("NewEncoder(0) did not panic")
		}
	}()
	NewEncoder(0)
}

// decoded is one sample as a reference decoder reads it back.
type decoded struct {
	labels []labels.Label
	v      uint64 // value bits
	t      int64
}

func (d decoded) String() string { return fmt.Sprintf("%v %#x @%d", d.labels, d.v, d.t) }

func equalDecoded(a, b decoded) bool {
	return a.v == b.v && a.t == b.t && slices.Equal(a.labels, b.labels)
}

// want is what s must decode to: one series per sample, labels in
// Labels order, value bits unchanged.
func want(s *Scrape) []decoded {
	out := make([]decoded, 0, len(s.Samples))
	for _, smp := range s.Samples {
		var ls []labels.Label
		smp.Series.Labels().Range(func(l labels.Label) { ls = append(ls, l) })
		out = append(out, decoded{ls, math.Float64bits(smp.V), smp.T})
	}
	return out
}

// decode reads msg with the reference decoder of format f. For RW2 it also
// checks the symbol table: "" first, no duplicates, every symbol used.
func decode(t testing.TB, f RecordFormat, msg []byte) []decoded {
	t.Helper()
	var out []decoded
	switch f {
	case RW1:
		var req prompb.WriteRequest
		if err := req.Unmarshal(msg); err != nil {
			t.Fatalf("prompb.WriteRequest.Unmarshal: %v", err)
		}
		if len(req.Metadata) != 0 {
			t.Fatalf("unexpected metadata %v", req.Metadata)
		}
		for _, ts := range req.Timeseries {
			if len(ts.Samples) != 1 || len(ts.Exemplars) != 0 || len(ts.Histograms) != 0 {
				t.Fatalf("time series %v: want exactly one sample", ts)
			}
			ls := []labels.Label{}
			for _, l := range ts.Labels {
				ls = append(ls, labels.Label{Name: l.Name, Value: l.Value})
			}
			out = append(out, decoded{ls, math.Float64bits(ts.Samples[0].Value), ts.Samples[0].Timestamp})
		}
	case RW2:
		var req writev2.Request
		if err := req.Unmarshal(msg); err != nil {
			t.Fatalf("writev2.Request.Unmarshal: %v", err)
		}
		if len(req.Symbols) == 0 || req.Symbols[0] != "" {
			t.Fatalf("symbols %q: want \"\" first", req.Symbols)
		}
		seen := make(map[string]bool, len(req.Symbols))
		for _, s := range req.Symbols {
			if seen[s] {
				t.Fatalf("symbol %q twice in a table of %d", s, len(req.Symbols))
			}
			seen[s] = true
		}
		used := make([]bool, len(req.Symbols))
		used[0] = true
		for _, ts := range req.Timeseries {
			if len(ts.Samples) != 1 || len(ts.Exemplars) != 0 || len(ts.Histograms) != 0 || ts.Metadata.Type != 0 || ts.Metadata.HelpRef != 0 || ts.Metadata.UnitRef != 0 {
				t.Fatalf("time series %v: want exactly one sample", ts)
			}
			if len(ts.LabelsRefs)%2 != 0 {
				t.Fatalf("odd labels_refs %v", ts.LabelsRefs)
			}
			ls := []labels.Label{}
			for i := 0; i < len(ts.LabelsRefs); i += 2 {
				n, v := ts.LabelsRefs[i], ts.LabelsRefs[i+1]
				if int(n) >= len(req.Symbols) || int(v) >= len(req.Symbols) {
					t.Fatalf("labels_refs %v out of %d symbols", ts.LabelsRefs, len(req.Symbols))
				}
				used[n], used[v] = true, true
				ls = append(ls, labels.Label{Name: req.Symbols[n], Value: req.Symbols[v]})
			}
			smp := ts.Samples[0]
			if smp.StartTimestamp != 0 {
				t.Fatalf("start timestamp %d", smp.StartTimestamp)
			}
			out = append(out, decoded{ls, math.Float64bits(smp.Value), smp.Timestamp})
		}
		for i, u := range used {
			if !u {
				t.Fatalf("symbol %d (%q) unused", i, req.Symbols[i])
			}
		}
	}
	return out
}

// checkEncode appends s after a prefix that must survive, decodes and
// compares.
func checkEncode(t testing.TB, e *Encoder, s *Scrape) []byte {
	t.Helper()
	return checkEncodePart(t, e, s, 0)
}

// checkEncodePart is checkEncode for the part-th message of a scrape.
func checkEncodePart(t testing.TB, e *Encoder, s *Scrape, part int) []byte {
	t.Helper()
	prefix := []byte("prefix")
	out := e.AppendPart(slices.Clip(prefix), s, part)
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("%v: Append overwrote dst's prefix", e.format)
	}
	got, w := decode(t, e.format, out[len(prefix):]), want(s)
	if len(got) != len(w) {
		t.Fatalf("%v: decoded %d samples, want %d", e.format, len(got), len(w))
	}
	for i := range got {
		if !equalDecoded(got[i], w[i]) {
			t.Fatalf("%v: sample %d:\n got %v\nwant %v", e.format, i, got[i], w[i])
		}
	}
	return out[len(prefix):]
}

var target = []string{"job", "node", "instance", "node-1.example.com:9100"}

// nodeFixture parses the real node_exporter body into series with the
// target labels a scrape adds, followed by the synthetic series, as the
// engine hands them over: 512 samples.
func nodeFixture(tb testing.TB) *Scrape {
	tb.Helper()
	body, err := os.ReadFile("../parse/testdata/node_exporter.prom")
	if err != nil {
		tb.Fatal(err)
	}
	const t0 = 1_700_000_000_000
	s := &Scrape{Key: "node/node-1.example.com:9100", Job: "node", Instance: "node-1.example.com:9100", T: t0, Memo: &Memo{}}
	var p parse.Parser
	for p.Reset(body, parse.FormatText); p.Next(); {
		ls, err := p.Labels()
		if err != nil {
			tb.Fatal(err)
		}
		b := labels.NewBuilder(ls)
		for i := 0; i < len(target); i += 2 {
			b.Set(target[i], target[i+1])
		}
		ls = b.Labels()
		s.Samples = append(s.Samples, Sample{NewSeries(ls), t0, p.Value()})
	}
	if err := p.Err(); err != nil {
		tb.Fatal(err)
	}
	n := float64(len(s.Samples))
	for _, syn := range []struct {
		name string
		v    float64
	}{
		{"up", 1}, {"scrape_duration_seconds", 0.012345678}, {"scrape_samples_scraped", n},
		{"scrape_samples_post_metric_relabeling", n}, {"scrape_series_added", 0},
	} {
		ls := labels.FromStrings(append([]string{model.MetricNameLabel, syn.name}, target...)...)
		s.Samples = append(s.Samples, Sample{NewSeries(ls), t0, syn.v})
	}
	return s
}

func seriesOf(kv ...string) *Series {
	ls := labels.FromStrings(kv...)
	return NewSeries(ls)
}

// edgeScrapes are the cases besides the fixture.
func edgeScrapes(tb testing.TB) map[string]*Scrape {
	node := nodeFixture(tb)
	sub := *node
	sub.Samples = node.Samples[100:160]

	var values []Sample
	for i, v := range []float64{
		StaleNaN, math.Float64frombits(value.NormalNaN), math.NaN(), math.Float64frombits(0x7ff8dead0000beef),
		math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, 1, -1,
		math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 1e-300, 0.1,
	} {
		for j, ts := range []int64{0, -1, math.MinInt64, math.MaxInt64, 1_700_000_000_123, 127, 128} {
			sr := seriesOf("__name__", "v", "i", fmt.Sprint(i), "j", fmt.Sprint(j))
			values = append(values, Sample{sr, ts, v})
		}
	}

	long := strings.Repeat("ä→𝄞x", 5000) // 45 000 bytes: a 3-byte length
	manyLabels := make([]string, 0, 402)
	manyLabels = append(manyLabels, "__name__", "many")
	for i := range 200 {
		manyLabels = append(manyLabels, fmt.Sprintf("label_%03d", i), fmt.Sprintf("value %d", i))
	}
	// 12 000 series with 2 unique strings each: symbol refs above 16384
	// take 3 bytes.
	var wide []Sample
	for i := range 12000 {
		wide = append(wide, Sample{seriesOf("__name__", fmt.Sprintf("m%d", i), "v", fmt.Sprintf("x%d", i)), int64(i), float64(i)})
	}
	up := seriesOf("__name__", "up", "job", "j")
	cases := map[string]*Scrape{
		"empty":    {Key: "a/b"},
		"node_sub": &sub,
		"values":   {Samples: values},
		"unicode": {Samples: []Sample{
			{seriesOf("__name__", "ünïcödé_metric", "日本", "語", "emoji", "🦈 shoal", "quote", `a"b\c`+"\n"), 1, 2},
			{seriesOf("__name__", "my.dotted metric", "a", "b"), 3, 4},
		}},
		"long": {Samples: []Sample{
			{seriesOf("__name__", "long", "v", long), 5, 6},
			{seriesOf("__name__", "long", "v", long, "w", long+"!"), 7, 8},
			{seriesOf(manyLabels...), 9, 10},
		}},
		"empty_strings": {Samples: []Sample{ // Series never have these; the encoders do not care
			{seriesOf("__name__", "e", "empty", ""), 1, 1},
			{seriesOf("", "x"), 2, 2},
			{&Series{}, 3, 3},
		}},
		"duplicates": {Samples: []Sample{{up, 1, 1}, {seriesOf("__name__", "x"), 1, 2}, {up, 2, 0}, {up, 3, StaleNaN}}},
		"wide":       {Samples: wide},
	}
	for _, s := range cases {
		s.Memo = &Memo{} // each its own target
	}
	return cases
}

// Every case decodes through the reference decoders, on a first encode, in
// steady state, with a fresh encoder, and in the other format in between.
func TestEncodeRoundTrip(t *testing.T) {
	node := nodeFixture(t)
	cases := edgeScrapes(t)
	cases["node"] = node
	for name, s := range cases {
		for _, f := range formats {
			t.Run(fmt.Sprintf("case=%s/format=%v", name, f), func(t *testing.T) {
				e := NewEncoder(f)
				first := checkEncode(t, e, s)
				again := checkEncode(t, e, s)
				if !bytes.Equal(first, again) {
					t.Error("steady-state encoding differs from the first")
				}
				if fresh := checkEncode(t, NewEncoder(f), s); !bytes.Equal(first, fresh) {
					t.Error("a fresh encoder's output differs")
				}
				other := RW1 + RW2 - f
				checkEncode(t, NewEncoder(other), s)
				if back := checkEncode(t, e, s); !bytes.Equal(first, back) {
					t.Error("output differs after the other format rewrote the caches")
				}
			})
		}
	}
}

// RW1 output is byte-identical to prompb's own marshaller when no field is
// zero (gogo omits zero fields; this encoder always writes them).
func TestEncodeRW1MatchesPrompb(t *testing.T) {
	s := nodeFixture(t)
	var req prompb.WriteRequest
	for i := range s.Samples {
		smp := &s.Samples[i]
		if smp.V == 0 {
			smp.V = 0.5
		}
		ts := prompb.TimeSeries{Samples: []prompb.Sample{{Value: smp.V, Timestamp: smp.T}}}
		smp.Series.Labels().Range(func(l labels.Label) {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		})
		req.Timeseries = append(req.Timeseries, ts)
	}
	ref, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := NewEncoder(RW1).Append(nil, s); !bytes.Equal(got, ref) {
		t.Fatalf("encoding differs from prompb.WriteRequest.Marshal: %d bytes vs %d", len(got), len(ref))
	}
}

// RW2 numbers symbols as Prometheus's writev2.SymbolsTable does, and a
// target's scrapes with new values keep byte-identical symbol tables and
// refs (what lets zstd match them against each other in a batch).
func TestEncodeRW2SymbolOrder(t *testing.T) {
	s := nodeFixture(t)
	e := NewEncoder(RW2)
	msg := e.Append(nil, s)
	var req writev2.Request
	if err := req.Unmarshal(msg); err != nil {
		t.Fatal(err)
	}
	st := writev2.NewSymbolTable()
	for i, smp := range s.Samples {
		refs := st.SymbolizeLabels(smp.Series.Labels(), nil)
		if !slices.Equal(refs, req.Timeseries[i].LabelsRefs) {
			t.Fatalf("series %d: refs %v, writev2.SymbolsTable gives %v", i, req.Timeseries[i].LabelsRefs, refs)
		}
	}
	if !slices.Equal(st.Symbols(), req.Symbols) {
		t.Fatalf("symbols differ from writev2.SymbolsTable's")
	}

	next := *s
	next.Samples = slices.Clone(s.Samples)
	for i := range next.Samples {
		next.Samples[i].V++
		next.Samples[i].T += 15000
	}
	msg2 := e.Append(nil, &next)
	var req2 writev2.Request
	if err := req2.Unmarshal(msg2); err != nil {
		t.Fatal(err)
	}
	symbolsEnd := func(b []byte) int { // the symbols are written first
		return bytes.IndexByte(b, tagRW2TimeSeries) // no symbol of this fixture is 0x2a bytes long
	}
	if !bytes.Equal(msg[:symbolsEnd(msg)], msg2[:symbolsEnd(msg2)]) {
		t.Error("symbol table bytes changed between scrapes")
	}
}

// A target's scrapes change shape: series come, go, move, repeat, and the
// sink may split a scrape. Whatever the sequence, and whichever pooled
// encoder takes each scrape, every message decodes to its scrape. This is
// what exercises RW2's run-of-hits rule.
func TestEncodeChangingScrapes(t *testing.T) {
	node := nodeFixture(t)
	pool := make([]*Series, 0, len(node.Samples)+50)
	for _, smp := range node.Samples {
		pool = append(pool, smp.Series)
	}
	for i := range 50 {
		pool = append(pool, seriesOf("__name__", "extra", "i", fmt.Sprint(i), "job", "node"))
	}
	for _, f := range formats {
		t.Run("format="+f.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(f)))
			encs := []*Encoder{NewEncoder(f), NewEncoder(f), NewEncoder(f)}
			memo := &Memo{} // one target's, kept across its scrapes
			cur := slices.Clone(pool[:300])
			for iter := range 400 {
				switch rng.IntN(8) {
				case 0: // insert
					cur = slices.Insert(cur, rng.IntN(len(cur)+1), pool[rng.IntN(len(pool))])
				case 1: // delete
					if len(cur) > 1 {
						i := rng.IntN(len(cur))
						cur = slices.Delete(cur, i, i+1)
					}
				case 2: // swap
					i, j := rng.IntN(len(cur)), rng.IntN(len(cur))
					cur[i], cur[j] = cur[j], cur[i]
				case 3: // duplicate one
					i := rng.IntN(len(cur))
					cur = slices.Insert(cur, rng.IntN(len(cur)+1), cur[i])
				}
				// The same shape is then encoded a few times, as a
				// target's steady state is.
				for rep := range 1 + rng.IntN(3) {
					s := &Scrape{Samples: make([]Sample, len(cur)), Memo: memo}
					for i, sr := range cur {
						s.Samples[i] = Sample{sr, int64(iter*1000 + rep), rng.Float64()}
					}
					e := encs[rng.IntN(len(encs))]
					if rng.IntN(4) == 0 { // split in two, as the sink does
						cut := rng.IntN(len(s.Samples) + 1)
						a, b := *s, *s
						a.Samples, b.Samples = s.Samples[:cut], s.Samples[cut:]
						checkEncodePart(t, e, &a, 0)
						checkEncodePart(t, e, &b, 1)
					} else {
						checkEncode(t, e, s)
					}
				}
			}
		})
	}
}

// The memo is what makes a steady-state scrape cheap: a scrape with the
// target's series in the same order as last time encodes none of them from
// their labels, one with a series inserted only those from there on, and a
// scrape without a memo all of them. A split scrape's parts each repeat
// their own last message.
func TestEncodeMemo(t *testing.T) {
	for _, f := range formats {
		t.Run("format="+f.String(), func(t *testing.T) {
			s := nodeFixture(t)
			n := len(s.Samples)
			e := NewEncoder(f)
			first := checkEncode(t, e, s)
			if e.slow != n {
				t.Fatalf("first scrape: %d series from labels, want all %d", e.slow, n)
			}
			e.slow = 0
			// Another encoder (the sink pools them) and new values.
			e2 := NewEncoder(f)
			for i := range s.Samples {
				s.Samples[i].V++
			}
			if again := checkEncode(t, e2, s); len(again) != len(first) {
				t.Fatalf("steady state: %d bytes, first scrape %d", len(again), len(first))
			}
			if e2.slow != 0 {
				t.Errorf("steady state: %d series from labels, want 0", e2.slow)
			}
			ins := *s
			ins.Samples = slices.Insert(slices.Clone(s.Samples), 20, Sample{seriesOf("__name__", "churn", "job", "node"), s.T, 1})
			checkEncode(t, e, &ins)
			if want := n + 1 - 20; e.slow != want {
				t.Errorf("series inserted at 20: %d series from labels, want %d", e.slow, want)
			}
			e.slow = 0
			bare := *s
			bare.Memo = nil
			checkEncode(t, e, &bare)
			checkEncode(t, e, &bare)
			if e.slow != 2*n {
				t.Errorf("no memo: %d series from labels in two scrapes, want %d", e.slow, 2*n)
			}
			e.slow = 0
			a, b := *s, *s
			a.Samples, b.Samples = s.Samples[:100], s.Samples[100:]
			for range 2 {
				checkEncodePart(t, e, &a, 0)
				checkEncodePart(t, e, &b, 1)
			}
			if e.slow != n-20 {
				t.Errorf("two parts, twice: %d series from labels, want %d (all but the 20 the last message shares with part 0, the first time only)", e.slow, n-20)
			}
		})
	}
}

// Steady state allocates nothing in either format: with the same shape
// scrape after scrape (the run-of-hits path in RW2), and, for RW2, with
// shapes alternating so every message takes the slow path after its first
// series.
func TestEncodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	s := nodeFixture(t)
	reordered := *s
	reordered.Samples = slices.Clone(s.Samples)
	rand.New(rand.NewPCG(2, 3)).Shuffle(len(reordered.Samples)-1, func(i, j int) {
		reordered.Samples[i+1], reordered.Samples[j+1] = reordered.Samples[j+1], reordered.Samples[i+1]
	})
	for _, f := range formats {
		e := NewEncoder(f)
		dst := e.Append(nil, s)
		dst = e.Append(dst[:0], &reordered)
		if n := testing.AllocsPerRun(100, func() { dst = e.Append(dst[:0], s) }); n != 0 {
			t.Errorf("%v: steady state: %v allocs per scrape, want 0", f, n)
		}
		if n := testing.AllocsPerRun(100, func() {
			dst = e.Append(dst[:0], s)
			dst = e.Append(dst[:0], &reordered)
		}); n != 0 {
			t.Errorf("%v: alternating shapes: %v allocs per scrape pair, want 0", f, n)
		}
	}
}

// A target's message is sized from its own last message, not from the
// bytes per sample of whatever target the pooled encoder served last: a
// big scrape after a small one takes one allocation of the right size,
// not a run of appends that double.
func TestEncodeSizedFromTargetsLastMessage(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	big := nodeFixture(t)
	// A target of few bytes per sample: one short series, many times.
	small := &Scrape{Key: "k", Job: "j", Instance: "i", T: big.T, Memo: &Memo{}}
	one := NewSeries(labels.FromStrings("__name__", "up"))
	for range 200 {
		small.Samples = append(small.Samples, Sample{one, big.T, 1})
	}
	for _, f := range formats {
		e := NewEncoder(f)
		want := len(e.Append(nil, big)) // the big target's first scrape fills its memo
		sbuf := e.Append(nil, small)    // the encoder's bytes per sample are now the small target's
		var dst []byte
		n := testing.AllocsPerRun(20, func() {
			e.Append(sbuf[:0], small)
			dst = e.Append(make([]byte, 0, 64), big)
		})
		// The 64 bytes, then one allocation for the big message.
		if n > 2 {
			t.Errorf("%v: %v allocations for a big scrape after a small one, want 2", f, n)
		}
		// A target back from an outage: its last message had 5
		// samples; this one has them all, sized in one go.
		back := &Scrape{Key: "k2", Job: "j", Instance: "i2", T: big.T, Memo: &Memo{}, Samples: big.Samples[:5]}
		e.Append(nil, back)
		back.Samples = big.Samples
		if n := testing.AllocsPerRun(1, func() {
			e.Append(sbuf[:0], small)
			e.Append(make([]byte, 0, 64), back)
			back.Samples = big.Samples[:5]
			e.Append(make([]byte, 0, 4096), back)
			back.Samples = big.Samples
		}); n > 4 {
			t.Errorf("%v: %v allocations for a target back from an outage, want at most 4", f, n)
		}
		// Its size, a sixteenth more, rounded up to the allocator's class.
		if limit := want + want/8 + 8192; len(dst) != want || cap(dst) > limit {
			t.Errorf("%v: big message %d bytes in a buffer of %d, want %d in at most %d", f, len(dst), cap(dst), want, limit)
		}
	}
}
