package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/util/strutil"

	"github.com/shoal-scraper/shoal/config"
)

// Consul service discovery over Consul's HTTP API, written to give the
// targets and meta labels of Prometheus v0.315.0's discovery/consul (which
// uses hashicorp/consul/api v1.34.4) for the same catalog:
//
//   - without a datacenter, GET /v1/agent/self once for the agent's;
//   - with no services listed, or with tags or a filter, a blocking watch
//     of GET /v1/catalog/services picks the services (by name and tags);
//   - each service is watched with blocking GET /v1/health/service/NAME
//     (every instance, passing or not; tag= for each tag), and becomes one
//     target group whose Source is the service name;
//   - between two queries of one watch at least refresh_interval passes
//     (a ticker, as in Prometheus); a failed query waits RetryInterval
//     first.
//
// Where shoal differs: failures keep the service's last good targets *and*
// are counted and shown per job; a response that is not what the API
// documents (bad JSON, an entry without Node or Service, a body over
// maxConsulBody) is such a failure rather than a panic or an empty set; an
// X-Consul-Index that goes backwards resets the watch, as Consul's API docs
// ask of clients.

// The meta labels, as Prometheus names them.
const (
	consulAddressLabel        = model.MetaLabelPrefix + "consul_address"
	consulNodeLabel           = model.MetaLabelPrefix + "consul_node"
	consulMetadataLabel       = model.MetaLabelPrefix + "consul_metadata_"
	consulServiceMetaLabel    = model.MetaLabelPrefix + "consul_service_metadata_"
	consulTagsLabel           = model.MetaLabelPrefix + "consul_tags"
	consulServiceLabel        = model.MetaLabelPrefix + "consul_service"
	consulHealthLabel         = model.MetaLabelPrefix + "consul_health"
	consulServiceAddressLabel = model.MetaLabelPrefix + "consul_service_address"
	consulServicePortLabel    = model.MetaLabelPrefix + "consul_service_port"
	consulDCLabel             = model.MetaLabelPrefix + "consul_dc"
	consulNamespaceLabel      = model.MetaLabelPrefix + "consul_namespace"
	consulPartitionLabel      = model.MetaLabelPrefix + "consul_partition"
	consulTaggedAddressLabel  = model.MetaLabelPrefix + "consul_tagged_address_"
	consulServiceIDLabel      = model.MetaLabelPrefix + "consul_service_id"
)

// maxConsulBody bounds one Consul response. The health of a service with
// 10k instances is about 20 MB.
const maxConsulBody = 128 << 20

// ConsulConfig tunes consul_sd_configs watches.
type ConsulConfig struct {
	// WatchTimeout is the wait= of blocking queries; the HTTP request
	// may take 15s more (Consul adds up to wait/16 of jitter). Default
	// 2m, as in Prometheus.
	WatchTimeout time.Duration
	// RetryInterval is the pause after a failed query. Default 15s, as
	// in Prometheus.
	RetryInterval time.Duration

	// requestSlack is how much longer than WatchTimeout a request may
	// take (default 15s, as Prometheus); tests shorten it.
	requestSlack time.Duration
}

func (c ConsulConfig) withDefaults() ConsulConfig {
	if c.WatchTimeout <= 0 {
		c.WatchTimeout = 2 * time.Minute
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 15 * time.Second
	}
	if c.requestSlack <= 0 {
		c.requestSlack = 15 * time.Second
	}
	return c
}

type consulDiscoverer struct {
	job   string
	cfg   *config.ConsulSDConfig
	opts  ConsulConfig
	log   *slog.Logger
	looks prometheus.Counter
	fails prometheus.Counter

	client *http.Client
	base   url.URL // scheme, host and path prefix

	mu         sync.Mutex
	dc         string
	catalogErr error
	catalogOK  bool // the catalog (if watched) answered at least once
	services   map[string]*consulService
	published  bool
}

// consulService is one watched service's state, guarded by consulDiscoverer.mu.
type consulService struct {
	group  *targetgroup.Group // last good; nil before the first success
	err    error              // of the last query
	tried  bool               // a query has completed
	cancel context.CancelFunc // catalog mode only
}

func newConsulDiscoverer(job string, cfg *config.ConsulSDConfig, opts ConsulConfig, log *slog.Logger, m *metrics) *consulDiscoverer {
	return &consulDiscoverer{
		job:      job,
		cfg:      cfg,
		opts:     opts,
		log:      log.With("job", job, "mechanism", "consul", "server", cfg.Server),
		looks:    m.refreshes.WithLabelValues(job, "consul"),
		fails:    m.failures.WithLabelValues(job, "consul"),
		services: map[string]*consulService{},
	}
}

// catalogMode reports whether services are picked from the catalog, as
// Prometheus decides it.
func (d *consulDiscoverer) catalogMode() bool {
	return len(d.cfg.Services) == 0 || len(d.cfg.Tags) != 0 || d.cfg.Filter != ""
}

func (d *consulDiscoverer) run(ctx context.Context, p *provider) {
	// Last, once every watch has returned: idle keep-alive connections
	// hold goroutines of their own.
	defer func() {
		if d.client != nil {
			d.client.CloseIdleConnections()
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	// Set up the client and learn the datacenter, retrying until both
	// work: a CA file may appear later, the agent may be down.
	for {
		err := d.setup(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		d.failed("setup", err)
		d.mu.Lock()
		d.catalogErr = err
		d.mu.Unlock()
		d.publish(p, true)
		if !sleep(ctx, d.opts.RetryInterval) {
			return
		}
	}
	d.mu.Lock()
	d.catalogErr = nil
	d.mu.Unlock()
	if d.cfg.Datacenter == "" {
		d.log = d.log.With("datacenter", d.dc)
	}

	if !d.catalogMode() {
		d.mu.Lock()
		d.catalogOK = true
		for _, name := range d.cfg.Services {
			if d.services[name] == nil {
				d.services[name] = &consulService{}
				wg.Go(func() { d.watchService(ctx, p, name) })
			}
		}
		d.mu.Unlock()
		<-ctx.Done()
		return
	}
	d.watchCatalog(ctx, p, &wg)
}

// setup builds the HTTP client and, without a configured datacenter, asks
// the agent for its own.
func (d *consulDiscoverer) setup(ctx context.Context) error {
	if d.client == nil {
		c, base, err := newConsulClient(d.cfg, d.opts.WatchTimeout, d.opts.requestSlack)
		if err != nil {
			return err
		}
		d.client, d.base = c, base
	}
	if d.cfg.Datacenter != "" {
		d.dc = d.cfg.Datacenter
		return nil
	}
	var self struct {
		Config map[string]any
	}
	d.looks.Inc()
	if _, err := d.get(ctx, "/v1/agent/self", nil, 0, &self); err != nil {
		return fmt.Errorf("retrieving the datacenter name: %w", err)
	}
	dc, ok := self.Config["Datacenter"].(string)
	if !ok {
		return fmt.Errorf("retrieving the datacenter name: invalid value '%v' for Config.Datacenter", self.Config["Datacenter"])
	}
	d.dc = dc
	return nil
}

// newConsulClient returns the HTTP client for cfg and the base URL of its
// API. The client's timeout allows a whole blocking query.
func newConsulClient(cfg *config.ConsulSDConfig, watch, slack time.Duration) (*http.Client, url.URL, error) {
	tlsCfg, err := cfg.TLSConfig.Build()
	if err != nil {
		return nil, url.URL{}, err
	}
	tr := &http.Transport{
		TLSClientConfig:   tlsCfg,
		ForceAttemptHTTP2: cfg.EnableHTTP2,
		// A blocking query holds its connection for the whole wait.
		IdleConnTimeout:     2 * watch,
		MaxIdleConnsPerHost: 16,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
	}
	base := url.URL{Scheme: cfg.Scheme, Host: strings.TrimSpace(cfg.Server), Path: cfg.PathPrefix}
	if scheme, rest, ok := strings.Cut(base.Host, "://"); ok {
		switch scheme {
		case "unix":
			sock := rest
			tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}
			base.Scheme, base.Host = "http", "localhost"
		default: // http or https, as validated
			base.Scheme, base.Host = scheme, rest
		}
	}
	c := &http.Client{Transport: tr, Timeout: watch + slack}
	if !cfg.FollowRedirects {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c, base, nil
}

// get queries path with the options every query carries and decodes the
// JSON answer into out. index > 0 or wait makes it a blocking query. It
// returns X-Consul-Index (0 if absent).
func (d *consulDiscoverer) get(ctx context.Context, path string, q url.Values, index uint64, out any) (uint64, error) {
	if q == nil {
		q = url.Values{}
	}
	if d.cfg.Datacenter != "" {
		q.Set("dc", d.cfg.Datacenter)
	}
	if d.cfg.Namespace != "" {
		q.Set("ns", d.cfg.Namespace)
	}
	if d.cfg.Partition != "" {
		q.Set("partition", d.cfg.Partition)
	}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
	}
	u := d.base
	u.Path += path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	if d.cfg.Token != "" {
		req.Header.Set("X-Consul-Token", d.cfg.Token)
	}
	auth, err := d.cfg.AuthHeader()
	if err != nil {
		return 0, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxConsulBody+1))
	if err != nil {
		return 0, fmt.Errorf("reading the answer to %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		return 0, fmt.Errorf("%s: unexpected response code %d (%s)", path, resp.StatusCode, msg)
	}
	if len(body) > maxConsulBody {
		return 0, fmt.Errorf("%s: answer larger than %d bytes", path, maxConsulBody)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return 0, fmt.Errorf("%s: malformed answer: %w", path, err)
	}
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	return idx, nil
}

// blockingQuery adds the options of a watch query.
func (d *consulDiscoverer) blockingQuery(filter string) url.Values {
	q := url.Values{}
	if d.cfg.AllowStale {
		q.Set("stale", "")
	}
	q.Set("wait", strconv.FormatInt(d.opts.WatchTimeout.Milliseconds(), 10)+"ms")
	for _, k := range slices.Sorted(maps.Keys(d.cfg.NodeMeta)) {
		q.Add("node-meta", k+":"+d.cfg.NodeMeta[k])
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	return q
}

// nextIndex applies Consul's rules for a watch's index: an index that goes
// backwards resets the watch (the next query does not block, and its
// answer counts as new); an unchanged one means nothing changed.
func nextIndex(last, got uint64) (next uint64, changed bool) {
	if got < last {
		return 0, true
	}
	return got, got != last || last == 0
}

// watchCatalog watches the service list and runs one watch per service it
// selects, until ctx ends.
func (d *consulDiscoverer) watchCatalog(ctx context.Context, p *provider, wg *sync.WaitGroup) {
	tick := time.NewTicker(time.Duration(d.cfg.RefreshInterval))
	defer tick.Stop()
	var index uint64
	for {
		var services map[string][]string
		d.looks.Inc()
		got, err := d.get(ctx, "/v1/catalog/services", d.blockingQuery(d.cfg.Filter), index, &services)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.failed("catalog", err)
			d.mu.Lock()
			d.catalogErr, d.catalogOK = err, true
			d.mu.Unlock()
			d.publish(p, true)
			if !sleep(ctx, d.opts.RetryInterval) {
				return
			}
		} else {
			var changed bool
			index, changed = nextIndex(index, got)
			d.mu.Lock()
			errChanged := d.catalogErr != nil
			d.catalogErr, d.catalogOK = nil, true
			if changed {
				d.applyCatalog(ctx, p, wg, services)
			}
			d.mu.Unlock()
			if changed || errChanged {
				// Not forced: new services publish once tried.
				d.publish(p, false)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// applyCatalog starts watches for newly selected services and stops those
// of services gone from the catalog. Caller holds d.mu.
func (d *consulDiscoverer) applyCatalog(ctx context.Context, p *provider, wg *sync.WaitGroup, services map[string][]string) {
	for name, tags := range services {
		if !d.selects(name, tags) || d.services[name] != nil {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		d.services[name] = &consulService{cancel: cancel}
		wg.Go(func() { d.watchService(wctx, p, name) })
	}
	for name, s := range d.services {
		if _, ok := services[name]; !ok {
			s.cancel()
			delete(d.services, name)
		}
	}
}

// selects is Prometheus's shouldWatch: the service is listed (or no list
// is given) and has every configured tag.
func (d *consulDiscoverer) selects(name string, tags []string) bool {
	if len(d.cfg.Services) > 0 && !slices.Contains(d.cfg.Services, name) {
		return false
	}
	for _, want := range d.cfg.Tags {
		if !slices.Contains(tags, want) {
			return false
		}
	}
	return true
}

// watchService keeps one service's group current until ctx ends.
func (d *consulDiscoverer) watchService(ctx context.Context, p *provider, name string) {
	tick := time.NewTicker(time.Duration(d.cfg.RefreshInterval))
	defer tick.Stop()
	path := "/v1/health/service/" + url.PathEscape(name)
	var index uint64
	for {
		q := d.blockingQuery(d.cfg.HealthFilter)
		for _, t := range d.cfg.Tags {
			q.Add("tag", t)
		}
		var entries []consulEntry
		d.looks.Inc()
		got, err := d.get(ctx, path, q, index, &entries)
		if ctx.Err() != nil {
			return
		}
		var group *targetgroup.Group
		if err == nil {
			group, err = d.group(name, entries)
		}
		d.mu.Lock()
		s := d.services[name]
		if s == nil { // removed from the catalog meanwhile
			d.mu.Unlock()
			return
		}
		first := !s.tried
		s.tried = true
		publish := first
		if err != nil {
			d.failed("service "+name, err)
			publish = publish || s.err == nil || s.err.Error() != err.Error()
			s.err = err
		} else {
			var changed bool
			index, changed = nextIndex(index, got)
			publish = publish || s.err != nil || (changed && !groupEqual(s.group, group))
			s.err = nil
			if changed {
				s.group = group
			}
		}
		d.mu.Unlock()
		if publish {
			d.publish(p, false)
		} else {
			p.touch()
		}
		if err != nil && !sleep(ctx, d.opts.RetryInterval) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// consulEntry is one element of /v1/health/service/NAME: the fields
// Prometheus reads.
type consulEntry struct {
	Node *struct {
		Node            string
		Address         string
		TaggedAddresses map[string]string
		Meta            map[string]string
	}
	Service *struct {
		ID        string
		Tags      []string
		Address   string
		Port      int
		Meta      map[string]string
		Namespace string
		Partition string
	}
	Checks []struct {
		CheckID string
		Status  string
	}
}

// group turns a service's health entries into its target group, with
// Prometheus's labels.
func (d *consulDiscoverer) group(name string, entries []consulEntry) (*targetgroup.Group, error) {
	g := &targetgroup.Group{
		Source: name,
		Labels: model.LabelSet{
			consulServiceLabel: model.LabelValue(name),
			consulDCLabel:      model.LabelValue(d.dc),
		},
		Targets: make([]model.LabelSet, 0, len(entries)),
	}
	sep := d.cfg.TagSeparator
	for i, e := range entries {
		if e.Node == nil || e.Service == nil {
			return nil, fmt.Errorf("service %q: entry %d has no Node or no Service", name, i)
		}
		// The separator also surrounds the list, so relabel regexes
		// such as ".*,prod,.*" need not care about position.
		tags := sep + strings.Join(e.Service.Tags, sep) + sep
		// A service address, when set, wins over the node's: the
		// service may be registered for another host.
		host := e.Node.Address
		if e.Service.Address != "" {
			host = e.Service.Address
		}
		port := strconv.Itoa(e.Service.Port)
		ls := model.LabelSet{
			model.AddressLabel:        model.LabelValue(net.JoinHostPort(host, port)),
			consulAddressLabel:        model.LabelValue(e.Node.Address),
			consulNodeLabel:           model.LabelValue(e.Node.Node),
			consulNamespaceLabel:      model.LabelValue(e.Service.Namespace),
			consulPartitionLabel:      model.LabelValue(e.Service.Partition),
			consulTagsLabel:           model.LabelValue(tags),
			consulServiceAddressLabel: model.LabelValue(e.Service.Address),
			consulServicePortLabel:    model.LabelValue(port),
			consulServiceIDLabel:      model.LabelValue(e.Service.ID),
			consulHealthLabel:         model.LabelValue(aggregatedStatus(e)),
		}
		for k, v := range e.Node.Meta {
			ls[consulMetadataLabel+model.LabelName(strutil.SanitizeLabelName(k))] = model.LabelValue(v)
		}
		for k, v := range e.Service.Meta {
			ls[consulServiceMetaLabel+model.LabelName(strutil.SanitizeLabelName(k))] = model.LabelValue(v)
		}
		for k, v := range e.Node.TaggedAddresses {
			ls[consulTaggedAddressLabel+model.LabelName(strutil.SanitizeLabelName(k))] = model.LabelValue(v)
		}
		g.Targets = append(g.Targets, ls)
	}
	return g, nil
}

// aggregatedStatus is consul/api's HealthChecks.AggregatedStatus, which
// Prometheus puts in __meta_consul_health: maintenance wins, then
// critical, warning, passing; an unknown status gives "".
func aggregatedStatus(e consulEntry) string {
	var passing, warning, critical, maintenance bool
	for _, c := range e.Checks {
		if c.CheckID == "_node_maintenance" || strings.HasPrefix(c.CheckID, "_service_maintenance:") {
			maintenance = true
			continue
		}
		switch c.Status {
		case "passing":
			passing = true
		case "warning":
			warning = true
		case "critical":
			critical = true
		default:
			return ""
		}
	}
	switch {
	case maintenance:
		return "maintenance"
	case critical:
		return "critical"
	case warning:
		return "warning"
	case passing:
		return "passing"
	}
	return "passing"
}

// publish hands the provider every service's last good group and the
// current problems. Until the catalog and every service have been tried
// once it waits, so the job's first sync is complete; force publishes
// anyway (a failure before any service is known).
func (d *consulDiscoverer) publish(p *provider, force bool) {
	d.mu.Lock()
	if !d.published && !force {
		if !d.catalogOK {
			d.mu.Unlock()
			return
		}
		for _, s := range d.services {
			if !s.tried {
				d.mu.Unlock()
				return
			}
		}
	}
	d.published = true
	var groups []*targetgroup.Group
	errs := []error{d.catalogErr}
	for _, name := range slices.Sorted(maps.Keys(d.services)) {
		s := d.services[name]
		if s.group != nil {
			groups = append(groups, s.group)
		}
		errs = append(errs, s.err)
	}
	d.mu.Unlock()
	p.publish(groups, errors.Join(errs...))
}

func (d *consulDiscoverer) failed(what string, err error) {
	d.fails.Inc()
	d.log.Error("Consul refresh failed; keeping the last good targets", "query", what, "err", err)
}

func groupEqual(a, b *targetgroup.Group) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Source != b.Source || !maps.Equal(a.Labels, b.Labels) || len(a.Targets) != len(b.Targets) {
		return false
	}
	for i := range a.Targets {
		if !maps.Equal(a.Targets[i], b.Targets[i]) {
			return false
		}
	}
	return true
}

// sleep waits for d or ctx, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
