// Package farm serves many fake exporters on loopback for load tests: N
// targets, each on its own TCP listener, all serving one payload whose
// sample values change on every scrape.
//
// # Design
//
// A farm shares the CPU with the scraper it feeds, so everything that can
// be done before the first request is done in Start: the payload is
// rewritten into Config.Variants versions whose sample values differ (see
// buildVariants), each rendered once as a complete HTTP response, identity
// and gzip-compressed. Serving a scrape is then: read the request into a
// per-connection buffer, scan its header block, pick the target's next
// variant, and write the precomputed response in one write call. No
// per-request allocation, copy, compression or formatting.
//
// Each target rotates through the variants (scrape n of target i gets
// variant (i+n) mod Variants), so consecutive scrapes of a target always
// carry different values for every finite sample (NaN and ±Inf stay as
// they are), and so do targets scraped at the same time unless they are
// a multiple of Variants apart, as the hosts of a real fleet would. With
// every target on variant n at its n-th scrape (this farm's first form),
// a Kafka batch of 40 targets' scrapes held 3 sets of values and zstd made
// it 1.57 bytes per sample, where targets with values of their own give
// about 3.6 (BenchmarkKafkaSink): the farm flattered the compressor's CPU
// and bytes. The simpler alternative, patching fixed-width digits into a copy of
// the payload per request, gives unique values forever but costs a copy
// and a gzip per request when compressing; a scraper cannot tell the
// difference, since it never sees two consecutive bodies with equal values.
//
// The HTTP/1.1 server is a minimal one written here: GET and HEAD on one
// path, keep-alive, pipelining, Connection: close, nothing else (request
// bodies are refused). fasthttp.Server was tried first and lost: every
// Serve call starts a worker-pool cleaner goroutine that outlives Shutdown
// by up to MaxIdleWorkerDuration, so Close could not wait for the farm's
// goroutines, and each request still pays for parsing every header into a
// RequestCtx. net/http allocates a Request, a header map and a response
// writer per request. Here a target costs one listener and one accepting
// goroutine, and a connection one goroutine and a 4 KiB buffer.
//
// File descriptors: a target costs one for its listener and one per open
// connection (a keep-alive scraper holds one per target), so a farm of N
// targets needs about 2N descriptors, and 3N when the scraper runs in the
// same process. StartProcess runs a farm in a child process to split them.
package farm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes a farm. Zero fields take the defaults documented on each.
type Config struct {
	// Targets is how many targets to serve, each on its own listener on
	// Host at a free port. Required.
	Targets int `json:"targets"`
	// Payload is the exposition body every target serves: Prometheus text
	// (or OpenMetrics, with ContentType set to match). Required; benchmarks
	// pass the node_exporter fixture, parse/testdata/node_exporter.prom.
	// Start copies what it needs: the caller may reuse the slice.
	Payload []byte `json:"payload"`
	// Gzip makes the farm answer requests that accept gzip
	// (Accept-Encoding containing "gzip"; q-values are not honoured) with a
	// precompressed body. Without it every response is identity-encoded.
	Gzip bool `json:"gzip"`
	// Latency delays every response after its request is read, as a slow
	// exporter would. Zero: answer at once.
	Latency time.Duration `json:"latency"`
	// Faults injects failures into a fraction of the scrapes (see Faults).
	// Zero: every scrape is answered normally.
	Faults Faults `json:"faults"`
	// Variants is how many versions of Payload with different sample values
	// the targets rotate through, each from its own place (see the package
	// doc). Default 61: two would do for "values change on every scrape",
	// but a batch of scrapes compressed together (a Kafka batch holds about
	// 40 node_exporter scrapes) should hold no two targets with the same
	// values. 61 variants of the node_exporter payload take 4 MB. A
	// payload over 4 MB gets fewer by default (256 MB of variants at most,
	// and at least 3).
	Variants int `json:"variants"`
	// Path is the one path served; others get 404. Default "/metrics".
	Path string `json:"path"`
	// ContentType of the responses. Default Prometheus text 0.0.4, as
	// node_exporter sends it.
	ContentType string `json:"content_type"`
	// Host is the address the listeners bind. Default "127.0.0.1": a farm
	// is for loopback load tests and must not be reachable from outside.
	Host string `json:"host"`
	// BigPayload, when BigTargets > 0, is what the first BigTargets
	// targets serve instead of Payload: a huge exposition (a
	// kube-state-metrics of a large cluster, see KSMPayload) among
	// ordinary exporters, to see whether one huge scrape holds up the
	// others. It gets bigVariants variants (each a complete copy).
	BigPayload []byte `json:"big_payload,omitempty"`
	BigTargets int    `json:"big_targets,omitempty"`
}

// bigVariants is how many variants a BigPayload gets: enough for values to
// change on every scrape; each is a full copy of a payload of megabytes.
const bigVariants = 3

// maxVariantBytes bounds the default variants of Payload.
const maxVariantBytes = 256 << 20

func (c *Config) setDefaults() {
	if c.Variants == 0 {
		// 61, but no more than 256 MB of them for a huge payload (ksm as
		// every target's payload: 17 MB each).
		c.Variants = max(bigVariants, min(61, maxVariantBytes/max(1, len(c.Payload))))
	}
	if c.Path == "" {
		c.Path = "/metrics"
	}
	if c.ContentType == "" {
		c.ContentType = "text/plain; version=0.0.4; charset=utf-8"
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
}

// Validate reports the first problem with c (after defaults).
func (c *Config) Validate() error {
	switch {
	case c.Targets <= 0:
		return fmt.Errorf("farm: targets %d: must be positive", c.Targets)
	case len(c.Payload) == 0:
		return errors.New("farm: empty payload (pass e.g. parse/testdata/node_exporter.prom)")
	case c.Variants < 2:
		return fmt.Errorf("farm: variants %d: need at least 2 for values to change between scrapes", c.Variants)
	case c.Latency < 0:
		return fmt.Errorf("farm: negative latency %s", c.Latency)
	case !c.Faults.valid():
		return fmt.Errorf("farm: faults %+v: each fraction must be in [0, 1], their sum at most 1, and SlowLatency non-negative", c.Faults)
	case c.Path == "" || c.Path[0] != '/':
		return fmt.Errorf("farm: path %q must start with /", c.Path)
	case c.BigTargets < 0 || c.BigTargets > c.Targets:
		return fmt.Errorf("farm: big targets %d: must be in [0, targets %d]", c.BigTargets, c.Targets)
	case c.BigTargets > 0 && len(c.BigPayload) == 0:
		return fmt.Errorf("farm: %d big targets but an empty big payload", c.BigTargets)
	}
	return nil
}

// Faults are the fractions of scrapes (GET requests for the path) that
// fail on purpose, as real exporters sometimes do. Which requests fail is
// decided by a hash of the target and its request number: the same Config
// fails the same requests in every run, and failures are spread evenly
// over targets and time rather than bunched.
type Faults struct {
	// Errors: answered with 500 Internal Server Error and an empty body.
	Errors float64 `json:"errors"`
	// Resets: the connection is closed without an answer (an exporter
	// that crashed or a proxy that gave up).
	Resets float64 `json:"resets"`
	// Slow: answered normally after an extra SlowLatency, on top of
	// Config.Latency (an exporter stuck on a slow collector; with
	// SlowLatency above the scraper's timeout, a timeout).
	Slow        float64       `json:"slow"`
	SlowLatency time.Duration `json:"slow_latency"`
}

func (f Faults) valid() bool {
	in01 := func(x float64) bool { return x >= 0 && x <= 1 }
	return in01(f.Errors) && in01(f.Resets) && in01(f.Slow) && f.Errors+f.Resets+f.Slow <= 1 && f.SlowLatency >= 0
}

func (f Faults) any() bool { return f.Errors+f.Resets+f.Slow > 0 }

type fault uint8

const (
	faultNone fault = iota
	faultError
	faultReset
	faultSlow
)

// pick decides the fate of request seq of target i: a hash of both mapped
// to [0, 1) and compared with the cumulative fractions.
func (f Faults) pick(i int, seq uint64) fault {
	// splitmix64 finaliser: cheap, and consecutive inputs land far apart.
	x := uint64(i)<<40 ^ seq
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	u := float64(x>>11) / (1 << 53)
	switch {
	case u < f.Errors:
		return faultError
	case u < f.Errors+f.Resets:
		return faultReset
	case u < f.Errors+f.Resets+f.Slow:
		return faultSlow
	}
	return faultNone
}

// Stats counts what one target (or a whole farm) served: 200 responses to
// GET. A response counts from the moment it is written (so a client that
// has read it finds it counted); one whose write fails is taken back.
// Injected faults are counted apart and never as scrapes.
type Stats struct {
	Scrapes int64 `json:"scrapes"`
	Samples int64 `json:"samples"` // sample lines in the bodies served
	Bytes   int64 `json:"bytes"`   // body bytes written, after compression
	Gzipped int64 `json:"gzipped"` // scrapes answered with a gzip body
	Faults  int64 `json:"faults"`  // requests failed on purpose (Errors, Resets); Slow ones count as scrapes
}

// Add returns s + o.
func (s Stats) Add(o Stats) Stats {
	return Stats{s.Scrapes + o.Scrapes, s.Samples + o.Samples, s.Bytes + o.Bytes, s.Gzipped + o.Gzipped, s.Faults + o.Faults}
}

// Sub returns s − o: the traffic between two snapshots.
func (s Stats) Sub(o Stats) Stats {
	return Stats{s.Scrapes - o.Scrapes, s.Samples - o.Samples, s.Bytes - o.Bytes, s.Gzipped - o.Gzipped, s.Faults - o.Faults}
}

// counters are one target's live Stats, padded to a cache line: targets
// are served from different cores and must not contend on one line.
type counters struct {
	seq                                      atomic.Uint64 // requests seen: picks the variant
	scrapes, samples, bytes, gzipped, faults atomic.Int64
	_                                        [16]byte
}

func (c *counters) add(scrapes, samples, bytes, gzipped int64) {
	c.scrapes.Add(scrapes)
	c.samples.Add(samples)
	c.bytes.Add(bytes)
	c.gzipped.Add(gzipped)
}

// Farm serves Config.Targets fake exporters until Close or until the
// context given to Start is done. Its methods are safe for concurrent use.
type Farm struct {
	cfg      Config
	variants []variant
	big      []variant // BigPayload's, served by the first cfg.BigTargets targets
	addrs    []string
	lns      []net.Listener
	counters []counters
	done     chan struct{} // closed by shutdown: stops Latency waits
	stopCtx  func() bool   // detaches the context.AfterFunc of Start
	once     sync.Once
	wg       sync.WaitGroup // accept loops and connections

	// mu guards the open connections, so shutdown can close them, and
	// closed, so a connection accepted during shutdown is closed at once.
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Start opens cfg.Targets listeners and serves them until Close is called
// or ctx is done (Close must still be called to wait for the goroutines).
// On error nothing is left open.
func Start(ctx context.Context, cfg Config) (*Farm, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	vs, err := buildVariants(cfg.Payload, cfg.Variants, cfg.Gzip, cfg.ContentType)
	if err != nil {
		return nil, fmt.Errorf("farm: %w", err)
	}
	var big []variant
	if cfg.BigTargets > 0 {
		if big, err = buildVariants(cfg.BigPayload, bigVariants, cfg.Gzip, cfg.ContentType); err != nil {
			return nil, fmt.Errorf("farm: big payload: %w", err)
		}
	}
	cfg.Payload, cfg.BigPayload = nil, nil // not needed past the variants; do not pin the caller's slices
	f := &Farm{
		cfg:      cfg,
		variants: vs,
		big:      big,
		addrs:    make([]string, 0, cfg.Targets),
		lns:      make([]net.Listener, 0, cfg.Targets),
		counters: make([]counters, cfg.Targets),
		done:     make(chan struct{}),
		conns:    make(map[net.Conn]struct{}),
	}
	var lc net.ListenConfig
	for range cfg.Targets {
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.Host, "0"))
		if err != nil {
			for _, l := range f.lns {
				l.Close()
			}
			return nil, fmt.Errorf("farm: listening for target %d of %d: %w", len(f.lns), cfg.Targets, err)
		}
		f.lns = append(f.lns, ln)
		f.addrs = append(f.addrs, ln.Addr().String())
	}
	for i, ln := range f.lns {
		f.wg.Go(func() { f.accept(ln, i) })
	}
	f.stopCtx = context.AfterFunc(ctx, f.shutdown)
	return f, nil
}

// Addrs returns the targets' host:port addresses; target i is Addrs()[i].
// The slice is shared: do not modify it.
func (f *Farm) Addrs() []string { return f.addrs }

// SamplesPerScrape is how many samples one scrape of a target returns
// (of a target serving Payload, when some serve BigPayload).
func (f *Farm) SamplesPerScrape() int { return f.variants[0].samples }

// Stats returns a snapshot of every target's counters, indexed like Addrs.
func (f *Farm) Stats() []Stats {
	out := make([]Stats, len(f.counters))
	for i := range f.counters {
		c := &f.counters[i]
		out[i] = Stats{c.scrapes.Load(), c.samples.Load(), c.bytes.Load(), c.gzipped.Load(), c.faults.Load()}
	}
	return out
}

// Total returns the sum of Stats over all targets.
func (f *Farm) Total() Stats {
	var t Stats
	for _, s := range f.Stats() {
		t = t.Add(s)
	}
	return t
}

// Close stops the farm and waits for all its goroutines: listeners and
// connections are closed, responses delayed by Latency are abandoned.
// Counters stay readable. Close is idempotent.
func (f *Farm) Close() error {
	f.stopCtx()
	f.once.Do(f.shutdownOnce)
	f.wg.Wait()
	return nil
}

// shutdown runs once, from Close or when Start's context ends.
func (f *Farm) shutdown() { f.once.Do(f.shutdownOnce) }

func (f *Farm) shutdownOnce() {
	// 1. Refuse new connections; 2. stop Latency waits; 3. close the open
	// connections, which unblocks their reads.
	f.mu.Lock()
	f.closed = true
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, ln := range f.lns {
		ln.Close()
	}
	close(f.done)
	for c := range conns {
		c.Close()
	}
}

// accept runs target i's accept loop until its listener is closed.
func (f *Farm) accept(ln net.Listener, i int) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if f.isClosed() {
				return
			}
			// Out of descriptors, most likely: back off as net/http does
			// rather than spin, and keep serving open connections.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
				continue
			case <-f.done:
				return
			}
		}
		backoff = 0
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Go(func() {
			defer f.untrack(c)
			f.serve(c, i)
		})
	}
}

func (f *Farm) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func (f *Farm) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Farm) untrack(c net.Conn) {
	f.mu.Lock()
	if !f.closed {
		delete(f.conns, c)
	}
	f.mu.Unlock()
	c.Close()
}

// Canned error responses; each closes the connection.
const (
	respBadRequest     = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	respNotFound       = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	respInternalError  = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
	respBadMethod      = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	respHeaderTooLarge = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	respBadVersion     = "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)

// maxHeader bounds a request's header block. A scraper's request is a few
// hundred bytes; this is also the per-connection buffer.
const maxHeader = 4 << 10

// serve answers requests on c until the client closes it, asks to, sends
// something this server does not support, or the farm shuts down.
func (f *Farm) serve(c net.Conn, ti int) {
	buf := make([]byte, maxHeader)
	n := 0
	for {
		end := indexHeaderEnd(buf[:n], 0)
		for end < 0 {
			if n == len(buf) {
				c.Write([]byte(respHeaderTooLarge))
				return
			}
			m, err := c.Read(buf[n:])
			if err != nil {
				return
			}
			from := max(n-3, 0)
			n += m
			end = indexHeaderEnd(buf[:n], from)
		}
		keep := f.respond(c, buf[:end], ti)
		if !keep {
			return
		}
		// Pipelined requests: keep what follows this one.
		n = copy(buf, buf[end+4:n])
	}
}

// indexHeaderEnd returns the index of the CRLFCRLF ending a header block in
// b, searching from from, or -1.
func indexHeaderEnd(b []byte, from int) int {
	for i := from; i+3 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' && b[i+2] == '\r' && b[i+3] == '\n' {
			return i
		}
	}
	return -1
}

// respond answers one request (its header block without the final empty
// line) and reports whether the connection stays open.
func (f *Farm) respond(c net.Conn, req []byte, ti int) bool {
	ctr := &f.counters[ti]
	line, hdrs := cutLine(req)
	method, rest, ok1 := cut(line, ' ')
	target, version, ok2 := cut(rest, ' ')
	if !ok1 || !ok2 {
		c.Write([]byte(respBadRequest))
		return false
	}
	var keep bool
	switch string(version) {
	case "HTTP/1.1":
		keep = true
	case "HTTP/1.0":
		keep = false
	default:
		c.Write([]byte(respBadVersion))
		return false
	}
	head := string(method) == "HEAD"
	if !head && string(method) != "GET" {
		c.Write([]byte(respBadMethod))
		return false
	}
	gz := false
	for len(hdrs) > 0 {
		var h []byte
		h, hdrs = cutLine(hdrs)
		name, value, ok := cut(h, ':')
		if !ok {
			c.Write([]byte(respBadRequest))
			return false
		}
		value = trimSpace(value)
		switch {
		case equalFold(name, "accept-encoding"):
			gz = containsFold(value, "gzip")
		case equalFold(name, "connection"):
			// HTTP/1.0 keep-alive is not offered: the responses do not
			// carry "Connection: keep-alive", so 1.0 clients get a close.
			if containsFold(value, "close") {
				keep = false
			}
		case equalFold(name, "content-length"):
			if string(value) != "0" {
				c.Write([]byte(respBadRequest))
				return false
			}
		case equalFold(name, "transfer-encoding"):
			c.Write([]byte(respBadRequest))
			return false
		}
	}
	if p, _, _ := cut(target, '?'); string(p) != f.cfg.Path {
		if _, err := c.Write([]byte(respNotFound)); err != nil {
			return false
		}
		return keep
	}

	seq := ctr.seq.Add(1) - 1
	vs := f.variants
	if ti < f.cfg.BigTargets {
		vs = f.big
	}
	v := &vs[(uint64(ti)+seq)%uint64(len(vs))]
	resp, hdr, body := v.plain, v.plainHdr, v.plainBody
	gz = gz && f.cfg.Gzip
	if gz {
		resp, hdr, body = v.gz, v.gzHdr, v.gzBody
	}
	if head {
		resp = resp[:hdr]
	}
	delay := f.cfg.Latency
	flt := faultNone
	if f.cfg.Faults.any() && !head {
		flt = f.cfg.Faults.pick(ti, seq)
		if flt == faultSlow {
			delay += f.cfg.Faults.SlowLatency
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-f.done:
			t.Stop()
			return false
		}
	}
	switch flt {
	case faultError:
		ctr.faults.Add(1)
		if _, err := c.Write([]byte(respInternalError)); err != nil {
			return false
		}
		return keep
	case faultReset:
		ctr.faults.Add(1)
		return false // serve's caller closes the connection
	}
	if !keep {
		// The precomputed headers do not say "Connection: close"; an
		// HTTP/1.1 client learns it from the close, a 1.0 one expects it.
		defer c.Close()
	}
	// Count before writing, so that a client that has read the response
	// finds it counted; a write that fails takes the count back.
	var samples, bytes, gzipped int64
	if !head {
		samples, bytes = int64(v.samples), int64(body)
		if gz {
			gzipped = 1
		}
		ctr.add(1, samples, bytes, gzipped)
	}
	if _, err := c.Write(resp); err != nil {
		if !head {
			ctr.add(-1, -samples, -bytes, -gzipped)
		}
		return false
	}
	return keep
}

// cutLine splits b at its first CRLF.
func cutLine(b []byte) (line, rest []byte) {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' {
			return b[:i], b[i+2:]
		}
	}
	return b, nil
}

func cut(b []byte, sep byte) (before, after []byte, ok bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b equals the lower-case ASCII s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(s) {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// containsFold reports whether b contains the lower-case ASCII s, ignoring
// case.
func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if equalFold(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}
