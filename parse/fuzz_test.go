package parse

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/textparse"
)

// maxFuzzInput caps fuzz inputs: the differential check runs textparse and
// the Parser several times over a body, so big inputs only slow the fuzzer.
const maxFuzzInput = 64 << 10

// Run each for about a minute after a change to the scanners:
//
//	go test ./parse -run '^$' -fuzz '^FuzzParseText$' -fuzztime=60s -fuzzminimizetime=5s
//	go test ./parse -run '^$' -fuzz '^FuzzParseOpenMetrics$' -fuzztime=60s -fuzzminimizetime=5s
//
// (The default minimisation time of 60s per interesting input makes the
// fuzzer look hung: "execs: N (0/sec)".)
//
// Findings land in testdata/fuzz/ and then run with every go test.

// FuzzParseText checks Parser against textparse.PromParser over the whole
// body: the same samples (labels, value bits, timestamp, line) when textparse
// succeeds, an error when it fails; with Labels on every sample (one line at
// a time, and from the shadow parser), and with Labels only on misses of a
// Cache pre-filled with every fixture's series, as the engine calls it.
func FuzzParseText(f *testing.F) { fuzzParse(f, FormatText) }

// FuzzParseOpenMetrics is FuzzParseText for textparse.OpenMetricsParser.
func FuzzParseOpenMetrics(f *testing.F) { fuzzParse(f, FormatOpenMetrics) }

func fuzzParse(f *testing.F, format Format) {
	for _, body := range fixtures(f, format) {
		// Seed with windows of a few lines: the fixtures whole are slow
		// to mutate.
		lines := bytes.SplitAfter(body, []byte("\n"))
		for i := 0; i < len(lines); i += 6 {
			seed := bytes.Join(lines[i:min(i+6, len(lines))], nil)
			if format == FormatOpenMetrics && !bytes.HasSuffix(seed, []byte("# EOF\n")) {
				seed = append(seed, "# EOF\n"...)
			}
			f.Add(seed)
		}
	}
	tricky := trickyText
	if format == FormatOpenMetrics {
		tricky = trickyOM
	}
	for _, body := range tricky {
		f.Add([]byte(body))
	}
	var p Parser
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > maxFuzzInput {
			t.Skip()
		}
		checkAgainstTextparse(t, &p, body, format)
	})
}

// FuzzParseFloat checks that the fast decimal path returns strconv's bits.
func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{"0", "-0", "1", "1.5e+06", "2.9568e-05", "123456789012345678", "9007199254740993",
		".5", "5.", "+3", "1e22", "1e23", "1e-22", "1e-23", "4.9e-324", "NaN", "+Inf", "1_0", "0x1p3", "1e400"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gotOK := parseFloat(b)
		want, wantOK := parseFloatSlow(b)
		if gotOK != wantOK || gotOK && math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("parseFloat(%q) = %v, %v (%x); strconv: %v, %v (%x)", b, got, gotOK, math.Float64bits(got), want, wantOK, math.Float64bits(want))
		}
	})
}

// fallbackMediaTypes is config.ScrapeProtocol.HeaderMediaType for each
// protocol (the config package is too heavy a test dependency).
var fallbackMediaTypes = map[string]string{
	"PrometheusProto":      "application/vnd.google.protobuf",
	"PrometheusText0.0.4":  "text/plain",
	"PrometheusText1.0.0":  "text/plain",
	"OpenMetricsText0.0.1": "application/openmetrics-text",
	"OpenMetricsText1.0.0": "application/openmetrics-text",
	"OpenMetricsText2.0.0": "application/openmetrics-text",
}

// FuzzFormatFor checks FormatFor against textparse.New, which is what
// Prometheus's scrape loop calls: the same parser, and an error when
// Prometheus would fail the scrape. The one intended difference: where
// Prometheus would parse protobuf, FormatFor uses a text fallback or fails.
func FuzzFormatFor(f *testing.F) {
	for _, ct := range []string{"", "text/plain; version=0.0.4; charset=utf-8", "application/openmetrics-text; version=1.0.0; charset=utf-8",
		"application/openmetrics-text; version=2.0.0", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
		"TEXT/PLAIN", "text/html", "text/plain;;", "application/json; charset=utf-8", "text/plain; version=1.0.0; escaping=underscores"} {
		for fb := range fallbackMediaTypes {
			f.Add(ct, fb)
		}
		f.Add(ct, "")
		f.Add(ct, "bogus")
	}
	f.Fuzz(func(t *testing.T, ct, fallback string) {
		got, err := FormatFor([]byte(ct), fallback)
		tp, tpErr := textparse.New(nil, ct, nil, textparse.ParserOptions{FallbackContentType: fallbackMediaTypes[fallback]})
		want, wantOK := Format(0), true
		switch tp.(type) {
		case *textparse.PromParser:
			want = FormatText
		case *textparse.OpenMetricsParser:
			want = FormatOpenMetrics
		case *textparse.ProtobufParser:
			want, wantOK = FormatText, false
			if tpErr == nil { // protobuf from the Content-Type: the fallback decides
				var err error
				want, err = useFallback(fallback, "", nil)
				wantOK = err == nil
			}
		default:
			wantOK = false
		}
		if wantOK != (err == nil) || wantOK && got != want {
			t.Fatalf("FormatFor(%q, %q) = %v, %v; textparse.New gives %T, %v", ct, fallback, got, err, tp, tpErr)
		}
	})
}

// FuzzCache runs random operation sequences against Cache and refCache,
// the obvious implementation of its semantics (cache_test.go).
func FuzzCache(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 0, 1, 1, 4, 0, 4, 6, 7})
	f.Add(bytes.Repeat([]byte{0, 4, 1, 2, 1, 3, 0x11, 0x21, 4, 0, 4}, 20))
	f.Fuzz(func(t *testing.T, ops []byte) {
		c := NewCache[int]()
		m := &refCache{iter: 1, entries: map[string]*refEntry{}}
		for i, op := range ops {
			key := []byte{'k', op >> 4}
			switch op & 7 {
			case 0:
				c.Begin()
				m.begin()
			case 1, 2:
				v, seen, ok := c.Get(key)
				wv, wseen, wok := m.get(string(key))
				if ok != wok || ok && (v != wv || seen != wseen) {
					t.Fatalf("op %d: Get(%q) = %v, %v, %v; model %v, %v, %v iter %d", i, key, v, seen, ok, wv, wseen, wok, m.iter)
				}
			case 3:
				c.Put(key, i)
				m.put(string(key), i)
			case 4:
				var got []int
				c.Stale(func(v int) { got = append(got, v) })
				slices.Sort(got)
				if want := m.stale(); !slices.Equal(got, want) {
					t.Fatalf("op %d: Stale = %v, want %v", i, got, want)
				}
			case 5:
				var got []int
				c.Live(func(v int) { got = append(got, v) })
				slices.Sort(got)
				if want := m.live(); !slices.Equal(got, want) {
					t.Fatalf("op %d: Live = %v, want %v", i, got, want)
				}
			case 6:
				c.Abort()
				m.abort()
			}
			if c.Len() != len(m.entries) {
				t.Fatalf("op %d: Len = %d, want %d", i, c.Len(), len(m.entries))
			}
		}
	})
}
