package zktest_test

// These tests prove the servers testenv.sh starts behave as the cluster
// tests need, and show how to use them: a client on the standalone server;
// a restart of that server that its clients ride out in the same session
// with the same data; the ensemble's leader stopped, a new one elected, the
// client carrying on, and the old leader back as a follower with what was
// written while it was away.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/shoal-scraper/shoal/internal/zktest"
)

// sessionTimeout outlasts a server restart (about a second) with room to
// spare on a loaded machine, so the tests see sessions survive.
const sessionTimeout = 10 * time.Second

func TestStandalone(t *testing.T) {
	t.Parallel()
	addr := zktest.Addr(t)
	if m, err := zktest.Mode(addr); err != nil || m != "standalone" {
		t.Fatalf("Mode(%s) = %q, %v; want standalone", addr, m, err)
	}
	conn, _ := zktest.Connect(t, []string{addr}, sessionTimeout)

	path := uniquePath(t)
	create(t, conn, path, "payload", 0)
	create(t, conn, path+"/member-", "m", zk.FlagEphemeral|zk.FlagSequence)
	if got := get(t, conn, path); got != "payload" {
		t.Errorf("Get(%s) = %q, want payload", path, got)
	}
	kids, _, err := conn.Children(path)
	if err != nil || len(kids) != 1 || !strings.HasPrefix(kids[0], "member-") {
		t.Errorf("Children(%s) = %q, %v; want one member-N", path, kids, err)
	}
}

func TestServerRestart(t *testing.T) {
	t.Parallel()
	srv := zktest.OwnServer(t)
	conn, events := zktest.Connect(t, []string{srv.Addr}, sessionTimeout)
	session := conn.SessionID()

	path := uniquePath(t)
	create(t, conn, path, "before", 0)
	create(t, conn, path+"/ephemeral", "", zk.FlagEphemeral)

	srv.Stop(t)
	if _, err := zktest.Mode(srv.Addr); err == nil {
		t.Fatalf("%s still answers after Stop", srv.Addr)
	}
	waitState(t, events, zk.StateDisconnected)
	srv.Start(t)
	waitState(t, events, zk.StateHasSession)

	if got := conn.SessionID(); got != session {
		t.Errorf("session %#x after the restart, want the same %#x", got, session)
	}
	if got := get(t, conn, path); got != "before" {
		t.Errorf("Get(%s) = %q after the restart, want before", path, got)
	}
	if ok, _, err := conn.Exists(path + "/ephemeral"); err != nil || !ok {
		t.Errorf("the session's ephemeral node after the restart: exists %v, %v; want it kept", ok, err)
	}
}

func TestEnsembleLeaderFailover(t *testing.T) {
	t.Parallel()
	c := zktest.OwnEnsemble(t)
	if len(c.Addrs) != 3 {
		t.Fatalf("ensemble %v, want three nodes", c.Addrs)
	}
	old := c.Leader(t)
	for i, a := range c.Addrs {
		if m, err := zktest.Mode(a); i != old && (err != nil || m != "follower") {
			t.Fatalf("Mode(%s) = %q, %v; want follower", a, m, err)
		}
	}
	conn, _ := zktest.Connect(t, c.Addrs, sessionTimeout)
	session := conn.SessionID()
	path := uniquePath(t)
	create(t, conn, path, "before", 0)

	c.StopNode(t, old)
	if _, err := zktest.Mode(c.Addrs[old]); err == nil {
		t.Fatalf("node %d (%s) still answers after StopNode", old, c.Addrs[old])
	}
	leader := c.Leader(t)
	if leader == old {
		t.Fatalf("node %d leads while stopped", old)
	}
	t.Logf("leader %d stopped, %d elected", old, leader)

	// The client lost its server (followers drop their clients while they
	// have no leader) and reconnects on its own; writes succeed again once
	// it has, in the same session.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := conn.Set(path, []byte("after"), -1)
		if err == nil {
			break
		}
		retry := errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer)
		if !retry || time.Now().After(deadline) {
			t.Fatalf("Set(%s) after the leader stopped: %v", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := conn.SessionID(); got != session {
		t.Errorf("session %#x after the failover, want the same %#x", got, session)
	}

	// The old leader rejoins as a follower of the new one, and catches up
	// with the write it missed.
	c.StartNode(t, old)
	if m, err := zktest.Mode(c.Addrs[old]); err != nil || m != "follower" {
		t.Errorf("restarted node %d: Mode = %q, %v; want follower", old, m, err)
	}
	if got := c.Leader(t); got != leader {
		t.Errorf("leader %d after the old one came back, want %d still", got, leader)
	}
	direct, _ := zktest.Connect(t, c.Addrs[old:old+1], sessionTimeout)
	if _, err := direct.Sync(path); err != nil {
		t.Fatal(err)
	}
	if got := get(t, direct, path); got != "after" {
		t.Errorf("Get(%s) on the restarted node = %q, want after", path, got)
	}
}

// uniquePath is a top-level znode no other test or earlier run uses (the
// servers outlive one go test run when started with `testenv.sh up`).
func uniquePath(t *testing.T) string {
	return fmt.Sprintf("/zktest-%s-%d", strings.ToLower(t.Name()), time.Now().UnixNano())
}

func create(t *testing.T, conn *zk.Conn, path, data string, flags int32) {
	t.Helper()
	if _, err := conn.Create(path, []byte(data), flags, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("Create(%s): %v", path, err)
	}
}

func get(t *testing.T, conn *zk.Conn, path string) string {
	t.Helper()
	b, _, err := conn.Get(path)
	if err != nil {
		t.Fatalf("Get(%s): %v", path, err)
	}
	return string(b)
}

// waitState reads session events until one reports want.
func waitState(t *testing.T, events <-chan zk.Event, want zk.State) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	var seen []zk.State
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the client ended before %v (saw %v)", want, seen)
			}
			if ev.State == want {
				return
			}
			if !slices.Contains(seen, ev.State) {
				seen = append(seen, ev.State)
			}
		case <-timeout:
			t.Fatalf("no %v within 30s (saw %v)", want, seen)
		}
	}
}
