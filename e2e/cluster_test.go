package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/shoal-scraper/shoal/internal/zktest"
)

// Cluster mode, end to end: shoal processes in one pool over a real
// ZooKeeper, scraping in-test exporters that record every request. What a
// user cares about is checked where it happens: at the exporters (each due
// instant scraped once, by one member) and on the members' sink output
// (no staleness markers for targets that only moved).

const (
	clusterInterval = time.Second
	clusterSession  = 2 * time.Second
	clusterHandover = 500 * time.Millisecond
)

// pool is a set of shoal members sharing one ZooKeeper root.
type pool struct {
	t       *testing.T
	servers string
	root    string
	cfgPath string
	extra   []string
	members map[string]*proc
	retired []*proc // stopped members, whose output is still checked
}

func newPool(t *testing.T, servers []string, extra ...string) *pool {
	cfgPath := filepath.Join(t.TempDir(), "global.yml")
	writeFile(t, cfgPath, fmt.Sprintf("global:\n  scrape_interval: %v\n  scrape_timeout: 800ms\n", clusterInterval))
	return &pool{
		t:       t,
		servers: strings.Join(servers, ","),
		root:    "/e2e-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + fmt.Sprintf("-%d", time.Now().UnixNano()),
		cfgPath: cfgPath,
		extra:   extra,
		members: map[string]*proc{},
	}
}

func (p *pool) zkArgs() []string {
	return []string{"--zookeeper.servers=" + p.servers, "--zookeeper.root=" + p.root}
}

// start starts member id and waits until it answers.
func (p *pool) start(id string) *proc {
	p.t.Helper()
	args := append(p.zkArgs(), "--cluster.member-id="+id, "--sink=stdout",
		"--zookeeper.session-timeout="+clusterSession.String(), "--cluster.handover-delay="+clusterHandover.String())
	m := startShoalFile(p.t, p.cfgPath, append(args, p.extra...)...)
	p.members[id] = m
	return m
}

// stop stops member id gracefully and waits for it to exit.
func (p *pool) stop(id string) {
	p.t.Helper()
	m := p.members[id]
	m.signal(syscall.SIGTERM)
	if code := m.waitExit(30 * time.Second); code != 0 {
		p.t.Fatalf("member %s exited with %d after SIGTERM:\n%s", id, code, tail(m.stderr.String(), 30))
	}
	p.retired = append(p.retired, m)
	delete(p.members, id)
}

func (p *pool) cli(args ...string) (string, error) {
	p.t.Helper()
	out, err := exec.Command(shoalBin, append(args, p.zkArgs()...)...).CombinedOutput()
	return string(out), err
}

func (p *pool) putJob(name string, targets []*exporter) {
	p.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "job_name: %s\nstatic_configs:\n- targets:\n", name)
	for _, e := range targets {
		fmt.Fprintf(&b, "  - %s\n", e.addr)
	}
	f := filepath.Join(p.t.TempDir(), name+".yml")
	writeFile(p.t, f, b.String())
	if out, err := p.cli("jobs", "put", f); err != nil {
		p.t.Fatalf("shoal jobs put: %v\n%s", err, out)
	}
}

// view is a member's /api/v1/cluster.
type view struct {
	Self       string `json:"self"`
	Registered bool   `json:"registered"`
	Suspended  bool   `json:"suspended"`
	Members    []struct {
		ID     string `json:"id"`
		Slot   int    `json:"slot"`
		Active bool   `json:"active"`
	} `json:"members"`
	OwnedTargets int `json:"owned_targets"`
}

func (m *proc) view() (view, error) {
	code, body, err := m.get("/api/v1/cluster")
	if err != nil || code != 200 {
		return view{}, fmt.Errorf("GET /api/v1/cluster: %d %v", code, err)
	}
	var v view
	err = json.Unmarshal([]byte(body), &v)
	return v, err
}

// waitSettled waits until every member sees every member active and the
// owned targets add up to want.
func (p *pool) waitSettled(want int) {
	p.t.Helper()
	waitFor(p.t, 30*time.Second, fmt.Sprintf("%d members owning %d targets in all", len(p.members), want), func() (bool, string) {
		total := 0
		var seen []string
		for id, m := range p.members {
			v, err := m.view()
			if err != nil {
				return false, err.Error()
			}
			active := 0
			for _, mv := range v.Members {
				if mv.Active {
					active++
				}
			}
			seen = append(seen, fmt.Sprintf("%s: %d active, owns %d", id, active, v.OwnedTargets))
			if active != len(p.members) || !v.Registered {
				return false, strings.Join(seen, "; ")
			}
			total += v.OwnedTargets
		}
		return total == want, strings.Join(seen, "; ")
	})
}

// checkScrapes asserts, at the exporters, that between from and to every
// exporter was scraped once per interval: no two requests closer than half
// an interval (a double), and none further apart than maxGap (misses).
func checkScrapes(t *testing.T, what string, exps []*exporter, from, to time.Time, maxGap time.Duration) {
	t.Helper()
	bad := 0
	for _, e := range exps {
		var in []time.Time
		for _, a := range e.requests() {
			if !a.Before(from) && !a.After(to) {
				in = append(in, a)
			}
		}
		problem := ""
		switch {
		case len(in) == 0:
			problem = "no scrape at all"
		case in[0].Sub(from) > maxGap:
			problem = fmt.Sprintf("first scrape %v after the window opened", in[0].Sub(from).Round(time.Millisecond))
		case to.Sub(in[len(in)-1]) > maxGap:
			problem = fmt.Sprintf("last scrape %v before the window closed", to.Sub(in[len(in)-1]).Round(time.Millisecond))
		}
		for i := 1; i < len(in) && problem == ""; i++ {
			switch d := in[i].Sub(in[i-1]); {
			case d < clusterInterval/2:
				problem = fmt.Sprintf("scraped twice %v apart at %s", d.Round(time.Millisecond), in[i].Format("15:04:05.000"))
			case d > maxGap:
				problem = fmt.Sprintf("not scraped for %v until %s", d.Round(time.Millisecond), in[i].Format("15:04:05.000"))
			}
		}
		if problem != "" {
			bad++
			if bad <= 10 {
				t.Errorf("%s: target %s: %s", what, e.addr, problem)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d targets broke once-per-interval between %s and %s", what, bad, len(exps), from.Format("15:04:05.000"), to.Format("15:04:05.000"))
	}
}

// noStaleMarkers asserts that no member, running or stopped, wrote a
// staleness marker for job: its targets only ever moved between members.
func (p *pool) noStaleMarkers(job string) {
	p.t.Helper()
	procs := slices.Clone(p.retired)
	for _, m := range p.members {
		procs = append(procs, m)
	}
	for _, m := range procs {
		for _, s := range m.all() {
			if s.stale && s.labels["job"] == job {
				p.t.Errorf("a member wrote a staleness marker for a target that only moved: %s", s.line)
				return
			}
		}
	}
}

func exporters(t *testing.T, n int) []*exporter {
	out := make([]*exporter, n)
	for i := range out {
		out[i] = newExporter(t, reply{body: "# TYPE e2e_value gauge\ne2e_value 1\n"})
	}
	return out
}

// TestCluster runs three members over 300 exporters on the standalone
// ZooKeeper through steady state, job changes, a bad job, a rolling
// restart, a crash and a ZooKeeper restart.
func TestCluster(t *testing.T) {
	srv := zktest.OwnServer(t) // restarted below: no other test may use it meanwhile
	exps := exporters(t, 300)
	p := newPool(t, []string{srv.Addr})
	p.putJob("main", exps)
	for _, id := range []string{"m1", "m2", "m3"} {
		p.start(id)
	}
	p.waitSettled(len(exps))

	t.Run("steady state: each target scraped once per interval by one member", func(t *testing.T) {
		from := time.Now()
		time.Sleep(4 * clusterInterval) // the observation window, not a synchronisation
		checkScrapes(t, "steady state", exps, from, time.Now(), 3*clusterInterval/2)
		// At the sinks: each target's samples come from one member only.
		owner := map[string]string{}
		for id, m := range p.members {
			for _, s := range m.all() {
				if s.name == "up" && s.labels["job"] == "main" && s.ts >= from.UnixMilli() {
					if o, ok := owner[s.labels["instance"]]; ok && o != id {
						t.Errorf("target %s scraped by %s and %s", s.labels["instance"], o, id)
						return
					}
					owner[s.labels["instance"]] = id
				}
			}
		}
		if len(owner) != len(exps) {
			t.Errorf("%d targets seen at the sinks, want %d", len(owner), len(exps))
		}
		// The /cluster page lists every member with its own target count.
		page := p.members["m1"].mustGet("/cluster")
		for id := range p.members {
			if !strings.Contains(page, ">"+id+"<") {
				t.Errorf("/cluster does not list %s", id)
			}
		}
		perMember := map[string]int{}
		for _, id := range owner {
			perMember[id]++
		}
		for id, n := range perMember {
			if !strings.Contains(page, fmt.Sprintf("<td>%s</td><td><a href=", id)) || !strings.Contains(page, fmt.Sprintf("<td>%d</td>", n)) {
				t.Errorf("/cluster does not show %s owning %d targets:\n%s", id, n, page)
			}
		}
	})

	t.Run("jobs put rejects a bad file with its errors and writes nothing", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "bad.yml")
		writeFile(t, f, "scrape_configs:\n- job_name: fine\n- job_name: bad\n  scrape_interval: 10s\n  scrape_timeout: 20s\n  bogus: 1\n")
		out, err := p.cli("jobs", "put", f)
		if err == nil || !strings.Contains(out, "nothing was written") || !strings.Contains(out, `unknown field "bogus"`) || !strings.Contains(out, "scrape_timeout") {
			t.Errorf("jobs put of a bad file: err=%v\n%s", err, out)
		}
		if out, _ := p.cli("jobs", "ls"); strings.TrimSpace(out) != "main" {
			t.Errorf("after a rejected put, jobs ls says:\n%s", out)
		}
	})

	t.Run("jobs put and rm reach every member within 1s", func(t *testing.T) {
		extra := exporters(t, 3)
		for _, step := range []struct {
			what string
			do   func()
			want float64
		}{
			{"put", func() { p.putJob("extra", extra) }, 2},
			{"rm", func() {
				if out, err := p.cli("jobs", "rm", "extra"); err != nil {
					t.Fatalf("jobs rm: %v\n%s", err, out)
				}
			}, 1},
		} {
			step.do()
			done := time.Now()
			waitFor(t, 10*time.Second, "every member to have the job change", func() (bool, string) {
				for id, m := range p.members {
					if v, _ := m.metricValue("shoal_cluster_jobs", lbl("state", "valid")); v != step.want {
						return false, fmt.Sprintf("%s has %v valid jobs", id, v)
					}
				}
				return true, ""
			})
			if took := time.Since(done); took > time.Second {
				t.Errorf("jobs %s took %v to reach every member, want ≤ 1s", step.what, took)
			} else {
				t.Logf("jobs %s reached all %d members in ≤ %v", step.what, len(p.members), took.Round(time.Millisecond))
			}
		}
	})

	t.Run("a bad job written into ZooKeeper is skipped and reported; the others run on", func(t *testing.T) {
		conn, _ := zktest.Connect(t, []string{srv.Addr}, 5*time.Second)
		from := time.Now()
		if _, err := conn.Create(p.root+"/jobs/broken", []byte("job_name: broken\nscrape_interval: sometimes\n"), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "every member to report the bad job", func() (bool, string) {
			for id, m := range p.members {
				if v, _ := m.metricValue("shoal_cluster_job_invalid", lbl("job", "broken")); v != 1 {
					return false, id + " does not report it"
				}
				var tj struct {
					Data struct {
						Jobs []struct{ Name, Error string }
					}
				}
				code, body, err := m.get("/targets?format=json")
				if err != nil || code != 200 || json.Unmarshal([]byte(body), &tj) != nil {
					return false, fmt.Sprintf("%s /targets: %d %v", id, code, err)
				}
				found := false
				for _, j := range tj.Data.Jobs {
					found = found || (j.Name == "broken" && strings.Contains(j.Error, "sometimes"))
				}
				if !found {
					return false, id + " /targets does not show the error"
				}
			}
			return true, ""
		})
		if out, _ := p.cli("jobs", "ls"); !strings.Contains(out, "broken\tINVALID") || !strings.Contains(out, "main\n") {
			t.Errorf("jobs ls does not flag the bad job:\n%s", out)
		}
		time.Sleep(2 * clusterInterval) // observation window
		checkScrapes(t, "with a bad job", exps, from, time.Now(), 3*clusterInterval/2)
		if err := conn.Delete(p.root+"/jobs/broken", -1); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("rolling restart: no double, at most one miss, no staleness markers", func(t *testing.T) {
		slotsBefore := map[string]int{}
		for id, m := range p.members {
			v, err := m.view()
			if err != nil {
				t.Fatal(err)
			}
			for _, mv := range v.Members {
				if mv.ID == id {
					slotsBefore[id] = mv.Slot
				}
			}
		}
		from := time.Now()
		for _, id := range []string{"m1", "m2", "m3"} {
			p.stop(id)
			p.start(id)
			p.waitSettled(len(exps))
		}
		time.Sleep(2 * clusterInterval) // observation window after the last hand-over
		// The issue allows one missed scrape per target; the announced
		// hand-over instant misses none.
		checkScrapes(t, "rolling restart", exps, from, time.Now(), 3*clusterInterval/2)
		p.noStaleMarkers("main")
		for id, m := range p.members {
			v, _ := m.view()
			for _, mv := range v.Members {
				if mv.ID == id && mv.Slot != slotsBefore[id] {
					t.Errorf("%s came back in slot %d, had %d: it should get its own targets back", id, mv.Slot, slotsBefore[id])
				}
			}
		}
	})

	t.Run("SIGKILL: a crashed member's targets are taken over within session timeout + one interval", func(t *testing.T) {
		from := time.Now()
		victim := p.members["m2"]
		victim.signal(syscall.SIGKILL)
		victim.waitExit(10 * time.Second)
		p.retired = append(p.retired, victim)
		delete(p.members, "m2")
		p.waitSettled(len(exps))
		time.Sleep(2 * clusterInterval) // observation window
		// A scrape due just after the kill is missed until ZooKeeper expires
		// the session; then the first due instant of the new owner.
		checkScrapes(t, "crash", exps, from, time.Now(), clusterSession+clusterInterval+clusterInterval/2)
		p.start("m2")
		p.waitSettled(len(exps))
	})

	t.Run("ZooKeeper down longer than the session timeout: scraping goes on, members recover without restarting", func(t *testing.T) {
		from := time.Now()
		srv.Stop(t)
		time.Sleep(clusterSession + clusterInterval) // the outage, not a synchronisation
		srv.Start(t)
		p.waitSettled(len(exps))
		p.putJob("after-restart", exporters(t, 2))
		waitFor(t, 10*time.Second, "every member to see a job put after the restart", func() (bool, string) {
			for id, m := range p.members {
				if v, _ := m.metricValue("shoal_cluster_jobs", lbl("state", "valid")); v != 2 {
					return false, fmt.Sprintf("%s has %v valid jobs", id, v)
				}
			}
			return true, ""
		})
		time.Sleep(2 * clusterInterval) // observation window
		// Nothing missed, during the outage or after it.
		checkScrapes(t, "through the ZooKeeper outage", exps, from, time.Now(), 3*clusterInterval/2)
		out, err := p.cli("members")
		if err != nil || !strings.Contains(out, "3 members, 302 targets") {
			t.Errorf("shoal members after the restart: %v\n%s", err, out)
		}
	})
}

// TestClusterEnsembleLeaderLoss kills the leader of a three-node ZooKeeper
// ensemble under two members: they carry on without a restart, and job
// changes still reach them.
func TestClusterEnsembleLeaderLoss(t *testing.T) {
	ens := zktest.OwnEnsemble(t)
	exps := exporters(t, 30)
	p := newPool(t, ens.Addrs)
	p.putJob("main", exps)
	p.start("e1")
	p.start("e2")
	p.waitSettled(len(exps))

	leader := ens.Leader(t)
	ens.StopNode(t, leader)
	from := time.Now()
	p.putJob("second", exporters(t, 2))
	waitFor(t, 30*time.Second, "both members to see a job put after the leader died", func() (bool, string) {
		for id, m := range p.members {
			if v, _ := m.metricValue("shoal_cluster_jobs", lbl("state", "valid")); v != 2 {
				return false, fmt.Sprintf("%s has %v valid jobs", id, v)
			}
		}
		return true, ""
	})
	p.waitSettled(len(exps) + 2)
	time.Sleep(2 * clusterInterval) // observation window
	// Scraping never waits for ZooKeeper: while the ensemble elects a
	// leader the members scrape on; only a session lost for good would
	// pause them.
	checkScrapes(t, "leader loss", exps, from, time.Now(), clusterSession+clusterInterval+clusterInterval/2)
	ens.StartNode(t, leader)
	if out, err := p.cli("members"); err != nil || !strings.Contains(out, "2 members, 32 targets") {
		t.Errorf("shoal members: %v\n%s", err, out)
	}
}

// tcpProxy forwards a loopback port to a server; cut drops every
// connection and refuses new ones until restore, as a network partition
// between one member and ZooKeeper would.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target}
	p.ln = listenFree(t)
	p.addr = p.ln.Addr().String()
	go p.accept(p.ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); s.Close() }()
		go func() { _, _ = io.Copy(c, s); c.Close() }()
	}
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: listening again on %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.accept(ln)
}

// TestClusterPartition cuts one member off from ZooKeeper while the others
// keep their sessions: it stops scraping before ZooKeeper expires its
// session and the peers take its targets (a gap, never a double), and it
// rejoins on its own when the connection is back.
func TestClusterPartition(t *testing.T) {
	zkAddr := zktest.Addr(t)
	proxy := newTCPProxy(t, zkAddr)
	exps := exporters(t, 60)
	p := newPool(t, []string{zkAddr})
	p.putJob("main", exps)
	p.start("p1")
	p.start("p2")
	direct := p.servers
	p.servers = proxy.addr
	cut := p.start("p3")
	p.servers = direct
	p.waitSettled(len(exps))

	from := time.Now()
	proxy.cut()
	waitFor(t, 20*time.Second, "the cut-off member to suspend itself", func() (bool, string) {
		v, err := cut.view()
		return err == nil && v.Suspended, fmt.Sprintf("%+v %v", v, err)
	})
	// The peers take over once ZooKeeper has expired the session.
	delete(p.members, "p3")
	p.waitSettled(len(exps))
	time.Sleep(2 * clusterInterval) // observation window
	checkScrapes(t, "partition", exps, from, time.Now(), clusterSession+2*clusterInterval)
	if !strings.Contains(cut.stderr.String(), "cut off from ZooKeeper while a peer is not") {
		t.Errorf("the cut-off member did not say why it stopped:\n%s", tail(cut.stderr.String(), 20))
	}

	proxy.restore()
	p.members["p3"] = cut
	p.waitSettled(len(exps))
	if v, _ := cut.metricValue("shoal_cluster_registrations_total", nil); v != 2 {
		t.Errorf("shoal_cluster_registrations_total = %v after the partition healed, want 2 (registered again)", v)
	}
	healed := time.Now()
	time.Sleep(3 * clusterInterval) // observation window
	checkScrapes(t, "after the partition healed", exps, healed, time.Now(), 3*clusterInterval/2)
}

// TestClusterStall stops one member's process (SIGSTOP) for longer than
// its session timeout, as a VM pause would: ZooKeeper expires the session
// and the peers take its targets. When the process continues, its overdue
// targets must not all fire once more (a doubled scrape each): it holds
// scraping until its session is confirmed, finds it gone, and registers
// again.
func TestClusterStall(t *testing.T) {
	zkAddr := zktest.Addr(t)
	exps := exporters(t, 60)
	p := newPool(t, []string{zkAddr})
	p.putJob("main", exps)
	p.start("s1")
	p.start("s2")
	frozen := p.start("s3")
	p.waitSettled(len(exps))

	from := time.Now()
	frozen.signal(syscall.SIGSTOP)
	time.Sleep(clusterSession + 3*clusterInterval/2) // the pause, not a synchronisation
	frozen.signal(syscall.SIGCONT)
	p.waitSettled(len(exps))
	time.Sleep(2 * clusterInterval) // observation window
	checkScrapes(t, "stall", exps, from, time.Now(), clusterSession+2*clusterInterval)
	if v, _ := frozen.metricValue("shoal_stalls_total", nil); v < 1 {
		t.Errorf("shoal_stalls_total = %v on the stopped member, want ≥ 1", v)
	}
	if v, _ := frozen.metricValue("shoal_cluster_registrations_total", nil); v != 2 {
		t.Errorf("shoal_cluster_registrations_total = %v, want 2 (its session expired during the pause)", v)
	}
}

// TestClusterGlobalReload changes the global section of a member's
// configuration file (external labels) and sends SIGHUP: the jobs from
// ZooKeeper run on under the new globals, without a restart.
func TestClusterGlobalReload(t *testing.T) {
	zkAddr := zktest.Addr(t)
	exps := exporters(t, 2)
	p := newPool(t, []string{zkAddr})
	p.putJob("main", exps)
	m := p.start("g1")
	p.waitSettled(len(exps))
	writeFile(t, p.cfgPath, fmt.Sprintf("global:\n  scrape_interval: %v\n  scrape_timeout: 800ms\n  external_labels:\n    region: moon\n", clusterInterval))
	mark := m.count()
	m.signal(syscall.SIGHUP)
	m.waitMatch(20*time.Second, mark, `up{region="moon"}`, func(s sample) bool {
		return s.name == "up" && s.labels["region"] == "moon" && s.labels["job"] == "main"
	})
	// A broken file keeps the running globals.
	writeFile(t, p.cfgPath, "global:\n  scrape_interval: often\n")
	m.signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the failed reload to show", func() (bool, string) {
		v, _ := m.metricValue("shoal_config_last_reload_successful", nil)
		return v == 0, fmt.Sprint(v)
	})
	mark = m.count()
	m.waitMatch(20*time.Second, mark, `up{region="moon"} after a failed reload`, func(s sample) bool {
		return s.name == "up" && s.labels["region"] == "moon"
	})
}
