package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v3"
)

// Validation follows Prometheus v0.315.0 (config/config.go,
// discovery/file/file.go, common/config/http_config.go) and keeps its
// messages where it has one, so a search for a message finds Prometheus's
// documentation too. Messages about auth leave out oauth2, which shoal does
// not support.

func errTimeout(job string) error {
	return fmt.Errorf("scrape timeout greater than scrape interval for scrape config with job name %q", job)
}

// SetDefaults resolves a job against the globals it runs under, as
// Prometheus's ScrapeConfig.Validate does: a zero ScrapeInterval takes
// g's; a ScrapeTimeout set in the job must not exceed the interval, while
// one left unset takes g's capped at the interval; zero limits take g's;
// a nil ScrapeProtocols takes g's or a copy of DefaultScrapeProtocols. Zero
// ScrapeInterval and ScrapeTimeout in g mean the Prometheus defaults (1m,
// 10s), so SetDefaults(GlobalConfig{}) resolves a job with no global section.
//
// SetDefaults only fills fields that are zero, so calling it a second time
// with different globals changes nothing already filled: to re-resolve a job
// under new globals, parse it again. [Load] and [Parse] call it for every
// job; callers of [ParseJob] must call it before using the job. g is taken
// as valid (as Parse returns it, or built in Go). SetDefaults writes to c,
// so it must not run concurrently with readers of c. It returns nil or an
// [Errors] whose one element points at the job's scrape_timeout.
func (c *ScrapeConfig) SetDefaults(g GlobalConfig) error {
	def := DefaultGlobalConfig()
	if g.ScrapeInterval == 0 {
		g.ScrapeInterval = def.ScrapeInterval
	}
	if g.ScrapeTimeout == 0 {
		g.ScrapeTimeout = min(def.ScrapeTimeout, g.ScrapeInterval)
	}
	if c.ScrapeInterval == 0 {
		c.ScrapeInterval = g.ScrapeInterval
	}
	if c.ScrapeTimeout > c.ScrapeInterval {
		line := c.timeoutLine
		if line == 0 {
			line = c.Line
		}
		return Errors{&Error{File: c.source, Line: line, Path: joinPath(c.path, "scrape_timeout"), Err: errTimeout(c.JobName)}}
	}
	if c.ScrapeTimeout == 0 {
		c.ScrapeTimeout = min(g.ScrapeTimeout, c.ScrapeInterval)
	}
	inherit := func(v *uint, g uint) {
		if *v == 0 {
			*v = g
		}
	}
	inherit(&c.SampleLimit, g.SampleLimit)
	inherit(&c.TargetLimit, g.TargetLimit)
	inherit(&c.LabelLimit, g.LabelLimit)
	inherit(&c.LabelNameLengthLimit, g.LabelNameLengthLimit)
	inherit(&c.LabelValueLengthLimit, g.LabelValueLengthLimit)
	if c.BodySizeLimit == 0 {
		c.BodySizeLimit = g.BodySizeLimit
	}
	if c.ScrapeProtocols == nil {
		if g.ScrapeProtocols != nil {
			c.ScrapeProtocols = slices.Clone(g.ScrapeProtocols)
		} else {
			c.ScrapeProtocols = slices.Clone(DefaultScrapeProtocols)
		}
	}
	return nil
}

// SetDirectory joins relative file paths (bearer_token_file, basic_auth and
// authorization files, tls_config files, file_sd_configs files, and the
// same files of consul_sd_configs) to dir, as
// Prometheus does with the config file's directory. Absolute paths and empty
// fields are left alone. [Load] and [Parse] call it; [ParseJob] does not.
func (c *ScrapeConfig) SetDirectory(dir string) {
	join := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	join(&c.BearerTokenFile)
	if c.BasicAuth != nil {
		join(&c.BasicAuth.UsernameFile)
		join(&c.BasicAuth.PasswordFile)
	}
	if c.Authorization != nil {
		join(&c.Authorization.CredentialsFile)
	}
	join(&c.TLSConfig.CAFile)
	join(&c.TLSConfig.CertFile)
	join(&c.TLSConfig.KeyFile)
	for _, sd := range c.FileSDConfigs {
		for i := range sd.Files {
			join(&sd.Files[i])
		}
	}
	for _, sd := range c.ConsulSDConfigs {
		join(&sd.BearerTokenFile)
		if sd.BasicAuth != nil {
			join(&sd.BasicAuth.UsernameFile)
			join(&sd.BasicAuth.PasswordFile)
		}
		if sd.Authorization != nil {
			join(&sd.Authorization.CredentialsFile)
		}
		join(&sd.TLSConfig.CAFile)
		join(&sd.TLSConfig.CertFile)
		join(&sd.TLSConfig.KeyFile)
	}
}

// line returns the line recorded for field (a pointer to it), or else.
func (p *parser) line(field any, orElse int) int {
	if l, ok := p.keyLine[field]; ok {
		return l
	}
	return orElse
}

// checkGlobal validates the global section and fills its defaults.
func (p *parser) checkGlobal(g *GlobalConfig) {
	const path = "global"
	// The labels were decoded whole; find each name's own line for messages.
	lpath, fieldLine := joinPath(path, "external_labels"), p.line(&g.ExternalLabels, 0)
	g.ExternalLabels.Range(func(l labels.Label) {
		line := p.mapKeyLine(&g.ExternalLabels, l.Name, fieldLine)
		if !model.UTF8Validation.IsValidLabelName(l.Name) {
			p.addf(line, lpath, "%q is not a valid label name", l.Name)
		}
		if !model.LabelValue(l.Value).IsValid() {
			p.addf(line, lpath, "%q is not a valid label value", l.Value)
		}
	})
	def := DefaultGlobalConfig()
	if g.ScrapeInterval == 0 {
		g.ScrapeInterval = def.ScrapeInterval
	}
	if g.ScrapeTimeout > g.ScrapeInterval {
		p.addf(p.line(&g.ScrapeTimeout, 0), joinPath(path, "scrape_timeout"), "global scrape timeout greater than scrape interval")
	}
	if g.ScrapeTimeout == 0 {
		g.ScrapeTimeout = min(def.ScrapeTimeout, g.ScrapeInterval)
	}
	if g.ScrapeProtocols != nil {
		p.checkProtocols(g.ScrapeProtocols, &g.ScrapeProtocols, joinPath(path, "scrape_protocols"), "global config")
	}
}

// itemLine returns the line of the i-th entry of the list field (a pointer
// to a slice field the walk recorded), or orElse.
func (p *parser) itemLine(field any, i, orElse int) int {
	n := p.valNode[field]
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
		return orElse
	}
	return n.Content[i].Line
}

// mapKeyLine returns the line of key in the mapping recorded for field, or
// orElse. It does not expand merge keys.
func (p *parser) mapKeyLine(field any, key string, orElse int) int {
	n := p.valNode[field]
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return orElse
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return k.Line
		}
	}
	return orElse
}

// protocolProblem says what is wrong with a scrape protocol name, or "".
func protocolProblem(sp ScrapeProtocol) string {
	switch sp {
	case OpenMetricsText1_0_0, OpenMetricsText0_0_1, PrometheusText1_0_0, PrometheusText0_0_4:
		return ""
	case "PrometheusProto", "OpenMetricsText2.0.0":
		return fmt.Sprintf("scrape protocol %q is not supported by shoal", sp)
	}
	return fmt.Sprintf("unknown scrape protocol %q, supported: %v", sp, DefaultScrapeProtocols)
}

// checkProtocols validates a scrape_protocols list (field points at it, for
// lines); where names the job or "global config" as Prometheus does.
func (p *parser) checkProtocols(sps []ScrapeProtocol, field any, path, where string) {
	line := p.line(field, 0)
	if len(sps) == 0 {
		p.addf(line, path, "scrape_protocols cannot be empty for %s", where)
		return
	}
	seen := map[string]bool{}
	for i, sp := range sps {
		l := p.itemLine(field, i, line)
		if msg := protocolProblem(sp); msg != "" {
			p.addf(l, path, "%s for %s", msg, where)
			continue
		}
		if key := strings.ToLower(string(sp)); seen[key] {
			p.addf(l, path, "duplicated protocol in scrape_protocols, got %v for %s", sps, where)
		} else {
			seen[key] = true
		}
	}
}

// patFileSDName is Prometheus's rule for file_sd paths: only the last path
// element may contain '*', and the name ends in .json, .yml or .yaml.
var patFileSDName = regexp.MustCompile(`^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`)

// checkJob validates everything about a job that does not depend on the
// globals. It also sets static group Sources and normalises
// Authorization.Type, as Prometheus does.
func (p *parser) checkJob(c *ScrapeConfig) {
	path, at := c.path, func(field any) int { return p.line(field, c.Line) }
	if c.JobName == "" {
		p.addf(at(&c.JobName), path, "job_name is empty")
	}
	job := fmt.Sprintf("scrape config with job name %q", c.JobName)

	if c.Scheme != "http" && c.Scheme != "https" {
		p.addf(at(&c.Scheme), joinPath(path, "scheme"), "scheme must be \"http\" or \"https\", got %q", c.Scheme)
	}
	if c.ScrapeProtocols != nil {
		p.checkProtocols(c.ScrapeProtocols, &c.ScrapeProtocols, joinPath(path, "scrape_protocols"), job)
	}
	if c.FallbackScrapeProtocol != "" {
		if msg := protocolProblem(c.FallbackScrapeProtocol); msg != "" {
			p.addf(at(&c.FallbackScrapeProtocol), joinPath(path, "fallback_scrape_protocol"), "invalid fallback_scrape_protocol for %s: %s", job, msg)
		}
	}

	p.checkAuth(c, at)
	p.checkTLS(&c.TLSConfig, joinPath(path, "tls_config"), at)

	for i, sd := range c.FileSDConfigs {
		sdPath := fmt.Sprintf("%s.file_sd_configs[%d]", path, i)
		if len(sd.Files) == 0 {
			p.addf(p.line(sd, c.Line), sdPath, "file service discovery config must contain at least one path name in \"files\"")
		}
		for j, f := range sd.Files {
			if !patFileSDName.MatchString(f) {
				p.addf(p.itemLine(&sd.Files, j, p.line(&sd.Files, c.Line)), fmt.Sprintf("%s.files[%d]", sdPath, j),
					"path name %q is not valid for file discovery (only the last path element may contain '*', and it must end in .json, .yml or .yaml)", f)
			}
		}
		if sd.RefreshInterval <= 0 {
			p.addf(p.line(&sd.RefreshInterval, c.Line), joinPath(sdPath, "refresh_interval"), "refresh_interval must be positive")
		}
	}

	for i, g := range c.StaticConfigs {
		g.Source = strconv.Itoa(i)
		if len(c.RelabelConfigs) > 0 {
			// Relabeling may rewrite __address__; the engine checks the result.
			continue
		}
		lines := p.targetLines[g]
		for j, t := range g.Targets {
			addr := string(t[model.AddressLabel])
			if strings.Contains(addr, "/") {
				line := c.Line
				if j < len(lines) {
					line = lines[j]
				}
				p.addf(line, fmt.Sprintf("%s.static_configs[%d].targets[%d]", path, i, j),
					"%q is not a valid hostname (a target is \"host:port\"; put the path in metrics_path and the scheme in scheme)", addr)
			}
		}
	}

	p.checkDNSSD(c)
	p.checkConsulSD(c)

	p.checkRelabel(c.RelabelConfigs, joinPath(path, "relabel_configs"), c.Line)
	p.checkRelabel(c.MetricRelabelConfigs, joinPath(path, "metric_relabel_configs"), c.Line)
}

// checkRelabel validates relabel rules with UTF-8 names, as Prometheus 3
// does by default.
func (p *parser) checkRelabel(rcs []*relabel.Config, path string, jobLine int) {
	for i, rc := range rcs {
		if p.broken[rc] {
			continue
		}
		if err := rc.Validate(model.UTF8Validation); err != nil {
			p.add(p.line(rc, jobLine), fmt.Sprintf("%s[%d]", path, i), err)
		}
	}
}

// checkAuth applies Prometheus's one-auth-method rules to a job.
func (p *parser) checkAuth(c *ScrapeConfig, at func(any) int) {
	p.checkHTTPAuth(httpAuth{&c.BasicAuth, &c.Authorization, &c.BearerToken, &c.BearerTokenFile}, c.path, at)
}

// httpAuth points at the auth fields of a job or a consul_sd_configs entry.
type httpAuth struct {
	basic           **BasicAuth
	authz           **Authorization
	bearer, bearerF *string
}

// checkHTTPAuth applies Prometheus's one-auth-method rules (common/config
// HTTPClientConfig.Validate) and normalises Authorization.Type.
func (p *parser) checkHTTPAuth(h httpAuth, path string, at func(any) int) {
	ba, a := *h.basic, *h.authz
	if *h.bearer != "" && *h.bearerF != "" {
		p.addf(at(h.bearerF), path, "at most one of bearer_token & bearer_token_file must be configured")
	}
	bearer := *h.bearer != "" || *h.bearerF != ""
	if ba != nil && bearer {
		p.addf(at(h.basic), path, "at most one of basic_auth, bearer_token & bearer_token_file must be configured")
	}
	if ba != nil {
		bpath := joinPath(path, "basic_auth")
		if ba.Username != "" && ba.UsernameFile != "" {
			p.addf(at(&ba.UsernameFile), bpath, "at most one of basic_auth username & username_file must be configured")
		}
		if ba.Password != "" && ba.PasswordFile != "" {
			p.addf(at(&ba.PasswordFile), bpath, "at most one of basic_auth password & password_file must be configured")
		}
	}
	if a != nil {
		apath := joinPath(path, "authorization")
		if bearer {
			p.addf(at(h.authz), path, "authorization is not compatible with bearer_token & bearer_token_file")
		}
		if a.Credentials != "" && a.CredentialsFile != "" {
			p.addf(at(&a.CredentialsFile), apath, "at most one of authorization credentials & credentials_file must be configured")
		}
		a.Type = strings.TrimSpace(a.Type)
		if a.Type == "" {
			a.Type = "Bearer"
		}
		if strings.EqualFold(a.Type, "basic") {
			p.addf(at(&a.Type), joinPath(apath, "type"), `authorization type cannot be set to "basic", use "basic_auth" instead`)
		}
		if ba != nil {
			p.addf(at(h.authz), path, "at most one of basic_auth & authorization must be configured")
		}
	}
}

// checkDNSSD validates dns_sd_configs with Prometheus's messages, and
// more: Prometheus accepts an empty name, a port out of range and a zero
// refresh_interval (which panics its ticker).
func (p *parser) checkDNSSD(c *ScrapeConfig) {
	for i, sd := range c.DNSSDConfigs {
		if p.broken[sd] {
			continue
		}
		path := fmt.Sprintf("%s.dns_sd_configs[%d]", c.path, i)
		at := func(field any) int { return p.line(field, p.line(sd, c.Line)) }
		if len(sd.Names) == 0 {
			p.addf(at(&sd.Names), path, "DNS-SD config must contain at least one SRV record name")
		}
		for j, n := range sd.Names {
			if strings.TrimSpace(n) == "" {
				p.addf(p.itemLine(&sd.Names, j, at(&sd.Names)), fmt.Sprintf("%s.names[%d]", path, j), "a DNS name must not be empty")
			}
		}
		switch sd.QType() {
		case "SRV":
		case "A", "AAAA", "MX", "NS":
			if sd.Port == 0 {
				p.addf(at(&sd.Port), path, "a port is required in DNS-SD configs for all record types except SRV")
			}
		default:
			p.addf(at(&sd.Type), joinPath(path, "type"), "invalid DNS-SD records type %s (want SRV, A, AAAA, MX or NS)", sd.Type)
		}
		if sd.Port < 0 || sd.Port > 65535 {
			p.addf(at(&sd.Port), joinPath(path, "port"), "port %d is out of range (1-65535)", sd.Port)
		}
		if sd.RefreshInterval <= 0 {
			p.addf(at(&sd.RefreshInterval), joinPath(path, "refresh_interval"), "refresh_interval must be positive")
		}
	}
}

// checkConsulSD validates consul_sd_configs with Prometheus's messages,
// plus the scheme (Prometheus leaves a bad one to fail at run time) and
// the refresh interval.
func (p *parser) checkConsulSD(c *ScrapeConfig) {
	for i, sd := range c.ConsulSDConfigs {
		if p.broken[sd] {
			continue
		}
		path := fmt.Sprintf("%s.consul_sd_configs[%d]", c.path, i)
		at := func(field any) int { return p.line(field, p.line(sd, c.Line)) }
		server := strings.TrimSpace(sd.Server)
		if server == "" {
			p.addf(at(&sd.Server), path, "consul SD configuration requires a server address")
		} else if scheme, rest, ok := strings.Cut(server, "://"); ok {
			switch {
			case scheme != "http" && scheme != "https" && scheme != "unix":
				p.addf(at(&sd.Server), joinPath(path, "server"), "unknown protocol scheme %q in server %q (want host:port, or an http://, https:// or unix:// prefix)", scheme, sd.Server)
			case rest == "":
				p.addf(at(&sd.Server), joinPath(path, "server"), "server %q has no address", sd.Server)
			case scheme != "unix" && strings.Contains(rest, "/"):
				p.addf(at(&sd.Server), joinPath(path, "server"), "server %q must not hold a path (put it in path_prefix)", sd.Server)
			}
		} else if strings.Contains(server, "/") {
			p.addf(at(&sd.Server), joinPath(path, "server"), "server %q must not hold a path (put it in path_prefix)", sd.Server)
		}
		if sd.Scheme != "http" && sd.Scheme != "https" {
			p.addf(at(&sd.Scheme), joinPath(path, "scheme"), "scheme must be \"http\" or \"https\", got %q", sd.Scheme)
		}
		if sd.RefreshInterval <= 0 {
			p.addf(at(&sd.RefreshInterval), joinPath(path, "refresh_interval"), "refresh_interval must be positive")
		}
		for j, s := range sd.Services {
			if s == "" {
				p.addf(p.itemLine(&sd.Services, j, at(&sd.Services)), fmt.Sprintf("%s.services[%d]", path, j), "a service name must not be empty")
			}
		}
		if (sd.Username != "" || sd.Password != "") && sd.BasicAuth != nil {
			p.addf(at(&sd.BasicAuth), path, "at most one of consul SD configuration username and password and basic auth can be configured")
		}
		if sd.Token != "" && sd.Authorization != nil {
			p.addf(at(&sd.Authorization), path, "at most one of consul SD token, authorization, or oauth2 can be configured")
		}
		p.checkHTTPAuth(httpAuth{&sd.BasicAuth, &sd.Authorization, &sd.BearerToken, &sd.BearerTokenFile}, path, at)
		if (sd.Username != "" || sd.Password != "") && (sd.Authorization != nil || sd.BearerToken != "" || sd.BearerTokenFile != "") {
			// Prometheus turns username/password into basic_auth before
			// its one-auth-method check.
			p.addf(at(&sd.Username), path, "at most one of basic_auth (username and password), bearer_token, bearer_token_file & authorization must be configured")
		}
		p.checkTLS(&sd.TLSConfig, joinPath(path, "tls_config"), at)
	}
}

// checkTLS validates a tls_config block.
func (p *parser) checkTLS(t *TLSConfig, path string, at func(any) int) {
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		p.addf(at(&t.CertFile), path, "key_file must be configured when cert_file is configured")
	case t.KeyFile != "" && t.CertFile == "":
		p.addf(at(&t.KeyFile), path, "cert_file must be configured when key_file is configured")
	}
	if t.MinVersion != "" {
		if _, ok := tlsVersions[t.MinVersion]; !ok {
			p.addf(at(&t.MinVersion), joinPath(path, "min_version"), "unknown TLS version %q, want one of TLS10, TLS11, TLS12, TLS13", t.MinVersion)
		}
	}
}
