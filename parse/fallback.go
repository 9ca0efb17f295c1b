package parse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// This file is the seam to textparse (STYLE 11): the only code that calls it.
// textparse parses one document from its start, so the Parser builds small
// documents in scratch buffers:
//
//   - line mode: one line the fast path did not recognise, preceded by a
//     synthesized "# TYPE" line carrying the type in effect (textparse's only
//     state that crosses lines: it decides whether le/quantile label values
//     are normalised) and, for OpenMetrics, followed by "# EOF".
//   - tail mode: the rest of the body from the current line, preceded by the
//     same TYPE line. Used when line mode fails (a real error, whose message
//     then comes from textparse seeing what it would see in the whole body,
//     or an entry spanning lines), when OpenMetrics lacks its "# EOF", and
//     for bodies containing NUL bytes (textparse's lexers give NUL special
//     meanings that are not worth mirroring).
//   - Labels of a fast-path sample: the sample's line in a line-mode
//     document, parsed to the sample, checked against what the fast path
//     found and asked for its labels.

// fallback holds the textparse state of a Parser.
type fallback struct {
	st  *labels.SymbolTable
	tp  textparse.Parser // parser over doc in line and tail mode, else nil
	doc []byte           // document tp parses; textparse-sourced Series() point into it
	ctx int              // length of the synthesized TYPE line at the start of doc

	// Line mode.
	next    int  // body offset just past the line
	yielded bool // tp has returned the line's sample

	// Tail mode: line numbers. textparse reports no positions, but the
	// slices it returns point into doc (see offset).
	markOff  int // doc offset up to which newlines have been counted
	markLine int // body line number of doc[markOff]
	errLine  int // line where the entry after the last one returned starts

	ldoc []byte // scratch document for Labels of fast-path samples
}

// newTextparse returns textparse's parser for f over doc, configured as
// Prometheus's scrape loop configures it by default: no type and unit labels,
// OpenMetrics _created series kept as samples.
func newTextparse(doc []byte, f Format, st *labels.SymbolTable) textparse.Parser {
	if f == FormatOpenMetrics {
		return textparse.NewOpenMetricsParser(doc, st)
	}
	return textparse.NewPromParser(doc, st, false)
}

// appendTypeLine appends a TYPE line that makes textparse's type in effect t
// (nothing if no TYPE line has been seen: textparse starts with "").
func appendTypeLine(dst []byte, f Format, t model.MetricType) []byte {
	if t == "" {
		return dst
	}
	dst = append(dst, "# TYPE m "...)
	if f == FormatText && t == model.MetricTypeUnknown {
		dst = append(dst, "untyped"...)
	} else {
		dst = append(dst, t...)
	}
	return append(dst, '\n')
}

// withSpare makes sure doc has spare capacity: PromParser appends a newline
// to its input, and must do so in doc's array for offset to work.
func withSpare(doc []byte) []byte {
	if cap(doc) == len(doc) {
		doc = append(doc, 0)[:len(doc)]
	}
	return doc
}

// start makes tp a parser over doc, whose first ctx bytes are a TYPE line.
func (fb *fallback) start(doc []byte, ctx int, f Format) {
	fb.doc = withSpare(doc)
	fb.ctx = ctx
	fb.tp = newTextparse(fb.doc, f, fb.st)
	if ctx > 0 {
		_, _ = fb.tp.Next() // The synthesized TYPE line; it is valid.
	}
}

// offset returns the offset in doc of s, a slice textparse returned into its
// input. Both share doc's array and reach to its end, so the offset is the
// difference of their capacities. It returns -1 for a slice textparse
// allocated.
func (fb *fallback) offset(s []byte) int {
	off := cap(fb.doc) - cap(s)
	if off < 0 || off+len(s) > len(fb.doc) || cap(s) == 0 {
		return -1
	}
	return off
}

// lineAt returns the body line number of doc[off], for off at or after the
// last offset asked about.
func (fb *fallback) lineAt(off int) int {
	if off > fb.markOff {
		fb.markLine += bytes.Count(fb.doc[fb.markOff:off], []byte{'\n'})
		fb.markOff = off
	}
	return fb.markLine
}

// startLine hands the line at p.pos to textparse (line mode).
func (p *Parser) startLine() {
	b := p.body
	end, next := len(b), len(b)
	if nl := bytes.IndexByte(b[p.pos:], '\n'); nl >= 0 {
		end, next = p.pos+nl, p.pos+nl+1
	} else if p.format == FormatOpenMetrics {
		// Only "# EOF" may end an OpenMetrics body without a newline, and
		// the fast path took that: this is an error.
		p.startTail()
		return
	}
	doc := appendTypeLine(p.fb.doc[:0], p.format, p.mtype)
	ctx := len(doc)
	doc = append(doc, b[p.pos:end]...)
	doc = append(doc, '\n')
	if p.format == FormatOpenMetrics {
		doc = append(doc, "# EOF\n"...)
	}
	p.fb.start(doc, ctx, p.format)
	p.fb.next = next
	p.fb.yielded = false
	p.mode = modeLine
}

// startTail hands the rest of the body, from p.pos, to textparse.
func (p *Parser) startTail() {
	doc := appendTypeLine(p.fb.doc[:0], p.format, p.mtype)
	ctx := len(doc)
	doc = append(doc, p.body[p.pos:]...)
	p.fb.start(doc, ctx, p.format)
	p.fb.markOff = ctx
	p.fb.markLine = p.line
	p.fb.errLine = p.line
	p.mode = modeTail
}

// nextTextparse advances tp to the next sample. It returns false when the
// document is exhausted or fails; p.mode then says how to go on.
func (p *Parser) nextTextparse() bool {
	fb := &p.fb
	for {
		e, err := fb.tp.Next()
		if err != nil {
			fb.tp = nil
			switch {
			case p.mode == modeLine && err == io.EOF:
				p.pos = fb.next
				p.line++
				p.mode = modeFast
			case p.mode == modeLine && fb.yielded:
				// Cannot happen: a sample entry ends with the line's
				// newline, after which only "# EOF" follows.
				p.fail(p.line, fmt.Errorf("internal error: textparse failed after the line's sample: %w", err))
			case p.mode == modeLine:
				// A real error, or an entry that does not end on this line:
				// let textparse see the rest of the body.
				p.startTail()
				return p.nextTextparse()
			case err == io.EOF:
				p.mode = modeDone
			default:
				p.fail(fb.errLine, err)
			}
			return false
		}
		var anchor []byte // a slice of this entry's first line, for line numbers
		switch e {
		case textparse.EntrySeries:
			s, ts, v := fb.tp.Series()
			p.series = s
			p.val = v
			p.ts, p.hasTS = 0, ts != nil
			if ts != nil {
				p.ts = *ts
			}
			p.fromTP = true
			if p.mode == modeLine {
				fb.yielded = true
				p.curLine = p.line
				return true
			}
			p.curLine = fb.markLine
			if off := fb.offset(s); off >= 0 {
				p.curLine = fb.lineAt(off)
			}
			fb.entryDone(s)
			return true
		case textparse.EntryType:
			anchor, p.mtype = fb.tp.Type()
		case textparse.EntryHelp:
			anchor, _ = fb.tp.Help()
		case textparse.EntryUnit:
			anchor, _ = fb.tp.Unit()
		case textparse.EntryComment:
			anchor = fb.tp.Comment()
		}
		if p.mode == modeTail {
			fb.entryDone(anchor)
		}
	}
}

// entryDone notes, in tail mode, that the entry containing anchor has been
// parsed: the next entry starts on the line after the first newline at or
// after anchor's end. Blank lines in between make errLine early.
func (fb *fallback) entryDone(anchor []byte) {
	off := fb.offset(anchor)
	if off < 0 {
		return
	}
	end := off + len(anchor)
	if nl := bytes.IndexByte(fb.doc[end:], '\n'); nl >= 0 {
		fb.errLine = fb.lineAt(end+nl) + 1
	}
}

// fastLabels returns textparse's labels for the current fast-path sample.
func (p *Parser) fastLabels() (labels.Labels, error) {
	line := p.body[p.curFrom:p.curTo]
	doc := appendTypeLine(p.fb.ldoc[:0], p.format, p.mtype)
	doc = append(doc, line...)
	doc = append(doc, '\n')
	if p.format == FormatOpenMetrics {
		doc = append(doc, "# EOF\n"...)
	}
	doc = withSpare(doc)
	p.fb.ldoc = doc
	tp := newTextparse(doc, p.format, p.fb.st)
	for {
		e, err := tp.Next()
		if err == io.EOF {
			err = errors.New("internal error: textparse found no sample")
		}
		if err != nil {
			p.fail(p.curLine, err)
			return labels.EmptyLabels(), p.err
		}
		if e == textparse.EntrySeries {
			break
		}
	}
	s, ts, v := tp.Series()
	if !bytes.Equal(s, p.series) || math.Float64bits(v) != math.Float64bits(p.val) ||
		(ts != nil) != p.hasTS || ts != nil && *ts != p.ts {
		p.fail(p.curLine, fmt.Errorf("internal error: fast path and textparse disagree on %q", line))
		return labels.EmptyLabels(), p.err
	}
	var l labels.Labels
	tp.Labels(&l)
	return l, nil
}
