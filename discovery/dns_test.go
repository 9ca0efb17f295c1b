package discovery

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"

	"github.com/shoal-scraper/shoal/discovery/dnsmasqtest"
)

// These tests run against Debian's dnsmasq (see dnsmasqtest): real DNS
// answers, changed while discovery runs.

func dnsConfig(servers ...string) Config {
	return Config{FilePoll: 10 * time.Millisecond, DNS: DNSConfig{Servers: servers, Timeout: 300 * time.Millisecond}}
}

// target returns the labels of the target with address addr in gs.
func target(gs []*targetgroup.Group, addr string) model.LabelSet {
	for _, g := range gs {
		for _, t := range g.Targets {
			if string(t[model.AddressLabel]) == addr {
				return t
			}
		}
	}
	return nil
}

// wantLabels checks a target's labels exactly: every meta label Prometheus
// sets, empty ones included.
func wantLabels(t *testing.T, gs []*targetgroup.Group, addr string, want model.LabelSet) {
	t.Helper()
	got := target(gs, addr)
	if !got.Equal(want) {
		t.Errorf("target %s:\n got %v\nwant %v", addr, got, want)
	}
}

func dnsLabels(addr, name, srvTarget, srvPort, mxTarget string) model.LabelSet {
	return model.LabelSet{
		"__address__":                  model.LabelValue(addr),
		"__meta_dns_name":              model.LabelValue(name),
		"__meta_dns_srv_record_target": model.LabelValue(srvTarget),
		"__meta_dns_srv_record_port":   model.LabelValue(srvPort),
		"__meta_dns_mx_record_target":  model.LabelValue(mxTarget),
		"__meta_dns_ns_record_target":  "",
	}
}

func TestDNSRecordTypesFollowChanges(t *testing.T) {
	zone := dnsmasqtest.Records{
		SRV: []dnsmasqtest.SRV{
			{Name: "_node._tcp.example.test", Target: "n1.example.test", Port: 9100},
			{Name: "_node._tcp.example.test", Target: "n2.example.test", Port: 9101},
		},
		MX:    []dnsmasqtest.MX{{Name: "mail.example.test", Target: "mx1.example.test", Pref: 10}},
		Hosts: map[string][]string{"db.example.test": {"127.0.0.5", "::5"}},
	}
	srv := dnsmasqtest.Start(t, zone)
	_, rec, reg, _ := startWith(t, dnsConfig(srv.Addr), `
scrape_configs:
- job_name: srv
  dns_sd_configs:
  - names: [_node._tcp.example.test]
    refresh_interval: 100ms
- job_name: a
  dns_sd_configs:
  - names: [db.example.test]
    type: A
    port: 9187
    refresh_interval: 100ms
- job_name: aaaa
  dns_sd_configs:
  - names: [db.example.test]
    type: AAAA
    port: 9187
    refresh_interval: 100ms
- job_name: mx
  dns_sd_configs:
  - names: [mail.example.test]
    type: MX
    port: 25
    refresh_interval: 100ms
`)
	gs := rec.waitFor(t, "srv", "both SRV targets", hasAddrs("n1.example.test:9100", "n2.example.test:9101"))
	wantLabels(t, gs, "n1.example.test:9100", dnsLabels("n1.example.test:9100", "_node._tcp.example.test", "n1.example.test.", "9100", ""))
	gs = rec.waitFor(t, "a", "the A target", hasAddrs("127.0.0.5:9187"))
	wantLabels(t, gs, "127.0.0.5:9187", dnsLabels("127.0.0.5:9187", "db.example.test", "", "", ""))
	gs = rec.waitFor(t, "aaaa", "the AAAA target", hasAddrs("[::5]:9187"))
	wantLabels(t, gs, "[::5]:9187", dnsLabels("[::5]:9187", "db.example.test", "", "", ""))
	gs = rec.waitFor(t, "mx", "the MX target", hasAddrs("mx1.example.test:25"))
	wantLabels(t, gs, "mx1.example.test:25", dnsLabels("mx1.example.test:25", "mail.example.test", "", "", "mx1.example.test."))
	if gs[0].Source != "mail.example.test" {
		t.Errorf("group source %q, want the name", gs[0].Source)
	}

	// Identical answers cause no new sync: the engine is left alone.
	rec.mu.Lock()
	before := len(rec.calls["srv"])
	rec.mu.Unlock()
	looks := counter(t, reg, "shoal_sd_refreshes_total", "srv", "dns")
	waitCounter(t, reg, "shoal_sd_refreshes_total", "srv", "dns", looks+3)
	rec.mu.Lock()
	after := len(rec.calls["srv"])
	rec.mu.Unlock()
	if after != before {
		t.Errorf("unchanged DNS answers re-synced the job (%d → %d syncs)", before, after)
	}

	// Records change mid-test; the target sets follow.
	zone.SRV = []dnsmasqtest.SRV{
		{Name: "_node._tcp.example.test", Target: "n1.example.test", Port: 9100},
		{Name: "_node._tcp.example.test", Target: "n3.example.test", Port: 9100},
	}
	zone.Hosts = map[string][]string{"db.example.test": {"127.0.0.5", "127.0.0.6"}}
	srv.Set(zone) // SRV changed: dnsmasq restarts
	rec.waitFor(t, "srv", "the new SRV set", hasAddrs("n1.example.test:9100", "n3.example.test:9100"))
	rec.waitFor(t, "a", "the new A set", hasAddrs("127.0.0.5:9187", "127.0.0.6:9187"))
	rec.waitFor(t, "aaaa", "no AAAA records (NODATA): no targets", hasAddrs())
	// NODATA is an answer (no such records), not a failure. Counted from
	// here: a query sent while dnsmasq restarted may have timed out, and
	// that failure counts.
	failed := counter(t, reg, "shoal_sd_refresh_failures_total", "aaaa", "dns")
	looks = counter(t, reg, "shoal_sd_refreshes_total", "aaaa", "dns")
	waitCounter(t, reg, "shoal_sd_refreshes_total", "aaaa", "dns", looks+3)
	if n := counter(t, reg, "shoal_sd_refresh_failures_total", "aaaa", "dns"); n != failed {
		t.Errorf("three NODATA answers counted as %v failures; they are answers (no such records)", n-failed)
	}

	zone.Hosts = map[string][]string{"db.example.test": {"127.0.0.6"}}
	srv.Set(zone) // hosts only: SIGHUP
	rec.waitFor(t, "a", "the A set after SIGHUP", hasAddrs("127.0.0.6:9187"))
}

// TestDNSBadAnswersKeepLastGood walks one name through every kind of bad
// answer a real server gives, checking each time that the last good targets
// stay, the failure is counted and shown, and other jobs are untouched.
func TestDNSBadAnswersKeepLastGood(t *testing.T) {
	good := dnsmasqtest.Records{
		SRV: []dnsmasqtest.SRV{
			{Name: "_node._tcp.example.test", Target: "n1.example.test", Port: 9100},
			{Name: "_other._tcp.example.test", Target: "o1.example.test", Port: 9200},
		},
	}
	srv := dnsmasqtest.Start(t, good)
	m, rec, reg, _ := startWith(t, dnsConfig(srv.Addr), `
scrape_configs:
- job_name: dns
  dns_sd_configs:
  - names: [_node._tcp.example.test]
    refresh_interval: 50ms
- job_name: other
  static_configs: [{targets: [s:1]}]
  dns_sd_configs:
  - names: [_other._tcp.example.test]
    refresh_interval: 1h
`)
	rec.waitFor(t, "dns", "the first target", hasAddrs("n1.example.test:9100"))
	rec.waitFor(t, "other", "the other job's targets", hasAddrs("s:1", "o1.example.test:9200"))
	rec.mu.Lock()
	otherSyncs := len(rec.calls["other"])
	rec.mu.Unlock()

	for _, tc := range []struct {
		name    string
		zone    func() dnsmasqtest.Records
		stop    bool
		wantErr string
	}{
		{name: "NXDOMAIN", wantErr: "NXDOMAIN", zone: func() dnsmasqtest.Records {
			return dnsmasqtest.Records{SRV: good.SRV[1:]}
		}},
		{name: "port 0", wantErr: "has port 0", zone: func() dnsmasqtest.Records {
			return dnsmasqtest.Records{SRV: append([]dnsmasqtest.SRV{
				{Name: "_node._tcp.example.test", Target: "n2.example.test", Port: 0},
				{Name: "_node._tcp.example.test", Target: "n3.example.test", Port: 9100},
			}, good.SRV[1])}
		}},
		{name: "missing target", wantErr: "has no target", zone: func() dnsmasqtest.Records {
			return dnsmasqtest.Records{SRV: append([]dnsmasqtest.SRV{{Name: "_node._tcp.example.test"}}, good.SRV[1])}
		}},
		{name: "server down", stop: true, wantErr: "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fails := counter(t, reg, "shoal_sd_refresh_failures_total", "dns", "dns")
			if tc.stop {
				srv.Stop()
			} else {
				srv.Set(tc.zone())
			}
			waitCounter(t, reg, "shoal_sd_refresh_failures_total", "dns", "dns", fails+2)
			st := m.Status()["dns"]
			if len(st) != 1 || !strings.Contains(st[0].Error, tc.wantErr) || st[0].Targets != 1 || st[0].Config != "dns_sd_configs[0]" {
				t.Errorf("status %+v, want an error with %q and the 1 last good target", st, tc.wantErr)
			}
			rec.waitFor(t, "dns", "the last good target", hasAddrs("n1.example.test:9100"))

			// Back to good records: the set follows and the error clears.
			if tc.stop {
				srv.Restart()
			}
			srv.Set(dnsmasqtest.Records{SRV: []dnsmasqtest.SRV{
				{Name: "_node._tcp.example.test", Target: "n1.example.test", Port: 9100},
				{Name: "_node._tcp.example.test", Target: "n4.example.test", Port: 9100},
				good.SRV[1],
			}})
			rec.waitFor(t, "dns", "the recovered set", hasAddrs("n1.example.test:9100", "n4.example.test:9100"))
			waitStatus(t, m, "dns", func(s Status) bool { return s.Error == "" })
			srv.Set(good)
			rec.waitFor(t, "dns", "the first target again", hasAddrs("n1.example.test:9100"))
		})
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := len(rec.calls["other"]); n != otherSyncs {
		t.Errorf("another job was re-synced %d times by this one's failures", n-otherSyncs)
	}
}

func TestDNSTimeoutAndServfail(t *testing.T) {
	srv := dnsmasqtest.Start(t, dnsmasqtest.Records{SRV: []dnsmasqtest.SRV{{Name: "_node._tcp.example.test", Target: "n1.example.test", Port: 9100}}})
	validator := srv.Validating(t)

	t.Run("timeout", func(t *testing.T) {
		// One name times out (dnsmasq forwards it where nothing
		// answers); the other still gives its targets, and the job's
		// first sync waits for neither more than the query timeout.
		m, rec, reg, _ := startWith(t, dnsConfig(srv.Addr), `
scrape_configs:
- job_name: t
  dns_sd_configs:
  - names: [_node._tcp.example.test, _x._tcp.`+dnsmasqtest.TimeoutDomain+`]
    refresh_interval: 1h
`)
		rec.waitFor(t, "t", "the answering name's target", hasAddrs("n1.example.test:9100"))
		if n := counter(t, reg, "shoal_sd_refresh_failures_total", "t", "dns"); n != 1 {
			t.Errorf("failures = %v, want 1 (the name that timed out)", n)
		}
		if st := m.Status()["t"]; len(st) != 1 || !strings.Contains(st[0].Error, "timeout") {
			t.Errorf("status %+v, want a timeout", st)
		}
	})

	t.Run("servfail", func(t *testing.T) {
		m, rec, _, _ := startWith(t, dnsConfig(validator.Addr), `
scrape_configs:
- job_name: s
  dns_sd_configs:
  - names: [_node._tcp.example.test]
    refresh_interval: 1h
`)
		rec.waitFor(t, "s", "an empty first sync", hasAddrs())
		if st := m.Status()["s"]; len(st) != 1 || !strings.Contains(st[0].Error, "SERVFAIL") {
			t.Errorf("status %+v, want SERVFAIL", st)
		}
	})

	t.Run("servfail then next server", func(t *testing.T) {
		// As Prometheus: a server that fails is skipped for the next.
		m, rec, _, _ := startWith(t, dnsConfig(validator.Addr, srv.Addr), `
scrape_configs:
- job_name: s
  dns_sd_configs:
  - names: [_node._tcp.example.test]
    refresh_interval: 1h
`)
		rec.waitFor(t, "s", "the target from the second server", hasAddrs("n1.example.test:9100"))
		if st := m.Status()["s"]; len(st) != 1 || st[0].Error != "" {
			t.Errorf("status %+v, want no error", st)
		}
	})
}

// TestDNSResolvConf checks the system path: servers, search list and ndots
// from a resolv.conf, read at every refresh.
func TestDNSResolvConf(t *testing.T) {
	srv := dnsmasqtest.Start(t, dnsmasqtest.Records{SRV: []dnsmasqtest.SRV{{Name: "_node._tcp.example.test", Target: "n1.example.test", Port: 9100}}})
	host, port, _ := net.SplitHostPort(srv.Addr)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+host+"\nsearch example.test\noptions ndots:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{DNS: DNSConfig{ResolvConf: resolv, Timeout: 300 * time.Millisecond, resolvPort: port}}
	m, rec, reg, _ := startWith(t, cfg, `
scrape_configs:
- job_name: r
  dns_sd_configs:
  - names: [_node._tcp]
    refresh_interval: 100ms
`)
	// "_node._tcp." is refused (dnsmasq knows only example.test); the
	// search domain then finds it. The meta label keeps the name as
	// configured, as in Prometheus.
	gs := rec.waitFor(t, "r", "the target through the search list", hasAddrs("n1.example.test:9100"))
	wantLabels(t, gs, "n1.example.test:9100", dnsLabels("n1.example.test:9100", "_node._tcp", "n1.example.test.", "9100", ""))

	// resolv.conf is read at every refresh: one that loses its servers
	// is a failure like any other, and the target stays.
	if err := os.WriteFile(resolv, []byte("# no servers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, reg, "shoal_sd_refresh_failures_total", "r", "dns", 1)
	waitStatus(t, m, "r", func(s Status) bool { return strings.Contains(s.Error, "no nameserver") && s.Targets == 1 })
	rec.waitFor(t, "r", "the last good target", hasAddrs("n1.example.test:9100"))
}

func waitCounter(t *testing.T, reg *prometheus.Registry, name, job, mech string, atLeast float64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for counter(t, reg, name, job, mech) < atLeast {
		if time.Now().After(deadline) {
			t.Fatalf("%s{job=%q,mechanism=%q} stayed below %v", name, job, mech, atLeast)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter: no event to wait on
	}
}

func waitStatus(t *testing.T, m *Manager, job string, ok func(Status) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := m.Status()[job]
		if len(st) > 0 && ok(st[0]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: status never as wanted; last %+v", job, st)
		}
		time.Sleep(5 * time.Millisecond) // polling a snapshot: no event to wait on
	}
}
