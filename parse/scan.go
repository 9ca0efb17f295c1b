package parse

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// This file is the fast path: a hand-written scanner for the line shapes real
// exporters write. It never calls textparse and never allocates. For each
// line it either consumes it completely (a sample, a comment, HELP, TYPE,
// UNIT, a blank line), agreeing exactly with textparse, or returns lineOdd
// without side effects and the Parser hands the line to textparse
// (fallback.go). When in doubt, it returns lineOdd.
//
// What "agreeing exactly" requires is set out in the package documentation:
// the series boundary, the value, the timestamp, the exemplar and the
// metadata lines are checked here; the inside of a series is checked by
// textparse when Labels is called for it.

// lineKind is what a fast-path scan found at the start of the unread body.
type lineKind uint8

const (
	lineOdd    lineKind = iota // not in the fast subset: hand the line to textparse
	lineSample                 // a float sample; the Parser's current sample is set
	lineOther                  // a line without a sample (comment, metadata, blank)
	lineEOF                    // OpenMetrics "# EOF" closing the body
)

// Byte classes of promlex.l and openmetricslex.l.
var (
	isNameStart  = byteClass(func(c byte) bool { return c == '_' || c == ':' || c|0x20 >= 'a' && c|0x20 <= 'z' }) // {M}
	isNameChar   = byteClass(func(c byte) bool { return isNameStart[c] || c >= '0' && c <= '9' })                 // {M}|{D}
	isLabelStart = byteClass(func(c byte) bool { return c == '_' || c|0x20 >= 'a' && c|0x20 <= 'z' })             // {L}
	isLabelChar  = byteClass(func(c byte) bool { return isLabelStart[c] || c >= '0' && c <= '9' })                // {L}|{D}
	// isQuoted: bytes that continue a quoted string without special meaning.
	isQuoted = byteClass(func(c byte) bool { return c != '"' && c != '\\' && c != '\n' })
	// isInLabels: bytes of a label set, outside quoted strings, that do not
	// end it or start a string (text format); isInLabelsOM also stops at
	// whitespace.
	isInLabels   = byteClass(func(c byte) bool { return c != '"' && c != '}' && c != '\n' })
	isInLabelsOM = byteClass(func(c byte) bool { return isInLabels[c] && c != ' ' && c != '\t' })
	// isTextValueEnd: bytes that may follow a text-format value token
	// without making the line odd ('{' would end the token but is an error).
	isTextValueEnd = byteClass(func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' })
	// isTextValue: bytes of a text-format value token ([^{ \t\n]).
	isTextValue = byteClass(func(c byte) bool { return c != '{' && c != ' ' && c != '\t' && c != '\n' })
	// isOMToken: bytes of an OpenMetrics value or timestamp token ([^ \n]).
	isOMToken = byteClass(func(c byte) bool { return c != ' ' && c != '\n' })
)

func byteClass(f func(c byte) bool) (t [256]bool) {
	for c := range 256 {
		t[c] = f(byte(c))
	}
	return t
}

// skipQuoted returns the offset just after the closing quote of a quoted
// string whose opening quote is at i-1, or -1 if the string does not close on
// this line. The escape rule is promlex.l's \\. where "." is any byte but a
// newline (and NUL, which never reaches the fast path).
func skipQuoted(b []byte, i int) int {
	n := len(b)
	for {
		for i < n && isQuoted[b[i]] {
			i++
		}
		if i >= n {
			return -1
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			if i+1 >= n || b[i+1] == '\n' {
				return -1
			}
			i += 2
		default: // '\n': a multi-line string, or an error.
			return -1
		}
	}
}

// skipLabelsText returns the offset just after the '}' that closes the label
// set whose '{' is at i-1: the first '}' outside a quoted string. It returns
// -1 if there is none on this line. In a label set textparse accepts, quotes
// only ever delimit strings, so this is exactly textparse's series end; the
// rest of the syntax inside the braces is textparse's to check (Labels).
func skipLabelsText(b []byte, i int) int {
	n := len(b)
	for {
		for i < n && isInLabels[b[i]] {
			i++
		}
		if i >= n || b[i] == '\n' {
			return -1
		}
		if b[i] == '}' {
			return i + 1
		}
		if i = skipQuoted(b, i+1); i < 0 {
			return -1
		}
	}
}

// skipLabelsOM is skipLabelsText with two OpenMetrics rules added: no
// whitespace outside quoted strings and a ',' '}' or '=' after each one. With
// them, every label set the text format accepts and this function passes is
// also valid OpenMetrics, so a series cached from a text body stays valid if
// the target switches to OpenMetrics.
func skipLabelsOM(b []byte, i int) int {
	n := len(b)
	for {
		for i < n && isInLabelsOM[b[i]] {
			i++
		}
		if i >= n {
			return -1
		}
		switch b[i] {
		case '}':
			return i + 1
		case '"':
			if i = skipQuoted(b, i+1); i < 0 || i >= n {
				return -1
			}
			if c := b[i]; c != ',' && c != '}' && c != '=' {
				return -1
			}
		default: // whitespace or '\n'
			return -1
		}
	}
}

// scanName returns the end of the metric name whose first byte, a
// name-start byte, is at b[i]: the first byte that is not a name byte.
//
// Most names begin with the name of the metric family of the HELP and TYPE
// lines before them (x, then x_bucket, x_sum, ...). p.name remembers the
// last name scanned in full; when a name starts with it, those bytes are
// known to be name bytes and are compared rather than classified, which
// memequal does several times faster.
func (p *Parser) scanName(b []byte, i int) int {
	if m := p.name; len(m) > 0 && len(m) <= len(b)-i && string(b[i:i+len(m)]) == string(m) {
		return skipNameBytes(b, i+len(m))
	}
	j := skipNameBytes(b, i+1)
	p.name = b[i:j:j]
	return j
}

// skipNameBytes returns the offset of the first byte at or after b[i] that
// is not a name byte ({M}|{D}), eight bytes at a time.
func skipNameBytes(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := notNameBytes(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(b) && isNameChar[b[i]] {
		i++
	}
	return i
}

// notNameBytes returns w, eight bytes read little-endian, with the high bit
// of each byte set if that byte is not a name byte [a-zA-Z0-9_:], and all
// other bits clear. It uses the exact per-byte range test of "hasbetween"
// from Bit Twiddling Hacks: for a byte x < 0x80, 127+n-x has its high bit set
// iff x < n, and x+127-m iff x > m; no lane borrows or carries into the next
// because x is masked to 7 bits and n <= 128.
func notNameBytes(w uint64) uint64 {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
		low7 = 0x7f7f7f7f7f7f7f7f
	)
	x := w & low7
	f := w | 0x2020202020202020 // A-Z to a-z; nothing else lands in a-z
	xf := f & low7
	letters := (ones*(127+'z'+1) - xf) & ^f & (xf + ones*(127-('a'-1)))
	digitsColon := (ones*(127+':'+1) - x) & ^w & (x + ones*(127-('0'-1)))
	underscore := (ones*(127+'_'+1) - x) & ^w & (x + ones*(127-('_'-1)))
	return ^(letters | digitsColon | underscore) & high
}

// scanText scans the text-format body from p.pos up to and including the
// next sample line, or to the first odd line.
func (p *Parser) scanText() lineKind {
	b := p.body
	n := len(b)
	start := p.pos
	for start < n {
		switch c := b[start]; {
		case isNameStart[c] || c == '{':
			return p.scanTextSample(start)
		case c == '\n':
			start++
			p.line++
		case c == '#':
			if !p.scanTextComment(start) {
				p.pos = start
				return lineOdd
			}
			start = p.pos
		default:
			p.pos = start
			return lineOdd
		}
	}
	p.pos = start
	return lineOther
}

// scanTextSample scans the sample line at b[start]:
//
//	series [ \t]+ value [[ \t]+ timestamp] [ \t]* ("\n" | end of body)
func (p *Parser) scanTextSample(start int) lineKind {
	b := p.body
	n := len(b)
	p.pos = start
	i := start
	if b[i] != '{' {
		i = p.scanName(b, i)
	}
	if i < n && b[i] == '{' {
		if i = skipLabelsText(b, i+1); i < 0 {
			return lineOdd
		}
	}
	end := i
	// [ \t]+ value. textparse also takes a value glued to '}', and a space
	// between the name and '{' (the value token then stops at once at '{'):
	// both are left to it.
	if i >= n || b[i] != ' ' && b[i] != '\t' {
		return lineOdd
	}
	for i++; i < n && (b[i] == ' ' || b[i] == '\t'); i++ {
	}
	v, j, ok := scanDecimal(b, i)
	if !ok || j < n && !isTextValueEnd[b[j]] {
		// Not a plain decimal (NaN, +Inf, or an error): the token is
		// [^{ \t\n]+, parsed like textparse.
		for j = i; j < n && isTextValue[b[j]]; j++ {
		}
		if j == i || j < n && b[j] == '{' {
			return lineOdd
		}
		if v, ok = parseFloat(b[i:j]); !ok {
			return lineOdd
		}
	}
	i = j
	// [ \t]* [{D}+ [ \t]*] \n
	for i < n && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	var ts int64
	hasTS := false
	if i < n && b[i] != '\n' {
		t0 := i
		for i < n && b[i]-'0' <= 9 {
			i++
		}
		if ts, ok = parseTextTimestamp(b[t0:i]); !ok {
			return lineOdd
		}
		for i < n && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		if i < n && b[i] != '\n' {
			return lineOdd
		}
		hasTS = true
	}
	p.setSample(start, end, i, v, ts, hasTS)
	return lineSample
}

// setSample makes body[start:end] the current series, of the line
// body[start:eol] (eol is at '\n' or the end of the body), and moves past
// the line.
func (p *Parser) setSample(start, end, eol int, v float64, ts int64, hasTS bool) {
	if v != v {
		v = normalNaN
	}
	p.series = p.body[start:end:end]
	p.val = v
	p.ts = ts
	p.hasTS = hasTS
	p.curFrom, p.curTo = start, eol
	p.curLine = p.line
	p.fromTP = false
	p.line++
	p.pos = min(eol+1, len(p.body))
	if invariants {
		p.checkFastSample()
	}
}

// scanTextComment scans the text-format line at b[i], which starts with '#',
// and moves past it, or returns false if it is odd. Besides the exact
// "# HELP name text" and "# TYPE name type" shapes, which it checks like
// textparse (textMeta), everything the lexer takes for a comment is
// skipped: "#" followed by anything, and "#[ \t]+" not followed by HELP or
// TYPE and [ \t]. Other HELP/TYPE spellings (tabs, extra spaces, quoted
// names) are odd.
func (p *Parser) scanTextComment(i int) bool {
	b := p.body
	if i+7 < len(b) && b[i+1] == ' ' && b[i+6] == ' ' && (string(b[i+2:i+6]) == "HELP" || string(b[i+2:i+6]) == "TYPE") {
		return isNameStart[b[i+7]] && p.textMeta(i)
	}
	end, next := len(b), len(b)
	if nl := bytes.IndexByte(b[i:], '\n'); nl >= 0 {
		end, next = i+nl, i+nl+1
	}
	line := b[i:end]
	if len(line) > 1 && (line[1] == ' ' || line[1] == '\t') {
		j := 2
		for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
			j++
		}
		if r := line[j:]; len(r) > 4 && (r[4] == ' ' || r[4] == '\t') && (string(r[:4]) == "HELP" || string(r[:4]) == "TYPE") {
			return false
		}
	}
	p.pos = next
	p.line++
	return true
}

// textMeta checks the line "# HELP name rest" or "# TYPE name rest" at
// b[i], with a plain name starting at b[i+7], as textparse would, records a
// TYPE and moves past the line. From promlex.l, the text textparse takes is
// rest[1:] whatever rest[0] is (a space, a tab or, since the name ends at
// the first non-name byte, any other byte), and is empty if rest has at most
// one byte.
func (p *Parser) textMeta(i int) bool {
	b := p.body
	n := len(b)
	if b[i+2] == 'H' {
		end, next := n, n
		if nl := bytes.IndexByte(b[i:], '\n'); nl >= 0 {
			end, next = i+nl, i+nl+1
		}
		// rest[1:] is a suffix of b[i+8:end]: if that is ASCII, it is valid
		// wherever the name ends, and the name need not be scanned.
		if !isASCII(b[i+8 : end]) {
			k := p.scanName(b[:end], i+7)
			if end-k > 1 && !utf8.Valid(b[k+1:end]) {
				return false
			}
		}
		p.pos = next
		p.line++
		return true
	}
	k := p.scanName(b, i+7)
	if k >= n || b[k] == '\n' {
		return false
	}
	for _, t := range textTypes {
		if e := k + 1 + len(t.word); e <= n && string(b[k+1:e]) == t.word && (e == n || b[e] == '\n') {
			p.mtype = t.typ
			p.pos = min(e+1, n)
			p.line++
			return true
		}
	}
	return false
}

var textTypes = [...]struct {
	word string
	typ  model.MetricType
}{
	{"counter", model.MetricTypeCounter},
	{"gauge", model.MetricTypeGauge},
	{"histogram", model.MetricTypeHistogram},
	{"summary", model.MetricTypeSummary},
	{"untyped", model.MetricTypeUnknown},
}

// scanOM scans one line of an OpenMetrics body at p.pos:
//
//	series " " value [" " timestamp] [" # {" exemplar-labels "} " value [" " timestamp]] "\n"
//
// with single spaces, as openmetricslex.l requires.
func (p *Parser) scanOM() lineKind {
	b := p.body
	n := len(b)
	start := p.pos
	i := start
	switch c := b[i]; {
	case isNameStart[c]:
		if i = p.scanName(b, i); i < n && b[i] == '{' {
			i = skipLabelsOM(b, i+1)
		}
	case c == '{':
		i = skipLabelsOM(b, i+1)
	case c == '#':
		return p.scanOMComment()
	default:
		return lineOdd
	}
	if i < 0 || i >= n || b[i] != ' ' {
		return lineOdd
	}
	end := i
	i++
	v, j, ok := scanDecimal(b, i)
	if !ok || j < n && b[j] != ' ' && b[j] != '\n' {
		for j = i; j < n && isOMToken[b[j]]; j++ {
		}
		if v, ok = parseFloat(b[i:j]); j == i || !ok {
			return lineOdd
		}
	}
	if i = j; i >= n {
		return lineOdd
	}
	var ts int64
	hasTS := false
	if b[i] == ' ' {
		if !hasExemplarStart(b[i:]) {
			i++
			t0 := i
			for i < n && isOMToken[b[i]] {
				i++
			}
			if ts, ok = omTimestamp(b[t0:i]); i == t0 || !ok { // "#x" and such fail too
				return lineOdd
			}
			hasTS = true
		}
		if i < n && b[i] == ' ' {
			if !hasExemplarStart(b[i:]) {
				return lineOdd
			}
			if i = skipExemplar(b, i+4); i < 0 {
				return lineOdd
			}
		}
	}
	if i >= n || b[i] != '\n' {
		return lineOdd
	}
	p.setSample(start, end, i, v, ts, hasTS)
	return lineSample
}

func hasExemplarStart(b []byte) bool {
	return len(b) >= 4 && b[0] == ' ' && b[1] == '#' && b[2] == ' ' && b[3] == '{'
}

// skipExemplar checks an exemplar after its " # {" (i is just past the '{')
// as textparse's parseComment does, and returns the offset after it, or -1.
// Exemplars are not returned, but textparse rejects a body with a malformed
// one, and they are not covered by the series cache, so they are checked on
// every line. Quoted label names are left to textparse.
func skipExemplar(b []byte, i int) int {
	n := len(b)
	if i < n && b[i] == '}' {
		i++
	} else {
		for {
			if i >= n || !isLabelStart[b[i]] {
				return -1
			}
			for i++; i < n && isLabelChar[b[i]]; i++ {
			}
			if i+1 >= n || b[i] != '=' || b[i+1] != '"' {
				return -1
			}
			v0 := i + 1
			if i = skipQuoted(b, i+2); i < 0 || i >= n || !validUTF8(b[v0:i]) {
				return -1
			}
			if b[i] == ',' {
				i++
				if i < n && b[i] == '}' {
					i++
					break
				}
				continue
			}
			if b[i] != '}' {
				return -1
			}
			i++
			break
		}
	}
	// " " value [" " timestamp]
	if i >= n || b[i] != ' ' {
		return -1
	}
	i++
	v0 := i
	for i < n && isOMToken[b[i]] {
		i++
	}
	if _, ok := parseFloat(b[v0:i]); i == v0 || !ok {
		return -1
	}
	if i < n && b[i] == ' ' {
		i++
		t0 := i
		for i < n && isOMToken[b[i]] {
			i++
		}
		if _, ok := omTimestamp(b[t0:i]); i == t0 || !ok {
			return -1
		}
	}
	return i
}

// validUTF8 is utf8.Valid with a faster path for ASCII, which is what
// HELP texts and label values almost always are.
func validUTF8(b []byte) bool { return isASCII(b) || utf8.Valid(b) }

// isASCII reports whether b has no byte >= 0x80.
func isASCII(b []byte) bool {
	var or uint64
	i := 0
	for ; i+16 <= len(b); i += 16 {
		or |= binary.LittleEndian.Uint64(b[i:]) | binary.LittleEndian.Uint64(b[i+8:])
	}
	for ; i < len(b); i++ {
		or |= uint64(b[i])
	}
	return or&0x8080808080808080 == 0
}

// scanOMComment scans an OpenMetrics line starting with '#': "# EOF", or
// "# HELP|TYPE|UNIT name text" with a plain name, checked like textparse.
// Everything else is odd (an error, or a quoted name).
func (p *Parser) scanOMComment() lineKind {
	b := p.body
	i := p.pos
	nl := bytes.IndexByte(b[i:], '\n')
	if nl < 0 {
		if string(b[i:]) == "# EOF" {
			return lineEOF
		}
		return lineOdd // no newline: textparse reports the missing "# EOF"
	}
	line := b[i : i+nl]
	if string(line) == "# EOF" {
		if i+nl+1 == len(b) {
			return lineEOF
		}
		return lineOdd // data after "# EOF"
	}
	if len(line) < 9 || line[1] != ' ' || line[6] != ' ' || !isNameStart[line[7]] {
		return lineOdd
	}
	k := p.scanName(line, 7)
	if k >= len(line) || line[k] != ' ' {
		return lineOdd
	}
	name, text := line[7:k], line[k+1:]
	switch string(line[2:6]) {
	case "HELP":
		if !validUTF8(text) {
			return lineOdd
		}
	case "TYPE":
		t, ok := omType(text)
		if !ok {
			return lineOdd
		}
		p.mtype = t
	case "UNIT":
		if len(text) > 0 && !(len(name) > len(text) && bytes.HasSuffix(name, text) && name[len(name)-len(text)-1] == '_') {
			return lineOdd
		}
	default:
		return lineOdd
	}
	p.pos = i + nl + 1
	p.line++
	return lineOther
}

// omType maps an OpenMetrics TYPE keyword to textparse's metric type
// (returning the constants, so nothing is allocated).
func omType(b []byte) (model.MetricType, bool) {
	for _, t := range omTypes {
		if string(b) == string(t) {
			return t, true
		}
	}
	return "", false
}

var omTypes = [...]model.MetricType{
	model.MetricTypeCounter, model.MetricTypeGauge, model.MetricTypeHistogram,
	model.MetricTypeGaugeHistogram, model.MetricTypeSummary, model.MetricTypeInfo,
	model.MetricTypeStateset, model.MetricTypeUnknown,
}
