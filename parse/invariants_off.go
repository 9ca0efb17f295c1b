//go:build !invariants

package parse

// invariants turns on checks too costly for production (see
// invariants_on.go).
const invariants = false
