package bench

// This file is the only one in bench/ that imports fasthttp: the floors are
// the cheapest scrapers that can be written with the client shoal uses.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shoal-scraper/shoal/internal/gunzip"
)

// FloorConfig is a floor scraper: the least work that scrapes a set of
// targets at a fixed interval, the physical floor a real scraper is
// compared with. Each scrape is one fasthttp GET on a kept-alive
// connection asking for gzip; the body is discarded as it arrives
// (fasthttp still reads it into its response buffer), or, with Gunzip,
// decompressed into a reused buffer by the decoder shoal uses
// (internal/gunzip), then discarded. No parsing, no
// labels, no output.
//
// Scheduling is as plain as it gets: target i is due at i×Interval/N into
// every interval, one goroutine sleeps until the next due target and hands
// it to a pool of workers over a channel. A target whose previous scrape
// is still running when it is due again is skipped, as shoal does.
type FloorConfig struct {
	// Addrs are the targets' host:port; each is scraped at /metrics.
	Addrs []string `json:"addrs"`
	// Interval between two scrapes of a target. Required.
	Interval time.Duration `json:"interval"`
	// Timeout of one scrape. Default Interval.
	Timeout time.Duration `json:"timeout"`
	// Gunzip decompresses gzip bodies (the "fetch+gunzip" floor).
	Gunzip bool `json:"gunzip"`
	// Workers scrape concurrently. Default 64: with GOMAXPROCS=1 more only
	// adds scheduler work; loopback answers come back in well under a
	// millisecond.
	Workers int `json:"workers"`
}

func (c *FloorConfig) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = c.Interval
	}
	if c.Workers == 0 {
		c.Workers = 64
	}
}

// Validate reports the first problem with c (after defaults).
func (c *FloorConfig) Validate() error {
	switch {
	case len(c.Addrs) == 0:
		return errors.New("floor: no targets")
	case c.Interval <= 0:
		return fmt.Errorf("floor: interval %s: must be positive", c.Interval)
	case c.Timeout <= 0 || c.Timeout > c.Interval:
		return fmt.Errorf("floor: timeout %s: must be positive and at most the interval %s", c.Timeout, c.Interval)
	case c.Workers <= 0:
		return fmt.Errorf("floor: workers %d: must be positive", c.Workers)
	}
	return nil
}

// RunFloor scrapes cfg's targets until ctx is done, then waits for the
// scrapes in flight (each bounded by the timeout) and returns. It counts
// nothing: the farm counts what was served.
func RunFloor(ctx context.Context, cfg FloorConfig) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	c := &fasthttp.Client{
		NoDefaultUserAgentHeader: true,
		MaxConnsPerHost:          1,
		MaxIdleConnDuration:      cfg.Interval + 10*time.Second,
		ReadBufferSize:           16 << 10,
		DisablePathNormalizing:   true,
	}
	defer c.CloseIdleConnections()
	urls := make([]string, len(cfg.Addrs))
	for i, a := range cfg.Addrs {
		urls[i] = "http://" + a + "/metrics"
	}
	busy := make([]sync.Mutex, len(urls))
	work := make(chan int, len(urls))
	var wg sync.WaitGroup
	// Decoders are pooled, as shoal pools them: one per worker would be
	// 60 KB of tables each.
	decoders := sync.Pool{New: func() any { return new(gunzip.Decoder) }}
	for range cfg.Workers {
		wg.Go(func() {
			var out []byte
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for i := range work {
				if !busy[i].TryLock() {
					continue
				}
				req.Reset()
				req.SetRequestURI(urls[i])
				req.Header.Set("Accept-Encoding", "gzip")
				err := c.DoDeadline(req, resp, time.Now().Add(cfg.Timeout))
				if err == nil && cfg.Gunzip && bytes.Equal(resp.Header.ContentEncoding(), []byte("gzip")) {
					// The decoder shoal uses, into a buffer reused
					// and sized from the trailer as shoal sizes it
					// (believed up to 64 MiB, shoal's largest buffer).
					body := resp.Body()
					if need := min(gunzip.Size(body), 64<<20) + gunzip.Slack; cap(out) < need {
						out = make([]byte, 0, need)
					}
					zd := decoders.Get().(*gunzip.Decoder)
					out, _ = zd.Decode(out[:0], body, 0)
					decoders.Put(zd)
				}
				resp.Reset()
				busy[i].Unlock()
			}
		})
	}
	schedule(ctx, len(urls), cfg.Interval, work)
	close(work)
	wg.Wait()
	return nil
}

// schedule sends target i to work at i×interval/n past every multiple of
// interval since the Unix epoch, until ctx is done. A full channel drops
// the instant (the workers are that far behind).
func schedule(ctx context.Context, n int, interval time.Duration, work chan<- int) {
	offsets := make([]time.Duration, n)
	for i := range offsets {
		offsets[i] = time.Duration(int64(interval) * int64(i) / int64(n))
	}
	now := time.Now()
	base := now.Truncate(interval)
	next := sort.Search(n, func(i int) bool { return base.Add(offsets[i]).After(now) })
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		if next == n {
			next, base = 0, base.Add(interval)
		}
		due := base.Add(offsets[next])
		if d := time.Until(due); d > 0 {
			t.Reset(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		} else if ctx.Err() != nil {
			return
		}
		select {
		case work <- next:
		default:
		}
		next++
	}
}

// ServeFloor runs the child side of a floor started by the e2e harness: it
// reads a FloorConfig (JSON) from in, scrapes until in reaches EOF or ctx
// is done, and returns.
func ServeFloor(ctx context.Context, in io.Reader) error {
	var cfg FloorConfig
	dec := json.NewDecoder(in)
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("floor: reading config: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The parent closes stdin to stop the floor. This goroutine ends with
	// stdin, which the process's exit closes at the latest.
	go func() {
		io.Copy(io.Discard, io.MultiReader(dec.Buffered(), in))
		cancel()
	}()
	return RunFloor(ctx, cfg)
}
