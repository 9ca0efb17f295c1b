// Package web is shoal's operator-facing HTTP server: /metrics (shoal's own
// metrics), /targets (an HTML page and a JSON API shaped like Prometheus's
// /api/v1/targets), /-/healthy, /-/ready, /debug/pprof/, and whatever pages
// other packages add with Server.Handle (cluster mode adds /cluster).
//
// It is built on net/http, not fasthttp: it serves a handful of operators and
// a Prometheus scraping shoal itself, so it is not hot, and net/http gives
// graceful shutdown, pprof and promhttp for free.
//
// web reads the engine through the small TargetSource interface declared
// here, and discovery through DiscoverySource; it imports engine/ and
// discovery/ only for their status types.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shoal-scraper/shoal/discovery"
	"github.com/shoal-scraper/shoal/engine"
)

// TargetSource is what /targets and /-/ready read; *engine.Engine satisfies
// it. Both methods are called from HTTP handler goroutines, possibly
// concurrently with each other and with the engine's own work.
type TargetSource interface {
	// Jobs returns a snapshot: jobs sorted by name, each job's targets
	// sorted by key. The snapshot shares nothing with the engine, so the
	// caller may keep it; web only reads it.
	Jobs() []engine.JobStatus
	// Ready reports whether the engine has its first job set and
	// membership view (it scrapes nothing before).
	Ready() bool
}

// Config configures a Server. The zero value of every field means its
// default, so Config{} is usable; DefaultConfig spells the defaults out.
type Config struct {
	// ListenAddress is the host:port Run listens on. Default ":9464": all
	// interfaces, so peers and Prometheus reach every member on one known
	// port, clear of Prometheus (9090) and node_exporter (9100). (9464 is
	// also the OpenTelemetry Prometheus exporter's default: move one of
	// them if both run on a host.)
	ListenAddress string

	// ReadTimeout bounds reading a whole request. Default 30s: requests
	// here have no bodies, so this only cuts off stalled clients.
	ReadTimeout time.Duration
	// ReadHeaderTimeout bounds reading request headers. Default 10s:
	// slow-header (slowloris) clients must not pin connections.
	ReadHeaderTimeout time.Duration
	// WriteTimeout bounds writing a response. Default 5m: a /targets page
	// for a million targets is hundreds of MB and must reach a slow link,
	// and /debug/pprof/profile refuses a duration at or above this value,
	// so the default leaves room for profiles of up to a few minutes.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request. Default 2m: longer than any sane scrape interval of
	// shoal's own /metrics, so a Prometheus scraping it keeps its
	// connection.
	IdleTimeout time.Duration
	// ShutdownTimeout bounds the graceful drain in Run once its context is
	// done; connections still busy then are closed. Default 5s: in-flight
	// requests see their context cancelled at shutdown, so well-behaved
	// handlers finish well within it, and process shutdown must not wait
	// on a slow client.
	ShutdownTimeout time.Duration
	// MetricsTimeout bounds one /metrics request; past it promhttp answers
	// 503. Default 10s, Prometheus's default scrape_timeout: an answer
	// later than that is discarded by the scraper anyway.
	MetricsTimeout time.Duration

	// Version is shown on the HTML pages. Default "unknown".
	Version string

	// Now is the clock for "3.2s ago" on /targets. Default time.Now.
	// Tests inject a fixed clock.
	Now func() time.Time

	// Discovery, when set, adds each job's service discovery state to
	// /targets (the last refresh, its error, the targets kept).
	Discovery DiscoverySource
}

// DiscoverySource reports the state of every job's SD configs, by job;
// *discovery.Manager satisfies it. Called from handler goroutines.
type DiscoverySource interface {
	Status() map[string][]discovery.Status
}

// DefaultConfig returns a Config with every field set to its default.
func DefaultConfig() Config {
	return Config{
		ListenAddress:     ":9464",
		ReadTimeout:       30 * time.Second,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ShutdownTimeout:   5 * time.Second,
		MetricsTimeout:    10 * time.Second,
		Version:           "unknown",
		Now:               time.Now,
	}
}

// withDefaults returns c with each zero field replaced by its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ListenAddress == "" {
		c.ListenAddress = d.ListenAddress
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if c.MetricsTimeout == 0 {
		c.MetricsTimeout = d.MetricsTimeout
	}
	if c.Version == "" {
		c.Version = d.Version
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied to
// zero fields: a ListenAddress that is not host:port, or a negative
// duration.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, _, err := net.SplitHostPort(c.ListenAddress); err != nil {
		return fmt.Errorf("web: listen address %q: %w", c.ListenAddress, err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"read timeout", c.ReadTimeout},
		{"read header timeout", c.ReadHeaderTimeout},
		{"write timeout", c.WriteTimeout},
		{"idle timeout", c.IdleTimeout},
		{"shutdown timeout", c.ShutdownTimeout},
		{"metrics timeout", c.MetricsTimeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("web: %s %v is negative", d.name, d.v)
		}
	}
	return nil
}

// Server is shoal's HTTP server.
//
// It owns one http.ServeMux, built in New and shared by every Run and by
// Handler, so tests and Run serve the same routes. The mux is safe for
// concurrent use, so Handle may add pages while the server runs.
//
// Each Run builds its own http.Server: the serving goroutine it starts is
// owned by that Run call, which does not return until the goroutine has
// exited. Shutdown order in Run:
//  1. ctx is done: the base context of every request is the Run context, so
//     in-flight handlers that watch r.Context() (pprof profile and trace,
//     long polls) return at once instead of holding the drain.
//  2. http.Server.Shutdown closes the listener and waits, up to
//     ShutdownTimeout, for active connections to go idle.
//  3. If the deadline passes, http.Server.Close drops the rest.
//  4. Wait for Serve's goroutine to return.
//
// Large pages are streamed: /targets renders its template, and encodes its
// JSON, straight into a buffered writer over the ResponseWriter, one target
// at a time, so a million targets never become one string in memory (the
// snapshot from TargetSource.Jobs is the only full copy).
type Server struct {
	cfg    Config
	src    TargetSource
	logger *slog.Logger
	mux    *http.ServeMux
}

// New builds a Server; it starts nothing. Zero fields of cfg take their
// defaults; cfg is validated by Run. src and g must not be nil: g is served
// at /metrics (register shoal's and the Go runtime's collectors in it).
// A nil logger discards logs.
func New(cfg Config, src TargetSource, g prometheus.Gatherer, logger *slog.Logger) *Server {
	if src == nil {
		panic("web: New called with a nil TargetSource")
	}
	if g == nil {
		panic("web: New called with a nil Gatherer")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:    cfg.withDefaults(),
		src:    src,
		logger: logger,
		mux:    http.NewServeMux(),
	}

	s.mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog: promLogger{logger},
		// One failing collector must not hide all of shoal's other
		// metrics; the failure is logged.
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
		Timeout:           s.cfg.MetricsTimeout,
	}))
	s.mux.HandleFunc("GET /targets", s.serveTargets)
	s.mux.HandleFunc("GET /api/v1/targets", s.serveTargetsAPI)
	s.mux.HandleFunc("GET /-/healthy", s.serveHealthy)
	s.mux.HandleFunc("GET /-/ready", s.serveReady)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/targets", http.StatusFound)
	})

	// pprof on our own mux, never on http.DefaultServeMux. Index also
	// serves the named profiles (/debug/pprof/heap, /goroutine, ...).
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return s
}

// Handler returns the server's routes, for tests and for callers that run
// their own http.Server. It is the same handler Run serves.
func (s *Server) Handler() http.Handler { return s.mux }

// Handle adds a page, with http.ServeMux pattern syntax ("/cluster",
// "GET /cluster/{id}"). It may be called before or while the server runs.
// Like ServeMux.Handle, it panics if pattern is invalid or conflicts with a
// route already registered.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Run validates the config, listens on cfg.ListenAddress and serves until
// ctx is done; then it shuts down as described on Server and returns. A
// listen failure (port taken, bad address) is returned at once, before any
// serving. Run returns nil after a clean shutdown, or an error if the
// drain hit ShutdownTimeout or serving failed. Each call builds its own
// listener and http.Server.
func (s *Server) Run(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("web: listen on %q: %w", s.cfg.ListenAddress, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller made (tests, socket activation).
// It takes ownership of ln and closes it before returning.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadTimeout:       s.cfg.ReadTimeout,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		// net/http logs accept errors and handler bugs (superfluous
		// WriteHeader) here.
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		// Step 1 of the shutdown order: request contexts end with ctx.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	s.logger.Info("web server listening", "address", ln.Addr().String())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		// Serve returns only on a listener failure before shutdown.
		return fmt.Errorf("web: serve on %q: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	// Step 2: graceful drain with a deadline. ctx is already done, so the
	// deadline hangs off a context that keeps ctx's values but not its
	// cancellation.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		// Step 3: drop whatever is still busy.
		_ = srv.Close()
		err = fmt.Errorf("web: shutdown: %w", err)
	}
	// Step 4: Serve has returned http.ErrServerClosed or will shortly.
	if serr := <-served; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("web: serve on %q: %w", ln.Addr(), serr)
	}
	s.logger.Info("web server stopped", "address", ln.Addr().String())
	return err
}

func (s *Server) serveHealthy(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprint(w, "shoal is Healthy.\n")
}

// serveReady answers 200 once the engine has its first job set and
// membership, 503 before: a load balancer or orchestrator must not count a
// member that scrapes nothing yet.
func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.src.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprint(w, "shoal is not ready.\n")
		return
	}
	_, _ = fmt.Fprint(w, "shoal is Ready.\n")
}

// promLogger adapts slog to promhttp's Println logger.
type promLogger struct{ l *slog.Logger }

func (p promLogger) Println(v ...any) {
	p.l.Error("serving /metrics", "err", fmt.Sprint(v...))
}
