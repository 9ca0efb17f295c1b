package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// reply is what an exporter answers. The zero value is an empty 200.
type reply struct {
	status      int    // 0: 200
	contentType string // "": the Prometheus text format 0.0.4
	body        string
	gzip        bool // compress the body, with Content-Encoding: gzip
	hang        bool // never answer (until the client goes or the exporter closes)
	// seq appends `e2e_seq N` with N the 1-based number of the request, so
	// a sample line can be matched with the request's arrival time.
	seq bool
}

const textFormat = "text/plain; version=0.0.4; charset=utf-8"

// exporter is an HTTP target on 127.0.0.1 whose reply the test switches
// while shoal scrapes it. It records when each request arrived.
type exporter struct {
	t    testing.TB
	srv  *httptest.Server
	addr string // host:port
	rep  atomic.Pointer[reply]
	stop chan struct{} // closed by close: releases hanging handlers

	mu       sync.Mutex
	arrivals []time.Time   // by request number - 1
	headers  []http.Header // of each request

	closeOnce sync.Once
}

// newExporter starts an exporter answering r; it is closed when the test
// ends (after shoal is killed: cleanups run last-registered first, and the
// exporter is made before shoal starts).
func newExporter(t testing.TB, r reply) *exporter {
	t.Helper()
	e := &exporter{t: t, stop: make(chan struct{})}
	e.set(r)
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.Listener.Close()
	e.srv.Listener = listenFree(t) // see freePort
	e.srv.Start()
	e.addr = strings.TrimPrefix(e.srv.URL, "http://")
	t.Cleanup(e.close)
	return e
}

// set switches the reply for the next requests.
func (e *exporter) set(r reply) { e.rep.Store(&r) }

// close shuts the exporter down: its port then refuses connections.
// Idempotent.
func (e *exporter) close() {
	e.closeOnce.Do(func() {
		close(e.stop)
		e.srv.CloseClientConnections()
		e.srv.Close()
	})
}

// requests returns the arrival times of every request so far.
func (e *exporter) requests() []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Time(nil), e.arrivals...)
}

// requestHeaders returns the headers of every request so far.
func (e *exporter) requestHeaders() []http.Header {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]http.Header(nil), e.headers...)
}

func (e *exporter) serve(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	e.mu.Lock()
	e.arrivals = append(e.arrivals, now)
	e.headers = append(e.headers, req.Header.Clone())
	n := len(e.arrivals)
	e.mu.Unlock()

	r := e.rep.Load()
	if r.hang {
		select {
		case <-req.Context().Done():
		case <-e.stop:
		}
		return
	}
	body := r.body
	if r.seq {
		body += fmt.Sprintf("e2e_seq %d\n", n)
	}
	ct := r.contentType
	if ct == "" {
		ct = textFormat
	}
	w.Header().Set("Content-Type", ct)
	if r.gzip {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write([]byte(body))
		_ = zw.Close()
		body = b.String()
		w.Header().Set("Content-Encoding", "gzip")
	}
	if r.status != 0 {
		w.WriteHeader(r.status)
	}
	_, _ = w.Write([]byte(body))
}
