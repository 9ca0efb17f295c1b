package produce

import (
	"bytes"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

func series(kv ...string) *Series {
	ls := labels.FromStrings(kv...)
	return NewSeries(ls)
}

func TestTextFormat(t *testing.T) {
	var buf bytes.Buffer
	s := NewText(&buf)
	sc := &Scrape{Samples: []Sample{
		{series("__name__", "up", "job", "j", "instance", "h:1"), 1000, 1},
		{series("__name__", "m", "v", "a\"b\\c\nd", "u", "ünï"), 1001, 2.5},
		{series("__name__", "bare"), 1002, math.Inf(1)},
		{series("__name__", "my.metric", "a", "b"), 1003, math.NaN()},
		{series("__name__", "gone"), 1004, StaleNaN},
		{series("__name__", "big"), 1005, 1e21},
	}}
	if err := s.Write(sc); err != nil {
		t.Fatal(err)
	}
	want := `up{instance="h:1",job="j"} 1 1000
m{u="ünï",v="a\"b\\c\nd"} 2.5 1001
bare +Inf 1002
{"my.metric",a="b"} NaN 1003
gone stale 1004
big 1e+21 1005
`
	if got := buf.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// The text sink's lines read back with the reference text parser: names,
// labels and values survive (bar the stale marker, which the format cannot
// carry).
func TestTextRoundTripsThroughExpfmt(t *testing.T) {
	var buf bytes.Buffer
	s := NewText(&buf)
	in := []Sample{
		{series("__name__", "a_total", "path", `C:\dir "x"`, "nl", "1\n2"), 5, 42},
		{series("__name__", "b", "l", "日本"), 6, -0.25},
	}
	if err := s.Write(&Scrape{Samples: in}); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatalf("expfmt cannot read the output: %v\n%s", err, buf.String())
	}
	for _, smp := range in {
		name := smp.Series.Labels().Get(model.MetricNameLabel)
		f := fams[name]
		if f == nil || len(f.Metric) != 1 {
			t.Fatalf("family %s missing", name)
		}
		m := f.Metric[0]
		got := labels.NewScratchBuilder(0)
		got.Add(model.MetricNameLabel, name)
		for _, lp := range m.Label {
			got.Add(lp.GetName(), lp.GetValue())
		}
		got.Sort()
		if !labels.Equal(got.Labels(), smp.Series.Labels()) {
			t.Errorf("labels %s, want %s", got.Labels(), smp.Series.Labels())
		}
		if v := m.GetUntyped().GetValue(); v != smp.V || m.GetTimestampMs() != smp.T {
			t.Errorf("%s: %v@%d, want %v@%d", name, v, m.GetTimestampMs(), smp.V, smp.T)
		}
	}
}

// Concurrent scrapes never interleave their lines.
func TestTextKeepsScrapesTogether(t *testing.T) {
	var buf bytes.Buffer
	s := NewText(&buf)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			name := string(rune('a' + w))
			sc := &Scrape{}
			for i := range 50 {
				sc.Samples = append(sc.Samples, Sample{series("__name__", name), int64(i), 1})
			}
			for range 20 {
				if err := s.Write(sc); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 8*50*20 {
		t.Fatalf("%d lines", len(lines))
	}
	for i := 0; i < len(lines); i += 50 {
		first := lines[i][:1]
		for _, l := range lines[i : i+50] {
			if l[:1] != first {
				t.Fatalf("lines of two scrapes interleaved at line %d", i)
			}
		}
	}
	if s.Samples() != 8*50*20 {
		t.Errorf("Samples() = %d", s.Samples())
	}
}

func TestTextSteadyStateDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	var buf bytes.Buffer
	s := NewText(&buf)
	sc := &Scrape{Memo: &Memo{}} // the target's, as the engine hands it over
	for i := range 100 {
		sc.Samples = append(sc.Samples, Sample{series("__name__", "m", "i", strings.Repeat("x", i)), int64(i), float64(i)})
	}
	s.Write(sc)
	allocs := testing.AllocsPerRun(50, func() {
		buf.Reset()
		s.Write(sc)
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per 100-sample scrape", allocs)
	}
}

func TestDiscardCounts(t *testing.T) {
	var d Discard
	d.Write(&Scrape{Samples: make([]Sample, 7)})
	d.Write(&Scrape{Samples: make([]Sample, 3)})
	if d.Samples() != 10 || d.Scrapes() != 2 {
		t.Fatalf("samples %d scrapes %d", d.Samples(), d.Scrapes())
	}
}

func TestIsStale(t *testing.T) {
	if !IsStale(StaleNaN) || IsStale(math.NaN()) || IsStale(0) {
		t.Fatal("IsStale must tell the stale marker from ordinary NaN")
	}
}
