package parse

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// Raise these locally to search longer: go test ./parse -run TestRandomBodies
const randomIters, randomSeed = 4000, 1

// fragments of sample lines: good ones are valid in the format (including
// forms only textparse's lexer accepts), bad ones are not, or are odd.
type fragments struct{ good, bad []string }

var (
	fragNames  = fragments{[]string{"a", "a_b:c", "a_bucket", "a_created", "a_total", ":x", "_"}, []string{"", " a", "0a", "a-b", "\"q\"", "a\x00"}}
	fragLsets  = fragments{[]string{"", "{}", `{b="c"}`, `{b="c",}`, `{b="c\"}"}`, `{"x.y"="z"}`, `{b="\\"}`, `{le="1"}`, `{quantile="0.5"}`, `{le="+Inf",b="日本"}`, `{b="\n",c="}{,= #"}`}, []string{`{b="c" , d="e"}`, `{b="c"d="e"}`, `{"m"}`, `{b="c\\"}`, `{b="c}`, `{b="x` + "\n" + `y"}`, `{b=c}`, `{,}`, `{ b="c" }`, `{b="\xff"}`}}
	fragValues = fragments{[]string{"1", "-0", "NaN", "+Inf", "-Inf", "1e3", "1.5", ".5", "9007199254740993", "1.7954547843680944e+09", "4.9e-324"}, []string{"x", "", "1_0", "0x1p1", "1e400", "1\r", "1{"}}
	fragTSText = fragments{[]string{"", "", " 123", "\t42", " 9223372036854775807"}, []string{" 1.5", " -1", " 99999999999999999999", " 1 2", " #"}}
	fragTSOM   = fragments{[]string{"", "", " 123", " 1.5", " -1", " 1e9"}, []string{" NaN", " +Inf", "  1", " 1 2", " #", "\t1"}}
	fragEx     = fragments{[]string{"", "", " # {a=\"b\"} 1", " # {} 1 2", " # {a=\"b\",c=\"d\",} NaN 1.5", " # {\"a\"=\"b\"} 1"}, []string{" #", " # {a=b} 1", " # {a=\"b\"}", " # {a=\"b\"} 1 NaN", " # {\"a\"} 1", " # {a=\"b\" } 1"}}
	fragMeta   = fragments{[]string{"# HELP a b", "# HELP a", "# TYPE a counter", "# TYPE a histogram", "# TYPE a summary", "# TYPE a gauge", "# HELP \"q.r\" x"}, []string{"# TYPE a bogus", "#x", "# EOF", "", " ", "\t# HELP a b", "# TYPE a\tsummary", "#  TYPE a histogram", "# UNIT a_b c"}}
	fragOMMeta = fragments{[]string{"# UNIT a_b b", "# TYPE a gaugehistogram", "# TYPE a info", "# TYPE a unknown"}, nil}
)

// TestRandomBodies is a grammar-aware complement to the fuzzers: bodies
// assembled from fragments at the edges of the two grammars (escapes,
// quotes, braces, whitespace, exemplars, metadata), some with random bytes
// spliced in, checked against textparse. The byte-level fuzzers rarely
// assemble several such fragments in one line.
func TestRandomBodies(t *testing.T) {
	specials := []byte{'"', '\\', '}', '{', ' ', '\t', '\n', '#', ',', '=', 0, 0xff}
	r := rand.New(rand.NewPCG(randomSeed, 2))
	var p Parser
	accepted := 0
	for iter := range randomIters {
		f := Format(iter % 2)
		clean := r.IntN(2) == 0 // only good fragments, no splicing
		pick := func(fr fragments) string {
			if clean || len(fr.bad) == 0 || r.IntN(6) != 0 {
				return fr.good[r.IntN(len(fr.good))]
			}
			return fr.bad[r.IntN(len(fr.bad))]
		}
		var b strings.Builder
		for range 1 + r.IntN(8) {
			var line string
			switch {
			case r.IntN(3) == 0:
				line = pick(fragMeta)
			case f == FormatOpenMetrics && r.IntN(8) == 0:
				line = pick(fragOMMeta)
			case f == FormatOpenMetrics:
				line = pick(fragNames) + pick(fragLsets) + " " + pick(fragValues) + pick(fragTSOM) + pick(fragEx)
			default:
				line = pick(fragNames) + pick(fragLsets) + []string{" ", "  ", "\t", " \t"}[r.IntN(4)] + pick(fragValues) + pick(fragTSText)
			}
			if !clean && len(line) > 0 && r.IntN(8) == 0 {
				at := r.IntN(len(line) + 1)
				line = line[:at] + string(specials[r.IntN(len(specials))]) + line[at:]
			}
			b.WriteString(line)
			b.WriteByte('\n')
		}
		body := b.String()
		if f == FormatOpenMetrics && (clean || r.IntN(5) != 0) {
			body += "# EOF\n"
		}
		if r.IntN(6) == 0 {
			body = strings.TrimSuffix(body, "\n")
		}
		checkAgainstTextparse(t, &p, []byte(body), f)
		if _, err := referenceSamples([]byte(body), f); err == nil {
			accepted++
		}
	}
	// Both outcomes must be common, or the fragments have drifted.
	if accepted < randomIters/5 || accepted > randomIters*4/5 {
		t.Errorf("textparse accepted %d of %d bodies: the test no longer exercises both outcomes", accepted, randomIters)
	}
	t.Logf("textparse accepted %d of %d bodies", accepted, randomIters)
}
