package discovery

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// fakeConsul is an in-test Consul agent: the endpoints consul_sd_configs
// uses, with the semantics of Consul's HTTP API documentation (1.9 to 1.21):
//
//   - GET /v1/agent/self: {"Config": {"Datacenter": …}}.
//   - GET /v1/catalog/services: service name → union of its instances'
//     tags; node-meta=key:value filters nodes.
//   - GET /v1/health/service/NAME: every instance (passing or not) as
//     {Node, Service, Checks}; each tag= must be among the instance's tags.
//   - Blocking queries: X-Consul-Index on every answer (one index for the
//     whole catalog, raised by every write, which the docs allow: "a
//     blocking request is no guarantee of a change"); with index=N where N
//     is the current index or later, the answer waits until a write or
//     for wait= (default 5m, at most 10m).
//
// Faults are injected per path: a status, a malformed body, an entry
// without Service, or a hang longer than the client waits.
type fakeConsul struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	index     uint64
	changed   chan struct{} // closed and replaced at every write
	dc        string
	instances []instance
	faults    map[string][]string      // path → pending faults, in order
	taken     map[string]chan struct{} // path → closed when a request takes a fault (fail)
	requests  []*http.Request
	hang      chan struct{} // closed at the end of the test
}

type instance struct {
	Node    string
	Address string
	Meta    map[string]string
	Tagged  map[string]string
	Service string
	ID      string
	SvcAddr string
	Port    int
	Tags    []string
	SvcMeta map[string]string
	Checks  []string // statuses; "maintenance" adds Consul's maintenance check
}

func newFakeConsul(t *testing.T, prefix string) *fakeConsul {
	f := &fakeConsul{t: t, index: 10, changed: make(chan struct{}), dc: "dc1", faults: map[string][]string{}, taken: map[string]chan struct{}{}, hang: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc(prefix+"/v1/agent/self", f.agentSelf)
	mux.HandleFunc(prefix+"/v1/catalog/services", f.catalogServices)
	mux.HandleFunc(prefix+"/v1/health/service/{name}", f.healthService)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(f.hang)
		f.srv.Close()
	})
	return f
}

func (f *fakeConsul) host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

// set replaces the catalog: a write, so blocked queries return.
func (f *fakeConsul) set(in ...instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.instances = in
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

// restore sets the index back, as restoring a snapshot into a new cluster
// does.
func (f *fakeConsul) restore(index uint64, in ...instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.instances, f.index = in, index
	close(f.changed)
	f.changed = make(chan struct{})
}

// fail queues faults for the next requests to path: "500", "json",
// "noservice" or "hang". The channel it returns is closed once a request
// has taken the first of them.
func (f *fakeConsul) fail(path string, faults ...string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[path] = append(f.faults[path], faults...)
	ch := make(chan struct{})
	f.taken[path] = ch
	return ch
}

func (f *fakeConsul) requestsTo(path string) []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*http.Request
	for _, r := range f.requests {
		if strings.HasSuffix(r.URL.Path, path) {
			out = append(out, r)
		}
	}
	return out
}

// begin records r, applies a queued fault (reporting whether it answered),
// and blocks as a blocking query would. It returns the index to answer
// with.
func (f *fakeConsul) begin(w http.ResponseWriter, r *http.Request, key string) (uint64, bool) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(r.Context()))
	var fault string
	if q := f.faults[key]; len(q) > 0 {
		fault, f.faults[key] = q[0], q[1:]
		if ch := f.taken[key]; ch != nil {
			close(ch)
			delete(f.taken, key)
		}
	}
	f.mu.Unlock()
	switch fault {
	case "500":
		http.Error(w, "rpc error making call: No cluster leader", http.StatusInternalServerError)
		return 0, true
	case "hang":
		select {
		case <-r.Context().Done():
		case <-f.hang:
		}
		return 0, true
	}
	idx, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	wait := 5 * time.Minute
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			http.Error(w, "Invalid wait time", http.StatusBadRequest)
			return 0, true
		}
		wait = min(d, 10*time.Minute)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	// Consul blocks while its index is at most the one asked for: also
	// when the asked one is from before a restore (higher than the
	// current), until the wait ends.
	for idx > 0 {
		f.mu.Lock()
		cur, ch := f.index, f.changed
		f.mu.Unlock()
		if cur > idx {
			break
		}
		select {
		case <-ch:
			continue
		case <-timer.C:
		case <-r.Context().Done():
			return 0, true
		}
		break
	}
	f.mu.Lock()
	cur := f.index
	f.mu.Unlock()
	w.Header().Set("X-Consul-Index", strconv.FormatUint(cur, 10))
	w.Header().Set("Content-Type", "application/json")
	if fault == "json" {
		_, _ = w.Write([]byte(`[{"Node": {"Node": "n1", "Addr`))
		return 0, true
	}
	if fault == "noservice" {
		_, _ = w.Write([]byte(`[{"Node": {"Node": "n1", "Address": "10.0.0.1"}, "Service": null, "Checks": []}]`))
		return 0, true
	}
	return cur, false
}

func (f *fakeConsul) agentSelf(w http.ResponseWriter, r *http.Request) {
	if _, done := f.begin(w, r, "/v1/agent/self"); done {
		return
	}
	f.mu.Lock()
	dc := f.dc
	f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"Config": map[string]any{"Datacenter": dc, "NodeName": "agent"}, "Member": map[string]any{}})
}

// nodeMetaMatches applies node-meta=key:value filters.
func nodeMetaMatches(in instance, q url.Values) bool {
	for _, kv := range q["node-meta"] {
		k, v, _ := strings.Cut(kv, ":")
		if in.Meta[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeConsul) catalogServices(w http.ResponseWriter, r *http.Request) {
	if _, done := f.begin(w, r, "/v1/catalog/services"); done {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]string{}
	for _, in := range f.instances {
		if !nodeMetaMatches(in, r.URL.Query()) {
			continue
		}
		tags := out[in.Service]
		for _, t := range in.Tags {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		if tags == nil {
			tags = []string{}
		}
		out[in.Service] = tags
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (f *fakeConsul) healthService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, done := f.begin(w, r, "/v1/health/service/"+name); done {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	out := []map[string]any{}
	for _, in := range f.instances {
		if in.Service != name || !nodeMetaMatches(in, q) {
			continue
		}
		ok := true
		for _, t := range q["tag"] {
			ok = ok && slices.Contains(in.Tags, t)
		}
		if !ok {
			continue
		}
		var checks []map[string]any
		for i, st := range in.Checks {
			id := "check-" + strconv.Itoa(i)
			if st == "maintenance" {
				id, st = "_service_maintenance:"+in.ID, "critical"
			}
			checks = append(checks, map[string]any{"Node": in.Node, "CheckID": id, "Name": id, "Status": st, "ServiceID": in.ID})
		}
		out = append(out, map[string]any{
			"Node": map[string]any{
				"ID": "", "Node": in.Node, "Address": in.Address, "Datacenter": f.dc,
				"TaggedAddresses": in.Tagged, "Meta": in.Meta, "CreateIndex": 5, "ModifyIndex": 5,
			},
			"Service": map[string]any{
				"ID": in.ID, "Service": in.Service, "Tags": in.Tags, "Address": in.SvcAddr, "Port": in.Port,
				"Meta": in.SvcMeta, "Weights": map[string]int{"Passing": 1, "Warning": 1}, "EnableTagOverride": false,
				"Namespace": q.Get("ns"), "Partition": q.Get("partition"),
			},
			"Checks": checks,
		})
	}
	_ = json.NewEncoder(w).Encode(out)
}

func consulConfig() Config {
	return Config{Consul: ConsulConfig{WatchTimeout: 2 * time.Second, RetryInterval: 20 * time.Millisecond, requestSlack: 500 * time.Millisecond}}
}

var (
	web1 = instance{
		Node: "n1", Address: "10.0.0.1", Meta: map[string]string{"rack-id": "r1"}, Tagged: map[string]string{"lan": "10.0.0.1", "wan": "192.0.2.1"},
		Service: "web", ID: "web-1", Port: 8080, Tags: []string{"prod", "v2"}, SvcMeta: map[string]string{"version": "1.2", "app.kubernetes/name": "web"},
		Checks: []string{"passing", "warning"},
	}
	web2 = instance{Node: "n2", Address: "10.0.0.2", Service: "web", ID: "web-2", SvcAddr: "10.0.1.5", Port: 8081, Tags: []string{"prod"}, Checks: []string{"passing"}}
	db1  = instance{Node: "n3", Address: "10.0.0.3", Service: "db", ID: "db-1", Port: 5432, Tags: []string{"prod", "primary"}, Checks: []string{"maintenance", "passing"}}
	dev1 = instance{Node: "n4", Address: "10.0.0.4", Service: "dev", ID: "dev-1", Port: 9000, Tags: []string{"dev"}}
)

func TestConsulLabelsAndBlockingQueries(t *testing.T) {
	c := newFakeConsul(t, "")
	c.set(web1, db1)
	m, rec, _, _ := startWith(t, consulConfig(), fmt.Sprintf(`
scrape_configs:
- job_name: c
  consul_sd_configs:
  - server: %s
    token: acl-token
    services: [web, db]
    refresh_interval: 10ms
`, c.host()))
	gs := rec.waitFor(t, "c", "both services", hasAddrs("10.0.0.1:8080", "10.0.0.3:5432"))
	wantLabels(t, gs, "10.0.0.1:8080", model.LabelSet{
		"__address__":                                        "10.0.0.1:8080",
		"__meta_consul_address":                              "10.0.0.1",
		"__meta_consul_node":                                 "n1",
		"__meta_consul_namespace":                            "",
		"__meta_consul_partition":                            "",
		"__meta_consul_tags":                                 ",prod,v2,",
		"__meta_consul_service_address":                      "",
		"__meta_consul_service_port":                         "8080",
		"__meta_consul_service_id":                           "web-1",
		"__meta_consul_health":                               "warning",
		"__meta_consul_metadata_rack_id":                     "r1",
		"__meta_consul_service_metadata_version":             "1.2",
		"__meta_consul_service_metadata_app_kubernetes_name": "web",
		"__meta_consul_tagged_address_lan":                   "10.0.0.1",
		"__meta_consul_tagged_address_wan":                   "192.0.2.1",
	})
	if h := target(gs, "10.0.0.3:5432")["__meta_consul_health"]; h != "maintenance" {
		t.Errorf("health of an instance in maintenance: %q", h)
	}
	for _, g := range gs {
		if g.Labels["__meta_consul_dc"] != "dc1" || g.Labels["__meta_consul_service"] != model.LabelValue(g.Source) {
			t.Errorf("group %s labels %v: want the service and the agent's datacenter", g.Source, g.Labels)
		}
	}

	// A write reaches discovery through the blocked query.
	c.set(web1, web2, db1)
	gs = rec.waitFor(t, "c", "the new instance", hasAddrs("10.0.0.1:8080", "10.0.1.5:8081", "10.0.0.3:5432"))
	if got := target(gs, "10.0.1.5:8081")["__meta_consul_service_address"]; got != "10.0.1.5" {
		t.Errorf("service address label %q", got)
	}
	var blocking int
	for _, r := range c.requestsTo("/v1/health/service/web") {
		q := r.URL.Query()
		if r.Header.Get("X-Consul-Token") != "acl-token" || !q.Has("stale") || q.Get("wait") != "2000ms" || q.Has("dc") {
			t.Errorf("request %s (token %q): want the token, stale, wait=2000ms and no dc", r.URL, r.Header.Get("X-Consul-Token"))
		}
		if q.Get("index") != "" {
			blocking++
		}
	}
	if blocking == 0 {
		t.Error("no query carried index=: the watch is not blocking")
	}
	if n := len(c.requestsTo("/v1/agent/self")); n != 1 {
		t.Errorf("%d agent/self requests, want 1 (the datacenter, once)", n)
	}
	if st := m.Status()["c"]; len(st) != 1 || st[0].Error != "" || st[0].Targets != 3 || st[0].Mechanism != "consul" {
		t.Errorf("status %+v", st)
	}

	// An index that goes backwards (a restored cluster) resets the watch.
	c.restore(3, web2)
	rec.waitFor(t, "c", "the restored catalog", hasAddrs("10.0.1.5:8081"))
}

func TestConsulCatalogSelection(t *testing.T) {
	c := newFakeConsul(t, "/consul")
	c.set(web1, db1, dev1)
	_, rec, _, _ := startWith(t, consulConfig(), fmt.Sprintf(`
scrape_configs:
- job_name: c
  consul_sd_configs:
  - server: http://%s
    path_prefix: /consul
    datacenter: dc9
    tags: [prod]
    node_meta: {rack-id: r1}
    tag_separator: ';'
    allow_stale: false
    basic_auth: {username: u, password: p}
    refresh_interval: 10ms
`, c.host()))
	// Only prod services on rack r1: web (web1), not db (its node has
	// no rack) nor dev.
	gs := rec.waitFor(t, "c", "the selected service", hasAddrs("10.0.0.1:8080"))
	if got := target(gs, "10.0.0.1:8080")["__meta_consul_tags"]; got != ";prod;v2;" {
		t.Errorf("tags with separator ';': %q", got)
	}
	if gs[0].Labels["__meta_consul_dc"] != "dc9" {
		t.Errorf("dc label %q, want the configured datacenter", gs[0].Labels["__meta_consul_dc"])
	}
	if n := len(c.requestsTo("/v1/agent/self")); n != 0 {
		t.Errorf("asked the agent for the datacenter although it is configured")
	}
	for _, r := range c.requestsTo("/v1/health/service/web") {
		q := r.URL.Query()
		user, pass, ok := r.BasicAuth()
		if q.Get("dc") != "dc9" || q.Has("stale") || q.Get("tag") != "prod" || q.Get("node-meta") != "rack-id:r1" || !ok || user != "u" || pass != "p" {
			t.Errorf("request %s: want dc=dc9, no stale, tag=prod, node-meta and basic auth", r.URL)
		}
	}

	// A new matching service appears; the old one goes away.
	other := web1
	other.Service, other.ID, other.Port = "api", "api-1", 9090
	c.set(other, db1, dev1)
	rec.waitFor(t, "c", "the new service only", hasAddrs("10.0.0.1:9090"))
	c.set(db1, dev1)
	rec.waitFor(t, "c", "no service left", hasAddrs())
}

// TestConsulFailuresKeepLastGood injects every kind of bad answer into one
// service's watch and checks that its last good targets stay, the failure
// is counted and shown, and the other service's targets keep following.
func TestConsulFailuresKeepLastGood(t *testing.T) {
	c := newFakeConsul(t, "")
	c.set(web1, db1)
	m, rec, reg, _ := startWith(t, consulConfig(), fmt.Sprintf(`
scrape_configs:
- job_name: c
  consul_sd_configs:
  - server: %s
    services: [web, db]
    refresh_interval: 10ms
- job_name: s
  static_configs: [{targets: [s:1]}]
`, c.host()))
	rec.waitFor(t, "c", "both services", hasAddrs("10.0.0.1:8080", "10.0.0.3:5432"))
	for _, tc := range []struct{ fault, want string }{
		{"500", "unexpected response code 500"},
		{"json", "malformed answer"},
		{"noservice", "has no Node or no Service"},
		{"hang", "Client.Timeout"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			fails := counter(t, reg, "shoal_sd_refresh_failures_total", "c", "consul")
			taken := c.fail("/v1/health/service/web", tc.fault, tc.fault)
			// web's watch may be blocked in a query sent before the
			// faults were queued, which the change below would answer
			// with web2: change the catalog once a faulted query is in.
			select {
			case <-taken:
			case <-time.After(10 * time.Second):
				t.Fatal("no query of web took the fault")
			}
			// Meanwhile db changes, and web would too if it were read.
			from := rec.mark("c")
			db2 := db1
			db2.Port = 5433
			c.set(web2, db2)
			waitCounter(t, reg, "shoal_sd_refresh_failures_total", "c", "consul", fails+1)
			waitStatus(t, m, "c", func(s Status) bool { return strings.Contains(s.Error, tc.want) })
			// web recovers one retry (20 ms) after its last fault: the
			// state to see may already have been replaced.
			rec.waitSince(t, "c", from, "web's last good target and db's new one", hasAddrs("10.0.0.1:8080", "10.0.0.3:5433"))

			// The faults run out: web follows again, the error clears.
			rec.waitFor(t, "c", "web's current target", hasAddrs("10.0.1.5:8081", "10.0.0.3:5433"))
			waitStatus(t, m, "c", func(s Status) bool { return s.Error == "" })
			c.set(web1, db1)
			rec.waitFor(t, "c", "the first targets again", hasAddrs("10.0.0.1:8080", "10.0.0.3:5432"))
		})
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := len(rec.calls["s"]); n != 1 {
		t.Errorf("the static job was synced %d times, want once", n)
	}
}

func TestConsulUnreachable(t *testing.T) {
	// The agent is down at start: the job still gets a first (empty)
	// sync, the failure shows, and the targets arrive once it is up.
	c := newFakeConsul(t, "")
	c.set(web1)
	c.fail("/v1/agent/self", "500", "500")
	m, rec, _, _ := startWith(t, consulConfig(), fmt.Sprintf(`
scrape_configs:
- job_name: c
  consul_sd_configs:
  - server: %s
    services: [web]
    refresh_interval: 10ms
`, c.host()))
	rec.waitFor(t, "c", "the targets once the agent answers", hasAddrs("10.0.0.1:8080"))
	rec.mu.Lock()
	first := rec.calls["c"][0]
	rec.mu.Unlock()
	if len(addrs(first)) != 0 {
		t.Errorf("first sync %v, want empty (the agent failed)", addrs(first))
	}
	waitStatus(t, m, "c", func(s Status) bool { return s.Error == "" && s.Targets == 1 })
}

// TestReloadKeepsUnchangedProviders checks that a reload leaves an
// unchanged SD config running with its state (no new Consul session, no
// re-sync), starts new ones, and syncs only once the new ones answered.
func TestReloadKeepsUnchangedProviders(t *testing.T) {
	c := newFakeConsul(t, "")
	c.set(web1)
	dir := t.TempDir()
	file := dir + "/t.json"
	write(t, file, `[{"targets": ["f:1"]}]`)
	job := func(interval string, withFile bool) string {
		s := fmt.Sprintf(`
scrape_configs:
- job_name: c
  scrape_interval: %s
  static_configs: [{targets: [s:1]}]
  consul_sd_configs:
  - server: %s
    services: [web]
    refresh_interval: 10ms
`, interval, c.host())
		if withFile {
			s += fmt.Sprintf("  file_sd_configs: [{files: [%q]}]\n", file)
		}
		return s
	}
	_, rec, _, apply := startWith(t, consulConfig(), job("10s", false))
	rec.waitFor(t, "c", "static and Consul targets", hasAddrs("s:1", "10.0.0.1:8080"))
	rec.mu.Lock()
	syncs := len(rec.calls["c"])
	rec.mu.Unlock()

	apply(job("20s", false)) // not an SD change
	apply(job("20s", true))  // one more SD config
	rec.waitFor(t, "c", "the file's target added", hasAddrs("s:1", "10.0.0.1:8080", "f:1"))
	rec.mu.Lock()
	if n := len(rec.calls["c"]); n != syncs+1 {
		t.Errorf("%d syncs after the reloads, want exactly 1 (the complete new set)", n-syncs)
	}
	rec.mu.Unlock()
	if n := len(c.requestsTo("/v1/agent/self")); n != 1 {
		t.Errorf("the unchanged Consul config restarted (%d agent/self requests)", n)
	}

	apply(job("20s", false))
	rec.waitFor(t, "c", "the file's target gone", hasAddrs("s:1", "10.0.0.1:8080"))
}

// TestConsulUnixSocket: server: unix:///path talks HTTP over the socket,
// as Consul's Go client does.
func TestConsulUnixSocket(t *testing.T) {
	c := newFakeConsul(t, "")
	c.set(web1)
	sock := t.TempDir() + "/consul.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	us := &http.Server{Handler: c.srv.Config.Handler}
	go func() { _ = us.Serve(ln) }()
	t.Cleanup(func() { _ = us.Close() })
	_, rec, _, _ := startWith(t, consulConfig(), fmt.Sprintf(`
scrape_configs:
- job_name: c
  consul_sd_configs:
  - server: unix://%s
    services: [web]
`, sock))
	rec.waitFor(t, "c", "the target over the socket", hasAddrs("10.0.0.1:8080"))
}
