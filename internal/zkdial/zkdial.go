// Package zkdial is the dialer every ZooKeeper client of shoal connects
// with: go-zookeeper's, except that the client waits for the server's
// answer to its connect request no longer than it waits for any other
// answer.
//
// Why: go-zookeeper waits for that answer (the handshake that resumes or
// opens a session) for ten receive timeouts, 6.7 session timeouts: 67 s
// with shoal's default 10 s session. A server that accepts the connection
// but does not answer keeps the client disconnected all that time, and
// ZooKeeper 3.8 does that to some of the clients that reconnect while it
// starts up: in two clean-clone CI runs of 2026-12-03 a restarted
// standalone server resumed two of three members' sessions at once and
// left the third unanswered until it dropped the connection as sessionless
// 10 s later (e2e TestCluster), and left a client of
// internal/zktest.TestServerRestart connected without a session for the
// test's 30 s. With the handshake's deadlines capped at its receive
// timeout (two thirds of the session timeout, the time it gives a server to
// answer a ping), the client gives up on a silent server and tries again,
// the next server or the same one a second later, in time to resume its
// session.
package zkdial

import (
	"net"
	"time"

	"github.com/go-zookeeper/zk"
)

// Dialer returns the zk.Dialer for a client whose session timeout is
// sessionTimeout (zk.WithDialer): net.DialTimeout, and on each connection
// the deadlines of the handshake (the connect request and the first read
// of its answer) brought within two thirds of sessionTimeout of now. Later
// deadlines are left alone: they follow the session timeout the server
// granted, which may be longer than the one asked for (a server's minimum
// is two ticks), and a cap from the asked one could cut its pings short.
func Dialer(sessionTimeout time.Duration) zk.Dialer {
	limit := sessionTimeout * 2 / 3
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return &handshakeConn{Conn: c, limit: limit}, nil
	}
}

// handshakeConn caps the deadlines set on it at limit from the time they
// are set, until the first read deadline is cleared: go-zookeeper sets one
// to read the length of the connect response and clears it once that has
// come, before its send and receive loops start. Only the goroutine that
// dials and authenticates sets deadlines until then, and the loops it
// starts afterwards only read done (the receive loop clears its read
// deadline after every read), so done needs no lock.
type handshakeConn struct {
	net.Conn
	limit time.Duration
	done  bool
}

func (c *handshakeConn) cap(t time.Time) time.Time {
	if c.done || t.IsZero() {
		return t
	}
	if lim := time.Now().Add(c.limit); t.After(lim) {
		return lim
	}
	return t
}

func (c *handshakeConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.cap(t)) }
func (c *handshakeConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.cap(t)) }

func (c *handshakeConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() && !c.done {
		c.done = true // written once, before the loops that read it start
	}
	return c.Conn.SetReadDeadline(c.cap(t))
}
