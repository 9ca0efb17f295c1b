package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// parseSelector parses a PromQL series selector for `shoal tail --match`:
//
//	metric_name
//	{label="value", label!="value", label=~"regex", label!~"regex"}
//	metric_name{...}
//	{"metric.name", "label.name"="value"}   (Prometheus 3's quoted names)
//
// Strings take double quotes, single quotes or backquotes, with Go's
// escapes (as PromQL). Regexes are anchored, as in PromQL. An empty
// selector ("" or "{}") matches everything.
//
// This is a small parser of our own rather than promql/parser's
// ParseMetricSelector: that package pulls in Prometheus's storage and TSDB
// packages (and two more modules) for what is, here, a few lines of syntax.
func parseSelector(s string) ([]*labels.Matcher, error) {
	p := selParser{s: s}
	ms, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("selector %q: %w", s, err)
	}
	return ms, nil
}

type selParser struct {
	s   string
	pos int
}

func (p *selParser) parse() ([]*labels.Matcher, error) {
	var ms []*labels.Matcher
	p.space()
	if p.eof() {
		return nil, nil
	}
	if c := p.s[p.pos]; c != '{' {
		name := p.ident()
		if name == "" {
			return nil, p.errorf("want a metric name or '{'")
		}
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, name))
		p.space()
		if p.eof() {
			return ms, nil
		}
	}
	if !p.consume('{') {
		return nil, p.errorf("want '{'")
	}
	for {
		p.space()
		if p.consume('}') {
			break
		}
		var name string
		quoted := p.peekQuote()
		if quoted {
			s, err := p.str()
			if err != nil {
				return nil, err
			}
			name = s
		} else if name = p.ident(); name == "" {
			return nil, p.errorf("want a label name")
		}
		p.space()
		if quoted && (p.peek(',') || p.peek('}')) {
			// {"metric.name"}: a quoted string alone is the metric name.
			ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, name))
		} else {
			op, err := p.op()
			if err != nil {
				return nil, err
			}
			p.space()
			val, err := p.str()
			if err != nil {
				return nil, err
			}
			m, err := labels.NewMatcher(op, name, val)
			if err != nil {
				return nil, p.errorf("%v", err)
			}
			ms = append(ms, m)
		}
		p.space()
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			break
		}
		return nil, p.errorf("want ',' or '}'")
	}
	p.space()
	if !p.eof() {
		return nil, p.errorf("unexpected text after '}'")
	}
	return ms, nil
}

func (p *selParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *selParser) eof() bool { return p.pos >= len(p.s) }

func (p *selParser) space() {
	for !p.eof() && strings.IndexByte(" \t\r\n", p.s[p.pos]) >= 0 {
		p.pos++
	}
}

func (p *selParser) peek(c byte) bool { return !p.eof() && p.s[p.pos] == c }

func (p *selParser) consume(c byte) bool {
	if p.peek(c) {
		p.pos++
		return true
	}
	return false
}

func (p *selParser) peekQuote() bool { return p.peek('"') || p.peek('\'') || p.peek('`') }

// ident reads a legacy metric or label name: [a-zA-Z_:][a-zA-Z0-9_:]*
// (colons only matter in metric names; label names with them do not
// match anything, as in PromQL).
func (p *selParser) ident() string {
	start := p.pos
	for !p.eof() {
		c := p.s[p.pos]
		if c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (p.pos > start && c >= '0' && c <= '9') {
			p.pos++
			continue
		}
		break
	}
	return p.s[start:p.pos]
}

func (p *selParser) op() (labels.MatchType, error) {
	for _, o := range []struct {
		s string
		t labels.MatchType
	}{{"=~", labels.MatchRegexp}, {"!~", labels.MatchNotRegexp}, {"!=", labels.MatchNotEqual}, {"=", labels.MatchEqual}} {
		if strings.HasPrefix(p.s[p.pos:], o.s) {
			p.pos += len(o.s)
			return o.t, nil
		}
	}
	return 0, p.errorf("want =, !=, =~ or !~")
}

// str reads a quoted string: "..." and '...' with Go's escapes, `...`
// raw.
func (p *selParser) str() (string, error) {
	if !p.peekQuote() {
		return "", p.errorf("want a quoted string")
	}
	q := p.s[p.pos]
	start := p.pos
	p.pos++
	if q == '`' {
		end := strings.IndexByte(p.s[p.pos:], '`')
		if end < 0 {
			return "", fmt.Errorf("at offset %d: unterminated string", start)
		}
		v := p.s[p.pos : p.pos+end]
		p.pos += end + 1
		return v, nil
	}
	var b strings.Builder
	for rest := p.s[p.pos:]; ; {
		if rest == "" {
			return "", fmt.Errorf("at offset %d: unterminated string", start)
		}
		if rest[0] == q {
			p.pos = len(p.s) - len(rest) + 1
			return b.String(), nil
		}
		r, multibyte, tail, err := strconv.UnquoteChar(rest, q)
		if err != nil {
			return "", fmt.Errorf("at offset %d: bad escape in string: %w", len(p.s)-len(rest), err)
		}
		if !multibyte { // a byte value (\xFF) or ASCII
			b.WriteByte(byte(r))
		} else {
			b.WriteRune(r)
		}
		rest = tail
	}
}
