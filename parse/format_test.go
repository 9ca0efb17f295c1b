package parse

import (
	"errors"
	"testing"
)

func TestFormatFor(t *testing.T) {
	f := func(ct, fallback string, want Format, wantErr bool) {
		t.Helper()
		got, err := FormatFor([]byte(ct), fallback)
		if wantErr {
			if err == nil || !errors.Is(err, ErrContentType) {
				t.Errorf("FormatFor(%q, %q) = %v, %v; want an ErrContentType error", ct, fallback, got, err)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("FormatFor(%q, %q) = %v, %v; want %v", ct, fallback, got, err, want)
		}
	}
	f("text/plain; version=0.0.4; charset=utf-8", "", FormatText, false)
	f("text/plain; version=1.0.0; charset=utf-8; escaping=underscores", "", FormatText, false)
	f("Text/Plain", "", FormatText, false)
	f("text/plain;version=0.0.4", "", FormatText, false)
	f("application/openmetrics-text; version=1.0.0; charset=utf-8", "", FormatOpenMetrics, false)
	f("application/openmetrics-text; version=0.0.1; charset=utf-8", "", FormatOpenMetrics, false)
	f("application/openmetrics-text", "", FormatOpenMetrics, false)
	f("application/openmetrics-text; version=2.0.0", "", 0, true)
	f("application/openmetrics-text; version=2.0.0", "PrometheusText0.0.4", FormatText, false)
	f("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited", "", 0, true)
	f("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited", "OpenMetricsText1.0.0", FormatOpenMetrics, false)
	f("", "", 0, true)
	f("", "PrometheusText1.0.0", FormatText, false)
	f("", "OpenMetricsText2.0.0", FormatOpenMetrics, false)
	f("", "PrometheusProto", 0, true)
	f("", "bogus", 0, true)
	f("text/html", "", 0, true)
	f("text/html", "OpenMetricsText0.0.1", FormatOpenMetrics, false)
	f("text/plain;;", "", 0, true)
	f("text/plain;;", "PrometheusText0.0.4", FormatText, false)
	f("application/json", "PrometheusProto", 0, true)
}

func TestFormatForAllocs(t *testing.T) {
	for _, ct := range []string{"text/plain; version=0.0.4; charset=utf-8", "application/openmetrics-text; version=1.0.0; charset=utf-8"} {
		b := []byte(ct)
		if n := testing.AllocsPerRun(100, func() { _, _ = FormatFor(b, "") }); n != 0 {
			t.Errorf("FormatFor(%q) allocates %v times", ct, n)
		}
	}
}

func TestFormatString(t *testing.T) {
	if FormatText.String() != "text" || FormatOpenMetrics.String() != "openmetrics" || Format(9).String() != "Format(9)" {
		t.Error("Format.String")
	}
}
