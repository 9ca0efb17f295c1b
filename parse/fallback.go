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
//     found and asked for its labels; or, when Labels is called for sample
//     after sample (a first scrape), the "shadow": one parser over the rest
//     of the body, moved forward to each sample.
//
// A textparse parser is built per document (textparse has no Reset); that
// and textparse's Labels are the allocations of the slow path.

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

	// Labels of fast-path samples asked for densely (a first scrape, where
	// every sample misses the cache): one textparse parser over the rest of
	// the body, moved forward to each sample's line, the "shadow", instead
	// of a parser per line. It halves the cost of a cold scrape. Sparse
	// misses in a large body stay one line at a time: moving the shadow
	// over many lines would cost more.
	shadowAfter int              // streak that starts the shadow (defaultShadowAfter; tests lower it)
	streak      int              // consecutive Labels calls within shadowGap of the previous one
	prevFrom    int              // body offset of the previous Labels call's line, -1 if none
	sp          textparse.Parser // the shadow, or nil
	sdoc        []byte           // sp's document: a TYPE line and a window of the body from sbase
	sbase       int              // body offset of sdoc[sctx]
	sctx        int              // length of the TYPE line
	send        int              // sdoc offset of the end of the window
	soff        int              // sdoc offset of sp's current series, -1 if none
}

const (
	// defaultShadowAfter is how many consecutive near Labels calls start
	// the shadow: a first scrape reaches it at once, a scrape with a few
	// new series does not.
	defaultShadowAfter = 16
	// shadowGap is how far (bytes) the next Labels line may be from the
	// previous one to count as near: moving the shadow over that much costs
	// about what a one-line parser does.
	shadowGap = 1 << 10
)

// keepScratch is the largest fallback document kept from one body to the
// next. A document of a line or two (a new series in a warm target) fits;
// the shadow's window and tail-mode copies of a body, which only cold
// scrapes and broken bodies need, do not: an engine keeps a parser per
// worker, and 512 workers each pinning a 64 KiB shadow window from some
// target's first scrape were 32 MiB, a third of a 1000-target scraper's
// heap.
const keepScratch = 4 << 10

// release drops scratch documents larger than keepScratch (see Reset).
func (fb *fallback) release() {
	for _, b := range []*[]byte{&fb.doc, &fb.ldoc, &fb.sdoc} {
		if cap(*b) > keepScratch {
			*b = nil
		}
	}
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
// textparse must find the sample's series, value and timestamp; anything
// else is a bug, reported rather than hidden.
func (p *Parser) fastLabels() (labels.Labels, error) {
	fb := &p.fb
	if fb.prevFrom >= 0 && p.curFrom-fb.prevFrom <= shadowGap {
		fb.streak++
	} else {
		fb.streak = 0
		fb.sp = nil
	}
	fb.prevFrom = p.curFrom
	if fb.streak >= fb.shadowAfter {
		if l, ok := p.shadowLabels(); ok {
			return l, nil
		}
		fb.streak = 0
	}
	line := p.body[p.curFrom:p.curTo]
	doc := appendTypeLine(fb.ldoc[:0], p.format, p.mtype)
	doc = append(doc, line...)
	doc = append(doc, '\n')
	if p.format == FormatOpenMetrics {
		doc = append(doc, "# EOF\n"...)
	}
	doc = withSpare(doc)
	fb.ldoc = doc
	tp := newTextparse(doc, p.format, fb.st)
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
	if !p.sameSample(tp) {
		p.fail(p.curLine, fmt.Errorf("internal error: fast path and textparse disagree on %q", line))
		return labels.EmptyLabels(), p.err
	}
	var l labels.Labels
	tp.Labels(&l)
	return l, nil
}

// sameSample reports whether tp's current sample is p's.
func (p *Parser) sameSample(tp textparse.Parser) bool {
	s, ts, v := tp.Series()
	return bytes.Equal(s, p.series) && math.Float64bits(v) == math.Float64bits(p.val) &&
		(ts != nil) == p.hasTS && (ts == nil || *ts == p.ts)
}

// shadowLabels returns the labels of the current fast-path sample from the
// shadow parser, starting it at this line if needed, or starting another if
// the line is past its window. ok is false if the shadow cannot give them
// (it failed, or went past the line: both bugs of the fast path, which the
// caller's one-line parse then reports); the shadow is then dropped.
func (p *Parser) shadowLabels() (l labels.Labels, ok bool) {
	fb := &p.fb
	for range 2 {
		if fb.sp == nil {
			p.startShadow()
		}
		target := fb.sctx + p.curFrom - fb.sbase
		for fb.soff < target {
			e, err := fb.sp.Next()
			if err != nil {
				break
			}
			if e == textparse.EntrySeries {
				s, _, _ := fb.sp.Series()
				fb.soff = cap(fb.sdoc) - cap(s)
			}
		}
		if fb.soff == target && p.sameSample(fb.sp) {
			fb.sp.Labels(&l)
			return l, true
		}
		fb.sp = nil
		if target < fb.send {
			return l, false
		}
		// The line is past the window: start the next one at it.
	}
	return l, false
}

// shadowWindow is how much of the body the shadow's document holds: a copy
// of the rest of the body at each start would cost O(n²) for a body whose
// misses come in bursts.
const shadowWindow = 64 << 10

// startShadow starts the shadow at the current fast-path sample's line, over
// a window of the body that ends at a line end.
func (p *Parser) startShadow() {
	fb := &p.fb
	b := p.body
	end := min(len(b), max(p.curTo+1, p.curFrom+shadowWindow))
	if end < len(b) {
		// b[p.curTo] is the line's newline: the cut is after it.
		end = p.curTo + bytes.LastIndexByte(b[p.curTo:end], '\n') + 1
	}
	doc := appendTypeLine(fb.sdoc[:0], p.format, p.mtype)
	fb.sctx = len(doc)
	doc = append(doc, b[p.curFrom:end]...)
	fb.send = len(doc)
	if p.format == FormatOpenMetrics && end < len(b) {
		doc = append(doc, "# EOF\n"...)
	}
	fb.sdoc = withSpare(doc)
	fb.sbase = p.curFrom
	fb.soff = -1
	fb.sp = newTextparse(fb.sdoc, p.format, fb.st)
}

// checkFastSample panics if textparse accepts the current fast-path
// sample's line but finds another series, value or timestamp in it (with
// -tags invariants only). A line textparse rejects is not an invariant
// violation: the fast path leaves the inside of a series to Labels.
func (p *Parser) checkFastSample() {
	doc := appendTypeLine(nil, p.format, p.mtype)
	doc = append(doc, p.body[p.curFrom:p.curTo]...)
	doc = append(doc, '\n')
	if p.format == FormatOpenMetrics {
		doc = append(doc, "# EOF\n"...)
	}
	tp := newTextparse(doc, p.format, p.fb.st)
	for {
		e, err := tp.Next()
		if err != nil {
			return
		}
		if e == textparse.EntrySeries {
			break
		}
	}
	if !p.sameSample(tp) {
		s, ts, v := tp.Series()
		panic(fmt.Sprintf("parse: invariant violated on line %d %q: fast path found %q %v %v/%v, textparse %q %v %v",
			p.curLine, p.body[p.curFrom:p.curTo], p.series, p.val, p.ts, p.hasTS, s, v, ts))
	}
}
