// Command shoal is a distributed Prometheus scraper. This file only parses
// flags, builds the pieces and waits for shutdown; each piece lives in its
// own package.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultGCPercent is the GC's target heap growth when GOGC is not set,
// until `shoal run` starts its tuner (internal/gctune), which keeps it
// between 5 and this while it runs: low in steady state, where shoal
// allocates tens of KB/s and the runtime would otherwise keep (1 + GOGC/100)
// × 1.1 of the live heap; up to this while targets start or series churn,
// so those phases do not collect more often than they did at a fixed 25.
// Go's default of 100 left RSS near twice the live heap; a fixed 10 took
// the Kafka sink from 110 to 96–99 KB per target at 1000 node_exporter
// targets × 5 s but cut the ramp's max samples/s by a third (one run:
// 0.96 against 1.44 M/s), its collections marking a growing heap. GOGC
// in the environment overrides this; GOGC or GOMEMLIMIT keeps the tuner
// off.
const defaultGCPercent = 25

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: shoal <command> [flags]

commands:
  run            scrape the jobs of a configuration file (standalone mode), or with
                 --zookeeper.servers join a pool and scrape its share of ZooKeeper's jobs
  jobs           put, get, ls, rm the jobs stored in ZooKeeper
  members        list the pool's members and the targets each owns
  tail           print the samples of shoal's Kafka records as they arrive
  check config   validate configuration files and list every error
  version        print the version

Run 'shoal <command> -h' for the command's flags.
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "jobs":
		return cmdJobs(args[1:], stdout, stderr)
	case "members":
		return cmdMembers(args[1:], stdout, stderr)
	case "tail":
		return cmdTail(args[1:], stdout, stderr)
	case "check":
		if len(args) < 2 || args[1] != "config" {
			fmt.Fprintln(stderr, "usage: shoal check config FILE...")
			return 2
		}
		return cmdCheckConfig(args[2:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "shoal %s\n", getVersion())
		return 0
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "shoal: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func getVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// parseFlags parses a subcommand's flags, printing the error and usage on
// failure. Flags take Prometheus's spelling: --config.file=FILE.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (ok bool, code int) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, 0
		}
		return false, 2
	}
	return true, 0
}
