// Package parse turns a scraped response body into float samples, with the
// exact results of Prometheus's textparse and without allocating per sample
// in steady state. It owns the seam to textparse: no other package imports
// it.
//
// # What it parses
//
// FormatFor picks the format from a response's Content-Type, with
// Prometheus 3's rules. Parser iterates a body's float samples: the
// Prometheus text format (0.0.4 and 1.0.0) like textparse.PromParser and
// OpenMetrics 1.0 like textparse.OpenMetricsParser (with OpenMetrics
// _created series returned as ordinary samples, textparse's default).
// Metadata (HELP, TYPE, UNIT), comments and exemplars are checked but not
// returned. Cache maps a target's series bytes to the caller's data and
// tracks staleness across scrapes.
//
// # How: a fast path, textparse for the rest
//
// Parser scans lines itself (scan.go) and hands to textparse (fallback.go)
// only what it does not recognise, so that for any body it yields the same
// sequence of (labels, value bits, timestamp) as textparse over the whole
// body and fails exactly when textparse fails:
//
//   - The fast path recognises the shapes exporters write: a series (a
//     name, optionally a label set in braces, or a braced set with a quoted
//     UTF-8 name), its value, an optional timestamp and, in OpenMetrics, an
//     optional exemplar; HELP, TYPE and UNIT lines with a plain name;
//     comments and blank lines. Values and OpenMetrics timestamps are
//     parsed with textparse's rules (parseFloat): plain decimals exactly by
//     Clinger's fast path, everything else by strconv as textparse does.
//   - Any other line goes to textparse in a document of its own, preceded by
//     a TYPE line re-creating the type in effect, the only state textparse
//     carries between lines. If textparse rejects that document (a real
//     error, or an entry spanning lines such as a quoted label value with a
//     raw newline), the rest of the body goes to textparse, which then
//     decides exactly as it would over the whole body. Bodies containing a
//     NUL byte, to which textparse's lexers give odd meanings, go to
//     textparse whole. OpenMetrics's "# EOF" rules are checked likewise.
//   - Labels, which the caller needs only for a series it has not seen
//     before, has textparse parse the sample's line and returns its labels
//     (after checking that textparse found the same series, value and
//     timestamp). When it is called for sample after sample (a first
//     scrape), one textparse parser over a window of the body serves them
//     all. It allocates.
//
// # Why the cache is safe
//
// The fast path does not check the syntax inside a series: label names,
// commas, escapes, UTF-8 validity of label values, or that there is a metric
// name. It only finds where the series ends: the first '}' outside a quoted
// string, or the end of the name, with quote and escape rules identical to
// textparse's lexer. Everything after the series (value, timestamp,
// exemplar) it checks fully, on every line. The inside of a series is
// checked by textparse when Labels is called for it.
//
// The engine caches by Series bytes, calls Labels on every miss before the
// next Next, and caches a series only once Labels has succeeded for it, so
// every cached key was once the series textparse found on a line it
// accepted. On a hit, the line starts with those exact bytes; textparse's
// lexer reads them the same way from a line start, and ends the series at
// the same byte (the closing '}', which the scanner finds because quotes in
// a valid label set only ever delimit strings; or the first byte that is not
// a name byte, which the scanner checks). So on a hit only the boundary
// finding, the value and the timestamp must be right, and they are checked
// on every line; on a miss textparse sees the whole line. A syntax error
// inside a series is therefore reported by Labels, at the same sample
// textparse would stop at, and Labels then fails the Parser too.
//
// In OpenMetrics the scanner also rejects whitespace outside quoted strings
// and anything but ',', '}' or '=' after one, so that a series cached from
// a text body, where the label set syntax is looser, never lets an invalid
// OpenMetrics body through when a target changes format: one Cache can
// serve a target whatever it sends.
//
// # Known differences from textparse
//
//   - A label set's le (under a histogram TYPE) and quantile (under a
//     summary TYPE) values are normalised by textparse depending on the TYPE
//     in effect, so the same series bytes under another TYPE have other
//     labels, and a cache keyed by Series returns the first ones. Prometheus's
//     scrape cache, keyed by the same bytes, does the same.
//   - SyntaxError.Line is exact for single-line entries; after an entry
//     spanning lines, textparse gives no positions and the line reported
//     can be early.
//   - If textparse panics on a body, so does Parser, where it hands it over.
//
// # Errors
//
// A bad line fails the whole body, as in Prometheus: Next returns false and
// Err a *SyntaxError; the caller discards what it took from the body (see
// Cache.Abort). FormatFor's errors wrap ErrContentType.
package parse
