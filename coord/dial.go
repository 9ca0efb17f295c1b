package coord

import (
	"net"
	"time"

	"github.com/go-zookeeper/zk"
)

// dialer returns the zk.Dialer shoal connects with: net.DialTimeout, with
// every read and write deadline the client sets on the connection brought
// within limit of now.
//
// Why: go-zookeeper waits for the answer to its connect request (the
// handshake that resumes or opens a session) for ten times its receive
// timeout, 6.7 session timeouts: 67 s with shoal's default 10 s session.
// A server that accepts the connection but does not answer keeps the
// member disconnected all that time. It happens: in one run of e2e
// TestCluster a standalone server restarted under three members resumed
// two sessions at once, and the third member heard nothing until the
// server dropped its connection as sessionless 10 s later (the test had
// given up by then).
// An answer later than one session timeout is worth nothing anyway: the
// session it would resume has expired. Capped at limit, the client gives
// up and tries again (the next server, or the same one a second later).
// The client's other deadlines are its receive timeout, two thirds of the
// session timeout, and are left as they are.
func dialer(limit time.Duration) zk.Dialer {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return cappedConn{Conn: c, limit: limit}, nil
	}
}

// cappedConn brings the deadlines set on it within limit of the time they
// are set. A zero deadline (none) stays zero.
type cappedConn struct {
	net.Conn
	limit time.Duration
}

func (c cappedConn) cap(t time.Time) time.Time {
	if lim := time.Now().Add(c.limit); !t.IsZero() && t.After(lim) {
		return lim
	}
	return t
}

func (c cappedConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.cap(t)) }
func (c cappedConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.cap(t)) }
func (c cappedConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.cap(t)) }
