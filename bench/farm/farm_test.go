package farm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
)

// childEnv makes the test binary run as a farm child (TestProcess).
const childEnv = "SHOAL_FARM_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := ServeProcess(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func nodeFixture(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("../../parse/testdata/node_exporter.prom")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// get scrapes url with c, asking for gzip when gz, and returns the body as
// sent (not decompressed) and its Content-Encoding.
func get(t *testing.T, c *http.Client, url string, gz bool) ([]byte, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	return b, resp.Header.Get("Content-Encoding")
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// values maps each sample line's series to its value token.
func values(t *testing.T, body []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" || line[0] == '#' {
			continue
		}
		s, e, err := valueSpan([]byte(line))
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		m[line[:s]] = line[s:e]
	}
	return m
}

// startFarm starts a farm for cfg, closed at the test's end, and a client
// that leaves bodies compressed, so the test sees what the farm sent.
func startFarm(t *testing.T, cfg Config) (*Farm, *http.Client) {
	t.Helper()
	f, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(func() { f.Close() })
	return f, &http.Client{Transport: tr}
}

func TestFarm(t *testing.T) {
	payload := nodeFixture(t)
	f, c := startFarm(t, Config{Targets: 3, Payload: payload, Gzip: true})

	if got := len(f.Addrs()); got != 3 {
		t.Fatalf("len(Addrs) = %d, want 3", got)
	}
	want := len(values(t, payload))
	if f.SamplesPerScrape() != want {
		t.Errorf("SamplesPerScrape = %d, want %d", f.SamplesPerScrape(), want)
	}
	url := "http://" + f.Addrs()[1] + "/metrics"

	// Identity, gzip, identity: three consecutive scrapes of target 1.
	var bodies [][]byte
	for i, gz := range []bool{false, true, false} {
		b, enc := get(t, c, url, gz)
		switch {
		case gz && enc != "gzip":
			t.Fatalf("scrape %d: Content-Encoding %q, want gzip", i, enc)
		case !gz && enc != "":
			t.Fatalf("scrape %d: Content-Encoding %q, want none", i, enc)
		case gz:
			b = gunzip(t, b)
		}
		bodies = append(bodies, b)
	}
	// Targets start at different variants: target 1's first scrape
	// differs in every value from target 0's (the payload as is), as two
	// hosts' would, so a scraper compressing targets together is not
	// flattered.
	first := values(t, payload)
	for s, v := range values(t, bodies[0]) {
		if first[s] == v {
			t.Errorf("target 1's first scrape: %s value %s is target 0's", s, v)
		}
	}
	for i := 1; i < len(bodies); i++ {
		prev, cur := values(t, bodies[i-1]), values(t, bodies[i])
		if len(cur) != want {
			t.Fatalf("scrape %d: %d series, want %d", i, len(cur), want)
		}
		for s, v := range cur {
			if pv, ok := prev[s]; !ok {
				t.Fatalf("scrape %d: series %s not in scrape %d", i, s, i-1)
			} else if pv == v {
				t.Errorf("scrape %d: %s value %s unchanged", i, s, v)
			}
		}
	}

	st := f.Stats()
	if st[0] != (Stats{}) || st[2] != (Stats{}) {
		t.Errorf("untouched targets have stats %+v, %+v", st[0], st[2])
	}
	if st[1].Scrapes != 3 || st[1].Samples != int64(3*want) || st[1].Gzipped != 1 {
		t.Errorf("target 1 stats = %+v, want 3 scrapes, %d samples, 1 gzipped", st[1], 3*want)
	}
	if f.Total() != st[1] {
		t.Errorf("Total = %+v, want %+v", f.Total(), st[1])
	}

	// Every target serves; a second scrape of a fresh target differs from
	// its first (rotation is per target).
	b0, _ := get(t, c, "http://"+f.Addrs()[0]+"/metrics", false)
	if !bytes.Equal(b0, payload) {
		t.Error("target 0: first scrape does not serve variant 0")
	}
}

func TestFarmNoGzip(t *testing.T) {
	f, err := Start(t.Context(), Config{Targets: 1, Payload: nodeFixture(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	if _, enc := get(t, &http.Client{Transport: tr}, "http://"+f.Addrs()[0]+"/metrics", true); enc != "" {
		t.Errorf("Gzip off: Content-Encoding %q, want none", enc)
	}
	if g := f.Total().Gzipped; g != 0 {
		t.Errorf("Gzipped = %d, want 0", g)
	}
}

// TestFarmHTTP speaks raw HTTP/1.1: pipelining, HEAD, 404, Connection:
// close, and a refused method.
func TestFarmHTTP(t *testing.T) {
	payload := []byte("# TYPE a counter\na_total 1\nb{x=\"y\"} 2 1700000000000\n")
	f, err := Start(t.Context(), Config{Targets: 1, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := net.Dial("tcp", f.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Four requests in one write: the server must answer them in order.
	reqs := "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" +
		"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, want := range []struct {
		status int
		body   string
		head   bool
	}{
		{200, string(payload), false},
		{200, "", true},
		{404, "", false},
		{200, "# TYPE a counter\na_total 3\nb{x=\"y\"} 4 1700000000000\n", false}, // variant 2 (HEAD does not count, but rotates)
	} {
		req, _ := http.NewRequest("GET", "/", nil)
		if want.head {
			req.Method = "HEAD"
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want.status || string(b) != want.body {
			t.Errorf("response %d: %d %q, want %d %q", i, resp.StatusCode, b, want.status, want.body)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close: read %v, want EOF", err)
	}
	if got := f.Total(); got.Scrapes != 2 || got.Samples != 4 {
		t.Errorf("Total = %+v, want 2 scrapes, 4 samples", got)
	}

	c2, err := net.Dial("tcp", f.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 405 {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
}

// TestFarmClose: Close (and the end of Start's context) stop the farm with
// connections open and responses pending, and leave no goroutine behind.
func TestFarmClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithCancel(t.Context())
	f, err := Start(ctx, Config{Targets: 20, Payload: nodeFixture(t), Latency: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for _, a := range f.Addrs() {
		c, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") // pending for an hour
		conns = append(conns, c)
	}
	cancel()
	done := make(chan struct{})
	go func() { f.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		// EOF, or a reset for a connection still in the accept backlog.
		if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("conn %d after Close: read %d bytes, %v; want the connection closed", i, n, err)
		}
	}
	if _, err := net.DialTimeout("tcp", f.Addrs()[0], time.Second); err == nil {
		t.Error("dial after Close succeeded")
	}
	if f.Close() != nil {
		t.Error("second Close failed")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestRewriteValues(t *testing.T) {
	f := func(in, want string, k, samples int) {
		t.Helper()
		got, n, err := rewriteValues([]byte(in), k)
		if err != nil {
			t.Fatalf("rewriteValues(%q, %d): %v", in, k, err)
		}
		if string(got) != want || n != samples {
			t.Errorf("rewriteValues(%q, %d) = %q, %d samples; want %q, %d", in, k, got, n, want, samples)
		}
	}
	f("a 1\n", "a 1\n", 0, 1)
	f("a 1\n", "a 3\n", 2, 1)
	f("a 1", "a 2\n", 1, 1) // no final newline
	f("# HELP a x 1\n\na 1.5e+06 123\n", "# HELP a x 1\n\na 1.500001e+06 123\n", 1, 1)
	f(`a{b="x} \"y\" 9",c="{"} 0`+"\n", `a{b="x} \"y\" 9",c="{"} 2`+"\n", 2, 1)
	f("a NaN\nb +Inf\nc -1\n", "a NaN\nb +Inf\nc 0\n", 1, 3)
	f("a{}\t7\n", "a{}\t8\n", 1, 1)
	f("big 1e300\n", "big 1.0000000010000002e+300\n", 1, 1) // 1e300+1 == 1e300: scaled instead

	for _, bad := range []string{"a\n", `a{b="1} 2` + "\n", "a x\n"} {
		if _, _, err := rewriteValues([]byte(bad), 1); err == nil {
			t.Errorf("rewriteValues(%q): no error", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Targets: 0, Payload: []byte("a 1\n")},
		{Targets: 1},
		{Targets: 1, Payload: []byte("a 1\n"), Variants: 1},
		{Targets: 1, Payload: []byte("a 1\n"), Latency: -1},
		{Targets: 1, Payload: []byte("a 1\n"), Path: "metrics"},
	} {
		if _, err := Start(t.Context(), c); err == nil {
			t.Errorf("Start(%+v): no error", c)
		}
	}
	if _, err := Start(t.Context(), Config{Targets: 1, Payload: []byte("a b\n")}); err == nil {
		t.Error("Start with an unparsable payload: no error")
	}
}

// TestProcess runs a farm in a child process: this test binary, told by
// childEnv to call ServeProcess.
func TestProcess(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	p, err := StartProcess(t.Context(), Config{Targets: 2, Payload: nodeFixture(t), Gzip: true}, cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	b, enc := get(t, &http.Client{Transport: tr}, "http://"+p.Addrs()[1]+"/metrics", true)
	want, _, err := rewriteValues(nodeFixture(t), 1) // target 1 starts at variant 1
	if err != nil {
		t.Fatal(err)
	}
	if enc != "gzip" || !bytes.Equal(gunzip(t, b), want) {
		t.Errorf("child farm: Content-Encoding %q, body differs from variant 1 of the payload: %v", enc, !bytes.Equal(gunzip(t, b), want))
	}
	st, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Targets) != 2 || st.Targets[1].Scrapes != 1 || st.Targets[1].Samples != int64(p.SamplesPerScrape()) {
		t.Errorf("child stats = %+v", st.Targets)
	}
	if st.CPU <= 0 || st.RSS <= 0 {
		t.Errorf("child CPU %s, RSS %d: want both positive", st.CPU, st.RSS)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// A child that fails to start reports why.
	cmd = exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	_, err = StartProcess(t.Context(), Config{Targets: 1, Payload: []byte("a b\n")}, cmd)
	if err == nil || !strings.Contains(err.Error(), "value") {
		t.Errorf("StartProcess with a bad payload: %v, want the child's parse error", err)
	}
}

// TestFarmFaults: with Errors and Resets set, about those fractions of
// scrapes fail that way, the farm counts exactly the failures a client saw
// as Faults and only the good answers as Scrapes, and Slow delays answers
// by SlowLatency.
func TestFarmFaults(t *testing.T) {
	const n = 400
	f, err := Start(t.Context(), Config{
		Targets: 2,
		Payload: []byte("a 1\n"),
		Faults:  Faults{Errors: 0.2, Resets: 0.1, Slow: 0.1, SlowLatency: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// No keep-alive: net/http silently retries a GET whose reused
	// connection was closed, which would hide the resets.
	tr := &http.Transport{DisableCompression: true, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var ok, errs, resets, slow int
	for i := range n {
		start := time.Now()
		resp, err := c.Get("http://" + f.Addrs()[i%2] + "/metrics")
		if err != nil {
			resets++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
			ok++
			if time.Since(start) >= 50*time.Millisecond {
				slow++
			}
		case 500:
			errs++
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	tot := f.Total()
	if tot.Scrapes != int64(ok) || tot.Faults != int64(errs+resets) {
		t.Errorf("farm counted %d scrapes and %d faults; the client saw %d answers, %d errors, %d resets", tot.Scrapes, tot.Faults, ok, errs, resets)
	}
	near := func(name string, got int, frac float64) {
		if want := frac * n; float64(got) < want/2 || float64(got) > want*1.5 {
			t.Errorf("%s: %d of %d, want about %.0f", name, got, n, want)
		}
	}
	near("errors", errs, 0.2)
	near("resets", resets, 0.1)
	near("slow", slow, 0.1)
}

// TestKSMPayload: the generated kube-state-metrics exposition is valid
// text format (client_golang's parser rejects a family that is not
// contiguous or a duplicate series), with 18 series per pod, every one
// naming its namespace, pod and uid, and no two pods alike.
func TestKSMPayload(t *testing.T) {
	const pods = 300
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(KSMPayload(pods)))
	if err != nil {
		t.Fatal(err)
	}
	series, uids := 0, map[string]bool{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			series++
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			if ls["namespace"] == "" || ls["pod"] == "" || ls["uid"] == "" {
				t.Fatalf("%s%v: no namespace, pod or uid", name, ls)
			}
			uids[ls["uid"]+"/"+ls["pod"]] = true
		}
	}
	if series != 18*pods || len(uids) != pods {
		t.Errorf("%d series of %d pods, want %d of %d", series, len(uids), 18*pods, pods)
	}
}

// TestFarmBigTargets: the first BigTargets targets serve BigPayload, with
// values that change between scrapes; the others serve Payload.
func TestFarmBigTargets(t *testing.T) {
	f, c := startFarm(t, Config{Targets: 3, Payload: nodeFixture(t), BigPayload: KSMPayload(50), BigTargets: 1, Gzip: true})
	b1, _ := get(t, c, "http://"+f.Addrs()[0]+"/metrics", true)
	b2, _ := get(t, c, "http://"+f.Addrs()[0]+"/metrics", false)
	v1, v2 := values(t, gunzip(t, b1)), values(t, b2)
	if len(v1) != 18*50 || len(v2) != len(v1) {
		t.Fatalf("big target served %d then %d series, want %d", len(v1), len(v2), 18*50)
	}
	for s, v := range v1 {
		if v2[s] == v {
			t.Fatalf("%s: %s twice: values did not change", s, v)
		}
	}
	if small := values(t, gunzip(t, first(get(t, c, "http://"+f.Addrs()[1]+"/metrics", true)))); len(small) != f.SamplesPerScrape() {
		t.Errorf("target 1 served %d series, want the payload's %d", len(small), f.SamplesPerScrape())
	}
	st := f.Stats()
	if st[0].Samples != 2*18*50 || st[1].Samples != int64(f.SamplesPerScrape()) || st[2].Scrapes != 0 {
		t.Errorf("stats %+v", st)
	}
	for _, c := range []Config{
		{Targets: 1, Payload: []byte("a 1\n"), BigTargets: 2, BigPayload: []byte("b 1\n")},
		{Targets: 1, Payload: []byte("a 1\n"), BigTargets: 1},
	} {
		if _, err := Start(t.Context(), c); err == nil {
			t.Errorf("Start(%d big targets of %d, big payload %q): no error", c.BigTargets, c.Targets, c.BigPayload)
		}
	}
}

func first[A, B any](a A, _ B) A { return a }
