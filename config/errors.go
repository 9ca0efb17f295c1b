package config

import (
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a configuration document, located by file (or
// source name), line and path.
//
// Path names the thing in error the way a reader would look for it:
// "scrape_configs[2] (job \"node\").tls_config" for an entry of a list, or
// "job \"node\".scrape_timeout" in a document read by [ParseJob]. It is empty
// for problems with the document as a whole. Line is 1-based; 0 means the
// line is unknown (for example a value built in Go rather than parsed).
type Error struct {
	File string
	Line int
	Path string
	Err  error
}

// Error formats e as "file:line: path: message", leaving out the parts that
// are empty or zero.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one document. [Load], [Parse], [ParseJob]
// and [ScrapeConfig.SetDefaults] return a non-nil error only as a non-empty
// Errors whose elements are *[Error], sorted by line.
type Errors []error

// Error joins the messages with newlines, one problem per line.
func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.Is and errors.As look at each problem.
func (es Errors) Unwrap() []error { return es }

// errs collects problems while a document is read.
type errs struct {
	file string
	list Errors
}

func (c *errs) add(line int, path string, err error) {
	c.list = append(c.list, &Error{File: c.file, Line: line, Path: path, Err: err})
}

func (c *errs) addf(line int, path, format string, args ...any) {
	c.add(line, path, fmt.Errorf(format, args...))
}

// err returns the collected problems sorted by line (stable, so problems on
// one line keep the order they were found in), or nil if there are none.
// Returning a nil error rather than an empty Errors keeps err == nil checks
// honest.
func (c *errs) err() error {
	if len(c.list) == 0 {
		return nil
	}
	slices.SortStableFunc(c.list, func(a, b error) int {
		return a.(*Error).Line - b.(*Error).Line
	})
	return c.list
}

// joinPath appends a field or index to a path.
func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}
