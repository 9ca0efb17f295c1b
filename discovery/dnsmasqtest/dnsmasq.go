// Package dnsmasqtest runs Debian's dnsmasq on 127.0.0.1 for tests: a
// real DNS server answering SRV, A, AAAA and MX records that a test writes
// and changes while it runs.
//
// The binary comes from SHOAL_TEST_DNSMASQ, which scripts/testenv.sh sets
// after installing dnsmasq-base. Without it a test is skipped only under
// -short; otherwise it fails, as every real-service test here does.
package dnsmasqtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Env names the variable holding the dnsmasq binary's path.
const Env = "SHOAL_TEST_DNSMASQ"

// Binary returns the dnsmasq binary, skipping t under -short when there is
// none and failing it otherwise.
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(Env)
	if bin == "" {
		if testing.Short() {
			t.Skipf("%s is not set (run the tests with make test, which starts scripts/testenv.sh)", Env)
		}
		t.Fatalf("%s is not set: run the tests with `make test` (scripts/testenv.sh installs dnsmasq-base and sets it)", Env)
	}
	return bin
}

// SRV is one SRV record. An empty Target makes dnsmasq answer "port 1,
// target ." (its way of saying "no such service here").
type SRV struct {
	Name, Target   string
	Port, Priority int
}

// MX is one MX record.
type MX struct {
	Name, Target string
	Pref         int
}

// Records is a whole zone. Every name under Domain that is not listed
// answers NXDOMAIN; names under TimeoutDomain are forwarded to a port
// where nothing answers, so queries for them time out.
type Records struct {
	Domain string // default "example.test"
	SRV    []SRV
	MX     []MX
	// Hosts maps names to addresses (IPv4 or IPv6): A and AAAA records.
	Hosts map[string][]string
}

// TimeoutDomain is forwarded to a silent port: queries time out.
const TimeoutDomain = "timeout.test"

// Server is one running dnsmasq.
type Server struct {
	// Addr is host:port of the UDP and TCP listener.
	Addr string

	t    testing.TB
	bin  string
	dir  string
	port int
	args []string
	cmd  *exec.Cmd
	// exited is closed once cmd has been waited for.
	exited chan struct{}
	srv    string // the SRV and MX lines of the running process
	log    *syncBuffer
}

// syncBuffer is dnsmasq's output, written by exec's copying goroutine.
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

// Start runs dnsmasq with r on a free port; it is stopped when the test
// ends.
func Start(t testing.TB, r Records) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir()}
	s.port = freeUDPPort(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.args = []string{
		"--keep-in-foreground", "--port=" + strconv.Itoa(s.port), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--pid-file=", "--log-facility=-",
		"--conf-file=" + filepath.Join(s.dir, "dnsmasq.conf"),
	}
	if os.Geteuid() == 0 {
		// dnsmasq drops to "nobody" by default, who cannot read the
		// test's private temporary directory.
		s.args = append(s.args, "--user=root")
	}
	s.write(r)
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// Set replaces the zone. A and AAAA changes are picked up by SIGHUP, as in
// production; SRV and MX records are options that dnsmasq reads only at
// start (its manual, NOTES), so changing them restarts it on the same port.
func (s *Server) Set(r Records) {
	s.t.Helper()
	if s.write(r) && s.cmd != nil {
		s.Stop()
		s.start()
		return
	}
	if s.cmd == nil {
		s.start()
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		s.t.Fatalf("dnsmasq: SIGHUP: %v", err)
	}
	// dnsmasq re-reads the hosts file on SIGHUP; wait until it answers
	// with the new data.
	s.waitFor(r)
}

// Stop stops the process (a later Set or Restart starts it again).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Restart starts a stopped server on the same port with the same zone.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd == nil {
		s.start()
	}
}

// Validating starts a second dnsmasq that forwards every query to s with
// DNSSEC validation on. s's zone is unsigned, so every forwarded answer
// fails validation and the validator answers SERVFAIL: a real server's
// SERVFAIL, for tests of that path.
func (s *Server) Validating(t testing.TB) *Server {
	t.Helper()
	v := &Server{t: t, bin: s.bin, dir: t.TempDir()}
	v.port = freeUDPPort(t)
	v.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(v.port))
	conf := filepath.Join(v.dir, "dnsmasq.conf")
	// The root zone's KSK-2017: any anchor will do, as nothing signed
	// ever arrives.
	text := "server=" + strings.Replace(s.Addr, ":", "#", 1) + "\n" +
		"dnssec\ndnssec-check-unsigned\n" +
		"trust-anchor=.,20326,8,2,E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	v.args = []string{
		"--keep-in-foreground", "--port=" + strconv.Itoa(v.port), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--pid-file=", "--log-facility=-", "--conf-file=" + conf,
	}
	if os.Geteuid() == 0 {
		v.args = append(v.args, "--user=root")
	}
	v.start()
	t.Cleanup(v.Stop)
	return v
}

// write writes r's files and reports whether the SRV/MX part changed.
func (s *Server) write(r Records) bool {
	s.t.Helper()
	if r.Domain == "" {
		r.Domain = "example.test"
	}
	var b strings.Builder
	for _, x := range r.SRV {
		if x.Target == "" {
			fmt.Fprintf(&b, "srv-host=%s\n", x.Name)
			continue
		}
		fmt.Fprintf(&b, "srv-host=%s,%s,%d,%d\n", x.Name, x.Target, x.Port, x.Priority)
	}
	for _, x := range r.MX {
		fmt.Fprintf(&b, "mx-host=%s,%s,%d\n", x.Name, x.Target, x.Pref)
	}
	records := b.String()
	hosts := filepath.Join(s.dir, "hosts")
	fmt.Fprintf(&b, "local=/%s/\naddn-hosts=%s\n", r.Domain, hosts)
	// Port 9 (discard) on loopback: nothing answers DNS there.
	fmt.Fprintf(&b, "server=/%s/127.0.0.1#9\n", TimeoutDomain)
	var h strings.Builder
	for name, ips := range r.Hosts {
		for _, ip := range ips {
			fmt.Fprintf(&h, "%s %s\n", ip, name)
		}
	}
	// The hosts file is replaced atomically: dnsmasq may read it at any
	// moment.
	if err := os.WriteFile(hosts+".tmp", []byte(h.String()), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(hosts+".tmp", hosts); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "dnsmasq.conf"), []byte(b.String()), 0o644); err != nil {
		s.t.Fatal(err)
	}
	changed := records != s.srv
	s.srv = records
	return changed
}

func (s *Server) start() {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		s.log = &syncBuffer{}
		cmd := exec.Command(s.bin, s.args...)
		cmd.Stdout, cmd.Stderr = s.log, s.log
		if err := cmd.Start(); err != nil {
			s.t.Fatalf("starting dnsmasq: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if s.ready(exited) {
			s.cmd, s.exited = cmd, exited
			return
		}
		_ = cmd.Process.Kill()
		<-exited
		if attempt == 2 {
			s.t.Fatalf("dnsmasq on %s did not start:\n%s", s.Addr, s.log)
		}
	}
}

// ready waits until the server answers a query (any answer), or it exits.
func (s *Server) ready(exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		m := new(dns.Msg)
		m.SetQuestion("ready.invalid.", dns.TypeA)
		c := &dns.Client{Timeout: 200 * time.Millisecond}
		if _, _, err := c.Exchange(m, s.Addr); err == nil {
			return true
		}
		time.Sleep(20 * time.Millisecond) // polling an external process's start: no event to wait on
	}
	return false
}

// waitFor waits until every host of r resolves to its addresses.
func (s *Server) waitFor(r Records) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s.serves(r) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("dnsmasq on %s did not pick up the new hosts file:\n%s", s.Addr, s.log)
		}
		time.Sleep(20 * time.Millisecond) // polling an external process: no event to wait on
	}
}

func (s *Server) serves(r Records) bool {
	for name, ips := range r.Hosts {
		got := map[string]bool{}
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(name), qt)
			c := &dns.Client{Timeout: 500 * time.Millisecond}
			resp, _, err := c.Exchange(m, s.Addr)
			if err != nil {
				return false
			}
			for _, rr := range resp.Answer {
				switch a := rr.(type) {
				case *dns.A:
					got[a.A.String()] = true
				case *dns.AAAA:
					got[a.AAAA.String()] = true
				}
			}
		}
		if len(got) != len(ips) {
			return false
		}
		for _, ip := range ips {
			if !got[net.ParseIP(ip).String()] {
				return false
			}
		}
	}
	return true
}

// freeUDPPort returns a port free for UDP and TCP on 127.0.0.1 right now.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = pc.Close()
		if err == nil {
			_ = l.Close()
			return port
		}
	}
	t.Fatal("no free port for dnsmasq")
	return 0
}
