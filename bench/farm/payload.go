package farm

import (
	"bytes"
	"fmt"
	"math"
	"strconv"

	"github.com/klauspost/compress/gzip"
)

// variant is one precomputed response of a farm: the payload with its own
// sample values, as a complete HTTP response (status line, headers, body),
// identity and, when the farm gzips, gzip-encoded. Variants are built once
// in Start and shared read-only by every target and connection.
type variant struct {
	plain, gz         []byte // whole response
	plainHdr, gzHdr   int    // header length within plain and gz (HEAD answers)
	plainBody, gzBody int    // body length
	samples           int
}

// buildVariants returns n responses serving payload, variant k with every
// finite sample value v rewritten as v+k (variant 0 is the payload as is).
// Consecutive variants therefore differ in every finite value, and a target
// that rotates through them never serves the same values twice in a row.
// NaN and ±Inf values are kept: there is no "next" value for them.
func buildVariants(payload []byte, n int, gz bool, contentType string) ([]variant, error) {
	vs := make([]variant, n)
	for k := range vs {
		body, samples, err := rewriteValues(payload, k)
		if err != nil {
			return nil, err
		}
		v := &vs[k]
		v.samples = samples
		v.plain, v.plainHdr = response(body, contentType, "")
		v.plainBody = len(body)
		if gz {
			var buf bytes.Buffer
			// Default level: what client_golang's promhttp uses, so the
			// scraper decompresses a realistic stream.
			zw := gzip.NewWriter(&buf)
			if _, err := zw.Write(body); err != nil {
				return nil, err
			}
			if err := zw.Close(); err != nil {
				return nil, err
			}
			v.gz, v.gzHdr = response(buf.Bytes(), contentType, "gzip")
			v.gzBody = buf.Len()
		}
	}
	return vs, nil
}

// response renders a 200 response with body. It returns the whole response
// and the length of its header block.
func response(body []byte, contentType, encoding string) ([]byte, int) {
	var b bytes.Buffer
	b.Grow(len(body) + 256)
	b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: ")
	b.WriteString(contentType)
	b.WriteString("\r\nContent-Length: ")
	b.WriteString(strconv.Itoa(len(body)))
	if encoding != "" {
		b.WriteString("\r\nContent-Encoding: ")
		b.WriteString(encoding)
	}
	b.WriteString("\r\nVary: Accept-Encoding\r\n\r\n")
	hdr := b.Len()
	b.Write(body)
	return b.Bytes(), hdr
}

// rewriteValues copies payload with every finite sample value v replaced by
// v+k, and counts the sample lines. The payload is Prometheus or OpenMetrics
// text: comment lines and blank lines are copied as they are; on a sample
// line the series (name and braced labels, whose quoted values may contain
// spaces, braces and escaped quotes) is followed by the value and an
// optional timestamp, which is kept.
func rewriteValues(payload []byte, k int) ([]byte, int, error) {
	out := make([]byte, 0, len(payload)+len(payload)/8)
	samples := 0
	for lineNo := 1; len(payload) > 0; lineNo++ {
		line := payload
		rest := []byte(nil)
		if i := bytes.IndexByte(payload, '\n'); i >= 0 {
			line, rest = payload[:i], payload[i+1:]
		}
		payload = rest
		trimmed := bytes.TrimLeft(line, " \t")
		if len(trimmed) == 0 || trimmed[0] == '#' {
			out = append(out, line...)
			out = append(out, '\n')
			continue
		}
		vs, ve, err := valueSpan(line)
		if err != nil {
			return nil, 0, fmt.Errorf("payload line %d: %w", lineNo, err)
		}
		f, err := strconv.ParseFloat(string(line[vs:ve]), 64)
		if err != nil {
			return nil, 0, fmt.Errorf("payload line %d: value %q: %w", lineNo, line[vs:ve], err)
		}
		samples++
		out = append(out, line[:vs]...)
		if k == 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			out = append(out, line[vs:ve]...)
		} else {
			nf := f + float64(k)
			if nf == f { // |f| too large for +k to show
				nf = f * (1 + float64(k)*1e-9)
			}
			out = strconv.AppendFloat(out, nf, 'g', -1, 64)
		}
		out = append(out, line[ve:]...)
		out = append(out, '\n')
	}
	return out, samples, nil
}

// valueSpan finds the value token of a sample line: after the metric name,
// the optional braced label set and the blanks that follow.
func valueSpan(line []byte) (start, end int, err error) {
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	if i < len(line) && line[i] == '{' {
		inQuote := false
		for i++; i < len(line); i++ {
			c := line[i]
			if inQuote {
				switch c {
				case '\\':
					i++ // skip the escaped character
				case '"':
					inQuote = false
				}
				continue
			}
			if c == '"' {
				inQuote = true
			} else if c == '}' {
				break
			}
		}
		if i >= len(line) {
			return 0, 0, fmt.Errorf("unterminated label set")
		}
		i++
	}
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	start = i
	for i < len(line) && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' {
		i++
	}
	if i == start {
		return 0, 0, fmt.Errorf("no value")
	}
	return start, i, nil
}
