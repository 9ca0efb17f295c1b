package parse

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var update = flag.Bool("update", false, "regenerate the generated fixtures in testdata/")

// TestGenerateFixtures writes the generated fixtures (run with -update):
//
//   - node_exporter.om.txt: the real node_exporter.prom (Debian's
//     prometheus-node-exporter 1.5.0, which cannot serve OpenMetrics itself)
//     decoded by expfmt's TextParser and re-encoded by its OpenMetrics
//     encoder, so the OpenMetrics fast path is measured on the same series.
//   - long_labels.prom and long_labels.om.txt: 60 labels per series and
//     1 KiB label values with escapes and multi-byte runes.
//
// Without -update it checks that the files are what it would write.
func TestGenerateFixtures(t *testing.T) {
	node, err := os.ReadFile("testdata/node_exporter.prom")
	if err != nil {
		t.Fatal(err)
	}
	om, err := textToOpenMetrics(node)
	if err != nil {
		t.Fatal(err)
	}
	promLong, omLong := longLabels()
	for name, want := range map[string][]byte{
		"testdata/node_exporter.om.txt": om,
		"testdata/long_labels.prom":     promLong,
		"testdata/long_labels.om.txt":   omLong,
	} {
		if *update {
			if err := os.WriteFile(name, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go test ./parse -run TestGenerateFixtures -update", name)
		}
	}
}

// textToOpenMetrics re-encodes a text body as OpenMetrics with expfmt.
func textToOpenMetrics(body []byte) ([]byte, error) {
	tp := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := tp.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(mfs))
	for n := range mfs {
		names = append(names, n)
	}
	slices.Sort(names)
	var out bytes.Buffer
	for _, n := range names {
		if _, err := expfmt.MetricFamilyToOpenMetrics(&out, mfs[n]); err != nil {
			return nil, err
		}
	}
	if _, err := expfmt.FinalizeOpenMetrics(&out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// longLabels returns the same pathological series in both formats.
func longLabels() (prom, om []byte) {
	var series []string
	for s := range 8 {
		var b strings.Builder
		fmt.Fprintf(&b, "pathological_series_info{")
		for l := range 60 {
			if l > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "label_%02d=%q", l, fmt.Sprintf("series %d label %d", s, l))
		}
		b.WriteString("}")
		series = append(series, b.String())
	}
	// 1 KiB values, with escapes and multi-byte runes.
	chunk := `ä\"quoted\" and \\ backslash\n` // escaped form, 33 bytes
	long := strings.Repeat(chunk, 1024/len(chunk)+1)
	for s := range 4 {
		series = append(series, fmt.Sprintf(`pathological_long_value{id="%d",a="%s",b="%s"}`, s, long, long[:len(long)/2]))
	}
	var p, o bytes.Buffer
	p.WriteString("# HELP pathological_series_info Very many labels.\n# TYPE pathological_series_info gauge\n")
	o.WriteString("# HELP pathological_series_info Very many labels.\n# TYPE pathological_series_info gauge\n")
	for i, s := range series {
		if i == 8 {
			p.WriteString("# TYPE pathological_long_value gauge\n")
			o.WriteString("# TYPE pathological_long_value gauge\n")
		}
		fmt.Fprintf(&p, "%s %d\n", s, i)
		fmt.Fprintf(&o, "%s %d\n", s, i)
	}
	o.WriteString("# EOF\n")
	return p.Bytes(), o.Bytes()
}
