package engine

// This file is the only one in engine/ that imports fasthttp (STYLE 14):
// the rest of the package sees fetch() and a body it may read until release.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/internal/gunzip"
)

// errBodyTooLarge is returned when a response exceeds body_size_limit, after
// decompression (Prometheus applies the limit to the decompressed body).
var errBodyTooLarge = errors.New("body size limit exceeded")

// maxRedirects is net/http's limit, which Prometheus inherits.
const maxRedirects = 10

// httpClient fetches targets of one job. It is safe for concurrent use; one
// instance per job, because TLS and authentication are per job. It holds no
// connection: each target owns its keep-alive connections (conns), which
// the worker scraping the target drives: it writes the target's request
// head (made once, see fetch) and reads with fasthttp's
// Response.ReadLimitBody.
//
// Why not fasthttp.Client: it keeps a HostClient per host:port, and every
// HostClient with idle keep-alive connections runs a connsCleaner goroutine
// (plus one mCleaner per Client). A scrape target is one host:port, so that
// was a goroutine per target: 1000 goroutines and 2.7 KB of stacks per
// target at 1000 node_exporter targets × 5 s, for connections that are idle
// for exactly one interval between two uses. Here an idle connection is a
// socket in the netpoller and nothing else; it is closed when its target is
// retired, when the server says Connection: close, or when it fails.
type httpClient struct {
	accept    string
	userAgent string
	headers   string // the job's request headers, after a target's head
	sc        *config.ScrapeConfig
	authFiles bool // credentials come from files: re-read them (authHeader)
	tlsCfg    *tls.Config

	authMu     sync.Mutex
	auth       string // Authorization header value, or ""
	authErr    error  // why the credentials files could not be read
	authAt     time.Time
	limit      int64 // body_size_limit in bytes; 0 = none
	follow     bool
	gunzippers sync.Pool // *gunzip.Decoder
	bufs       bufPools  // *bytes.Buffer holding gunzipped bodies

	tlsMu   sync.Mutex
	tlsHost map[string]*tls.Config // tlsCfg with ServerName, per host:port
}

func newHTTPClient(sc *config.ScrapeConfig, version string) (*httpClient, error) {
	var tlsCfg *tls.Config
	if sc.Scheme == "https" {
		var err error
		if tlsCfg, err = sc.TLSConfig.Build(); err != nil {
			return nil, fmt.Errorf("job %q: tls_config: %w", sc.JobName, err)
		}
	}
	// Credentials in files are re-read while scraping (see authHeader);
	// inline ones are fixed for the job's life.
	fromFiles := sc.BearerTokenFile != "" ||
		(sc.BasicAuth != nil && (sc.BasicAuth.UsernameFile != "" || sc.BasicAuth.PasswordFile != "")) ||
		(sc.Authorization != nil && sc.Authorization.CredentialsFile != "")
	var auth string
	if !fromFiles {
		var err error
		if auth, err = sc.AuthHeader(); err != nil {
			return nil, fmt.Errorf("job %q: %w", sc.JobName, err)
		}
	}
	accept := acceptHeader(sc.ScrapeProtocols)
	userAgent := "shoal/" + version
	return &httpClient{
		headers:   "User-Agent: " + userAgent + "\r\nAccept: " + accept + "\r\nAccept-Encoding: gzip\r\n",
		sc:        sc,
		authFiles: fromFiles,
		tlsCfg:    tlsCfg,
		accept:    accept,
		userAgent: userAgent,
		auth:      oneLine(auth),
		limit:     int64(sc.BodySizeLimit),
		follow:    sc.FollowRedirects,
		bufs:      newBufPools(),
	}, nil
}

// credentialsRefresh is how long credentials read from files are reused.
// Prometheus reads them on every request; rotated tokens (Kubernetes
// service account tokens, say) are replaced well before they expire, so
// re-reading them twice a minute, not on every scrape of every target, is
// enough.
const credentialsRefresh = 30 * time.Second

// authHeader returns the Authorization header to send, re-reading
// credentials files when the cached value is older than credentialsRefresh.
// An unreadable file fails the scrape rather than sending no credentials.
func (c *httpClient) authHeader(now time.Time) (string, error) {
	if !c.authFiles {
		return c.auth, nil
	}
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if c.authAt.IsZero() || now.Sub(c.authAt) >= credentialsRefresh {
		c.auth, c.authErr = c.sc.AuthHeader()
		c.auth = oneLine(c.auth)
		c.authAt = now
	}
	return c.auth, c.authErr
}

// oneLine returns v with CR and LF replaced by spaces, as fasthttp's
// Header.Set does: a header value from configuration (credentials read
// from a file, a YAML block scalar ending in a newline) must not end the
// header or add one. The request head writes values as they are.
func oneLine(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, v)
}

// acceptHeader mirrors Prometheus's: the configured protocols in order of
// preference with decreasing q, then */* last.
func acceptHeader(ps []config.ScrapeProtocol) string {
	if len(ps) == 0 {
		ps = config.DefaultScrapeProtocols
	}
	var b bytes.Buffer
	w := len(ps) + 1
	for _, p := range ps {
		switch p {
		case config.OpenMetricsText1_0_0:
			b.WriteString("application/openmetrics-text;version=1.0.0")
		case config.OpenMetricsText0_0_1:
			b.WriteString("application/openmetrics-text;version=0.0.1")
		case config.PrometheusText1_0_0:
			b.WriteString("text/plain;version=1.0.0")
		case config.PrometheusText0_0_4:
			b.WriteString("text/plain;version=0.0.4")
		default:
			continue
		}
		b.WriteString(";q=0.")
		b.WriteString(strconv.Itoa(w))
		b.WriteByte(',')
		w--
	}
	b.WriteString("*/*;q=0.")
	b.WriteString(strconv.Itoa(w))
	return b.String()
}

// response is one fetched body. Body and ContentType are valid until release.
type response struct {
	resp        *fasthttp.Response
	own         bool          // resp is the target's conns.big: reset, not released
	buf         *bytes.Buffer // gunzipped body, or nil
	Body        []byte
	ContentType []byte
	c           *httpClient
}

// release returns the response's memory to the pools. Nothing read from the
// response may be used after release.
func (r *response) release() {
	if r.buf != nil {
		r.c.bufs.put(r.buf)
		r.buf = nil
	}
	if r.resp != nil {
		if r.own {
			r.resp.Reset() // KeepBodyBuffer: the buffer stays for the next scrape
		} else {
			fasthttp.ReleaseResponse(r.resp)
		}
		r.resp, r.own = nil, false
	}
	r.Body, r.ContentType = nil, nil
}

// keep makes r's response the target's own (conns.big: reset, not
// released, after the scrape, its body buffer kept), or lets it go back to
// the pool after the scrape (the bodies shrank, the buffer is a past
// peak's, or the fetch failed; fasthttp's pool drops a buffer far above
// the usual size, and the next big body gets one its size).
func (r *response) keep(cs *conns, keep bool) {
	r.resp.KeepBodyBuffer = keep
	r.own = keep
	cs.big = nil
	if keep {
		cs.big = r.resp
	}
}

// fetch GETs url with the job's headers over the target's connections cs
// and returns the (decompressed) body. The caller holds the target's
// scrapeMu, which guards cs. deadline bounds the whole exchange, dialling
// and redirects included. sizeHint is the last body size of this target, to
// size the gunzip buffer in one go.
//
// The request is written from the target's head (conns.head), made at its
// first fetch, and the job's headers: 60 ns, where building and writing a
// fasthttp.Request (parse the URL, set five headers, format the timeout,
// serialise) took 1.7 to 3.7 µs (BenchmarkRequest), a cost every scrape
// pays whatever its size: 4 % of a 67-sample target's scrape. A
// fasthttp.Request is made only to follow a redirect, from the URL.
func (c *httpClient) fetch(cs *conns, url string, timeout time.Duration, deadline time.Time, sizeHint int, r *response) error {
	resp := cs.big
	r.own = resp != nil
	if resp == nil {
		resp = fasthttp.AcquireResponse()
	}
	r.resp, r.c = resp, c
	auth, err := c.authHeader(time.Now())
	if err != nil {
		return err
	}
	if cs.head.url != url || cs.head.timeout != timeout {
		cs.head = makeHead(url, timeout)
	}
	out := outgoing{head: &cs.head, auth: auth}
	if cs.head.fallback {
		out.req = c.request(url, timeout, auth)
	}
	defer out.release()

	for redirects := 0; ; redirects++ {
		if err := c.do(cs, &out, resp, deadline); err != nil {
			if r.own {
				// A failed read (a body over the limit above all) may
				// have grown the kept buffer: let the pool have it.
				r.keep(cs, false)
			}
			switch {
			case errors.Is(err, fasthttp.ErrBodyTooLarge):
				return errBodyTooLarge
			case isTimeout(err):
				return fmt.Errorf("context deadline exceeded (scrape timeout %s)", timeout)
			case errors.Is(err, io.EOF):
				return fasthttp.ErrConnectionClosed
			}
			return err
		}
		code := resp.StatusCode()
		if code == fasthttp.StatusOK {
			break
		}
		if c.follow && fasthttp.StatusCodeIsRedirect(code) && redirects < maxRedirects {
			loc := resp.Header.Peek("Location")
			if len(loc) > 0 {
				// Resolve relative to the current URI, as net/http does,
				// and, like net/http, do not send credentials to another
				// host.
				if out.req == nil {
					out.req = c.request(url, timeout, auth)
				}
				req := out.req
				host := string(req.URI().Host())
				req.URI().UpdateBytes(loc)
				if string(req.URI().Host()) != host {
					req.Header.Del("Authorization")
				}
				resp.Reset()
				continue
			}
		}
		if fasthttp.StatusCodeIsRedirect(code) && redirects >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return fmt.Errorf("server returned HTTP status %d %s", code, fasthttp.StatusMessage(code))
	}

	r.ContentType = resp.Header.ContentType()
	body := resp.Body()
	if keep := keepResponse(r.own, len(body), cap(body)); keep != r.own {
		r.keep(cs, keep)
	}
	if !bytes.EqualFold(resp.Header.ContentEncoding(), []byte("gzip")) {
		r.Body = body
		return nil
	}
	return c.gunzip(body, sizeHint, r)
}

// gunzip decompresses body into a pooled buffer sized from sizeHint (the
// target's last body) or the gzip trailer, failing the scrape when the
// content is larger than the body limit. internal/gunzip inflates the whole
// body at once, which takes about 60 % of the CPU klauspost/compress/gzip's
// streaming reader did (BenchmarkGunzip); it yields the processor every
// yieldBytes of output.
func (c *httpClient) gunzip(body []byte, sizeHint int, r *response) error {
	d, _ := c.gunzippers.Get().(*gunzip.Decoder)
	if d == nil {
		d = &gunzip.Decoder{Yield: true}
	}
	defer c.gunzippers.Put(d)

	if sizeHint <= 0 {
		sizeHint = gzipSize(body)
	}
	if c.limit > 0 {
		// A body over the limit fails the scrape: room for more than the
		// limit is never needed (a target over it every time re-reads the
		// trailer every time).
		sizeHint = min(sizeHint, int(c.limit)+1)
	}
	// Room for the body as large as the hint and an eighth more (a
	// target's body grows between scrapes), and the decoder's slack.
	buf := c.bufs.get(sizeHint + sizeHint/8 + gunzip.Slack)
	r.buf = buf
	out, err := d.Decode(buf.AvailableBuffer(), body, int(c.limit))
	if cap(out) != buf.Cap() {
		*buf = *bytes.NewBuffer(out) // outgrew the buffer: keep the new one
	}
	if errors.Is(err, gunzip.ErrTooLarge) {
		return errBodyTooLarge
	}
	if err != nil {
		return fmt.Errorf("decompressing gzip body: %w", err)
	}
	r.Body = out
	return nil
}

// gzipSize returns the size the gzip stream body says its content has
// (gunzip.Size), as a size hint for a target's first scrape, or 0 when it
// is larger than the largest pooled buffer. A stream of several members
// says only its last one's size: the buffer then grows as it would
// without a hint.
func gzipSize(body []byte) int {
	if n := gunzip.Size(body); n <= maxBufSize {
		return n
	}
	return 0
}

// bufPools pool the buffers of gunzipped bodies by capacity (sizedPool),
// from 64 KiB to 64 MiB; those of 1 MiB and more are also kept.
type bufPools struct{ sizedPool }

func newBufPools() bufPools {
	return bufPools{newSizedPool(bufMinShift, bufClasses, 20, func(x any) int { return x.(*bytes.Buffer).Cap() })}
}

const (
	bufMinShift, bufClasses = 16, 11                              // 64 KiB, 128 KiB, ... 64 MiB
	maxBufSize              = 1 << (bufMinShift + bufClasses - 1) // the largest buffer kept
)

// get returns an empty buffer with room for n bytes.
func (p *bufPools) get(n int) *bytes.Buffer {
	if b, _ := p.sizedPool.get(n).(*bytes.Buffer); b != nil {
		return b
	}
	return bytes.NewBuffer(make([]byte, 0, p.alloc(n)))
}

func (p *bufPools) put(b *bytes.Buffer) {
	b.Reset()
	p.sizedPool.put(b, b.Cap())
}

// isTimeout reports whether err is a deadline passing (dial, TLS handshake,
// write or read).
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// conns are one target's keep-alive connections: one per host:port it
// fetches from, for the target's own address and, when it redirects to
// another host, that one too. Two slots, most recently used first; a third
// host evicts the older. The worker holding the target's scrapeMu is the
// only user: no lock.
type conns struct {
	s    [2]connSlot
	head head // the target's request head, made at its first fetch
	// big is the target's own response, kept with its body buffer while
	// its bodies are large (bigBody); nil otherwise, and a pooled one is
	// used. Why: fasthttp's body buffer pool drops buffers far above the
	// usual size, so a kube-state-metrics' 1.7 MB gzipped body was read
	// into a new buffer every scrape, grown by doubling (400 KB/s at one
	// scrape per 5 s).
	big *fasthttp.Response
}

// keepResponse reports whether a target keeps its response (conns.big)
// after a body of n bytes read into a buffer of c; own: it kept it so far.
// A buffer more than 4 times the body is a past peak's, or another
// target's from fasthttp's pool, and is not kept.
func keepResponse(own bool, n, c int) bool {
	if c > 4*n {
		return false
	}
	if own {
		return n >= bigBody/4
	}
	return n >= bigBody
}

// bigBody is the body size, as read from the wire, from which a target
// keeps its own response (conns.big); it lets it go when a body is below a
// quarter of that or a quarter of the buffer, or a fetch fails.
const bigBody = 256 << 10

type connSlot struct {
	c    net.Conn // nil: empty
	host string   // as in the URL: host, or host:port
	tls  bool
}

func (s *connSlot) close() {
	if s.c != nil {
		s.c.Close()
		*s = connSlot{}
	}
}

// get returns the open connection to host, moved to the front, or nil.
func (cs *conns) get(host []byte, isTLS bool) *connSlot {
	for i := range cs.s {
		if s := &cs.s[i]; s.c != nil && s.tls == isTLS && s.host == string(host) {
			if i > 0 {
				cs.s[0], cs.s[i] = cs.s[i], cs.s[0]
			}
			return &cs.s[0]
		}
	}
	return nil
}

// put adds a new connection to host in front. It takes an empty slot (the
// one of a connection that just failed, say) or else evicts the least
// recently used connection.
func (cs *conns) put(host string, isTLS bool, c net.Conn) *connSlot {
	i := len(cs.s) - 1
	for k := range cs.s {
		if cs.s[k].c == nil {
			i = k
			break
		}
	}
	cs.s[i].close()
	copy(cs.s[1:i+1], cs.s[:i])
	cs.s[0] = connSlot{c: c, host: host, tls: isTLS}
	return &cs.s[0]
}

func (cs *conns) empty() bool {
	for i := range cs.s {
		if cs.s[i].c != nil {
			return false
		}
	}
	return true
}

// close closes every connection. The target is retired, or the engine
// stopped.
func (cs *conns) close() {
	for i := range cs.s {
		cs.s[i].close()
	}
	cs.big = nil
}

// do sends req and reads resp on the target's connection to req's host,
// dialling one if there is none. A reused connection may have been closed by
// the server since its last use (an idle timeout, a restart): the write
// still succeeds, and the read gets EOF or a reset. So a reused connection
// that fails is replaced by a fresh one and the request, an idempotent GET,
// is sent once more, as fasthttp (which tries up to 5 times) and net/http
// do. Not on a timeout: the deadline is spent. Not on body_size_limit: the
// same body would come again. A fresh connection that fails is not retried.
func (c *httpClient) do(cs *conns, out *outgoing, resp *fasthttp.Response, deadline time.Time) error {
	var host []byte
	var isTLS bool
	if req := out.req; req != nil {
		uri := req.URI()
		isTLS = string(uri.Scheme()) == "https"
		if !isTLS && string(uri.Scheme()) != "http" {
			return fmt.Errorf("unsupported protocol %q. http and https are supported", uri.Scheme())
		}
		host = uri.Host()
	} else {
		host, isTLS = out.head.host(), out.head.tls
	}
	if s := cs.get(host, isTLS); s != nil {
		err := c.roundTrip(s, out, resp, deadline)
		if err == nil || isTimeout(err) || errors.Is(err, fasthttp.ErrBodyTooLarge) {
			return err
		}
	}
	s, err := c.dial(cs, string(host), isTLS, deadline)
	if err != nil {
		return err
	}
	return c.roundTrip(s, out, resp, deadline)
}

// outgoing is the request of one fetch: the target's head, or a
// fasthttp.Request when following a redirect (or when the head cannot
// carry the URL).
type outgoing struct {
	head *head
	auth string
	req  *fasthttp.Request
}

// write writes the request to bw.
func (o *outgoing) write(c *httpClient, bw *bufio.Writer) error {
	if o.req != nil {
		return o.req.Write(bw)
	}
	bw.Write(o.head.b)
	bw.WriteString(c.headers)
	if o.auth != "" {
		bw.WriteString("Authorization: ")
		bw.WriteString(o.auth)
		bw.WriteString("\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

func (o *outgoing) release() {
	if o.req != nil {
		fasthttp.ReleaseRequest(o.req)
		o.req = nil
	}
}

// request returns a fasthttp.Request for url with the job's headers; the
// caller releases it.
func (c *httpClient) request(url string, timeout time.Duration, auth string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(url)
	req.URI().DisablePathNormalizing = true
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.Set("Accept", c.accept)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return req
}

// head is the part of a target's request that depends on the target alone:
// request line, Host and timeout headers, as fasthttp would write them for
// its URL, kept with the target's connections (conns) for its life. The
// job's headers (httpClient.headers), the Authorization header and the
// blank line follow it on the wire.
type head struct {
	url     string // the URL and timeout the head was made for
	timeout time.Duration
	b       []byte
	// b[host0:host1] is the host[:port] of the URL: the connection's key.
	host0, host1 uint32
	tls          bool
	// fallback: the head cannot carry the URL (user information in it,
	// which fasthttp turns into an Authorization header; no host, or a
	// scheme other than http or https, which fasthttp's path reports):
	// fasthttp writes the request.
	fallback bool
}

func (h *head) host() []byte { return h.b[h.host0:h.host1] }

// makeHead parses url as fasthttp does for a request (the path as it is,
// not normalised) and renders its head.
func makeHead(url string, timeout time.Duration) head {
	h := head{url: url, timeout: timeout, fallback: true}
	var u fasthttp.URI
	if u.Parse(nil, []byte(url)) != nil || len(u.Host()) == 0 || len(u.Username()) > 0 || len(u.Password()) > 0 {
		return h
	}
	u.DisablePathNormalizing = true // after Parse, which resets it
	switch string(u.Scheme()) {
	case "https":
		h.tls = true
	case "http":
	default:
		return h
	}
	var buf [256]byte
	b := append(buf[:0], "GET "...)
	b = append(b, u.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	h.host0 = uint32(len(b))
	b = append(b, u.Host()...)
	h.host1 = uint32(len(b))
	b = append(b, "\r\nX-Prometheus-Scrape-Timeout-Seconds: "...)
	b = strconv.AppendFloat(b, timeout.Seconds(), 'f', -1, 64)
	b = append(b, "\r\n"...)
	h.b = slices.Clone(b) // the target keeps it: no slack
	h.fallback = false
	return h
}

// roundTrip writes req on s and reads resp, within deadline. It closes s
// on any error, and when either side asked for Connection: close (which
// fasthttp also sets for an HTTP/1.0 reply or a body delimited by the end of
// the connection).
func (c *httpClient) roundTrip(s *connSlot, out *outgoing, resp *fasthttp.Response, deadline time.Time) error {
	resp.Reset()
	if err := s.c.SetDeadline(deadline); err != nil {
		s.close()
		return err
	}
	bw := getWriter(s.c)
	err := out.write(c, bw)
	if err == nil {
		err = bw.Flush()
	}
	putWriter(bw)
	if err != nil {
		s.close()
		return err
	}
	br := getReader(s.c)
	err = resp.ReadLimitBody(br, int(c.limit))
	putReader(br)
	if err != nil {
		s.close()
		return err
	}
	if (out.req != nil && out.req.ConnectionClose()) || resp.ConnectionClose() {
		s.close()
	}
	return nil
}

// dial opens a connection to host (TLS for https) within deadline and puts
// it in cs.
func (c *httpClient) dial(cs *conns, host string, isTLS bool, deadline time.Time) (*connSlot, error) {
	addr := fasthttp.AddMissingPort(host, isTLS)
	d := net.Dialer{Deadline: deadline}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if isTLS {
		tc := tls.Client(conn, c.tlsFor(addr))
		if err := tc.SetDeadline(deadline); err != nil {
			conn.Close()
			return nil, err
		}
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	return cs.put(host, isTLS, conn), nil
}

// tlsFor returns the job's TLS config for addr, with ServerName set to its
// host unless tls_config names one (fasthttp's rule). A job with scheme http
// that is redirected to https gets the defaults.
func (c *httpClient) tlsFor(addr string) *tls.Config {
	c.tlsMu.Lock()
	defer c.tlsMu.Unlock()
	if cfg := c.tlsHost[addr]; cfg != nil {
		return cfg
	}
	cfg := &tls.Config{}
	if c.tlsCfg != nil {
		cfg = c.tlsCfg.Clone()
	}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	if c.tlsHost == nil {
		c.tlsHost = make(map[string]*tls.Config)
	}
	c.tlsHost[addr] = cfg
	return cfg
}

// Buffered readers and writers are taken for one exchange and given back:
// an idle connection holds none. The read buffer holds the response
// headers (fasthttp needs them to fit; 16 KiB, as before), the body is read
// through it into the response's pooled buffer.
var readers, writers sync.Pool

func getReader(c net.Conn) *bufio.Reader {
	if br, _ := readers.Get().(*bufio.Reader); br != nil {
		br.Reset(c)
		return br
	}
	return bufio.NewReaderSize(c, 16<<10)
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}

func getWriter(c net.Conn) *bufio.Writer {
	if bw, _ := writers.Get().(*bufio.Writer); bw != nil {
		bw.Reset(c)
		return bw
	}
	return bufio.NewWriterSize(c, 4<<10)
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writers.Put(bw)
}
