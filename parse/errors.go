package parse

import "fmt"

// SyntaxError reports a malformed body. A body with one bad entry is rejected
// as a whole, as Prometheus does: the caller should discard the samples it
// has taken from the body so far (see Cache.Abort) and report the scrape as
// failed. Parser.Err and Parser.Labels return *SyntaxError.
type SyntaxError struct {
	// Line is the 1-based line where the offending entry starts. After a
	// multi-line entry (a quoted label value containing a newline) it can
	// be a few lines early: textparse does not report positions.
	Line int
	// Err is the error textparse returned for the entry.
	Err error
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("parse body: line %d: %v", e.Line, e.Err)
}

func (e *SyntaxError) Unwrap() error { return e.Err }
