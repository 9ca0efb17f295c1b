//go:build invariants

package parse

// invariants turns on checks too costly for production: build with
// -tags invariants (for example in integration tests against real targets)
// to have every fast-path sample re-parsed by textparse.
const invariants = true
