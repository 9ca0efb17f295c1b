package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pollEvery is how often waitFor re-checks its condition.
const pollEvery = 25 * time.Millisecond

// waitFor polls cond every pollEvery until it returns true, and fails the
// test with what (and cond's last message) if within is over first. cond
// returns a message saying what it saw, for that failure.
func waitFor(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", within, what, msg)
		}
		time.Sleep(pollEvery) // a poll interval, not a synchronisation
	}
}

// sample is one line shoal printed on stdout.
type sample struct {
	line   string            // the whole line, for messages
	series string            // the line up to the value: the series' identity
	name   string            // metric name
	labels map[string]string // every label but the name
	value  float64           // NaN for a staleness marker
	stale  bool
	ts     int64 // ms
}

func (s sample) String() string { return s.line }

// is reports whether s has the metric name and every label in want.
func (s sample) is(name string, want map[string]string) bool {
	if s.name != name {
		return false
	}
	for k, v := range want {
		if s.labels[k] != v {
			return false
		}
	}
	return true
}

// lbl builds a label map from pairs: lbl("job", "a", "instance", "b").
func lbl(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// parseSampleLine parses `series VALUE TIMESTAMP_MS`. The value and the
// timestamp never contain spaces, so they are split off from the right;
// label values may contain anything.
func parseSampleLine(line string) (sample, error) {
	s := sample{line: line}
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return s, errors.New("no timestamp")
	}
	ts, err := strconv.ParseInt(line[i+1:], 10, 64)
	if err != nil {
		return s, fmt.Errorf("timestamp: %w", err)
	}
	s.ts = ts
	rest := line[:i]
	j := strings.LastIndexByte(rest, ' ')
	if j < 0 {
		return s, errors.New("no value")
	}
	s.series = rest[:j]
	if v := rest[j+1:]; v == "stale" {
		s.stale, s.value = true, nan()
	} else if s.value, err = strconv.ParseFloat(v, 64); err != nil {
		return s, fmt.Errorf("value: %w", err)
	}
	s.name, s.labels, err = parseSeries(s.series)
	return s, err
}

func nan() float64 { v, _ := strconv.ParseFloat("NaN", 64); return v }

// parseSeries parses name{a="x",b="y"}, also the Prometheus 3 form with a
// quoted name inside the braces ({"name",a="x"}) and quoted label names.
func parseSeries(s string) (name string, labels map[string]string, err error) {
	labels = map[string]string{}
	k := strings.IndexByte(s, '{')
	if k < 0 {
		return s, labels, nil
	}
	name = s[:k]
	if !strings.HasSuffix(s, "}") {
		return "", nil, fmt.Errorf("series %q: no closing brace", s)
	}
	body := s[k+1 : len(s)-1]
	for pos := 0; pos < len(body); {
		var key string
		if body[pos] == '"' {
			if key, pos, err = readQuoted(body, pos); err != nil {
				return "", nil, fmt.Errorf("series %q: %w", s, err)
			}
		} else {
			e := strings.IndexByte(body[pos:], '=')
			if e < 0 {
				return "", nil, fmt.Errorf("series %q: label without '='", s)
			}
			key, pos = body[pos:pos+e], pos+e
		}
		if pos < len(body) && body[pos] == '=' {
			var v string
			if v, pos, err = readQuoted(body, pos+1); err != nil {
				return "", nil, fmt.Errorf("series %q: %w", s, err)
			}
			if _, dup := labels[key]; dup {
				return "", nil, fmt.Errorf("series %q: label %q twice", s, key)
			}
			labels[key] = v
		} else { // a quoted metric name
			if name != "" {
				return "", nil, fmt.Errorf("series %q: two metric names", s)
			}
			name = key
		}
		if pos < len(body) {
			if body[pos] != ',' {
				return "", nil, fmt.Errorf("series %q: want ',' at %d", s, pos)
			}
			pos++
		}
	}
	return name, labels, nil
}

// readQuoted reads a "..." string with the text format's escapes (\\ \" \n)
// starting at s[pos], and returns it and the position after it.
func readQuoted(s string, pos int) (string, int, error) {
	if pos >= len(s) || s[pos] != '"' {
		return "", pos, fmt.Errorf("want '\"' at %d", pos)
	}
	var b strings.Builder
	for i := pos + 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			i++
			if i >= len(s) {
				return "", i, errors.New("dangling backslash")
			}
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case '\\', '"':
				b.WriteByte(s[i])
			default:
				return "", i, fmt.Errorf("unknown escape \\%c", s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", len(s), errors.New("unterminated string")
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine exec starts
// and readers in the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// proc is one running `shoal run`.
type proc struct {
	t       testing.TB
	cmd     *exec.Cmd
	web     string // host:port of --web.listen-address
	cfgPath string
	client  *http.Client
	stderr  syncBuffer
	done    chan struct{} // closed once the process has exited and stdout is drained
	exitErr error         // cmd.Wait's result; read after done

	mu      sync.Mutex
	samples []sample
	garbage []string // stdout lines that are not sample lines
}

// Ports. The child cannot be given 127.0.0.1:0 (the test must know its web
// port), so the test picks a port and the child binds it a moment later. A
// port picked by binding to port 0 comes from the kernel's ephemeral range,
// from which the very next bind(0) of a parallel test (an exporter) or an
// outgoing connection may take it again before the child binds it; and a
// closed exporter's port (the "connection refused" fault) could be handed
// to another test's listener. So, as scripts/testenv.sh does, ports are
// picked at random below the ephemeral range, where the kernel never hands
// out ports on its own, checked by binding, and never handed out twice in
// this test binary. Exporters listen on such ports too.
var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// portRange is where ports are picked: [10000, start of the ephemeral
// range) if that leaves room, else above the ephemeral range.
func portRange() (base, span int) {
	lo, hi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			l, err1 := strconv.Atoi(f[0])
			h, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil {
				lo, hi = l, h
			}
		}
	}
	if lo-10000 >= 1000 {
		return 10000, lo - 10000
	}
	return hi + 1, 65535 - hi
}

// listenFree listens on a fresh port of 127.0.0.1 picked as described
// above.
func listenFree(t testing.TB) net.Listener {
	t.Helper()
	base, span := portRange()
	for range 200 {
		port := base + rand.IntN(span)
		portsMu.Lock()
		used := portsUsed[port]
		portsUsed[port] = true
		portsMu.Unlock()
		if used {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			return l
		}
	}
	t.Fatalf("no free port in [%d, %d)", base, base+span)
	return nil
}

// freePort returns a loopback address nothing listens on right now, for a
// child process to bind. startShoal still retries if the child finds it
// taken.
func freePort(t testing.TB) string {
	t.Helper()
	l := listenFree(t)
	addr := l.Addr().String()
	l.Close()
	return addr
}

// writeFile writes name atomically (temporary file, then rename), so
// shoal's file-change poll never reads half a file.
func writeFile(t testing.TB, name, content string) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// startShoal writes cfg to a file in a fresh temporary directory and starts
// `shoal run` on it with a free web port and args, waits until /-/healthy
// answers, and kills the process when the test ends.
func startShoal(t testing.TB, cfg string, args ...string) *proc {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "shoal.yml")
	writeFile(t, cfgPath, cfg)
	return startShoalFile(t, cfgPath, args...)
}

func startShoalFile(t testing.TB, cfgPath string, args ...string) *proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p := spawn(t, cfgPath, args...)
		err := p.waitHealthy(20 * time.Second)
		if err == nil {
			return p
		}
		if attempt < 3 && strings.Contains(p.stderr.String(), "address already in use") {
			t.Logf("attempt %d: web port %s was taken; retrying on another", attempt, p.web)
			continue
		}
		t.Fatalf("shoal did not become healthy: %v\nstderr:\n%s", err, p.stderr.String())
	}
}

func spawn(t testing.TB, cfgPath string, args ...string) *proc {
	t.Helper()
	p := &proc{
		t:       t,
		web:     freePort(t),
		cfgPath: cfgPath,
		client:  &http.Client{Timeout: 10 * time.Second},
		done:    make(chan struct{}),
	}
	all := append([]string{"run", "--config.file=" + cfgPath, "--web.listen-address=" + p.web}, args...)
	p.cmd = exec.Command(shoalBin, all...)
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.readStdout(stdout)
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("shoal (pid %d) did not exit 10s after SIGKILL", p.cmd.Process.Pid)
		}
		p.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("shoal %v stderr:\n%s", all, tail(p.stderr.String(), 60))
		}
		p.mu.Lock()
		if len(p.garbage) > 0 {
			t.Errorf("shoal printed %d stdout lines that are not samples, first: %q", len(p.garbage), p.garbage[0])
		}
		p.mu.Unlock()
	})
	return p
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines ...]\n", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}

// readStdout parses every stdout line until EOF, then reaps the process.
// (exec.Cmd.Wait must not run before the pipe is drained.)
func (p *proc) readStdout(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		s, err := parseSampleLine(line)
		p.mu.Lock()
		if err != nil {
			p.garbage = append(p.garbage, line+" ("+err.Error()+")")
		} else {
			p.samples = append(p.samples, s)
		}
		p.mu.Unlock()
	}
	if err := sc.Err(); err != nil {
		p.mu.Lock()
		p.garbage = append(p.garbage, "reading stdout: "+err.Error())
		p.mu.Unlock()
		_, _ = io.Copy(io.Discard, r)
	}
	p.exitErr = p.cmd.Wait()
	close(p.done)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("sending %v to shoal: %v", sig, err)
	}
}

// waitExit waits up to within for the process to exit and returns its exit
// code.
func (p *proc) waitExit(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("shoal did not exit within %v", within)
	}
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode()
	}
	if p.exitErr != nil {
		p.t.Fatalf("shoal: %v", p.exitErr)
	}
	return 0
}

// waitHealthy waits until /-/healthy answers 200, or the process exits.
func (p *proc) waitHealthy(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if p.exited() {
			return fmt.Errorf("shoal exited: %v", p.exitErr)
		}
		code, _, err := p.get("/-/healthy")
		if err == nil && code == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 from /-/healthy within %v (last: %d, %v)", within, code, err)
		}
		time.Sleep(pollEvery)
	}
}

// all returns a copy of every sample read so far.
func (p *proc) all() []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sample(nil), p.samples...)
}

// count is the number of samples read so far: a mark for since.
func (p *proc) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.samples)
}

// since returns a copy of the samples read after mark.
func (p *proc) since(mark int) []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sample(nil), p.samples[mark:]...)
}

// find returns the samples after mark that match name and labels.
func (p *proc) find(mark int, name string, labels map[string]string) []sample {
	var out []sample
	for _, s := range p.since(mark) {
		if s.is(name, labels) {
			out = append(out, s)
		}
	}
	return out
}

// waitSamples waits until at least n samples after mark match name and
// labels, and returns all that match.
func (p *proc) waitSamples(within time.Duration, mark, n int, name string, labels map[string]string) []sample {
	p.t.Helper()
	var got []sample
	waitFor(p.t, within, fmt.Sprintf("%d samples of %s%v", n, name, labels), func() (bool, string) {
		if p.exited() {
			p.t.Fatalf("shoal exited: %v", p.exitErr)
		}
		got = p.find(mark, name, labels)
		return len(got) >= n, fmt.Sprintf("%d matching samples: %v", len(got), lastN(got, 3))
	})
	return got
}

// waitMatch waits for a sample after mark for which match is true.
func (p *proc) waitMatch(within time.Duration, mark int, what string, match func(sample) bool) sample {
	p.t.Helper()
	var found sample
	waitFor(p.t, within, what, func() (bool, string) {
		if p.exited() {
			p.t.Fatalf("shoal exited: %v", p.exitErr)
		}
		for _, s := range p.since(mark) {
			if match(s) {
				found = s
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d samples since the mark", p.count()-mark)
	})
	return found
}

func lastN(s []sample, n int) []sample {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// scrapeOf returns the samples with timestamp ts for which match is true:
// with match selecting one target, the lines of its scrape at ts (none of
// the exporters here send timestamps of their own).
func scrapeOf(samples []sample, ts int64, match func(sample) bool) []sample {
	var out []sample
	for _, s := range samples {
		if s.ts == ts && match(s) {
			out = append(out, s)
		}
	}
	return out
}

// get fetches path from shoal's web server.
func (p *proc) get(path string) (int, string, error) {
	resp, err := p.client.Get("http://" + p.web + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// mustGet fetches path and fails the test unless it answers 200.
func (p *proc) mustGet(path string) string {
	p.t.Helper()
	code, body, err := p.get(path)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	if code != http.StatusOK {
		p.t.Fatalf("GET %s: status %d: %s", path, code, body)
	}
	return body
}

// metric is one series of shoal's own /metrics.
type metric struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics fetches and parses /metrics (text format: comments, then
// `series value` lines).
func (p *proc) metrics() []metric {
	p.t.Helper()
	body := p.mustGet("/metrics")
	var out []metric
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			p.t.Fatalf("/metrics: bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			p.t.Fatalf("/metrics: bad value in %q: %v", line, err)
		}
		name, labels, err := parseSeries(line[:i])
		if err != nil {
			p.t.Fatalf("/metrics: %v", err)
		}
		out = append(out, metric{name, labels, v})
	}
	return out
}

// metricValue returns the value of the one series of /metrics with the name
// and (at least) the labels; ok is false if there is none.
func (p *proc) metricValue(name string, labels map[string]string) (v float64, ok bool) {
	p.t.Helper()
	for _, m := range p.metrics() {
		if m.name != name {
			continue
		}
		match := true
		for k, want := range labels {
			if m.labels[k] != want {
				match = false
			}
		}
		if match {
			if ok {
				p.t.Fatalf("/metrics: more than one series %s%v", name, labels)
			}
			v, ok = m.value, true
		}
	}
	return v, ok
}

// apiTargets is /api/v1/targets.
type apiTargets struct {
	Status string `json:"status"`
	Data   struct {
		ActiveTargets []apiTarget `json:"activeTargets"`
		Jobs          []struct {
			Name  string `json:"name"`
			Error string `json:"error"`
		} `json:"jobs"`
	} `json:"data"`
}

type apiTarget struct {
	Job                string            `json:"job"`
	ScrapePool         string            `json:"scrapePool"`
	ScrapeURL          string            `json:"scrapeUrl"`
	Labels             map[string]string `json:"labels"`
	DiscoveredLabels   map[string]string `json:"discoveredLabels"`
	Health             string            `json:"health"`
	LastError          string            `json:"lastError"`
	LastScrape         time.Time         `json:"lastScrape"`
	LastScrapeDuration float64           `json:"lastScrapeDuration"`
	LastSamples        int               `json:"lastSamples"`
	ScrapeInterval     string            `json:"scrapeInterval"`
	ScrapeTimeout      string            `json:"scrapeTimeout"`
}

// targets fetches path (/targets?format=json or /api/v1/targets) and
// decodes it.
func (p *proc) targets(path string) apiTargets {
	p.t.Helper()
	body := p.mustGet(path)
	var a apiTargets
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		p.t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
	if a.Status != "success" {
		p.t.Fatalf("GET %s: status %q", path, a.Status)
	}
	return a
}

// target returns the active target of job whose scrapeUrl contains addr.
func (p *proc) target(job, addr string) (apiTarget, bool) {
	p.t.Helper()
	for _, at := range p.targets("/targets?format=json").Data.ActiveTargets {
		if at.ScrapePool == job && strings.Contains(at.ScrapeURL, "//"+addr+"/") {
			return at, true
		}
	}
	return apiTarget{}, false
}

// reloads returns shoal_config_reloads_total for result ("success" or
// "failure"), 0 before the first.
func (p *proc) reloads(result string) float64 {
	p.t.Helper()
	v, _ := p.metricValue("shoal_config_reloads_total", lbl("result", result))
	return v
}

// reloadAndWait sends SIGHUP and waits until shoal counts one more reload
// with result.
func (p *proc) reloadAndWait(result string) {
	p.t.Helper()
	before := p.reloads(result)
	p.signal(syscall.SIGHUP)
	waitFor(p.t, 10*time.Second, "a "+result+" reload after SIGHUP", func() (bool, string) {
		n := p.reloads(result)
		return n > before, fmt.Sprintf("shoal_config_reloads_total{result=%q} %v", result, n)
	})
}
