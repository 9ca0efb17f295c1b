package parse

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Parser iterates the float samples of one response body in the Prometheus
// text or OpenMetrics format, yielding exactly what textparse yields for the
// body (see the package documentation for how, and for the two documented
// exceptions) while allocating nothing for lines in the common shapes.
//
// Use: Reset with a body, then Next until it returns false, reading Series,
// Value, Timestamp and Line after each true result, and Labels when the
// series is not in the caller's cache; finally Err. A body with a syntax
// error is rejected as a whole, as in Prometheus: Next returns false at the
// first bad entry and Err returns a *SyntaxError; samples returned before
// it must be discarded by the caller. Labels can also find the error (in the
// inside of a series); it then returns it, Next returns false and Err
// returns it too.
//
// A Parser is reusable via Reset and keeps its scratch buffers between
// bodies (up to 64 KiB for Labels, and the size of the largest body tail
// that had to go to textparse), so keep one per worker rather than one per
// target. Not safe for concurrent use. The zero value is a Parser over an
// empty text body.
//
// Design. The loop in Next reads one line at a time with a hand-written
// scanner (scan.go), which fully handles the line shapes exporters write: it
// finds the series bytes, parses the value and timestamp, checks metadata
// lines and OpenMetrics exemplars, and never calls textparse. A line it does
// not recognise is handed to textparse (fallback.go) in a small document of
// its own; if textparse fails on that (an error, or an entry spanning lines),
// the rest of the body is handed to textparse, which then produces the
// error exactly as over the whole body. The invariant that makes this work:
// p.pos is always at a line start where textparse's lexer would be in its
// initial state, and p.mtype is the type textparse would have in effect
// there (its only state that crosses lines), so any line can be handed over
// with one synthesized TYPE line in front.
//
// The simpler design, textparse over every body with a cache in front, pays
// textparse's lexer on every line of every scrape: about 320 ns per
// node_exporter sample against 60 ns here (BenchmarkParse). A scanner that
// only looked for the series' end without checking the name was tried and
// rejected: "a+1 2" is a valid text line (metric a, value +1, timestamp 2).
type Parser struct {
	body   []byte
	pos    int // offset of the next unread line in body
	line   int // 1-based number of the line at pos
	format Format
	mode   mode
	err    error
	mtype  model.MetricType // type of the last TYPE line, as textparse tracks it
	name   []byte           // last metric name scanned byte by byte (scanName), in body

	// The current sample.
	series         []byte
	val            float64
	ts             int64
	hasTS          bool
	fromTP         bool // from fb.tp; else body[curFrom:curTo] is its line
	curLine        int
	curFrom, curTo int

	fb fallback
}

type mode uint8

const (
	modeFast mode = iota // scanning body lines
	modeLine             // textparse over one line (fb.tp)
	modeTail             // textparse over the rest of the body (fb.tp)
	modeDone             // the body is exhausted or failed
)

// Reset makes p parse body as format f, discarding any state of the previous
// body. body is not copied: it must stay unmodified until the next Reset,
// and Series may return slices of it. Reset(nil, f) ends the body and also
// frees the large scratch buffers a cold body grew (Labels of many new
// series, or a fallback to textparse), keeping those of up to 4 KiB: call
// it when done with a body, so an idle Parser does not pin them.
func (p *Parser) Reset(body []byte, f Format) {
	p.body = body
	p.pos = 0
	p.line = 1
	p.format = f
	p.mode = modeFast
	p.err = nil
	p.mtype = ""
	p.name = nil
	p.series = nil
	p.fromTP = false
	p.fb.tp = nil
	p.fb.sp = nil
	if body == nil {
		p.fb.release()
	}
	p.fb.streak, p.fb.prevFrom, p.fb.shadowAfter = 0, -1, defaultShadowAfter
	if p.fb.st == nil {
		p.fb.st = labels.NewSymbolTable()
	}
	switch {
	case f > FormatOpenMetrics:
		p.err = fmt.Errorf("parse body: unknown format %v", f)
		p.mode = modeDone
	case bytes.IndexByte(body, 0) >= 0:
		// NUL bytes end the text lexer and vanish inside label values:
		// leave such bodies to textparse.
		p.startTail()
	}
}

// Next advances to the next float sample and reports whether there is one.
// It returns false at the end of the body or at the first error (see Err).
// Slices returned for the previous sample become invalid.
func (p *Parser) Next() bool {
	if p.next() {
		return true
	}
	p.series = nil // Labels must not return the last sample's labels
	p.fromTP = false
	return false
}

func (p *Parser) next() bool {
	for {
		switch p.mode {
		case modeFast:
			if p.pos >= len(p.body) {
				if p.format == FormatOpenMetrics {
					p.startTail() // textparse reports the missing "# EOF"
					continue
				}
				p.mode = modeDone
				return false
			}
			var k lineKind
			if p.format == FormatText {
				k = p.scanText()
			} else {
				k = p.scanOM()
			}
			switch k {
			case lineSample:
				return true
			case lineOdd:
				p.startLine()
			case lineEOF:
				p.mode = modeDone
				return false
			}
		case modeLine, modeTail:
			if p.nextTextparse() {
				return true
			}
		default:
			return false
		}
	}
}

// Err returns nil after a clean end of the body, else a *SyntaxError (or an
// error for an unknown Format). It is also set when Labels fails.
func (p *Parser) Err() error { return p.err }

// Series returns the series of the current sample as written in the body:
// the metric name and the label set in braces, no value. It is what
// textparse's Series returns, and a slice of the body or of p's scratch
// memory: valid until the next call to Next or Reset, never to be modified.
//
// Contract for caches: two samples with byte-identical Series, from bodies
// of either Format, have identical Labels, except that textparse normalises
// the value of an "le" label while the last TYPE line says histogram, and of
// a "quantile" label under summary (le="1" becomes le="1.0"): the same bytes
// under another type give the unnormalised value. Prometheus's scrape cache,
// keyed by the same bytes, behaves the same way.
func (p *Parser) Series() []byte { return p.series }

// Value returns the value of the current sample. Every NaN is returned as
// value.NormalNaN, as textparse does.
func (p *Parser) Value() float64 { return p.val }

// Timestamp returns the timestamp of the current sample in milliseconds, and
// ok=false if its line has none. OpenMetrics timestamps are float seconds,
// converted as textparse does: int64(seconds * 1000).
func (p *Parser) Timestamp() (ms int64, ok bool) { return p.ts, p.hasTS }

// Line returns the 1-based line number of the current sample in the body.
func (p *Parser) Line() int { return p.curLine }

// Labels returns the label set of the current sample, including __name__,
// exactly as textparse's Labels gives it. It is the slow path, for series
// not in the caller's cache: it allocates (about 3 times per call when
// called for sample after sample, as on a first scrape, more for an odd
// miss), and for a sample the fast path scanned it has textparse parse the
// sample's line. That also checks the syntax inside the series, which the
// fast path leaves to textparse; on an error Labels returns it as a
// *SyntaxError, the body is rejected and Next returns false. The result
// does not share memory with the body or p.
func (p *Parser) Labels() (labels.Labels, error) {
	switch {
	case p.err != nil:
		return labels.EmptyLabels(), p.err
	case p.series == nil:
		return labels.EmptyLabels(), errors.New("parse body: Labels called without a current sample")
	case p.fromTP:
		var l labels.Labels
		p.fb.tp.Labels(&l)
		return l, nil
	}
	return p.fastLabels()
}

// fail rejects the body with err at line.
func (p *Parser) fail(line int, err error) {
	p.err = &SyntaxError{Line: line, Err: err}
	p.mode = modeDone
	p.fb.tp = nil
}
