package parse

import "unsafe"

// yoloString returns a string that shares b's memory instead of copying it.
//
// Precondition: b must not be modified while the returned string, or anything
// derived from it, is reachable. Every caller in this package passes bytes of
// the body handed to Parser.Reset (which its contract keeps unmodified until
// the next Reset) or of a Parser-owned scratch buffer, and uses the string only
// for the duration of one strconv call or of unique.Make (which copies a string
// before keeping it): nothing keeps it.
func yoloString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
