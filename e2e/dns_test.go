package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-scraper/shoal/discovery/dnsmasqtest"
)

// TestDNSDiscovery runs shoal against Debian's dnsmasq: the targets of a
// dns_sd_configs job follow the SRV records as they change; a target the
// change leaves alone keeps its schedule and series (no staleness markers,
// same phase); relabeling sees the meta labels; and with the DNS server
// gone the last good targets stay, the failure counted and shown on
// /targets.
func TestDNSDiscovery(t *testing.T) {
	t.Parallel()
	exA := newExporter(t, reply{body: "e2e_dns 1\n"})
	exB := newExporter(t, reply{body: "e2e_dns 2\n"})
	exC := newExporter(t, reply{body: "e2e_dns 3\n"})
	port := func(e *exporter) int {
		_, p, _ := net.SplitHostPort(e.addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	const name = "_e2e._tcp.example.test"
	srv := func(hosts ...string) []dnsmasqtest.SRV {
		var out []dnsmasqtest.SRV
		for _, h := range hosts {
			e := map[string]*exporter{"a": exA, "b": exB, "c": exC}[h]
			out = append(out, dnsmasqtest.SRV{Name: name, Target: h + ".example.test", Port: port(e)})
		}
		return out
	}
	dns := dnsmasqtest.Start(t, dnsmasqtest.Records{SRV: srv("a", "b")})

	// The SRV targets' names do not resolve outside dnsmasq, so the
	// address is rebuilt from the port the record carries (every
	// exporter is on 127.0.0.1); the record's target and the name it
	// was found under become labels.
	p := startShoal(t, fmt.Sprintf(`
scrape_configs:
  - job_name: dns
    scrape_interval: 500ms
    dns_sd_configs:
      - names: [%s]
        refresh_interval: 200ms
    relabel_configs:
      - source_labels: [__meta_dns_srv_record_port]
        target_label: __address__
        replacement: 127.0.0.1:$1
      - source_labels: [__meta_dns_srv_record_target]
        regex: '(.*)\.'
        target_label: host
      - source_labels: [__meta_dns_name]
        target_label: dns_name
`, name), "--discovery.dns.servers="+dns.Addr)

	for _, c := range []struct {
		e    *exporter
		host string
	}{{exA, "a.example.test"}, {exB, "b.example.test"}} {
		p.waitSamples(20*time.Second, 0, 1, "e2e_dns", lbl("job", "dns", "instance", c.e.addr, "host", c.host, "dns_name", name))
	}

	// B leaves the records, C joins; A stays.
	mark := p.count()
	dns.Set(dnsmasqtest.Records{SRV: srv("a", "c")})
	p.waitSamples(20*time.Second, mark, 1, "e2e_dns", lbl("job", "dns", "instance", exC.addr, "host", "c.example.test"))
	checkGone(t, p, mark, exB)
	p.waitSamples(20*time.Second, mark, 3, "up", lbl("job", "dns", "instance", exA.addr))
	for _, s := range p.since(mark) {
		if s.labels["instance"] == exA.addr && s.stale {
			t.Errorf("%v: the unchanged target A got a staleness marker", s)
		}
	}
	// Same target, same schedule: one scrape per interval on A's grid
	// across the change, none doubled.
	checkGrid(t, "A across the change", gridFor("dns", exA.addr, 500*time.Millisecond),
		timestamps(p.find(0, "up", lbl("job", "dns", "instance", exA.addr))))

	// The DNS server goes away: A and C stay, and the failure shows.
	mark = p.count()
	dns.Stop()
	waitFor(t, 20*time.Second, "a DNS failure in shoal_sd_refresh_failures_total", func() (bool, string) {
		v, _ := p.metricValue("shoal_sd_refresh_failures_total", lbl("job", "dns", "mechanism", "dns"))
		return v >= 2, fmt.Sprintf("%v", v)
	})
	waitFor(t, 20*time.Second, "the failure on /targets", func() (bool, string) {
		html := p.mustGet("/targets")
		return strings.Contains(html, "Discovery failing, keeping the last good targets") &&
			strings.Contains(html, "dns_sd_configs[0] (dns): 2 targets"), "not shown yet"
	})
	p.waitSamples(20*time.Second, p.count(), 2, "e2e_dns", lbl("job", "dns", "instance", exA.addr))
	p.waitSamples(20*time.Second, p.count(), 2, "e2e_dns", lbl("job", "dns", "instance", exC.addr))
	for _, s := range p.since(mark) {
		if s.stale {
			t.Errorf("%v: a staleness marker while DNS was down", s)
		}
	}

	// Back: the records are followed again.
	mark = p.count()
	dns.Set(dnsmasqtest.Records{SRV: srv("b")})
	p.waitSamples(20*time.Second, mark, 1, "e2e_dns", lbl("job", "dns", "instance", exB.addr))
	checkGone(t, p, mark, exA)
}

func timestamps(ss []sample) []int64 {
	out := make([]int64, len(ss))
	for i, s := range ss {
		out[i] = s.ts
	}
	return out
}

// checkGone checks that the dns job's target at ex's address left after
// mark as a target removed from discovery does: a staleness marker for
// each of its series (whatever labels relabeling gave them) as their last
// line, and no request to ex afterwards.
func checkGone(t *testing.T, p *proc, mark int, ex *exporter) {
	t.Helper()
	tl := lbl("job", "dns", "instance", ex.addr)
	names := append([]string{"e2e_dns"}, syntheticNames...)
	waitFor(t, 20*time.Second, "staleness markers for every series of "+ex.addr, func() (bool, string) {
		var missing []string
		for _, n := range names {
			if !slices.ContainsFunc(p.since(mark), func(s sample) bool { return s.stale && s.is(n, tl) }) {
				missing = append(missing, n)
			}
		}
		return len(missing) == 0, fmt.Sprintf("none yet for %v", missing)
	})
	requests := len(ex.requests())
	p.waitSamples(20*time.Second, p.count(), 3, "up", nil)
	for _, n := range names {
		got := p.find(mark, n, tl)
		if last := got[len(got)-1]; !last.stale || slices.ContainsFunc(got[:len(got)-1], func(s sample) bool { return s.stale }) {
			t.Errorf("%s of %s after removal: %v, want its last line to be its only staleness marker", n, ex.addr, got)
		}
	}
	if n := len(ex.requests()); n > requests {
		t.Errorf("%s was scraped %d more times after its staleness markers", ex.addr, n-requests)
	}
}

// TestCheckConfigSD: `shoal check config` names file, line and field of
// service discovery mistakes, all of them in one run.
func TestCheckConfigSD(t *testing.T) {
	t.Parallel()
	bad := t.TempDir() + "/sd.yml"
	writeFile(t, bad, `scrape_configs:
  - job_name: dns
    dns_sd_configs:
      - names: [db.example.test]
        type: A
      - names: [_x._tcp.example.test]
        type: TXT
  - job_name: consul
    consul_sd_configs:
      - server: consul:8500/v1
        token: t
        authorization: {credentials: c}
      - services: [web]
        oauth2: {client_id: x}
`)
	cmd := exec.Command(shoalBin, "check", "config", bad)
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit code %d (%v), want 1:\n%s", code, err, out)
	}
	for _, want := range []string{
		bad + `:4: scrape_configs[0] (job "dns").dns_sd_configs[0]: a port is required in DNS-SD configs for all record types except SRV`,
		bad + `:7: scrape_configs[0] (job "dns").dns_sd_configs[1].type: invalid DNS-SD records type TXT`,
		bad + `:10: scrape_configs[1] (job "consul").consul_sd_configs[0].server: server "consul:8500/v1" must not hold a path`,
		bad + `:12: scrape_configs[1] (job "consul").consul_sd_configs[0]: at most one of consul SD token, authorization, or oauth2 can be configured`,
		bad + `:14: scrape_configs[1] (job "consul").consul_sd_configs[1]: field "oauth2" is not supported by shoal`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
