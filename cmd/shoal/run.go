package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/coord"
	"github.com/shoal-scraper/shoal/discovery"
	"github.com/shoal-scraper/shoal/engine"
	"github.com/shoal-scraper/shoal/internal/gctune"
	"github.com/shoal-scraper/shoal/produce"
	"github.com/shoal-scraper/shoal/web"
)

type runFlags struct {
	configFile     string
	reloadInterval time.Duration
	listen         string
	sink           string
	logLevel       string
	logFormat      string
	workers        int
	memberID       string
	advertise      string
	handoverDelay  time.Duration
	zk             zkFlags
	dnsServers     string
	kafka          kafkaSinkFlags
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.configFile, "config.file", "prometheus.yml", "Configuration file (prometheus.yml format: global and scrape_configs).")
	fs.DurationVar(&f.reloadInterval, "config.reload-interval", 5*time.Second, "How often to check the configuration file for changes and reload it (0 disables; SIGHUP always reloads).")
	fs.StringVar(&f.listen, "web.listen-address", ":9464", "Address for /metrics, /targets, health and pprof endpoints.")
	fs.StringVar(&f.sink, "sink", "stdout", "Where samples go: stdout (one line per sample), kafka (see --kafka.*) or discard.")
	fs.StringVar(&f.logLevel, "log.level", "info", "Log level: debug, info, warn, error.")
	fs.StringVar(&f.logFormat, "log.format", "logfmt", "Log format: logfmt or json.")
	fs.IntVar(&f.workers, "scrape.workers", 0, "Concurrent scrapes (0: the engine's default, 512).")
	fs.StringVar(&f.memberID, "cluster.member-id", "", "This member's ID: its ZooKeeper node and the member header of Kafka records. Keep it stable across restarts: a restarted member takes its own ring slot, and its targets, back (default: hostname:web-port).")
	fs.StringVar(&f.advertise, "cluster.advertise-address", "", "host:port where peers and `shoal members` reach this member's web server (default: --web.listen-address, with the hostname if it has no host).")
	fs.DurationVar(&f.handoverDelay, "cluster.handover-delay", 2*time.Second, "How far ahead a join or a graceful leave is announced; every member switches ownership at that instant. Must exceed ZooKeeper's notification delay plus GC pauses.")
	f.zk.register(fs)
	fs.StringVar(&f.dnsServers, "discovery.dns.servers", "", "DNS servers for dns_sd_configs, comma-separated host:port, asked in order; names are then looked up as written, with no search list (default: /etc/resolv.conf, re-read at every refresh).")
	f.kafka.RegisterFlags(fs)
}

// dnsServers parses --discovery.dns.servers.
func dnsServers(v string) ([]string, error) {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			return nil, fmt.Errorf("--discovery.dns.servers: %q is not host:port", s)
		}
		out = append(out, s)
	}
	return out, nil
}

// defaultMemberID is hostname:port, the port of the web listen address:
// unique per process on a host as long as each listens on its own port.
func defaultMemberID(listen string) (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("--cluster.member-id: no hostname for the default: %w", err)
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--cluster.member-id: no port in --web.listen-address=%q for the default: %w", listen, err)
	}
	return host + ":" + port, nil
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log.level=%q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "logfmt":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log.format=%q: want logfmt or json", format)
}

// flusher is a sink that may need flushing at shutdown.
type flusher interface{ Flush() error }

// closer is a sink that must be closed at shutdown: it delivers what it
// buffers within its own deadline (the Kafka sink's --kafka.flush-timeout).
type closer interface{ Close(context.Context) error }

func cmdRun(args []string, stdout, stderr io.Writer) int {
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	f.register(fs)
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	logger, err := newLogger(f.logLevel, f.logFormat, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "shoal:", err)
		return 2
	}
	dnsSrv, err := dnsServers(f.dnsServers)
	if err != nil {
		fmt.Fprintln(stderr, "shoal:", err)
		return 2
	}
	cluster := f.zk.servers != ""
	// In cluster mode the configuration file is optional unless named.
	explicit := false
	fs.Visit(func(fl *flag.Flag) { explicit = explicit || fl.Name == "config.file" })
	var (
		cfg       *config.Config
		zkServers []string
	)
	if cluster {
		g, err := clusterGlobal(f.configFile, explicit)
		if err != nil {
			fmt.Fprintf(stderr, "shoal: loading %s:\n%v\n", f.configFile, err)
			return 1
		}
		cfg = &config.Config{Global: g}
		if zkServers, err = f.zk.list(); err != nil {
			fmt.Fprintln(stderr, "shoal:", err)
			return 2
		}
	} else {
		cfg, err = config.Load(f.configFile)
		if err != nil {
			fmt.Fprintf(stderr, "shoal: loading %s:\n%v\n", f.configFile, err)
			return 1
		}
	}

	if f.memberID == "" {
		id, err := defaultMemberID(f.listen)
		if err != nil && (f.sink == "kafka" || cluster) {
			fmt.Fprintln(stderr, "shoal:", err)
			return 2
		}
		f.memberID = id
	}
	if cluster {
		if err := coord.ValidMemberID(f.memberID); err != nil {
			fmt.Fprintln(stderr, "shoal: --cluster.member-id:", err)
			return 2
		}
		if f.advertise == "" {
			f.advertise = advertiseAddress(f.listen)
		}
	}

	reg := prometheus.NewRegistry()
	var sink engine.Sink
	switch f.sink {
	case "stdout":
		sink = produce.NewText(stdout)
	case "discard":
		sink = &produce.Discard{}
	case "kafka":
		kc, err := f.kafka.config(f.memberID)
		if err != nil {
			fmt.Fprintln(stderr, "shoal:", err)
			return 2
		}
		k, err := produce.NewKafka(kc, reg, logger)
		if err != nil {
			fmt.Fprintln(stderr, "shoal:", err)
			return 1
		}
		sink = k
		logger.Info("kafka sink", "brokers", kc.Brokers, "topic", kc.Topic, "topic_template", kc.TopicTemplate, "format", kc.Format,
			"buffer_bytes", kc.BufferBytes, "max_record_bytes", kc.MaxRecordBytes, "tls", kc.TLS != nil, "sasl", f.kafka.conn.saslMechanism, "member", kc.MemberID)
	default:
		fmt.Fprintf(stderr, "shoal: --sink=%q: want stdout, kafka or discard\n", f.sink)
		return 2
	}

	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	reloadOK := prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_config_last_reload_successful", Help: "Whether the last configuration reload succeeded (1) or failed and the previous configuration is still running (0)."})
	reloadTime := prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_config_last_reload_success_timestamp_seconds", Help: "Time of the last successful configuration load."})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_config_reloads_total", Help: "Configuration reloads by result."}, []string{"result"})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shoal_build_info", Help: "Always 1; the version label is shoal's version."}, []string{"version"})
	reg.MustRegister(reloadOK, reloadTime, reloads, info)
	info.WithLabelValues(getVersion()).Set(1)
	var gc *gctune.Tuner // nil when GOGC or GOMEMLIMIT is set: the operator's choice stands
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		gc = gctune.New(gctune.Config{Max: defaultGCPercent})
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_gc_percent",
			Help: "The GOGC shoal's tuner set last: low while shoal allocates little, up to 25 while targets start or series churn. Absent when GOGC or GOMEMLIMIT is set in the environment.",
		}, func() float64 { return float64(gc.Percent()) }))
	}

	// closeSink ends the sink (shutdown step 3 below, or an early exit).
	closeSink := func() {
		switch s := sink.(type) {
		case closer:
			// Bounded by the sink's own flush timeout; it logs what it
			// could not deliver.
			_ = s.Close(context.Background())
		case flusher:
			if err := s.Flush(); err != nil {
				logger.Error("flushing sink", "err", err)
			}
		}
	}
	ecfg := engine.Config{Workers: f.workers, Version: getVersion(), RequireOwner: cluster}
	var co *coord.Coordinator // set below in cluster mode, before anything runs
	if cluster {
		// A process that stood still for a third of the session timeout
		// may have lost its session (the client pings every third): hold
		// scraping until the coordinator has confirmed it. At least 1s (but
		// at most half the timeout), so that an overloaded scheduler is
		// not mistaken for a stopped process.
		ecfg.StallLimit = min(max(f.zk.sessionTimeout/3, time.Second), f.zk.sessionTimeout/2)
		ecfg.OnStall = func() { co.Stalled() }
	}
	eng, err := engine.New(ecfg, sink, reg, logger)
	if err != nil {
		closeSink()
		fmt.Fprintln(stderr, "shoal:", err)
		return 1
	}
	disc, err := discovery.New(discovery.Config{DNS: discovery.DNSConfig{Servers: dnsSrv}}, logger, reg, eng.SyncTargets)
	if err != nil {
		closeSink()
		fmt.Fprintln(stderr, "shoal:", err)
		return 1
	}
	var (
		src web.TargetSource = eng
	)
	if cluster {
		h := &clusterHandler{eng: eng, disc: disc, log: logger}
		src = h
		co, err = coord.New(coord.Config{
			Servers: zkServers, Root: f.zk.root, SessionTimeout: f.zk.sessionTimeout,
			MemberID: f.memberID, Address: f.advertise, Version: getVersion(),
			HandoverDelay: f.handoverDelay, Global: cfg.Global,
		}, h, reg, logger)
		if err != nil {
			closeSink()
			fmt.Fprintln(stderr, "shoal:", err)
			return 2
		}
	}
	srv := web.New(web.Config{ListenAddress: f.listen, Version: getVersion(), Discovery: disc}, src, reg, logger)
	if cluster {
		web.RegisterCluster(srv, co, eng)
	}

	apply := func(c *config.Config) {
		if err := eng.ApplyConfig(c); err != nil {
			logger.Error("some jobs could not be set up and are skipped", "err", err)
		}
		disc.ApplyConfig(c.ScrapeConfigs)
	}
	if !cluster {
		apply(cfg)
	}
	reloadOK.Set(1)
	reloadTime.SetToCurrentTime()
	lastSum := fileSum(f.configFile)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The web server starts first and stops last, so /metrics and health
	// answer for the whole life of the process.
	webCtx, stopWeb := context.WithCancel(context.Background())
	webErr := make(chan error, 1)
	go func() { webErr <- srv.Run(webCtx) }()

	// Discovery and the engine stop after the coordinator has left the
	// pool (it keeps ownership until its announced leave instant, and the
	// engine must scrape until then), so they get their own context.
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	var wg sync.WaitGroup
	wg.Go(func() { disc.Run(runCtx) })
	if gc != nil {
		wg.Go(func() { gc.Run(runCtx) })
	}
	engDone := make(chan struct{})
	go func() { _ = eng.Run(runCtx); close(engDone) }()
	var coordDone chan error
	if cluster {
		coordDone = make(chan error, 1)
		go func() { coordDone <- co.Run(ctx) }()
	}

	reload := func(why string) {
		if cluster {
			g, err := clusterGlobal(f.configFile, explicit)
			if err != nil {
				reloadOK.Set(0)
				reloads.WithLabelValues("failure").Inc()
				logger.Error("config reload failed; keeping the running global section", "trigger", why, "file", f.configFile, "err", strings.ReplaceAll(err.Error(), "\n", "; "))
				return
			}
			co.SetGlobal(g)
			reloadOK.Set(1)
			reloadTime.SetToCurrentTime()
			reloads.WithLabelValues("success").Inc()
			logger.Info("global section reloaded; jobs from ZooKeeper inherit it", "trigger", why, "file", f.configFile)
			return
		}
		c, err := config.Load(f.configFile)
		if err != nil {
			reloadOK.Set(0)
			reloads.WithLabelValues("failure").Inc()
			logger.Error("config reload failed; keeping the running configuration", "trigger", why, "file", f.configFile, "err", strings.ReplaceAll(err.Error(), "\n", "; "))
			return
		}
		apply(c)
		reloadOK.Set(1)
		reloadTime.SetToCurrentTime()
		reloads.WithLabelValues("success").Inc()
		logger.Info("config reloaded", "trigger", why, "file", f.configFile, "jobs", len(c.ScrapeConfigs))
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var poll <-chan time.Time
	if f.reloadInterval > 0 {
		t := time.NewTicker(f.reloadInterval)
		defer t.Stop()
		poll = t.C
	}
	if cluster {
		logger.Info("shoal started in cluster mode", "version", getVersion(), "zookeeper", f.zk.servers, "root", f.zk.root, "web", f.listen, "advertise", f.advertise, "sink", f.sink, "member", f.memberID)
	} else {
		logger.Info("shoal started", "version", getVersion(), "config", f.configFile, "jobs", len(cfg.ScrapeConfigs), "web", f.listen, "sink", f.sink, "member", f.memberID)
	}

	code := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-coordDone:
			logger.Error("cluster coordination failed", "err", err)
			code = 1
			coordDone = nil
			stop()
			break loop
		case err := <-webErr:
			logger.Error("web server failed", "err", err)
			code = 1
			stop()
			break loop
		case <-hup:
			lastSum = fileSum(f.configFile)
			reload("SIGHUP")
		case <-poll:
			if s := fileSum(f.configFile); !bytes.Equal(s, lastSum) {
				lastSum = s
				reload("file change")
			}
		}
	}

	// Shutdown order: 1. discovery stops; 2. the engine stops the wheel and
	// waits for in-flight scrapes (each bounded by its timeout), so nothing
	// writes to the sink any more; 3. the sink is flushed (stdout) or
	// closed (Kafka: delivers its buffer within --kafka.flush-timeout, then
	// reports and counts what it could not); 4. the web server stops last,
	// so /metrics shows the sink's final counts until the end.
	logger.Info("shutting down")
	if coordDone != nil {
		// Leaves the pool: announces the leave, keeps scraping until the
		// announced instant, deletes the member node.
		stop()
		if err := <-coordDone; err != nil {
			logger.Error("cluster coordination", "err", err)
		}
	}
	stopRun()
	wg.Wait()
	<-engDone
	closeSink()
	stopWeb()
	if err := <-webErrOrNil(webErr, code); err != nil {
		logger.Error("web server", "err", err)
	}
	return code
}

// webErrOrNil returns the web server's result channel, or a closed-over nil
// if Run's error was already consumed.
func webErrOrNil(ch chan error, code int) <-chan error {
	if code != 0 {
		c := make(chan error, 1)
		c <- nil
		return c
	}
	return ch
}

// advertiseAddress is the listen address with the hostname filled in when
// it names no host.
func advertiseAddress(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

// fileSum hashes a file's content; nil if unreadable (a reload then reports
// the error).
func fileSum(name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	s := sha256.Sum256(b)
	return s[:]
}
