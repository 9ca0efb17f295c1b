package parse

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// flatSample is a sample reduced to what two independent decoders must
// agree on: labels in textparse's formatting, value (NaNs are equal) and
// timestamp.
type flatSample struct {
	lset  string
	value float64
	ts    int64 // -1: none
}

func (s flatSample) key() string {
	v := fmt.Sprint(math.Float64bits(s.value))
	if math.IsNaN(s.value) {
		v = "NaN"
	}
	return fmt.Sprintf("%s %s %d", s.lset, v, s.ts)
}

// flattenFamilies turns expfmt's families into the series textparse
// returns: histograms and summaries become _bucket/_sum/_count and quantile
// series, with le and quantile formatted as textparse normalises them.
func flattenFamilies(mfs []*dto.MetricFamily) []flatSample {
	var out []flatSample
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			ts := int64(-1)
			if m.TimestampMs != nil {
				ts = m.GetTimestampMs()
			}
			add := func(name string, v float64, extra ...string) {
				b := labels.NewScratchBuilder(len(m.GetLabel()) + 2)
				b.Add(model.MetricNameLabel, name)
				for _, lp := range m.GetLabel() {
					b.Add(lp.GetName(), lp.GetValue())
				}
				for i := 0; i < len(extra); i += 2 {
					b.Add(extra[i], extra[i+1])
				}
				b.Sort()
				out = append(out, flatSample{lset: b.Labels().String(), value: v, ts: ts})
			}
			count := func(u uint64, f float64) float64 {
				if f != 0 {
					return f
				}
				return float64(u)
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(name, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add(name, m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(name, q.GetValue(), model.QuantileLabel, labels.FormatOpenMetricsFloat(q.GetQuantile()))
				}
				add(name+"_sum", s.GetSampleSum())
				add(name+"_count", float64(s.GetSampleCount()))
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, bk := range h.GetBucket() {
					add(name+"_bucket", count(bk.GetCumulativeCount(), bk.GetCumulativeCountFloat()),
						model.BucketLabel, labels.FormatOpenMetricsFloat(bk.GetUpperBound()))
				}
				add(name+"_sum", h.GetSampleSum())
				add(name+"_count", count(h.GetSampleCount(), h.GetSampleCountFloat()))
			}
		}
	}
	return out
}

// parserFlat returns what Parser yields for body, flattened.
func parserFlat(t *testing.T, body []byte, f Format) []flatSample {
	t.Helper()
	var p Parser
	var out []flatSample
	for p.Reset(body, f); p.Next(); {
		l, err := p.Labels()
		if err != nil {
			t.Fatal(err)
		}
		ts, ok := p.Timestamp()
		if !ok {
			ts = -1
		}
		out = append(out, flatSample{lset: l.String(), value: p.Value(), ts: ts})
	}
	if p.Err() != nil {
		t.Fatal(p.Err())
	}
	return out
}

func sameMultiset(t *testing.T, what string, got, want []flatSample) {
	t.Helper()
	g := make([]string, len(got))
	for i, s := range got {
		g[i] = s.key()
	}
	w := make([]string, len(want))
	for i, s := range want {
		w[i] = s.key()
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s: samples differ\ngot  %d:\n%s\nwant %d:\n%s", what, len(g), strings.Join(g, "\n"), len(w), strings.Join(w, "\n"))
	}
}

// TestTextFixturesAgainstExpfmt compares Parser with an independent decoder,
// expfmt's TextParser, on every text fixture but lenient.prom (forms only
// textparse accepts).
func TestTextFixturesAgainstExpfmt(t *testing.T) {
	for name, body := range fixtures(t, FormatText) {
		if name == "lenient.prom" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			// expfmt requires a final newline; textparse does not.
			withNL := body
			if !bytes.HasSuffix(body, []byte("\n")) {
				withNL = append(body[:len(body):len(body)], '\n')
			}
			tp := expfmt.NewTextParser(model.UTF8Validation)
			fams, err := tp.TextToMetricFamilies(bytes.NewReader(withNL))
			if err != nil {
				t.Fatalf("expfmt: %v", err)
			}
			var mfs []*dto.MetricFamily
			for _, mf := range fams {
				mfs = append(mfs, mf)
			}
			want := flattenFamilies(mfs)
			if len(want) == 0 {
				t.Fatal("expfmt found no samples")
			}
			sameMultiset(t, name, parserFlat(t, body, FormatText), want)
		})
	}
}

// TestOpenMetricsFromExpfmtEncoder encodes known families with expfmt's
// OpenMetrics encoder (with _created lines and exemplars) and checks that
// Parser recovers every sample; also against whole-body textparse.
func TestOpenMetricsFromExpfmtEncoder(t *testing.T) {
	created := timestamppb.New(time.Unix(1700000000, 500_000_000))
	ex := func(v float64, sec float64, kv ...string) *dto.Exemplar {
		e := &dto.Exemplar{Value: proto.Float64(v)}
		for i := 0; i < len(kv); i += 2 {
			e.Label = append(e.Label, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
		}
		if sec != 0 {
			e.Timestamp = timestamppb.New(time.Unix(0, int64(sec*1e9)))
		}
		return e
	}
	lp := func(kv ...string) (out []*dto.LabelPair) {
		for i := 0; i < len(kv); i += 2 {
			out = append(out, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
		}
		return out
	}
	mfs := []*dto.MetricFamily{
		{Name: proto.String("om_requests_total"), Help: proto.String("Requests, with \\ and \n in help."), Type: dto.MetricType_COUNTER.Enum(),
			Metric: []*dto.Metric{
				{Label: lp("method", "GET", "path", "/a\"b\\c\nd"), TimestampMs: proto.Int64(1700000002123),
					Counter: &dto.Counter{Value: proto.Float64(1027), CreatedTimestamp: created, Exemplar: ex(1, 1700000001.25, "trace_id", "abc")}},
				{Label: lp("method", "PUT", "path", "/ünïcødé/🚀"), Counter: &dto.Counter{Value: proto.Float64(3.5), CreatedTimestamp: created}},
			}},
		{Name: proto.String("om_temperature_celsius"), Help: proto.String("Temperature."), Type: dto.MetricType_GAUGE.Enum(), Unit: proto.String("celsius"),
			Metric: []*dto.Metric{
				{Label: lp("v", "neg"), Gauge: &dto.Gauge{Value: proto.Float64(-12.5)}},
				{Label: lp("v", "nan"), Gauge: &dto.Gauge{Value: proto.Float64(math.NaN())}},
				{Label: lp("v", "inf"), Gauge: &dto.Gauge{Value: proto.Float64(math.Inf(1))}},
				{Label: lp("v", "tiny"), Gauge: &dto.Gauge{Value: proto.Float64(1e-300)}},
				{Label: lp("v", "big"), Gauge: &dto.Gauge{Value: proto.Float64(math.MaxFloat64)}},
			}},
		{Name: proto.String("om_latency_seconds"), Help: proto.String("Latency."), Type: dto.MetricType_HISTOGRAM.Enum(),
			Metric: []*dto.Metric{{Label: lp("handler", "/q"), Histogram: &dto.Histogram{
				SampleCount: proto.Uint64(3), SampleSum: proto.Float64(1.5), CreatedTimestamp: created,
				Bucket: []*dto.Bucket{
					{UpperBound: proto.Float64(0.1), CumulativeCount: proto.Uint64(1), Exemplar: ex(0.05, 1700000000.001, "trace_id", "a")},
					{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(2), Exemplar: ex(0.5, 0, "trace_id", "b", "span_id", "c")},
				}}}}},
		{Name: proto.String("om_rpc_seconds"), Help: proto.String("RPC."), Type: dto.MetricType_SUMMARY.Enum(),
			Metric: []*dto.Metric{{Summary: &dto.Summary{SampleCount: proto.Uint64(100), SampleSum: proto.Float64(10), CreatedTimestamp: created,
				Quantile: []*dto.Quantile{{Quantile: proto.Float64(0.5), Value: proto.Float64(0.1)}, {Quantile: proto.Float64(0.99), Value: proto.Float64(0.5)}}}}}},
		{Name: proto.String("om_other"), Type: dto.MetricType_UNTYPED.Enum(), Metric: []*dto.Metric{{Untyped: &dto.Untyped{Value: proto.Float64(7)}}}},
		{Name: proto.String("om.utf8.name"), Help: proto.String("UTF-8 names."), Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Label: lp("quoted.label", "x"), Gauge: &dto.Gauge{Value: proto.Float64(5)}}}},
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToOpenMetrics(&buf, mf, expfmt.WithCreatedLines()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := expfmt.FinalizeOpenMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	body := buf.Bytes()

	// The known values: what the families say, with the _created series
	// OpenMetrics adds (value: seconds, no timestamp) and the +Inf bucket
	// the encoder writes from the count.
	want := flattenFamilies(mfs)
	const cr = 1700000000.5
	want = append(want,
		flatSample{`{__name__="om_requests_created", method="GET", path="/a\"b\\c\nd"}`, cr, -1},
		flatSample{`{__name__="om_requests_created", method="PUT", path="/ünïcødé/🚀"}`, cr, -1},
		flatSample{`{__name__="om_latency_seconds_bucket", handler="/q", le="+Inf"}`, 3, -1},
		flatSample{`{__name__="om_latency_seconds_created", handler="/q"}`, cr, -1},
		flatSample{`{__name__="om_rpc_seconds_created"}`, cr, -1},
	)
	sameMultiset(t, "expfmt-encoded OpenMetrics", parserFlat(t, body, FormatOpenMetrics), want)
	if !bytes.Contains(body, []byte(` # {trace_id="abc"} 1.0 `)) || !bytes.Contains(body, []byte(`{"om.utf8.name","quoted.label"="x"}`)) {
		t.Errorf("the encoded body lacks the exemplar or the quoted name the test means to cover:\n%s", body)
	}
	var p Parser
	checkAgainstTextparse(t, &p, body, FormatOpenMetrics)
}
