// Package e2e tests the shoal binary from the outside: TestMain builds
// ./cmd/shoal once, and each test starts it as a process on its own
// loopback port, feeds it a configuration file, and checks what a user
// sees: sample lines on stdout, /metrics, /targets, health endpoints, exit
// codes and stderr.
//
// Targets are either the real node_exporter that `make test` starts
// (SHOAL_TEST_NODE_EXPORTER, see README.md) or small HTTP exporters run by
// the test itself on 127.0.0.1, which can be switched from a good response
// to a fault while shoal runs.
//
// Nothing here sleeps to synchronise: every wait is for an event (a sample
// line, an HTTP answer, a process exit) with a deadline, polled every 25ms.
// Deadlines are generous because the suite runs beside -race unit tests on
// two cores; on an idle machine each test finishes in a few seconds.
//
// Iterating locally:
//
//	scripts/testenv.sh up && set -a && . .testenv/env && set +a
//	go test -race ./e2e/
//	scripts/testenv.sh down
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// testVersion is stamped into the binary under test, so TestCLI can check
// that `shoal version` prints what the build put in.
const testVersion = "e2e-test-build"

// shoalBin is the binary built by TestMain.
var shoalBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		// These tests start the real binary and take tens of seconds: they
		// belong to `make test`, not to the -short loop.
		fmt.Println("e2e: skipped in -short mode")
		return 0
	}
	dir, err := os.MkdirTemp("", "shoal-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	shoalBin = filepath.Join(dir, "shoal")

	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the go tool is not on PATH:", err)
		return 1
	}
	// The package directory is e2e/, so the module root is "..". The binary
	// is built without -race even under `go test -race`: the tests measure
	// its timing, and the race detector would only slow it down.
	build := exec.Command(goTool, "build", "-ldflags", "-X main.version="+testVersion, "-o", shoalBin, "./cmd/shoal")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building shoal: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
