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
// Plain decimals take Clinger's fast path: a mantissa below 2^53 is exact as a
// float64, so are 10^0..10^22, and one IEEE multiplication or division of two
// exact values is correctly rounded. strconv.ParseFloat also returns the
// correctly rounded value, so the bits are identical; FuzzParseFloat checks it.
// Everything else (NaN, Inf, long mantissas, large exponents, hex) goes
// through strconv. A NaN result is returned as is: callers canonicalise.
func parseFloat(b []byte) (f float64, ok bool) {
	n := len(b)
	i := 0
	neg := false
	if n > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		i++
	}
	var mant uint64
	d0 := i
	for i < n && b[i]-'0' <= 9 {
		mant = mant*10 + uint64(b[i]-'0')
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
	// 19 digits cannot overflow uint64; more go to strconv.
	if nd == 0 || nd > 19 {
		return parseFloatSlow(b)
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
		for i < n && b[i]-'0' <= 9 && exp < 1000 {
			exp = exp*10 + int(b[i]-'0')
			i++
		}
		if i == e0 {
			return parseFloatSlow(b)
		}
		if eneg {
			exp = -exp
		}
	}
	if i != n || mant > 1<<53 {
		return parseFloatSlow(b)
	}
	e10 := exp - frac
	f = float64(mant)
	switch {
	case e10 == 0:
	case e10 > 0 && e10 <= 22:
		f *= pow10[e10]
	case e10 < 0 && e10 >= -22:
		f /= pow10[-e10]
	default:
		return parseFloatSlow(b)
	}
	if neg {
		f = -f
	}
	return f, true
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
