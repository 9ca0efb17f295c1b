package zkdial

import (
	"net"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// A server that accepts the connection and never answers the connect
// request holds the client for at most its receive timeout, then the
// client tries again. go-zookeeper alone waits 6.7 session timeouts.
func TestDialerGivesUpOnASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // read nothing, answer nothing
		}
	}()

	const session = time.Second
	conn, _, err := zk.Connect([]string{ln.Addr().String()}, session, zk.WithDialer(Dialer(session)), zk.WithLogInfo(false), zk.WithLogger(discardLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	first := waitAccept(t, accepted, 5*time.Second)
	defer first.Close()
	start := time.Now()
	// Uncapped, the second attempt comes 7.7 s after the first (ten
	// receive timeouts of 2/3 s, then the client's 1 s pause between
	// rounds); capped, after one receive timeout and that pause.
	second := waitAccept(t, accepted, 4*time.Second)
	defer second.Close()
	if d := time.Since(start); d < session*2/3 {
		t.Errorf("the client gave up on the silent server after %s, before its receive timeout (%s)", d, session*2/3)
	}
}

func waitAccept(t *testing.T, accepted <-chan net.Conn, within time.Duration) net.Conn {
	t.Helper()
	select {
	case c := <-accepted:
		return c
	case <-time.After(within):
		t.Fatalf("no connection attempt within %s", within)
		return nil
	}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// Only the handshake is capped: once go-zookeeper clears the read deadline
// it set for the connect response, its deadlines (from the session timeout
// the server granted) pass unchanged.
func TestHandshakeOnly(t *testing.T) {
	rec := &deadlines{}
	c := &handshakeConn{Conn: rec, limit: time.Second}
	far := time.Now().Add(time.Hour)

	c.SetWriteDeadline(far)
	c.SetWriteDeadline(time.Time{})
	c.SetReadDeadline(far)
	c.SetReadDeadline(time.Time{}) // the answer's length came: handshake over
	c.SetReadDeadline(far)
	c.SetWriteDeadline(far)

	want := []bool{true, false, true, false, false, false} // capped?
	if len(rec.set) != len(want) {
		t.Fatalf("%d deadlines set, want %d", len(rec.set), len(want))
	}
	for i, d := range rec.set {
		capped := !d.IsZero() && d.Before(far)
		if capped != want[i] {
			t.Errorf("deadline %d: %v, capped %v; want capped %v", i, d, capped, want[i])
		}
		if capped && time.Until(d) > time.Second {
			t.Errorf("deadline %d: %s ahead, beyond the 1s cap", i, time.Until(d))
		}
	}
}

// deadlines is a net.Conn that records the deadlines set on it.
type deadlines struct {
	net.Conn
	set []time.Time
}

func (d *deadlines) SetReadDeadline(t time.Time) error  { d.set = append(d.set, t); return nil }
func (d *deadlines) SetWriteDeadline(t time.Time) error { d.set = append(d.set, t); return nil }
