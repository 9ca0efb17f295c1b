package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shoal-scraper/shoal/produce"
)

type tailFlags struct {
	conn          kafkaConnFlags
	topic         string
	match         string
	fromBeginning bool
	format        string
	maxSamples    int
}

func (f *tailFlags) RegisterFlags(fs *flag.FlagSet) {
	f.conn.RegisterFlags(fs)
	fs.StringVar(&f.topic, "kafka.topic", produce.DefaultKafkaTopic, "Topics to read, comma-separated.")
	fs.StringVar(&f.match, "match", "", `Print only samples matching this series selector, e.g. '{job="node",instance=~"10\\..*"}' or 'up{job="node"}'.`)
	fs.BoolVar(&f.fromBeginning, "from-beginning", false, "Start at the oldest record of each partition instead of the newest.")
	fs.StringVar(&f.format, "format", "text", `Output: text (name{labels} value timestamp_ms, "stale" for staleness markers) or json (one object per sample, with the record's topic, partition, offset and key).`)
	fs.IntVar(&f.maxSamples, "max-samples", 0, "Exit after printing this many samples (0: run until interrupted).")
}

// cmdTail consumes topics and prints every sample of every record, one per
// line, until SIGINT or SIGTERM (or --max-samples). It is a direct
// consumer of every partition, not a group member: it commits nothing and
// does not take partitions from anyone.
func cmdTail(args []string, stdout, stderr io.Writer) int {
	var f tailFlags
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	f.RegisterFlags(fs)
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shoal tail: unexpected arguments %q\n", fs.Args())
		return 2
	}
	matchers, err := parseSelector(f.match)
	if err != nil {
		fmt.Fprintln(stderr, "shoal tail: --match:", err)
		return 2
	}
	if f.format != "text" && f.format != "json" {
		fmt.Fprintf(stderr, "shoal tail: --format=%q: want text or json\n", f.format)
		return 2
	}
	opts, err := f.conn.clientOpts()
	if err != nil {
		fmt.Fprintln(stderr, "shoal tail:", err)
		return 2
	}
	var topics []string
	for t := range strings.SplitSeq(f.topic, ",") {
		if t = strings.TrimSpace(t); t != "" {
			topics = append(topics, t)
		}
	}
	if len(topics) == 0 {
		fmt.Fprintln(stderr, "shoal tail: --kafka.topic is required")
		return 2
	}
	start := kgo.NewOffset().AtEnd()
	if f.fromBeginning {
		start = kgo.NewOffset().AtStart()
	}
	opts = append(opts, kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(start))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fmt.Fprintln(stderr, "shoal tail:", err)
		return 1
	}
	defer cl.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &tailPrinter{w: bufio.NewWriterSize(stdout, 64<<10), json: f.format == "json", matchers: matchers, max: f.maxSamples}
	lastErr := ""
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(topic string, part int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			// A missing topic or an unreachable broker repeats on every
			// poll: say it once until it changes.
			if msg := fmt.Sprintf("%s[%d]: %v", topic, part, err); msg != lastErr {
				fmt.Fprintln(stderr, "shoal tail:", msg)
				lastErr = msg
			}
		})
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if !done {
				done = p.record(r, stderr)
			}
		})
		if err := p.w.Flush(); err != nil {
			fmt.Fprintln(stderr, "shoal tail:", err)
			return 1
		}
		if done {
			break
		}
	}
	if err := p.w.Flush(); err != nil {
		fmt.Fprintln(stderr, "shoal tail:", err)
		return 1
	}
	return 0
}

// tailPrinter formats samples.
type tailPrinter struct {
	w        *bufio.Writer
	json     bool
	matchers []*labels.Matcher
	max      int
	printed  int
	buf      []byte
}

// record prints r's matching samples and reports whether --max-samples is
// reached. A value that does not decode is reported on stderr and skipped.
func (p *tailPrinter) record(r *kgo.Record, stderr io.Writer) (done bool) {
	ct := ""
	for _, h := range r.Headers {
		if h.Key == "content-type" {
			ct = string(h.Value)
		}
	}
	_, err := produce.DecodeRecordValue(ct, r.Value, func(ls labels.Labels, t int64, v float64) {
		if done || !matches(p.matchers, ls) {
			return
		}
		if p.json {
			p.buf = appendJSONSample(p.buf[:0], r, ls, t, v)
		} else {
			p.buf = appendTextSample(p.buf[:0], ls, t, v)
		}
		p.w.Write(p.buf)
		p.printed++
		done = p.max > 0 && p.printed >= p.max
	})
	if err != nil {
		fmt.Fprintf(stderr, "shoal tail: %s[%d]@%d key %q: %v\n", r.Topic, r.Partition, r.Offset, r.Key, err)
	}
	return done
}

func matches(ms []*labels.Matcher, ls labels.Labels) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// appendTextSample formats a sample as the stdout sink does.
func appendTextSample(b []byte, ls labels.Labels, t int64, v float64) []byte {
	b = produce.AppendSeriesText(b, ls)
	b = append(b, ' ')
	b = appendTailValue(b, v)
	b = append(b, ' ')
	b = strconv.AppendInt(b, t, 10)
	return append(b, '\n')
}

func appendTailValue(b []byte, v float64) []byte {
	if produce.IsStale(v) {
		return append(b, "stale"...)
	}
	return produce.AppendValue(b, v)
}

// tailJSON is one sample of --format=json. The value is a string, as in
// Prometheus's HTTP API, so NaN, ±Inf and "stale" survive JSON.
type tailJSON struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       string            `json:"key"`
	Labels    map[string]string `json:"labels"`
	Value     string            `json:"value"`
	Timestamp int64             `json:"timestamp"`
}

func appendJSONSample(b []byte, r *kgo.Record, ls labels.Labels, t int64, v float64) []byte {
	j := tailJSON{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Labels: ls.Map(), Value: string(appendTailValue(nil, v)), Timestamp: t}
	out, err := json.Marshal(j)
	if err != nil { // cannot happen: strings and numbers only
		panic(err)
	}
	b = append(b, out...)
	return append(b, '\n')
}
