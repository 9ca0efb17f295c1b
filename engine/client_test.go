package engine

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/produce"
)

// connCounter counts the connections a test server accepted and reports
// each closed one.
type connCounter struct {
	mu     sync.Mutex
	opened int
	closed chan struct{}
}

func newConnCounter() *connCounter { return &connCounter{closed: make(chan struct{}, 100)} }

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		c.mu.Lock()
		c.opened++
		c.mu.Unlock()
	case http.StateClosed, http.StateHijacked:
		c.closed <- struct{}{}
	}
}

func (c *connCounter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened
}

// countedServer serves body from a started httptest server (TLS if tls)
// whose connections are counted.
func countedServer(t *testing.T, tls bool, h http.HandlerFunc) (*httptest.Server, *connCounter) {
	cc := newConnCounter()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = cc.hook
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, cc
}

func metricsHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte(body))
	}
}

func upOf(t *testing.T, r recScrape, addr string) float64 {
	t.Helper()
	return r.mustFind(t, fmt.Sprintf(`{__name__="up", instance="%s", job="j"}`, addr))
}

// TestConnectionReusedAcrossScrapes: a target's keep-alive connection
// serves all its scrapes (no handshake per scrape), over HTTP and HTTPS,
// and is closed when the target is retired.
func TestConnectionReusedAcrossScrapes(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			srv, cc := countedServer(t, useTLS, metricsHandler("a 1\n"))
			addr := srv.Listener.Addr().String()
			extra := ""
			if useTLS {
				ca := t.TempDir() + "/ca.pem"
				if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
					t.Fatal(err)
				}
				extra = "  scheme: https\n  tls_config: {ca_file: " + ca + "}"
			}
			e, s, tg := engineFor(t, addr, extra)
			for i := range 5 {
				if up := upOf(t, scrapeOnce(t, e, s, tg), addr); up != 1 {
					t.Fatalf("scrape %d: up = %v (%s)", i, up, tg.status().LastError)
				}
			}
			if n := cc.n(); n != 1 {
				t.Fatalf("5 scrapes opened %d connections, want 1", n)
			}
			e.SyncTargets("j", nil) // retired: its connection goes
			e.bg.Wait()
			select {
			case <-cc.closed:
			case <-time.After(5 * time.Second):
				t.Fatal("the retired target's connection was not closed")
			}
		})
	}
}

// TestServerClosedIdleConnectionIsRetried: when the server closed the idle
// connection between two scrapes, the scrape goes through on a fresh one,
// invisibly.
func TestServerClosedIdleConnectionIsRetried(t *testing.T) {
	srv, cc := countedServer(t, false, metricsHandler("a 1\n"))
	addr := srv.Listener.Addr().String()
	e, s, tg := engineFor(t, addr, "")
	for i := range 3 {
		if up := upOf(t, scrapeOnce(t, e, s, tg), addr); up != 1 {
			t.Fatalf("scrape %d: up = %v (%s)", i, up, tg.status().LastError)
		}
		srv.CloseClientConnections()
		<-cc.closed
	}
	if n := cc.n(); n != 3 {
		t.Fatalf("%d connections, want 3: one per scrape", n)
	}
	if st := tg.status(); st.Health != HealthUp || st.LastError != "" {
		t.Fatalf("status %+v", st)
	}
}

// TestConnectionCloseHonoured: a server that answers Connection: close (or
// turned keep-alive off) gets a new connection per scrape, without errors.
func TestConnectionCloseHonoured(t *testing.T) {
	srv, cc := countedServer(t, false, metricsHandler("a 1\n"))
	srv.Config.SetKeepAlivesEnabled(false)
	addr := srv.Listener.Addr().String()
	e, s, tg := engineFor(t, addr, "")
	for i := range 3 {
		if up := upOf(t, scrapeOnce(t, e, s, tg), addr); up != 1 {
			t.Fatalf("scrape %d: up = %v (%s)", i, up, tg.status().LastError)
		}
	}
	if n := cc.n(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

// TestFreshConnectionFailureIsNotRetried: a server that hangs up before
// answering fails the scrape with fasthttp's message; a fresh connection is
// tried once per scrape, not again.
func TestFreshConnectionFailureIsNotRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	accepted := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted++
			mu.Unlock()
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	e, s, tg := engineFor(t, addr, "")
	for range 2 {
		if up := upOf(t, scrapeOnce(t, e, s, tg), addr); up != 0 {
			t.Fatal("up = 1 from a server that hangs up")
		}
		if st := tg.status(); !strings.Contains(st.LastError, "server closed connection before returning the first response byte") {
			t.Fatalf("error %q", st.LastError)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if accepted != 2 {
		t.Fatalf("%d connections for 2 scrapes, want 2", accepted)
	}
}

// TestRedirectToAnotherHostKeepsBothConnections: a target redirected to
// another host keeps a connection to each.
func TestRedirectToAnotherHostKeepsBothConnections(t *testing.T) {
	real, ccReal := countedServer(t, false, metricsHandler("moved 1\n"))
	front, ccFront := countedServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, real.URL+"/metrics", http.StatusFound)
	})
	addr := front.Listener.Addr().String()
	e, s, tg := engineFor(t, addr, "")
	for i := range 4 {
		r := scrapeOnce(t, e, s, tg)
		if up := upOf(t, r, addr); up != 1 {
			t.Fatalf("scrape %d: up = %v (%s)", i, up, tg.status().LastError)
		}
		r.mustFind(t, fmt.Sprintf(`{__name__="moved", instance="%s", job="j"}`, addr))
	}
	if a, b := ccFront.n(), ccReal.n(); a != 1 || b != 1 {
		t.Fatalf("connections: %d to the redirecting host, %d to the real one; want 1 and 1", a, b)
	}
}

// TestBodyLimitAndTimeoutOnReusedConnection: the errors keep their
// messages on a kept connection, and the connection is replaced after.
func TestBodyLimitAndTimeoutOnReusedConnection(t *testing.T) {
	var mu sync.Mutex
	body, delay := "a 1\n", time.Duration(0)
	srv, cc := countedServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b, d := body, delay
		mu.Unlock()
		if d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte(b))
	})
	addr := srv.Listener.Addr().String()
	e, s, tg := engineFor(t, addr, "  body_size_limit: 100B")
	set := func(b string, d time.Duration) {
		mu.Lock()
		body, delay = b, d
		mu.Unlock()
	}
	scrapeOnce(t, e, s, tg)
	set(strings.Repeat("a 1\n", 100), 0)
	scrapeOnce(t, e, s, tg)
	if st := tg.status(); st.LastError != "body size limit exceeded" {
		t.Fatalf("error %q", st.LastError)
	}
	set("a 1\n", 2*time.Second)
	scrapeOnce(t, e, s, tg)
	if st := tg.status(); st.LastError != "context deadline exceeded (scrape timeout 500ms)" {
		t.Fatalf("error %q", st.LastError)
	}
	set("a 1\n", 0)
	if up := upOf(t, scrapeOnce(t, e, s, tg), addr); up != 1 {
		t.Fatalf("up = %v after recovery (%s)", up, tg.status().LastError)
	}
	// First connection, then one after the body limit closed it, then one
	// after the timeout closed that.
	if n := cc.n(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

// TestConnsSlots: two hosts keep a connection each; a third evicts the
// least recently used; a failed connection's slot is refilled without
// evicting the other host's.
func TestConnsSlots(t *testing.T) {
	pipe := func() net.Conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return a
	}
	var cs conns
	a, b := pipe(), pipe()
	cs.put("a:1", false, a)
	cs.put("b:1", false, b)
	if s := cs.get([]byte("a:1"), false); s == nil || s.c != a {
		t.Fatal("a lost")
	}
	if cs.get([]byte("a:1"), true) != nil {
		t.Fatal("an http connection served https")
	}
	// a is now the most recent: c evicts b.
	c := pipe()
	cs.put("c:1", false, c)
	if cs.get([]byte("b:1"), false) != nil || cs.get([]byte("a:1"), false) == nil || cs.get([]byte("c:1"), false) == nil {
		t.Fatalf("after a third host: %+v", cs.s)
	}
	// c fails (roundTrip closes its slot): its replacement keeps a.
	cs.get([]byte("c:1"), false).close()
	cs.put("c:1", false, pipe())
	if cs.get([]byte("a:1"), false) == nil || cs.get([]byte("c:1"), false) == nil {
		t.Fatalf("a failed connection's replacement evicted another host: %+v", cs.s)
	}
	cs.close()
	if !cs.empty() {
		t.Fatal("close left connections")
	}
}

// TestRequestHeadMatchesFasthttp: the request a target's head writes means
// to the exporter exactly what fasthttp writes for the same URL and
// headers (method, request target, Host, every header), for URLs with
// escapes, query parameters, IPv6 hosts and default ports, with and
// without credentials; and URLs the head cannot carry go through fasthttp.
func TestRequestHeadMatchesFasthttp(t *testing.T) {
	c, err := newHTTPClient(&config.ScrapeConfig{JobName: "j", Scheme: "http"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	parseReq := func(b []byte) *http.Request {
		t.Helper()
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("%v in %q", err, b)
		}
		if n, _ := r.Body.Read(make([]byte, 1)); n != 0 {
			t.Fatalf("request %q has a body", b)
		}
		return r
	}
	written := func(o *outgoing) []byte {
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		if err := o.write(c, bw); err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for _, url := range []string{
		"http://127.0.0.1:9100/metrics",
		"http://Exporter.Example:80/metrics",
		"http://exporter.example/metrics",
		"https://exporter.example:8443/probe?module=http_2xx&target=https%3A%2F%2Fexample.com%2Fa%20b",
		"http://[::1]:9100/a%2Fb/../c//metrics?x=%E2%82%AC&x=2&empty=",
		"http://10.0.0.1:9090/federate?match[]=%7Bjob%3D%22node%22%7D",
		"http://10.0.0.1:9090",
	} {
		for _, auth := range []string{"", "Bearer s3cret"} {
			for _, timeout := range []time.Duration{10 * time.Second, 1500 * time.Millisecond} {
				h := makeHead(url, timeout)
				if h.fallback {
					t.Fatalf("%s: no head", url)
				}
				want := &outgoing{req: c.request(url, timeout, auth)}
				got := parseReq(written(&outgoing{head: &h, auth: auth}))
				w := parseReq(written(want))
				want.release()
				if got.Method != w.Method || got.RequestURI != w.RequestURI || got.Host != w.Host || got.Proto != w.Proto {
					t.Errorf("%s: head writes %s %s %s Host %s; fasthttp %s %s %s Host %s", url, got.Method, got.RequestURI, got.Proto, got.Host, w.Method, w.RequestURI, w.Proto, w.Host)
				}
				if !reflect.DeepEqual(got.Header, w.Header) {
					t.Errorf("%s auth %q timeout %s: head writes headers %v; fasthttp %v", url, auth, timeout, got.Header, w.Header)
				}
				if h.tls != strings.HasPrefix(url, "https:") {
					t.Errorf("%s: tls = %v", url, h.tls)
				}
			}
		}
	}
	for _, url := range []string{"http://user:pass@127.0.0.1:9100/metrics", "ftp://127.0.0.1/metrics"} {
		if h := makeHead(url, time.Second); !h.fallback {
			t.Errorf("%s: a head, want fasthttp to write the request", url)
		}
	}
}

// TestBufPools: a gunzip buffer goes back to the class its capacity fills,
// so a huge target's buffer is not handed to an ordinary body (which kept
// it, and made the huge target grow another), every buffer has room for
// what it was asked, and buffers beyond the largest class are not kept.
func TestBufPools(t *testing.T) {
	p := newBufPools()
	for _, n := range []int{0, 1, 64 << 10, 64<<10 + 1, 3 << 20, maxBufSize, maxBufSize + 1} {
		if b := p.get(n); b.Cap() < n || b.Len() != 0 {
			t.Errorf("get(%d): cap %d len %d", n, b.Cap(), b.Len())
		}
	}
	huge := p.get(17 << 20)
	huge.Write(make([]byte, 17<<20))
	p.put(huge)
	// A buffer whose capacity is not a class's goes to the class below
	// it: it must not be handed to a body larger than it.
	p.put(bytes.NewBuffer(make([]byte, 0, 48<<20)))
	for _, n := range []int{40 << 20, 60 << 20} {
		if b := p.get(n); b.Cap() < n {
			t.Errorf("get(%d) after a 48 MiB buffer was put: cap %d", n, b.Cap())
		}
	}
	var zero sizedPool // pools nothing, and does not panic
	zero.put(huge, huge.Cap())
	if x := zero.get(1); x != nil {
		t.Errorf("the zero sizedPool returned %v", x)
	}
	if b := p.get(100 << 10); b.Cap() >= 1<<20 {
		t.Errorf("a 100 KiB body got a %d-byte buffer", b.Cap())
	}
	if b := p.get(17 << 20); b.Cap() < 17<<20 || b.Len() != 0 {
		t.Errorf("a 17 MiB body got cap %d len %d", b.Cap(), b.Len())
	}
	p.put(bytes.NewBuffer(make([]byte, 0, 2*maxBufSize)))
	if b := p.get(maxBufSize); b.Cap() == 2*maxBufSize {
		t.Errorf("a %d-byte buffer, over the largest class, was kept", b.Cap())
	}
}

// TestGzipSize: the first scrape of a target sizes its buffer from the
// gzip trailer, unless the trailer claims more than deflate can produce.
func TestGzipSize(t *testing.T) {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(bytes.Repeat([]byte("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1.5\n"), 10000))
	zw.Close()
	if got, want := gzipSize(z.Bytes()), 10000*len("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1.5\n"); got != want {
		t.Errorf("gzipSize = %d, want %d", got, want)
	}
	lie := bytes.Clone(z.Bytes())
	binary.LittleEndian.PutUint32(lie[len(lie)-4:], 1<<30)
	if got := gzipSize(lie); got != 0 {
		t.Errorf("a trailer claiming 1 GiB in %d bytes: %d, want 0", len(lie), got)
	}
	binary.LittleEndian.PutUint32(lie[len(lie)-4:], uint32(1033*len(lie)))
	if got := gzipSize(lie); got != 0 {
		t.Errorf("a trailer claiming more than deflate's 1032:1: %d, want 0", got)
	}
	if got := gzipSize([]byte{0x1f, 0x8b}); got != 0 {
		t.Errorf("a truncated stream: %d, want 0", got)
	}

	// With body_size_limit, no buffer larger than the limit (and the
	// hint's eighth) is taken for a body that claims more.
	z.Reset()
	zw.Reset(&z)
	zw.Write(make([]byte, 2<<20))
	zw.Close()
	c := &httpClient{bufs: newBufPools(), limit: 256 << 10}
	var r response
	r.c = c
	if err := c.gunzip(z.Bytes(), 0, &r); !errors.Is(err, errBodyTooLarge) {
		t.Errorf("a 2 MiB body over a 256 KiB limit: %v", err)
	}
	if r.buf.Cap() > 512<<10 {
		t.Errorf("a 2 MiB body over a 256 KiB limit took a %d-byte buffer", r.buf.Cap())
	}
	r.release()
}

// TestAuthorizationOneLine: credentials with line breaks (a file, a YAML
// block scalar) make one Authorization header, as fasthttp made of them,
// never a second header or the end of the request's headers.
func TestAuthorizationOneLine(t *testing.T) {
	c, err := newHTTPClient(&config.ScrapeConfig{JobName: "j", Scheme: "http",
		Authorization: &config.Authorization{Type: "Bearer", Credentials: "a\r\nX-Evil: 1\nb\n"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	auth, err := c.authHeader(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := makeHead("http://127.0.0.1:9100/metrics", time.Second)
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	o := outgoing{head: &h, auth: auth}
	if err := o.write(c, bw); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	r, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Header.Values("Authorization"); len(got) != 1 || !strings.HasPrefix(got[0], "Bearer a") || !strings.Contains(got[0], "b") || r.Header.Get("X-Evil") != "" || buf.Len() != 0 {
		t.Errorf("Authorization %q, X-Evil %q, %d bytes after the headers", got, r.Header.Get("X-Evil"), buf.Len())
	}
}

// TestScrapePool: the Scrape of a huge target goes back to its own class:
// a small target's scrape does not get (and keep) its sample slice, and
// the next huge scrape finds room for all its samples.
func TestScrapePool(t *testing.T) {
	e := newTestEngine(t, &produce.Discard{})
	huge := e.getScrape(90000)
	if cap(huge.Samples) < 90000 || len(huge.Samples) != 0 {
		t.Fatalf("getScrape(90000): len %d cap %d", len(huge.Samples), cap(huge.Samples))
	}
	huge.Samples = append(huge.Samples, produce.Sample{Series: &produce.Series{}, V: 1})
	e.putScrape(huge)
	if s := e.getScrape(517); cap(s.Samples) < 517 || cap(s.Samples) > 4096 {
		t.Errorf("getScrape(517): cap %d", cap(s.Samples))
	}
	if s := e.getScrape(90000); len(s.Samples) != 0 || cap(s.Samples) < 90000 || (cap(s.Samples) > 0 && s.Samples[:1][0].Series != nil) {
		t.Errorf("getScrape(90000) after a huge Scrape was put: len %d cap %d, or its series kept", len(s.Samples), cap(s.Samples))
	}
	if s := e.getScrape(3 << 20); cap(s.Samples) < 3<<20 {
		t.Errorf("getScrape(3M): cap %d", cap(s.Samples))
	}
}

// TestBigBuffersSurviveCollections: a huge target's buffer, used once an
// interval, is still there for its next scrape after collections (which
// empty a sync.Pool); small ones are left to the sync.Pool.
func TestBigBuffersSurviveCollections(t *testing.T) {
	p := newBufPools()
	big := p.get(17 << 20)
	p.put(big)
	runtime.GC()
	runtime.GC()
	runtime.GC()
	if got := p.get(17 << 20); got != big {
		t.Errorf("after three collections a 17 MiB request got a new buffer of %d bytes, not the one put back", got.Cap())
	}
	// At most keepBig per class are kept.
	var bs []*bytes.Buffer
	for range keepBig + 1 {
		bs = append(bs, p.get(17<<20))
	}
	for _, b := range bs {
		p.put(b)
	}
	if n := len(p.classes[p.class(bs[0].Cap())].kept); n != keepBig {
		t.Errorf("%d buffers kept in the class, want %d", n, keepBig)
	}
	if n := len(p.classes[0].kept); n != 0 {
		t.Errorf("%d small buffers kept, want 0: sync.Pool's", n)
	}
}

// TestBigBodyKeepsItsResponse: a target whose bodies are large keeps its
// own response, body buffer and all, from scrape to scrape (fasthttp's
// pool drops such buffers, so every scrape grew a new one), and lets it
// go when its bodies shrink.
func TestBigBodyKeepsItsResponse(t *testing.T) {
	var lines atomic.Int64
	srv, _ := countedServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		for i := range lines.Load() {
			fmt.Fprintf(w, "kube_pod_info{namespace=\"ns\",pod=\"pod-%06d\",uid=\"0123456789abcdef\"} 1\n", i)
		}
	})
	addr := srv.Listener.Addr().String()
	e, s, tg := engineFor(t, addr, "")
	scrape := func(n int64) {
		t.Helper()
		lines.Store(n)
		r := scrapeOnce(t, e, s, tg)
		if up := upOf(t, r, addr); up != 1 {
			t.Fatalf("%d lines: up = %v (%s)", n, up, tg.status().LastError)
		}
		if got := r.mustFind(t, fmt.Sprintf(`{__name__="scrape_samples_scraped", instance="%s", job="j"}`, addr)); got != float64(n) {
			t.Fatalf("%d lines: scrape_samples_scraped = %v", n, got)
		}
	}

	scrape(10)
	if tg.conns.big != nil {
		t.Fatal("a 10-line body kept its response")
	}
	scrape(8000) // about 640 KB
	big := tg.conns.big
	if big == nil {
		t.Fatal("a 640 KB body did not keep its response")
	}
	buf := cap(big.Body())
	if buf < 600_000 {
		t.Fatalf("the kept response has %d bytes of body buffer, want the body's", buf)
	}
	scrape(8000)
	if tg.conns.big != big || cap(big.Body()) != buf {
		t.Fatal("the next scrape of the big target did not reuse its response and buffer")
	}
	scrape(10)
	if tg.conns.big != nil {
		t.Fatal("the response was kept after the body shrank")
	}
	scrape(8000)
	if tg.conns.big == nil {
		t.Fatal("a big body again did not keep a response")
	}
	e.SyncTargets("j", nil)
	e.bg.Wait()
	if tg.conns.big != nil {
		t.Fatal("a retired target kept its response")
	}
}

func TestKeepResponse(t *testing.T) {
	for _, tc := range []struct {
		own  bool
		n, c int
		want bool
	}{
		{false, 10 << 10, 16 << 10, false},    // small
		{false, bigBody, bigBody, true},       // big
		{false, bigBody, 5 * bigBody, false},  // a buffer far too big for it: not made ours
		{true, bigBody / 2, bigBody, true},    // shrank a little: kept
		{true, bigBody/4 - 1, bigBody, false}, // shrank below a quarter of bigBody
		{true, 1 << 20, 5 << 20, false},       // a past peak's buffer
		{true, 1 << 20, 4 << 20, true},        // within 4 times
	} {
		if got := keepResponse(tc.own, tc.n, tc.c); got != tc.want {
			t.Errorf("keepResponse(own %v, body %d, buffer %d) = %v, want %v", tc.own, tc.n, tc.c, got, tc.want)
		}
	}
}
