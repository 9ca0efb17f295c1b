package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-scraper/shoal/coord"
	"github.com/shoal-scraper/shoal/web"
)

const jobsUsage = `usage: shoal jobs <put FILE... | get NAME | ls | rm NAME...> --zookeeper.servers=HOST:PORT,... [--zookeeper.root=/shoal]

  put FILE...  validate, then store the jobs of each FILE (one scrape_config, or a file
               with a scrape_configs list); nothing is written if any job is invalid
  get NAME     print a job's YAML as stored
  ls           list the jobs; an invalid job (written by another tool) is flagged
  rm NAME...   delete jobs
`

func cmdJobs(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, jobsUsage)
		return 2
	}
	sub := args[0]
	var zf zkFlags
	fs := flag.NewFlagSet("jobs "+sub, flag.ContinueOnError)
	zf.register(fs)
	fs.Usage = func() { fmt.Fprint(stderr, jobsUsage); fs.PrintDefaults() }
	rest, ok, code := parseInterleaved(fs, args[1:], stderr)
	if !ok {
		return code
	}
	want := map[string]func(int) bool{
		"put": func(n int) bool { return n >= 1 },
		"get": func(n int) bool { return n == 1 },
		"ls":  func(n int) bool { return n == 0 },
		"rm":  func(n int) bool { return n >= 1 },
	}
	okArgs, known := want[sub]
	if !known || !okArgs(len(rest)) {
		fmt.Fprint(stderr, jobsUsage)
		return 2
	}

	// put validates before connecting: a bad file never reaches ZooKeeper.
	var docs []coord.JobDoc
	if sub == "put" {
		failed := false
		for _, file := range rest {
			data, err := os.ReadFile(file)
			if err != nil {
				fmt.Fprintln(stderr, "shoal:", err)
				failed = true
				continue
			}
			d, err := coord.ReadJobFile(data, file)
			if err != nil {
				fmt.Fprintf(stderr, "shoal: %s is invalid; nothing was written:\n%v\n", file, err)
				failed = true
				continue
			}
			docs = append(docs, d...)
		}
		if failed {
			return 1
		}
		seen := map[string]bool{}
		for _, d := range docs {
			if seen[d.Name] {
				fmt.Fprintf(stderr, "shoal: job %q is defined twice; nothing was written\n", d.Name)
				return 1
			}
			seen[d.Name] = true
		}
	}

	st, code := zf.dial(stderr)
	if st == nil {
		return code
	}
	defer st.Close()

	switch sub {
	case "put":
		if err := st.PutJobs(docs); err != nil {
			fmt.Fprintln(stderr, "shoal:", err)
			return 1
		}
		for _, d := range docs {
			fmt.Fprintf(stdout, "stored job %q\n", d.Name)
		}
	case "get":
		b, err := st.GetJob(rest[0])
		if err != nil {
			fmt.Fprintln(stderr, "shoal:", err)
			return 1
		}
		stdout.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			fmt.Fprintln(stdout)
		}
	case "ls":
		names, bad, err := st.ListJobs()
		if err != nil {
			fmt.Fprintln(stderr, "shoal:", err)
			return 1
		}
		for _, n := range names {
			if e := bad[n]; e != nil {
				fmt.Fprintf(stdout, "%s\tINVALID: %s\n", n, strings.ReplaceAll(e.Error(), "\n", "; "))
				continue
			}
			fmt.Fprintln(stdout, n)
		}
	case "rm":
		code := 0
		for _, n := range rest {
			if err := st.RemoveJob(n); err != nil {
				fmt.Fprintln(stderr, "shoal:", err)
				code = 1
				continue
			}
			fmt.Fprintf(stdout, "removed job %q\n", n)
		}
		return code
	}
	return 0
}

func cmdMembers(args []string, stdout, stderr io.Writer) int {
	var zf zkFlags
	fs := flag.NewFlagSet("members", flag.ContinueOnError)
	zf.register(fs)
	asJSON := fs.Bool("json", false, "Print JSON (the peers list of /api/v1/cluster) instead of a table.")
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	st, code := zf.dial(stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	ms, err := st.Members()
	if err != nil {
		fmt.Fprintln(stderr, "shoal:", err)
		return 1
	}
	status := make([]coord.MemberStatus, len(ms))
	now := time.Now()
	for i, m := range ms {
		status[i] = coord.MemberStatus{ID: m.ID, Address: m.Address, Version: m.Version, Slot: m.Slot, Started: m.Started, Since: m.Since, Leaving: m.Leaving,
			Active: !now.Before(m.Since) && (m.Leaving.IsZero() || now.Before(m.Leaving))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	peers := web.FetchPeers(ctx, &http.Client{Timeout: 3 * time.Second}, status)
	if *asJSON {
		return printJSON(stdout, stderr, peers)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tADDRESS\tSLOT\tTARGETS\tSTATE\tVERSION")
	total := 0
	for i, m := range status {
		p := peers[i]
		targets := fmt.Sprint(p.OwnedTargets)
		if p.Error != "" {
			targets = "? (" + p.Error + ")"
		} else {
			total += p.OwnedTargets
		}
		state := "active"
		switch {
		case !m.Leaving.IsZero():
			state = "leaving"
		case !m.Active:
			state = "joining"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", m.ID, m.Address, m.Slot, targets, state, m.Version)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d members, %d targets\n", len(status), total)
	return 0
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(stderr, "shoal:", err)
		return 1
	}
	return 0
}

// parseInterleaved parses flags that may come after positional arguments
// (shoal jobs put FILE --zookeeper.servers=…), returning the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string, stderr io.Writer) (pos []string, ok bool, code int) {
	for {
		if ok, code := parseFlags(fs, args, stderr); !ok {
			return nil, false, code
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, true, 0
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), true, 0
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// dial connects the job store client, printing why not (exit code 2 for a
// bad flag, 1 for no session).
func (f *zkFlags) dial(stderr io.Writer) (*coord.Store, int) {
	servers, err := f.list()
	if err != nil {
		fmt.Fprintln(stderr, "shoal:", err)
		return nil, 2
	}
	st, err := coord.Dial(servers, f.root, f.sessionTimeout)
	if err != nil {
		fmt.Fprintln(stderr, "shoal:", err)
		return nil, 1
	}
	return st, 0
}
