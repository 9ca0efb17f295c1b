package parse

import "testing"

func TestSmoke(t *testing.T) {
	var p Parser
	for _, f := range []Format{FormatText, FormatOpenMetrics} {
		for name, body := range fixtures(t, f) {
			t.Run(name, func(t *testing.T) { checkAgainstTextparse(t, &p, body, f) })
		}
	}
}
