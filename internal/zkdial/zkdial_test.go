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
