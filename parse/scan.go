package parse

import (
	"bytes"
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
	isNameChar   = byteClass(func(c byte) bool { return isNameStart[c] || c >= '0' && c <= '9' })              // {M}|{D}
	isLabelStart = byteClass(func(c byte) bool { return c == '_' || c|0x20 >= 'a' && c|0x20 <= 'z' })           // {L}
	isLabelChar  = byteClass(func(c byte) bool { return isLabelStart[c] || c >= '0' && c <= '9' })             // {L}|{D}
	// isQuoted: bytes that continue a quoted string without special meaning.
	isQuoted = byteClass(func(c byte) bool { return c != '"' && c != '\\' && c != '\n' })
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
	for i < n {
		switch b[i] {
		case '"':
			if i = skipQuoted(b, i+1); i < 0 {
				return -1
			}
		case '}':
			return i + 1
		case '\n':
			return -1
		default:
			i++
		}
	}
	return -1
}

// skipLabelsOM is skipLabelsText with two OpenMetrics rules added: no
// whitespace outside quoted strings and a ',' '}' or '=' after each one. With
// them, every label set the text format accepts and this function passes is
// also valid OpenMetrics, so a series cached from a text body stays valid if
// the target switches to OpenMetrics.
func skipLabelsOM(b []byte, i int) int {
	n := len(b)
	for i < n {
		switch b[i] {
		case '"':
			if i = skipQuoted(b, i+1); i < 0 || i >= n {
				return -1
			}
			if c := b[i]; c != ',' && c != '}' && c != '=' {
				return -1
			}
		case '}':
			return i + 1
		case ' ', '\t', '\n':
			return -1
		default:
			i++
		}
	}
	return -1
}

// scanText scans one line of a text-format body at p.pos.
func (p *Parser) scanText() lineKind {
	b := p.body
	n := len(b)
	start := p.pos
	i := start
	switch c := b[i]; {
	case isNameStart[c]:
		for i++; i < n && isNameChar[b[i]]; i++ {
		}
		if i < n && b[i] == '{' {
			i = skipLabelsText(b, i+1)
		}
	case c == '{':
		i = skipLabelsText(b, i+1)
	case c == '\n':
		p.pos++
		p.line++
		return lineOther
	case c == '#':
		return p.scanTextComment()
	default:
		return lineOdd
	}
	if i < 0 {
		return lineOdd
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
	v0 := i
	for i < n && isTextValue[b[i]] {
		i++
	}
	if i == v0 || i < n && b[i] == '{' {
		return lineOdd
	}
	v, ok := parseFloat(b[v0:i])
	if !ok {
		return lineOdd
	}
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
}

// scanTextComment scans a text-format line starting with '#'. Besides the
// exact "# HELP name text" and "# TYPE name type" shapes, which it checks
// like textparse, everything the lexer takes for a comment is skipped:
// "#" followed by anything, and "#[ \t]+" not followed by HELP or TYPE and
// [ \t]. Other HELP/TYPE spellings (tabs, extra spaces, quoted names) are odd.
func (p *Parser) scanTextComment() lineKind {
	b := p.body
	i := p.pos
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
		if r := line[j:]; len(r) > 4 && (r[4] == ' ' || r[4] == '\t') &&
			(string(r[:4]) == "HELP" || string(r[:4]) == "TYPE") && !p.textMeta(line) {
			return lineOdd
		}
	}
	p.pos = next
	p.line++
	return lineOther
}

// textMeta checks "# HELP name rest" or "# TYPE name rest" with single
// spaces and a plain name, as textparse would, and records a TYPE. From
// promlex.l, the text textparse takes is rest[1:] whatever rest[0] is (a
// space, a tab or, since the name ends at the first non-name byte, any
// other byte), and is empty if rest has at most one byte.
func (p *Parser) textMeta(line []byte) bool {
	if len(line) < 8 || line[1] != ' ' || line[6] != ' ' || !isNameStart[line[7]] {
		return false
	}
	k := 8
	for k < len(line) && isNameChar[line[k]] {
		k++
	}
	rest := line[k:]
	if line[2] == 'H' {
		return len(rest) < 2 || utf8.Valid(rest[1:])
	}
	if len(rest) < 2 {
		return false
	}
	var t model.MetricType
	switch string(rest[1:]) {
	case "counter":
		t = model.MetricTypeCounter
	case "gauge":
		t = model.MetricTypeGauge
	case "histogram":
		t = model.MetricTypeHistogram
	case "summary":
		t = model.MetricTypeSummary
	case "untyped":
		t = model.MetricTypeUnknown
	default:
		return false
	}
	p.mtype = t
	return true
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
		for i++; i < n && isNameChar[b[i]]; i++ {
		}
		if i < n && b[i] == '{' {
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
	v0 := i
	for i < n && isOMToken[b[i]] {
		i++
	}
	v, ok := parseFloat(b[v0:i])
	if i == v0 || !ok || i >= n {
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
			if i == t0 || b[t0] == '#' {
				return lineOdd
			}
			if ts, ok = omTimestamp(b[t0:i]); !ok {
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

func validUTF8(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.Valid(b)
		}
	}
	return true
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
	k := 8
	for k < len(line) && isNameChar[line[k]] {
		k++
	}
	if k >= len(line) || line[k] != ' ' {
		return lineOdd
	}
	name, text := line[7:k], line[k+1:]
	switch string(line[2:6]) {
	case "HELP":
		if !utf8.Valid(text) {
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
