// Package zktest gives tests the real ZooKeeper servers that
// scripts/testenv.sh starts (`make test` starts them all; see the zookeeper
// block of that script):
//
//   - a standalone server, SHOAL_TEST_ZOOKEEPER=127.0.0.1:PORT, which a test
//     may stop and restart on the same port with the same data (Addr,
//     OwnServer);
//   - a three-node ensemble, SHOAL_TEST_ZOOKEEPER_ENSEMBLE=127.0.0.1:A,B,C,
//     one node of which a test may stop and restart, the leader say (Ensemble,
//     OwnEnsemble, Leader).
//
// Both run with tickTime 500 ms and accept session timeouts from
// MinSessionTimeout to 60 s.
//
// Following the project's rule, a missing variable skips the test under
// -short and fails it otherwise.
//
// # Sharing
//
// The servers are shared by every test that uses them, in this binary and
// in the other packages' test binaries that `go test ./...` runs at the same
// time. A test that only uses a server calls Addr or Ensemble, which hold a
// shared lock (flock on TESTENV_DIR/SERVICE.lock) until the test ends. A test
// that stops or restarts one calls OwnServer or OwnEnsemble instead, which
// wait for the others to finish and then hold the lock exclusively until the
// test ends; only the values they return can stop and start processes. A
// test must not take both kinds of lock on one service (it would wait for
// itself), and a test that owns a service should take that lock before any
// other, so that two tests cannot each wait for the other.
//
// # Finding the leader
//
// ZooKeeper's `srvr` four-letter command (send "srvr" to a client port, read
// to EOF) answers a "Mode: leader", "Mode: follower" or "Mode: standalone"
// line, and "This ZooKeeper instance is not currently serving requests"
// while a node has no quorum. Mode sends it; Leader polls the nodes with it.
// (go-zookeeper's zk.FLWSrvr cannot parse the answer of Debian's build: its
// version and build-date patterns do not match.)
package zktest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/shoal-scraper/shoal/internal/zkdial"
)

// MinSessionTimeout is the shortest session timeout the test servers grant
// (2 × their tickTime); a client asking for less gets this much. It mirrors
// scripts/testenv.sh's ZK_TICK_MS.
const MinSessionTimeout = time.Second

// waitTimeout bounds every wait in this package: a server start, a
// leader election, a client's first session. Generous for a loaded 2-core
// machine running Kafka and the -race tests beside it; a healthy wait takes
// a second or two.
const waitTimeout = 30 * time.Second

// Addr returns the standalone server's address, 127.0.0.1:PORT, for a test
// that uses the server but does not stop it. No test restarts the server
// until this one ends.
func Addr(t testing.TB) string {
	t.Helper()
	e := env(t, "SHOAL_TEST_ZOOKEEPER")
	e.lock(t, syscall.LOCK_SH)
	return e.addr
}

// Server is the standalone server, owned by one test, which may stop and
// start it.
type Server struct {
	Addr string // 127.0.0.1:PORT, the same after every restart
	ctl  ctl
}

// OwnServer returns the standalone server for a test that stops or
// restarts it. It waits until no other test uses the server, and keeps it
// to this test until the test ends. A server the test left stopped is
// started again then.
func OwnServer(t testing.TB) *Server {
	t.Helper()
	e := env(t, "SHOAL_TEST_ZOOKEEPER")
	e.lock(t, syscall.LOCK_EX)
	return &Server{Addr: e.addr, ctl: e.ctl}
}

// Stop stops the server (SIGTERM, as a crash would look to clients: no
// session is closed). Its port and data stay.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.ctl.startAtCleanup(t, "start-service", "zookeeper")
	s.ctl.run(t, "stop-service", "zookeeper")
}

// Start starts the stopped server on the same port with the same data,
// and returns once it serves. Sessions whose timeout has not passed since
// Stop live on: their clients reconnect to them.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.ctl.run(t, "start-service", "zookeeper")
}

// Restart is Stop then Start.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Start(t)
}

// Ensemble returns the client addresses of the three-node ensemble, for a
// test that uses it but does not stop nodes. Node i (0-based) has myid i+1.
// No test stops a node until this one ends.
func Ensemble(t testing.TB) []string {
	t.Helper()
	e := env(t, "SHOAL_TEST_ZOOKEEPER_ENSEMBLE")
	e.lock(t, syscall.LOCK_SH)
	return strings.Split(e.addr, ",")
}

// Cluster is the ensemble, owned by one test, which may stop and start its
// nodes.
type Cluster struct {
	Addrs []string // client addresses; index i is node i
	ctl   ctl
}

// OwnEnsemble returns the ensemble for a test that stops nodes. It waits
// until no other test uses the ensemble, and keeps it to this test until the
// test ends. Nodes the test left stopped are started again then.
func OwnEnsemble(t testing.TB) *Cluster {
	t.Helper()
	e := env(t, "SHOAL_TEST_ZOOKEEPER_ENSEMBLE")
	e.lock(t, syscall.LOCK_EX)
	return &Cluster{Addrs: strings.Split(e.addr, ","), ctl: e.ctl}
}

// Leader waits until one node of the ensemble leads, and returns its index.
func (c *Cluster) Leader(t testing.TB) int {
	t.Helper()
	return Leader(t, c.Addrs)
}

// StopNode stops node i (SIGTERM); its ports and data stay. With one node
// down the other two keep a quorum; if the node led, they elect a new
// leader among themselves.
func (c *Cluster) StopNode(t testing.TB, i int) {
	t.Helper()
	c.ctl.startAtCleanup(t, "start-service", "zookeeper_ensemble")
	c.ctl.run(t, "stop-process", "zookeeper_ensemble", c.proc(t, i))
}

// StartNode starts the stopped node i on the same ports with the same data,
// and returns once it has rejoined (serves as leader or follower).
func (c *Cluster) StartNode(t testing.TB, i int) {
	t.Helper()
	c.ctl.run(t, "start-process", "zookeeper_ensemble", c.proc(t, i))
}

// proc is testenv.sh's process name for node i.
func (c *Cluster) proc(t testing.TB, i int) string {
	t.Helper()
	if i < 0 || i >= len(c.Addrs) {
		t.Fatalf("zktest: no node %d in an ensemble of %d", i, len(c.Addrs))
	}
	return fmt.Sprintf("zookeeper_ensemble-%d", i+1)
}

// Leader polls the servers at addrs with `srvr` until one answers that it
// leads, and returns its index; it fails the test if none does within 30 s.
// Nodes that are down or without a quorum are skipped.
func Leader(t testing.TB, addrs []string) int {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var modes []string
		for i, a := range addrs {
			m, err := Mode(a)
			if err != nil {
				m = err.Error()
			}
			if m == "leader" {
				return i
			}
			modes = append(modes, a+": "+m)
		}
		if time.Now().After(deadline) {
			t.Fatalf("zktest: no leader among %v within %v:\n%s", addrs, waitTimeout, strings.Join(modes, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Mode asks the server at addr for its mode with the `srvr` four-letter
// command: "standalone", "leader" or "follower". A server that runs but does
// not serve (no quorum) gives an error.
func Mode(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte("srvr")); err != nil {
		return "", err
	}
	// The server closes the connection after its answer.
	var lines []string
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		if m, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return m, nil
		}
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("srvr %s: %w", addr, err)
	}
	return "", fmt.Errorf("srvr %s: no mode in %q", addr, strings.Join(lines, "\n"))
}

// Connect opens a session on servers, asking for sessionTimeout, and waits
// until it has one. The client logs through t and is closed when the test
// ends. The returned channel carries the session's later events; the caller
// may read it or not (go-zookeeper drops events nobody reads).
func Connect(t testing.TB, servers []string, sessionTimeout time.Duration) (*zk.Conn, <-chan zk.Event) {
	t.Helper()
	l := &logger{t: t}
	conn, events, err := zk.Connect(servers, sessionTimeout, zk.WithDialer(zkdial.Dialer(sessionTimeout)), zk.WithLogger(l))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		// The channel closes once the client's goroutines have ended:
		// after that nothing logs through t.
		timeout := time.After(waitTimeout)
		for {
			select {
			case _, ok := <-events:
				if ok {
					continue
				}
			case <-timeout:
				t.Errorf("zktest: client to %v still running %v after Close", servers, waitTimeout)
			}
			l.stop()
			return
		}
	})
	timeout := time.After(waitTimeout)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn, events
			}
		case <-timeout:
			t.Fatalf("zktest: no session with %v within %v (state %v)", servers, waitTimeout, conn.State())
		}
	}
}

// logger sends go-zookeeper's log lines to the test's log, until stop.
type logger struct {
	t testing.TB

	mu      sync.Mutex
	stopped bool
}

func (l *logger) Printf(format string, args ...any) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("zk: "+format, args...)
	}
}

func (l *logger) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// service is one service's variables.
type service struct {
	service string // testenv.sh's name: zookeeper, zookeeper_ensemble
	addr    string
	ctl     ctl
}

// env reads the variables of the service whose address is in variable
// name: name, name_CTL and name_TESTENV_DIR.
func env(t testing.TB, name string) service {
	t.Helper()
	get := func(name string) string {
		t.Helper()
		v := os.Getenv(name)
		if v == "" {
			if testing.Short() {
				t.Skip(name + " not set (-short)")
			}
			t.Fatal(name + " not set: run `make test`, or `scripts/testenv.sh up` and `set -a; . .testenv/env; set +a` first (or go test -short to skip)")
		}
		return v
	}
	return service{
		service: strings.ToLower(strings.TrimPrefix(name, "SHOAL_TEST_")),
		addr:    get(name),
		ctl:     ctl{script: get(name + "_CTL"), testenvDir: get(name + "_TESTENV_DIR")},
	}
}

// lock takes flock how (LOCK_SH or LOCK_EX) on TESTENV_DIR/SERVICE.lock
// until the test ends. flock locks belong to the open file, so two tests of
// one binary exclude each other as two binaries do.
func (e service) lock(t testing.TB, how int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(e.ctl.testenvDir, e.service+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		t.Fatalf("zktest: locking %s: %v", f.Name(), err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// ctl runs scripts/testenv.sh against the testenv directory that started
// the services.
type ctl struct {
	script     string
	testenvDir string
}

func (c ctl) command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.script, args...)
	cmd.Env = append(os.Environ(), "TESTENV_DIR="+c.testenvDir)
	return cmd
}

func (c ctl) run(t testing.TB, args ...string) {
	t.Helper()
	start := time.Now()
	out, err := c.command(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", c.script, strings.Join(args, " "), err, out)
	}
	t.Logf("testenv.sh %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// startAtCleanup runs args (a start command, a no-op when everything runs)
// when the test ends: the other tests need the service back even if this
// one failed half-way. Registered after the lock was taken, so it runs
// before the lock is released.
func (c ctl) startAtCleanup(t testing.TB, args ...string) {
	t.Helper()
	t.Cleanup(func() {
		if out, err := c.command(args...).CombinedOutput(); err != nil {
			t.Errorf("restarting after the test: %s %s: %v\n%s", c.script, strings.Join(args, " "), err, out)
		}
	})
}
