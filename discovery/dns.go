package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"

	"github.com/shoal-scraper/shoal/config"
)

// DNS service discovery, written to give the targets and meta labels of
// Prometheus v0.315.0's discovery/dns for the same answers, with the same
// lookup algorithm (resolv.conf re-read at every refresh, its search list
// and ndots, every server in turn, UDP with EDNS0 and TCP on truncation).
// Where shoal differs, on purpose:
//
//   - NXDOMAIN for every name of the search list is a failure that keeps the
//     last good targets (Prometheus takes it as "no targets"). A name with
//     no records of the asked type (NOERROR, no answers) is still "no
//     targets".
//   - An SRV record with port 0 or the root target ".", and an MX or NS
//     record naming ".", make the name's refresh fail (Prometheus would
//     make targets ":9100" or "host:0").
//   - Failures are counted and shown per job, not only logged.
//   - Servers can be given explicitly (DNSConfig.Servers, with ports), which
//     resolv.conf cannot express.

// The meta labels, as Prometheus names them.
const (
	dnsNameLabel            = model.MetaLabelPrefix + "dns_name"
	dnsSrvRecordTargetLabel = model.MetaLabelPrefix + "dns_srv_record_target"
	dnsSrvRecordPortLabel   = model.MetaLabelPrefix + "dns_srv_record_port"
	dnsMxRecordTargetLabel  = model.MetaLabelPrefix + "dns_mx_record_target"
	dnsNsRecordTargetLabel  = model.MetaLabelPrefix + "dns_ns_record_target"
)

// DNSConfig is how dns_sd_configs names are resolved.
type DNSConfig struct {
	// Servers ("host:port" or "[v6]:port") replace resolv.conf: they are
	// asked in order, and names are looked up exactly as written (no
	// search list). Empty means the system configuration.
	Servers []string
	// ResolvConf is read at every refresh when Servers is empty, as
	// Prometheus does. Default /etc/resolv.conf.
	ResolvConf string
	// Timeout bounds one query to one server. Default 2s, miekg/dns's
	// default and so Prometheus's.
	Timeout time.Duration

	// resolvPort replaces port 53 for resolv.conf's servers: tests point
	// a resolv.conf at a dnsmasq on a free port.
	resolvPort string
}

func (c DNSConfig) withDefaults() DNSConfig {
	if c.ResolvConf == "" {
		c.ResolvConf = "/etc/resolv.conf"
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	return c
}

// errNXDomain marks a name that no server knows, under any search domain.
var errNXDomain = errors.New("NXDOMAIN (the name does not exist)")

type dnsDiscoverer struct {
	job   string
	cfg   *config.DNSSDConfig
	res   DNSConfig
	qtype uint16
	log   *slog.Logger
	looks prometheus.Counter
	fails prometheus.Counter

	// last holds each name's last good group; owned by run.
	last map[string]*targetgroup.Group
}

func newDNSDiscoverer(job string, cfg *config.DNSSDConfig, res DNSConfig, log *slog.Logger, m *metrics) *dnsDiscoverer {
	qtype := map[string]uint16{"SRV": dns.TypeSRV, "A": dns.TypeA, "AAAA": dns.TypeAAAA, "MX": dns.TypeMX, "NS": dns.TypeNS}[cfg.QType()]
	return &dnsDiscoverer{
		job:   job,
		cfg:   cfg,
		res:   res,
		qtype: qtype,
		log:   log.With("job", job, "mechanism", "dns"),
		looks: m.refreshes.WithLabelValues(job, "dns"),
		fails: m.failures.WithLabelValues(job, "dns"),
		last:  map[string]*targetgroup.Group{},
	}
}

func (d *dnsDiscoverer) run(ctx context.Context, p *provider) {
	tick := time.NewTicker(time.Duration(d.cfg.RefreshInterval))
	defer tick.Stop()
	for {
		if !d.refresh(ctx, p) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refresh looks every name up at once and publishes. It returns false if
// ctx ended meanwhile (nothing is published or counted then).
func (d *dnsDiscoverer) refresh(ctx context.Context, p *provider) bool {
	names := slices.Compact(slices.Sorted(slices.Values(d.cfg.Names)))
	groups := make([]*targetgroup.Group, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { groups[i], errs[i] = d.lookupGroup(ctx, name) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return false
	}
	var failed []error
	for i, name := range names {
		d.looks.Inc()
		if errs[i] != nil {
			d.fails.Inc()
			d.log.Error("DNS refresh failed; keeping the last good targets", "name", name, "err", errs[i])
			failed = append(failed, errs[i])
			continue
		}
		d.last[name] = groups[i]
	}
	var out []*targetgroup.Group
	for _, name := range names {
		if g := d.last[name]; g != nil {
			out = append(out, g)
		}
	}
	p.publish(out, errors.Join(failed...))
	return true
}

// lookupGroup resolves one name into its target group (Source: the name).
func (d *dnsDiscoverer) lookupGroup(ctx context.Context, name string) (*targetgroup.Group, error) {
	resp, err := d.lookup(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", d.cfg.QType(), name, err)
	}
	g := &targetgroup.Group{Source: name, Targets: []model.LabelSet{}}
	hostPort := func(host string, port int) model.LabelValue {
		return model.LabelValue(net.JoinHostPort(host, strconv.Itoa(port)))
	}
	for _, rr := range resp.Answer {
		var addr, srvTarget, srvPort, mxTarget, nsTarget model.LabelValue
		switch r := rr.(type) {
		case *dns.SRV:
			if r.Target == "." || r.Target == "" {
				return nil, fmt.Errorf("SRV %s: record %q has no target", name, r.String())
			}
			if r.Port == 0 {
				return nil, fmt.Errorf("SRV %s: record %q has port 0", name, r.String())
			}
			srvTarget, srvPort = model.LabelValue(r.Target), model.LabelValue(strconv.Itoa(int(r.Port)))
			// The label keeps the rooted name; the address drops the
			// final dot, as Prometheus does.
			addr = hostPort(strings.TrimRight(r.Target, "."), int(r.Port))
		case *dns.MX:
			if r.Mx == "." || r.Mx == "" {
				return nil, fmt.Errorf("MX %s: record %q has no target", name, r.String())
			}
			mxTarget = model.LabelValue(r.Mx)
			addr = hostPort(strings.TrimRight(r.Mx, "."), d.cfg.Port)
		case *dns.NS:
			if r.Ns == "." || r.Ns == "" {
				return nil, fmt.Errorf("NS %s: record %q has no target", name, r.String())
			}
			nsTarget = model.LabelValue(r.Ns)
			addr = hostPort(strings.TrimRight(r.Ns, "."), d.cfg.Port)
		case *dns.A:
			addr = hostPort(r.A.String(), d.cfg.Port)
		case *dns.AAAA:
			addr = hostPort(r.AAAA.String(), d.cfg.Port)
		case *dns.CNAME:
			// An A or AAAA answer through an alias carries the CNAME
			// first.
			continue
		default:
			d.log.Warn("ignoring an unexpected DNS record", "name", name, "record", rr.String())
			continue
		}
		g.Targets = append(g.Targets, model.LabelSet{
			model.AddressLabel:      addr,
			dnsNameLabel:            model.LabelValue(name),
			dnsSrvRecordTargetLabel: srvTarget,
			dnsSrvRecordPortLabel:   srvPort,
			dnsMxRecordTargetLabel:  mxTarget,
			dnsNsRecordTargetLabel:  nsTarget,
		})
	}
	// Servers may rotate the order of answers; the order means nothing to
	// the engine, so sort to let an unchanged set compare equal.
	slices.SortStableFunc(g.Targets, func(a, b model.LabelSet) int {
		return strings.Compare(string(a[model.AddressLabel]), string(b[model.AddressLabel]))
	})
	return g, nil
}

// lookup follows Prometheus's lookupWithSearchPath: the first name of the
// search list that a server answers with NOERROR wins (possibly with no
// records); NXDOMAIN everywhere is errNXDomain; anything else is an error.
func (d *dnsDiscoverer) lookup(ctx context.Context, name string) (*dns.Msg, error) {
	conf := &dns.ClientConfig{Ndots: 1}
	servers := d.res.Servers
	if len(servers) == 0 {
		var err error
		conf, err = dns.ClientConfigFromFile(d.res.ResolvConf)
		if err != nil {
			return nil, fmt.Errorf("could not load resolv.conf: %w", err)
		}
		port := conf.Port
		if d.res.resolvPort != "" {
			port = d.res.resolvPort
		}
		for _, s := range conf.Servers {
			servers = append(servers, net.JoinHostPort(s, port))
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("no nameserver in %s", d.res.ResolvConf)
		}
	}
	var errs []error
	for _, fqdn := range conf.NameList(name) {
		resp, err := d.fromAnyServer(ctx, fqdn, servers)
		switch {
		case err != nil:
			errs = append(errs, err)
		case resp.Rcode == dns.RcodeSuccess:
			return resp, nil
		}
	}
	if len(errs) == 0 {
		return nil, errNXDomain
	}
	return nil, errors.Join(errs...)
}

// fromAnyServer asks each server in turn until one gives a usable answer:
// NOERROR or NXDOMAIN. SERVFAIL, REFUSED, timeouts and the like move on to
// the next server.
func (d *dnsDiscoverer) fromAnyServer(ctx context.Context, fqdn string, servers []string) (*dns.Msg, error) {
	var last error
	for _, srv := range servers {
		resp, err := d.ask(ctx, fqdn, srv)
		if err != nil {
			last = fmt.Errorf("%s at %s: %w", fqdn, srv, err)
			continue
		}
		if resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError {
			return resp, nil
		}
		last = fmt.Errorf("%s at %s: %s", fqdn, srv, dns.RcodeToString[resp.Rcode])
	}
	return nil, last
}

// ask sends one query over UDP with EDNS0, and again over TCP if the answer
// was truncated.
func (d *dnsDiscoverer) ask(ctx context.Context, fqdn, server string) (*dns.Msg, error) {
	for _, network := range []string{"udp", "tcp"} {
		msg := new(dns.Msg)
		msg.SetQuestion(fqdn, d.qtype)
		if network == "udp" {
			msg.SetEdns0(dns.DefaultMsgSize, false)
		}
		c := &dns.Client{Net: network, Timeout: d.res.Timeout}
		conn, err := c.DialContext(ctx, server)
		if err != nil {
			return nil, err
		}
		// miekg/dns waits by deadlines only; cut the wait short when ctx
		// ends (shutdown, or the config entry removed).
		stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
		resp, _, err := c.ExchangeWithConnContext(ctx, msg, conn)
		stop()
		_ = conn.Close()
		if err != nil {
			return nil, err
		}
		if !resp.Truncated {
			return resp, nil
		}
	}
	return nil, errors.New("truncated answer over TCP")
}
