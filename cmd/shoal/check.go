package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/shoal-scraper/shoal/config"
)

// cmdCheckConfig validates each file and prints every error found, one per
// line, each naming file and line. Exit 1 if any file is invalid.
func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check config", flag.ContinueOnError)
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: shoal check config FILE...")
		return 2
	}
	code := 0
	for _, f := range fs.Args() {
		c, err := config.Load(f)
		if err != nil {
			code = 1
			fmt.Fprintf(stderr, "%s: FAILED\n", f)
			var errs config.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					fmt.Fprintf(stderr, "  %v\n", e)
				}
			} else {
				fmt.Fprintf(stderr, "  %v\n", err)
			}
			continue
		}
		fmt.Fprintf(stdout, "%s: SUCCESS: %d scrape configs\n", f, len(c.ScrapeConfigs))
	}
	return code
}
