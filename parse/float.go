package parse

import (
	"math"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/value"
)

// normalNaN is the NaN textparse returns for every NaN in a body
// (value.NormalNaN); the stale marker can never be written in a text body.
var normalNaN = math.Float64frombits(value.NormalNaN)

// pow10 holds the powers of ten that are exactly representable as float64.
var pow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
}

// parseFloat parses a sample value, exemplar value or OpenMetrics timestamp
// exactly as textparse's parseFloat does: any of "pP_" is an error, otherwise
// strconv.ParseFloat decides (so "1e400" is an error and "1e-400" is 0). ok is
// false on any error; the caller then hands the line to textparse, which
// produces the error message.
//
// Plain decimals take Clinger's fast path (scanDecimal): a mantissa up to
// 2^53 is exact as a float64, so are 10^0..10^22, and one IEEE
// multiplication or division of two exact values is correctly rounded.
// strconv.ParseFloat also returns the correctly rounded value, so the bits
// are identical; FuzzParseFloat checks it. Everything else (NaN, Inf, hex)
// goes through textparse's function. A NaN result is returned as is:
// callers canonicalise.
func parseFloat(b []byte) (f float64, ok bool) {
	if f, end, ok := scanDecimal(b, 0); ok && end == len(b) {
		return f, true
	}
	return parseFloatSlow(b)
}

// scanDecimal parses the decimal number at b[i:] ([+-]?digits[.digits]
// with an optional exponent) and returns it with the offset just after it.
// ok is false if b[i:] does not start with such a number, or strconv rejects
// it (out of range); the caller then finds the end of the token and calls
// parseFloat, which also covers NaN, Inf and errors. A true ok says nothing
// about the byte at end: the caller checks that the token ends there.
//
// Such a literal has none of "pP_", so strconv.ParseFloat is what
// textparse's parseFloat would return for it; numbers that Clinger's fast
// path cannot convert exactly (more than 2^53 in the mantissa, exponents
// beyond ±22: Python's 17-digit reprs, for one) go to it directly.
func scanDecimal(b []byte, i int) (f float64, end int, ok bool) {
	n := len(b)
	start := i
	neg := false
	if i < n && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	var mant uint64
	d0 := i
	for i < n && b[i]-'0' <= 9 {
		mant = mant*10 + uint64(b[i]-'0') // may overflow: nd says so
		i++
	}
	nd := i - d0
	frac := 0
	if i < n && b[i] == '.' {
		i++
		f0 := i
		for i < n && b[i]-'0' <= 9 {
			mant = mant*10 + uint64(b[i]-'0')
			i++
		}
		frac = i - f0
		nd += frac
	}
	if nd == 0 {
		return 0, i, false
	}
	exp := 0
	if i < n && b[i]|0x20 == 'e' {
		i++
		eneg := false
		if i < n && (b[i] == '-' || b[i] == '+') {
			eneg = b[i] == '-'
			i++
		}
		e0 := i
		for i < n && b[i]-'0' <= 9 {
			if exp < 10000 {
				exp = exp*10 + int(b[i]-'0')
			}
			i++
		}
		if i == e0 {
			return 0, i, false
		}
		if eneg {
			exp = -exp
		}
	}
	e10 := exp - frac
	if nd > 19 || mant > 1<<53 || e10 < -22 || e10 > 22 {
		f, err := strconv.ParseFloat(yoloString(b[start:i]), 64)
		return f, i, err == nil
	}
	f = float64(mant)
	if e10 > 0 {
		f *= pow10[e10]
	} else if e10 < 0 {
		f /= pow10[-e10]
	}
	if neg {
		f = -f
	}
	return f, i, true
}

// parseFloatSlow is textparse's parseFloat verbatim.
func parseFloatSlow(b []byte) (float64, bool) {
	s := yoloString(b)
	if strings.ContainsAny(s, "pP_") {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// parseTextTimestamp parses the digits-only timestamp of the text format
// ({D}+ in promlex.l) like textparse: strconv.ParseInt(s, 10, 64).
func parseTextTimestamp(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		// 18 digits cannot overflow int64; let strconv judge longer ones.
		ts, err := strconv.ParseInt(yoloString(b), 10, 64)
		return ts, err == nil
	}
	var ts int64
	for _, c := range b {
		if c-'0' > 9 {
			return 0, false
		}
		ts = ts*10 + int64(c-'0')
	}
	return ts, true
}

// omTimestamp converts an OpenMetrics timestamp token (float seconds) to
// milliseconds exactly as textparse does, rejecting NaN and ±Inf.
func omTimestamp(b []byte) (int64, bool) {
	f, ok := parseFloat(b)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return int64(f * 1000), true
}
