package parse

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// TestFixturesAgainstTextparse is the differential check over every fixture,
// whole and with the last line's newline removed (or added).
func TestFixturesAgainstTextparse(t *testing.T) {
	var p Parser
	for _, f := range []Format{FormatText, FormatOpenMetrics} {
		for name, body := range fixtures(t, f) {
			t.Run(f.String()+"/"+name, func(t *testing.T) {
				checkAgainstTextparse(t, &p, body, f)
				if b, ok := bytes.CutSuffix(body, []byte("\n")); ok {
					checkAgainstTextparse(t, &p, b, f)
				} else {
					checkAgainstTextparse(t, &p, append(body[:len(body):len(body)], '\n'), f)
				}
			})
		}
	}
}

// trickyText are text bodies at the edges of promlex.l, each checked
// against textparse: the fuzzers found none of these wrong, but they pin
// the cases reasoned about in scan.go and fallback.go.
var trickyText = []string{
	"", "\n", "   \n\t\n", "a 1", "a 1\n\n\nb 2\n",
	// NUL: ends the lexer at a line start and in "#x" comments, vanishes in label values.
	"a 1\n\x00b 2\n", "a 1\n \x00b 2\n", "#x\x00y\na 1\n", "# \x00\na 1\n", "# x\x00y\na 1\n",
	"a{b=\"\\\x00\"} 1\n", "a{b=\"x\x00y\"} 1\n", "a 1\x00\n", "a{\x00b=\"c\"} 1\n", "# HELP a \x00x\n", "# HELP a\x00 x\n",
	// Quoted strings: escapes, braces, newlines.
	"a{b=\"x\\\ny\"} 1\n", "a{b=\"x\ny\"} 1\nc 2\n", "a{b=\"x}\"} 1\n", "a{b=\"x\\\"}\"} 1\n", "a{b=\"x\\\\\"} 1\n",
	"a{b=\"x\\\\\\\"}\"} 1\n", "a{b=\"\\n\\t\\q\"} 1\n", "a{b=\"c} 1\nd 2\n", "a{b=\"c} 1\nd=\"e\"} 2\n",
	"a{b=\"\xff\"} 1\n", "a{\"\xff\"=\"x\"} 1\n", "a{b=\"日本語\"} 1\n",
	// UTF-8 names.
	"a{\"b\"=\"x\"} 1\n", "{\"a\"} 1\n", "{\"a\",\"b\"} 1\n", "a{\"b\"} 1\n", "{} 1\n", "{a=\"b\"} 1\n",
	"{\"a.b\",c=\"d\"} 1\n", "{c=\"d\",\"a.b\"} 1\n", "{\"a\nb\"} 1\n", "# HELP \"a\nb\" x\n{\"a\"} 1\n",
	// Label set syntax.
	"a{b=\"c\",} 1\n", "a{,} 1\n", "a{b=\"c\",,} 1\n", "a{b=\"c\" d=\"e\"} 1\n", "a{b = \"c\"} 1\n",
	"a {b=\"c\"} 1\n", "a{b=\"c\"}1\n", "a{b=\"c\"}\t1\n", "a{b=\"c\"}{d=\"e\"} 1\n", "a{b=\"c\" 1\n",
	"a{b:c=\"d\"} 1\n", "a{0b=\"c\"} 1\n", "a{b=c} 1\n", "a{b=\"c\"=\"d\"} 1\n", "a{=\"c\"} 1\n",
	// Names and values.
	"a+1\n", "a-1\n", ":a 1\n", "_ 1\n", "0a 1\n", "a.b 1\n", "  a 1\n", "\ta 1\n", "a\n", "a \n", "a  \n",
	"a 1 2 3\n", "a 1 -2\n", "a 1 +2\n", "a 1 99999999999999999999\n", "a 1 9223372036854775807\n", "a 1 9223372036854775808\n",
	"a 1 0001\n", "a 1e400\n", "a 1e-400\n", "a 0x1p3\n", "a 1_0\n", "a 0x10\n", "a Inf\n", "a inf\n", "a -nan\n", "a infinity\n",
	"a +NaN\n", "a nan\n", "a -0\n", "a 00\n", "a 1.\n", "a .\n", "a 1e\n", "a 1e+\n", "a 1.5E-3\n", "a 9007199254740993\n",
	"a 123456789012345678901234567890\n", "a 1e22\n", "a 1e23\n", "a 12345678901234567e5\n",
	"a\t\t1\t\t2\t\t\n", "a 1\r\n", "a 1{\n", "a 1 2{\n", "a 1 2x\n", "a 1\v\n", "a\v1\n",
	// Comments and metadata.
	"# HELP a \xff\xfe\n", "# HELP a\xff text\n", "# HELP a x\xff\n", "# HELP a\n", "# HELP a \n", "# HELP a x\\y\\\\z\\n\n",
	"# TYPE a counter \n", "# TYPE a  counter\n", "# TYPE a\tcounter\n", "# TYPE a-counter\n", "# TYPE a\n", "# TYPE \n",
	"# HELP \n", "# TYPE a bogus\n", "# TYPE a gaugehistogram\n", "#  HELP a x\n", "#\tTYPE\ta\tgauge\n", "# HELPx\n",
	"# HELP\n", "# HEL\n", "#\n", "#", "# TYPE a counter", "# HELP a.b x\n", "# HELP :a x\n", "# TYPE \"a.b\" histogram\n{\"a.b_bucket\",le=\"1\"} 1\n",
	"# HELP a x\n# HELP a y\n# TYPE a gauge\n# TYPE a counter\na 1\n",
	// Type context.
	"# TYPE a histogram\na_bucket{le=\"1\"} 1\n", "# TYPE a summary\na{quantile=\"1\"} 1\n",
	"# TYPE a histogram\nb{le=\"1\",quantile=\"1\"} 1\n# TYPE a summary\nb{le=\"1\",quantile=\"1\"} 1\n# TYPE a untyped\nb{le=\"1\",quantile=\"1\"} 1\n",
	"# TYPE a histogram\na_bucket{le=\"1\"} 1\n a_bucket{le=\"1\"} 2\n",
}

// trickyOM are the OpenMetrics counterpart of trickyText.
var trickyOM = []string{
	"", "# EOF", "# EOF\n", "# EOF\n\n", "a 1\n", "a 1", "a 1\n# EOF", "a 1\n# EOF\n\n", "a 1\n# EOF\nb 2\n", "a 1\n# EOFx\n",
	"a 1\n# EOF \n", "\n# EOF\n", "a 1\n\n# EOF\n", "# EOF\n# EOF\n",
	// Exemplars.
	"a 1 # {b=\"c\"} 1\n# EOF\n", "a 1 2 # {b=\"c\"} 1 3\n# EOF\n", "a 1 # {} 1\n# EOF\n", "a 1 # {b=\"c\",} 1\n# EOF\n",
	"a 1 # {b=\"c\"} NaN\n# EOF\n", "a 1 # {b=\"c\"} 1 NaN\n# EOF\n", "a 1 # {b=\"c\"} 1 +Inf\n# EOF\n", "a 1 # {b=\"c\"}\n# EOF\n",
	"a 1 # {b=\"c\"} 1 2 3\n# EOF\n", "a 1 # {\"b\"=\"c\"} 1\n# EOF\n", "a 1 # {\"b\"} 1\n# EOF\n", "a 1 # b\n# EOF\n",
	"a 1 #\n# EOF\n", "a 1 #x\n# EOF\n", "a 1 1 #x\n# EOF\n", "a 1 # {b=\"c\"}  1\n# EOF\n", "a 1 # {b=\"c\"} 1 \n# EOF\n",
	"a 1 # {b=\"c\",,} 1\n# EOF\n", "a 1 # {,} 1\n# EOF\n", "a 1 # {b=\"c\" d=\"e\"} 1\n# EOF\n", "a 1 # {b=\"\xff\"} 1\n# EOF\n",
	"a 1 # {b=\"c\nd\"} 1\n# EOF\n", "a 1 # {b=\"c\\\"}\"} 1\n# EOF\n", "a 1 # {b=c} 1\n# EOF\n", "a 1 # {b=\"c\"} 1_0\n# EOF\n",
	"a 1 # {b=\"c\"} 1 1e400\n# EOF\n", "a 1 # {0=\"c\"} 1\n# EOF\n", "a 1 # {b:c=\"d\"} 1\n# EOF\n", "a 1 # {b=\"c\"}1\n# EOF\n",
	// Series and values.
	"a  1\n# EOF\n", "a 1 \n# EOF\n", "a{b=\"c\", d=\"e\"} 1\n# EOF\n", "a{b=\"c\"d=\"e\"} 1\n# EOF\n", "a {b=\"c\"} 1\n# EOF\n",
	"a{b=\"c\"}1\n# EOF\n", "a 1 NaN\n# EOF\n", "a 1 Inf\n# EOF\n", "a 1 1e400\n# EOF\n", "a 1 -1.5\n# EOF\n", "a 1 1.0005\n# EOF\n",
	"a 1 1e18\n# EOF\n", "a 1 -1e19\n# EOF\n", "a 1 0x10\n# EOF\n", "a 1 1_0\n# EOF\n", "a\t1\n# EOF\n", "a 1\t2\n# EOF\n", "a 1\r\n# EOF\n",
	"a{b=\"c\nd\"} 1\n# EOF\n", "{\"a\nb\"} 1\n# EOF\n", "{\"a\"} 1\n# EOF\n", "{} 1\n# EOF\n", "a{\"b\"} 1\n# EOF\n",
	"a{b=\"c\",} 1\n# EOF\n", "a{,} 1\n# EOF\n", "a{b=\"c\"=\"d\"} 1\n# EOF\n", "a{\"b\"=\"c\"} 1\n# EOF\n", " a 1\n# EOF\n",
	"a{b=\"\\\x00\"} 1\n# EOF\n", "a{b=\"c\x00\"} 1\n# EOF\n", "a 1\n# EOF\x00", "a 1\x00\n# EOF\n",
	// Metadata.
	"# HELP a\n# EOF\n", "# HELP a \n# EOF\n", "# HELP a  x\n# EOF\n", "# HELP a \xff\n# EOF\n", "# HELP a x\\\\y\n# EOF\n",
	"# TYPE a counter\na_total 1\na_created 2\n# EOF\n", "# TYPE a gauge\n# UNIT a seconds\n# EOF\n", "# UNIT a_seconds seconds\n# EOF\n",
	"# UNIT a_seconds \n# EOF\n", "# UNIT seconds seconds\n# EOF\n", "# UNIT aseconds seconds\n# EOF\n", "# FOO a b\n# EOF\n",
	"# comment\n# EOF\n", "#\n# EOF\n", "# TYPE a counter \n# EOF\n", "# TYPE a bogus\n# EOF\n", "# TYPE a untyped\n# EOF\n",
	"# TYPE \"a.b\" counter\n# EOF\n", "# HELP \"a\nb\" x\n# EOF\n", "# TYPE a-b counter\n# EOF\n", "# TYPE  a counter\n# EOF\n",
	"#  TYPE a counter\n# EOF\n", "# TYPE a counter\n",
	// Type context.
	"# TYPE a histogram\na_bucket{le=\"1\"} 1\n# EOF\n", "# TYPE a summary\na{quantile=\"0.5\"} 1\n# EOF\n",
	"# TYPE a gaugehistogram\na_bucket{le=\"1\"} 1\n# EOF\n",
	"# TYPE a histogram\nb{le=\"1\"} 1\n# TYPE a gauge\nb{le=\"1\"} 1\n# EOF\n",
}

func TestTrickyAgainstTextparse(t *testing.T) {
	var p Parser
	for _, body := range trickyText {
		checkAgainstTextparse(t, &p, []byte(body), FormatText)
	}
	for _, body := range trickyOM {
		checkAgainstTextparse(t, &p, []byte(body), FormatOpenMetrics)
	}
}

// TestFastPath checks that the common line shapes never reach textparse
// (except through Labels): that is where the speed comes from.
func TestFastPath(t *testing.T) {
	var p Parser
	for _, tc := range []struct {
		f    Format
		body string
	}{
		{FormatText, "# HELP a Help.\n# TYPE a counter\na 1\na{b=\"c\"} 1.5e+06 1700000000000\na{b=\"c\",d=\"e\\\"\\\\\\n\",} NaN\n" +
			"# comment\n\n#x\n{\"a.b\",c=\"d\"} +Inf\na\t\t-Inf\t 1\na{b=\"c\", d=\"e\"} 1\n"},
		{FormatOpenMetrics, "# HELP a Help.\n# TYPE a counter\n# UNIT a_seconds seconds\na_total 1\na_created 1.7e9\n" +
			"a_total{b=\"c\"} 1.5e+06 1700000000.5 # {trace_id=\"x\",span=\"y\"} 1 1700000000.25\n" +
			"a_total{b=\"c\",d=\"e\\\"\\\\\\n\",} NaN # {} 0\n{\"a.b\",c=\"d\"} +Inf\n# EOF\n"},
	} {
		p.Reset([]byte(tc.body), tc.f)
		n := 0
		for p.Next() {
			n++
			if p.fromTP {
				t.Errorf("%v line %d: %q went to textparse", tc.f, p.Line(), p.Series())
			}
		}
		if p.Err() != nil || n == 0 {
			t.Errorf("%v: %d samples, err %v", tc.f, n, p.Err())
		}
		for name, body := range fixtures(t, tc.f) {
			if name == "lenient.prom" {
				continue
			}
			p.Reset(body, tc.f)
			for p.Next() {
				if p.fromTP && !bytes.Contains(p.Series(), []byte(`"quoted.label"`)) {
					t.Errorf("%v %s line %d: %q went to textparse", tc.f, name, p.Line(), p.Series())
				}
			}
		}
	}
}

// TestParser states the results for a few bodies explicitly.
func TestParser(t *testing.T) {
	type want struct {
		series string
		lset   string
		value  float64
		ts     int64 // -1: none
		line   int
	}
	f := func(format Format, body string, wantErrLine int, samples ...want) {
		t.Helper()
		var p Parser
		p.Reset([]byte(body), format)
		i := 0
		for ; p.Next(); i++ {
			if i >= len(samples) {
				t.Fatalf("%q: extra sample %q", body, p.Series())
			}
			w := samples[i]
			l, err := p.Labels()
			if err != nil {
				t.Fatalf("%q: sample %d: Labels: %v", body, i, err)
			}
			ts, ok := p.Timestamp()
			if !ok {
				ts = -1
			}
			v := p.Value()
			if string(p.Series()) != w.series || l.String() != w.lset || ts != w.ts || p.Line() != w.line ||
				math.Float64bits(v) != math.Float64bits(w.value) && !(math.IsNaN(v) && math.IsNaN(w.value)) {
				t.Errorf("%q: sample %d:\ngot  %q %s %v @%d line %d\nwant %q %s %v @%d line %d", body, i,
					p.Series(), l, v, ts, p.Line(), w.series, w.lset, w.value, w.ts, w.line)
			}
		}
		if i != len(samples) {
			t.Errorf("%q: got %d samples, want %d", body, i, len(samples))
		}
		var se *SyntaxError
		switch err := p.Err(); {
		case wantErrLine == 0 && err != nil:
			t.Errorf("%q: unexpected error %v", body, err)
		case wantErrLine != 0 && (!errors.As(err, &se) || se.Line != wantErrLine):
			t.Errorf("%q: error %v, want a *SyntaxError at line %d", body, err, wantErrLine)
		}
	}
	f(FormatText, "# HELP m Help.\n# TYPE m counter\nm{a=\"x\\\"y\"} 1 1700000000000\n\nm 2\n", 0,
		want{`m{a="x\"y"}`, `{__name__="m", a="x\"y"}`, 1, 1700000000000, 3},
		want{`m`, `{__name__="m"}`, 2, -1, 5})
	f(FormatText, "# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} NaN\n", 0,
		want{`h_bucket{le="1"}`, `{__name__="h_bucket", le="1.0"}`, 3, -1, 2},
		want{`h_bucket{le="+Inf"}`, `{__name__="h_bucket", le="+Inf"}`, math.NaN(), -1, 3})
	f(FormatText, "{\"m.x\",\"a.b\"=\"c\"} -0\n", 0,
		want{`{"m.x","a.b"="c"}`, `{__name__="m.x", "a.b"="c"}`, math.Copysign(0, -1), -1, 1})
	f(FormatText, "m 1\nm{a=\"b\" 2\nm 3\n", 2,
		want{`m`, `{__name__="m"}`, 1, -1, 1})
	f(FormatText, "m 1\n\nm 1 2 3\n", 3,
		want{`m`, `{__name__="m"}`, 1, -1, 1})
	f(FormatText, "m 1\nm{a=\"x\ny\"} 2\nm 3\n{a=\"b\"} 4\n", 5,
		want{`m`, `{__name__="m"}`, 1, -1, 1},
		want{"m{a=\"x\ny\"}", `{__name__="m", a="x\ny"}`, 2, -1, 2},
		want{`m`, `{__name__="m"}`, 3, -1, 4})
	f(FormatOpenMetrics, "# TYPE m counter\nm_total 1 1.5 # {t=\"x\"} 2 3\nm_created 1.7e9\n# EOF\n", 0,
		want{`m_total`, `{__name__="m_total"}`, 1, 1500, 2},
		want{`m_created`, `{__name__="m_created"}`, 1.7e9, -1, 3})
	f(FormatOpenMetrics, "# TYPE s summary\ns{quantile=\"1\"} 1 -0.0015\n# EOF\n", 0,
		want{`s{quantile="1"}`, `{__name__="s", quantile="1.0"}`, 1, -1, 2})
	f(FormatOpenMetrics, "m 1\n", 2, want{`m`, `{__name__="m"}`, 1, -1, 1})
	f(FormatOpenMetrics, "m 1\n# EOF\nm 2\n", 2, want{`m`, `{__name__="m"}`, 1, -1, 1})
	f(FormatOpenMetrics, "m 1 # {a=\"b\"} 1 NaN\n# EOF\n", 1)
}

// TestTypeContext pins the documented exception to the Series contract:
// le and quantile are normalised only under a histogram or summary TYPE.
func TestTypeContext(t *testing.T) {
	body := []byte("# TYPE x histogram\nx_bucket{le=\"1\"} 1\n# TYPE y gauge\nx_bucket{le=\"1\"} 2\n")
	var p Parser
	p.Reset(body, FormatText)
	var got []string
	for p.Next() {
		l, err := p.Labels()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(p.Series())+" "+l.Get("le"))
	}
	if want := []string{`x_bucket{le="1"} 1.0`, `x_bucket{le="1"} 1`}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestLabelsError checks that an error only Labels can see (inside a
// series) rejects the body: Next stops and Err reports it.
func TestLabelsError(t *testing.T) {
	var p Parser
	p.Reset([]byte("m 1\n{a=\"b\"} 2\nm 3\n"), FormatText)
	for range 2 { // two samples before the error
		if !p.Next() {
			t.Fatal("want two samples before the error")
		}
	}
	if p.fromTP {
		t.Fatal("the bad series should be on the fast path")
	}
	_, err := p.Labels()
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 2 || !strings.Contains(err.Error(), "metric name not set") {
		t.Fatalf("Labels error = %v, want a metric name error at line 2", err)
	}
	if p.Next() || p.Err() != err {
		t.Fatalf("after a Labels error: Next must be false and Err = %v, got %v", err, p.Err())
	}
}

// TestSeriesCapped checks that appending to Series cannot write into the body.
func TestSeriesCapped(t *testing.T) {
	body := []byte("m{a=\"b\"} 1\n")
	var p Parser
	p.Reset(body, FormatText)
	if !p.Next() {
		t.Fatal(p.Err())
	}
	_ = append(p.Series(), 'X')
	if string(body) != "m{a=\"b\"} 1\n" {
		t.Fatalf("body modified: %q", body)
	}
}

// TestUnknownFormat checks Reset's handling of a bad Format.
func TestUnknownFormat(t *testing.T) {
	var p Parser
	p.Reset([]byte("m 1\n"), Format(7))
	if p.Next() || p.Err() == nil {
		t.Fatal("want an error for an unknown format")
	}
	var zero Parser
	if zero.Next() || zero.Err() != nil {
		t.Fatal("the zero Parser must be an exhausted text parser")
	}
	if _, err := zero.Labels(); err == nil {
		t.Fatal("Labels without a sample must fail")
	}
}

// TestParserAllocs checks the point of the package: no allocation per body
// or per sample on the fast path, with a Cache hit for every sample.
func TestParserAllocs(t *testing.T) {
	if invariants {
		t.Skip("the invariants build re-parses every line with textparse")
	}
	for _, f := range []Format{FormatText, FormatOpenMetrics} {
		for name, body := range fixtures(t, f) {
			if name == "lenient.prom" {
				continue // multi-line entries: textparse over the tail
			}
			var p Parser
			c := NewCache[labels.Labels]()
			c.Begin()
			for p.Reset(body, f); p.Next(); {
				if _, _, ok := c.Get(p.Series()); !ok {
					l, err := p.Labels()
					if err != nil {
						t.Fatal(err)
					}
					c.Put(p.Series(), l)
				}
			}
			allocs := testing.AllocsPerRun(20, func() {
				c.Begin()
				for p.Reset(body, f); p.Next(); {
					if _, _, ok := c.Get(p.Series()); !ok && !bytes.Contains(p.Series(), []byte(`"quoted.label"`)) {
						t.Fatalf("%s: miss for %q", name, p.Series())
					}
				}
				c.Stale(func(labels.Labels) { t.Fatal("stale") })
			})
			if allocs != 0 && !strings.HasPrefix(name, "edge.om") { // edge.om.txt has one line for textparse
				t.Errorf("%v %s: %v allocations per body, want 0", f, name, allocs)
			}
		}
	}
}

// TestCacheAcrossFormats checks that a series cached from a text body does
// not let an OpenMetrics body that textparse rejects through: the text format
// accepts whitespace and missing commas in label sets, OpenMetrics does not.
func TestCacheAcrossFormats(t *testing.T) {
	for _, series := range []string{`m{a="b", c="d"}`, `m{a="b"c="d"}`, `m{ a="b"}`, `m{a="b" }`, `m{a ="b"}`, `{"x" ,a="b"}`} {
		var p Parser
		c := NewCache[labels.Labels]()
		c.Begin()
		p.Reset([]byte(series+" 1\n"), FormatText)
		if !p.Next() {
			t.Fatalf("%s: text: %v", series, p.Err())
		}
		l, err := p.Labels()
		if err != nil {
			t.Fatalf("%s: text Labels: %v", series, err)
		}
		c.Put(p.Series(), l)
		c.Begin()
		for p.Reset([]byte(series+" 1\n# EOF\n"), FormatOpenMetrics); p.Next(); {
			if _, _, ok := c.Get(p.Series()); !ok {
				if _, err := p.Labels(); err != nil {
					break
				}
			}
		}
		if p.Err() == nil {
			t.Errorf("%s: OpenMetrics body accepted thanks to a cache entry from a text body", series)
		}
	}
}

// TestShadow checks when Labels uses one textparse parser for the rest of
// the body: for a run of nearby misses (a first scrape), across windows of
// the body, and not for a few misses spread over a large body.
func TestShadow(t *testing.T) {
	for _, f := range []Format{FormatText, FormatOpenMetrics} {
		var b strings.Builder
		for i := range 4000 { // > 2 shadow windows
			fmt.Fprintf(&b, "# HELP m%d Help.\n# TYPE m%d histogram\nm%d_bucket{le=\"%d\"} %d\n", i, i, i, i, i)
		}
		if f == FormatOpenMetrics {
			b.WriteString("# EOF\n")
		}
		body := []byte(b.String())
		want, err := referenceSamples(body, f)
		if err != nil || len(want) != 4000 {
			t.Fatalf("%v: textparse: %d samples, %v", f, len(want), err)
		}
		var p Parser
		p.Reset(body, f)
		for i := 0; p.Next(); i++ {
			l, err := p.Labels()
			if err != nil {
				t.Fatal(err)
			}
			if !labels.Equal(l, want[i].lset) {
				t.Fatalf("%v sample %d: labels %s, want %s", f, i, l, want[i].lset)
			}
			if want := i >= defaultShadowAfter; (p.fb.sp != nil) != want {
				t.Fatalf("%v sample %d: shadow in use = %v, want %v", f, i, p.fb.sp != nil, want)
			}
		}
		if p.Err() != nil {
			t.Fatal(p.Err())
		}
		p.Reset(body, f)
		for i := 0; p.Next(); i++ {
			if i%50 == 0 { // misses about 4 KiB apart
				if _, err := p.Labels(); err != nil {
					t.Fatal(err)
				}
				if p.fb.sp != nil {
					t.Fatalf("%v sample %d: shadow in use for sparse misses", f, i)
				}
			}
		}
	}
}

// TestResetReleasesScratch: a cold body (Labels of every sample, which
// starts the shadow) grows scratch buffers; Reset(nil) frees the large
// ones, so an engine's idle per-worker parsers pin no body-sized memory,
// and the next body still parses the same.
func TestResetReleasesScratch(t *testing.T) {
	body := fixtures(t, FormatText)["node_exporter.prom"]
	var p Parser
	cold := func() int {
		p.Reset(body, FormatText)
		n := 0
		for p.Next() {
			if _, err := p.Labels(); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if p.Err() != nil {
			t.Fatal(p.Err())
		}
		return n
	}
	n := cold()
	if cap(p.fb.sdoc) <= keepScratch {
		t.Fatalf("a cold node_exporter body left a shadow document of %d bytes: the test no longer exercises the release", cap(p.fb.sdoc))
	}
	p.Reset(nil, FormatText)
	for name, b := range map[string][]byte{"doc": p.fb.doc, "ldoc": p.fb.ldoc, "sdoc": p.fb.sdoc} {
		if cap(b) > keepScratch {
			t.Errorf("after Reset(nil): %s keeps %d bytes", name, cap(b))
		}
	}
	if again := cold(); again != n {
		t.Errorf("second cold parse: %d samples, first %d", again, n)
	}
}
