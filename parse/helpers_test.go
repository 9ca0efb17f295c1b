package parse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// sample is one parsed sample, comparable across parsers.
type sample struct {
	lset   labels.Labels
	series string
	bits   uint64 // math.Float64bits of the value
	ts     int64
	hasTS  bool
	line   int
}

func (s sample) String() string {
	ts := "-"
	if s.hasTS {
		ts = fmt.Sprint(s.ts)
	}
	return fmt.Sprintf("line %d %s %v @%s", s.line, s.lset, math.Float64frombits(s.bits), ts)
}

// referenceSamples runs textparse over the whole body, the way Prometheus
// does, and returns its float samples and error.
func referenceSamples(body []byte, f Format) ([]sample, error) {
	// PromParser appends '\n' to its input: give it room so it cannot touch
	// the caller's bytes and its slices stay in doc (for line numbers).
	doc := make([]byte, len(body), len(body)+1)
	copy(doc, body)
	tp := newTextparse(doc, f, labels.NewSymbolTable())
	var out []sample
	for {
		e, err := tp.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if e != textparse.EntrySeries {
			continue
		}
		s, ts, v := tp.Series()
		var l labels.Labels
		tp.Labels(&l)
		smp := sample{lset: l, series: string(s), bits: math.Float64bits(v), hasTS: ts != nil}
		if ts != nil {
			smp.ts = *ts
		}
		if off := cap(doc) - cap(s); off >= 0 && off <= len(doc) {
			smp.line = 1 + bytes.Count(doc[:off], []byte{'\n'})
		}
		out = append(out, smp)
	}
}

// labelsMode says when parserSamples calls Parser.Labels.
type labelsMode int

const (
	labelsAlways labelsMode = iota // for every sample
	labelsShadow                   // for every sample, from the shadow parser at once
	labelsOnMiss                   // on a Cache miss, as the engine does
)

// parserSamples runs p over body and returns its samples and error. In
// labelsOnMiss mode the cache starts with knownSeries: every series of every
// fixture in both formats, so a body's lines often hit entries that came
// from another body, or another format, as they do for a real target.
func parserSamples(p *Parser, body []byte, f Format, mode labelsMode) ([]sample, error) {
	p.Reset(body, f)
	if mode == labelsShadow {
		p.fb.shadowAfter = 0
	}
	c := NewCache[labels.Labels]()
	if mode == labelsOnMiss {
		for s, l := range knownSeries() {
			c.Put([]byte(s), l)
		}
	}
	c.Begin()
	var out []sample
	for p.Next() {
		s := p.Series()
		var l labels.Labels
		if mode == labelsOnMiss {
			var ok bool
			if l, _, ok = c.Get(s); !ok {
				var err error
				if l, err = p.Labels(); err != nil {
					break
				}
				c.Put(s, l)
			}
		} else {
			var err error
			if l, err = p.Labels(); err != nil {
				break
			}
		}
		ts, ok := p.Timestamp()
		out = append(out, sample{lset: l, series: string(s), bits: math.Float64bits(p.Value()), ts: ts, hasTS: ok, line: p.Line()})
	}
	if p.Next() {
		return out, errors.New("Next returned true after returning false")
	}
	return out, p.Err()
}

// checkAgainstTextparse is the differential check: Parser must return what
// textparse returns over the whole body, and fail exactly when it fails.
func checkAgainstTextparse(t testing.TB, p *Parser, body []byte, f Format) {
	t.Helper()
	want, wantErr := referenceSamples(body, f)
	got, gotErr := parserSamples(p, body, f, labelsAlways)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%v body %q:\nerror = %v\ntextparse error = %v\ngot %v\nwant %v", f, body, gotErr, wantErr, got, want)
	}
	if gotErr != nil {
		var se *SyntaxError
		if !errors.As(gotErr, &se) || se.Line < 1 {
			t.Fatalf("%v body %q: error %v is not a *SyntaxError with a line", f, body, gotErr)
		}
	}
	compareSamples(t, f, body, got, want, false)

	got, gotErr = parserSamples(p, body, f, labelsShadow)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%v body %q with the shadow:\nerror = %v\ntextparse error = %v", f, body, gotErr, wantErr)
	}
	compareSamples(t, f, body, got, want, false)

	// As the engine uses it: Labels only for series not in the cache.
	got, gotErr = parserSamples(p, body, f, labelsOnMiss)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%v body %q with cache:\nerror = %v\ntextparse error = %v", f, body, gotErr, wantErr)
	}
	compareSamples(t, f, body, got, want, true)
}

func compareSamples(t testing.TB, f Format, body []byte, got, want []sample, cached bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%v body %q (cached=%v): got %d samples, want %d\ngot  %v\nwant %v", f, body, cached, len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		lsetOK := labels.Equal(g.lset, w.lset) || cached && onlyTypeNormalisationDiffers(g.lset, w.lset)
		if !lsetOK || g.series != w.series || g.bits != w.bits || g.hasTS != w.hasTS || g.ts != w.ts || g.line != w.line {
			t.Fatalf("%v body %q (cached=%v): sample %d:\ngot  %v (series %q)\nwant %v (series %q)", f, body, cached, i, g, g.series, w, w.series)
		}
	}
}

// onlyTypeNormalisationDiffers reports whether a and b differ only in the
// values of le or quantile labels that denote the same number: the one
// documented way a cached label set can differ from textparse's (the same
// series bytes seen under another TYPE).
func onlyTypeNormalisationDiffers(a, b labels.Labels) bool {
	if a.Len() != b.Len() {
		return false
	}
	as, bs := a.Copy(), b.Copy()
	for _, name := range []string{"le", "quantile"} {
		av, bv := as.Get(name), bs.Get(name)
		if av == bv {
			continue
		}
		if labels.FormatOpenMetricsFloat(parseOrNaN(av)) != labels.FormatOpenMetricsFloat(parseOrNaN(bv)) {
			return false
		}
		as = labels.NewBuilder(as).Del(name).Labels()
		bs = labels.NewBuilder(bs).Del(name).Labels()
	}
	return labels.Equal(as, bs)
}

func parseOrNaN(s string) float64 {
	f, ok := parseFloatSlow([]byte(s))
	if !ok {
		return math.NaN()
	}
	return f
}

var knownSeries = sync.OnceValue(func() map[string]labels.Labels {
	m := map[string]labels.Labels{}
	var p Parser
	for _, f := range []Format{FormatText, FormatOpenMetrics} {
		for _, body := range fixtures(nil, f) {
			for p.Reset(body, f); p.Next(); {
				if l, err := p.Labels(); err == nil {
					m[string(p.Series())] = l
				}
			}
		}
	}
	return m
})

// fixtures returns the bodies in testdata/ of format f, by file name.
func fixtures(t testing.TB, f Format) map[string][]byte {
	if t == nil {
		t = panicTB{}
	}
	t.Helper()
	pattern := "testdata/*.prom"
	if f == FormatOpenMetrics {
		pattern = "testdata/*.om.txt"
	}
	names, err := filepath.Glob(pattern)
	if err != nil || len(names) == 0 {
		t.Fatalf("no fixtures %s: %v", pattern, err)
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(n, "testdata/")] = b
	}
	return out
}

// panicTB lets fixtures run outside a test.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                   {}
func (panicTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (panicTB) Fatal(a ...any)            { panic(fmt.Sprint(a...)) }
