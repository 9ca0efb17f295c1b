// Package config reads Prometheus-compatible scrape configuration: a file
// with global: and scrape_configs:, or a single scrape_config (the form jobs
// take in ZooKeeper). Every field shoal does not support is an error naming
// the field and its line; nothing is silently ignored.
//
// # Reading
//
// [Load] and [Parse] read a whole file and return it fully resolved: global
// defaults applied, every job inheriting from global, relative paths joined
// to the file's directory. [ParseJob] reads one scrape_config and returns it
// unresolved, because a job stored in ZooKeeper does not know the global
// section it will run under; the job store calls
// [ScrapeConfig.SetDefaults] with its globals before handing the job to the
// engine. A job whose ScrapeInterval is still zero has not been resolved.
//
// # Errors
//
// Reading does not stop at the first problem. All of them come back as one
// [Errors] value whose elements are *[Error], each with file, line and a path
// such as `scrape_configs[2] (job "node").tls_config`, sorted by line, so
// `shoal check config` can print every problem at once. Keys Prometheus knows
// but shoal does not implement (kubernetes_sd_configs, oauth2, proxy_url, …)
// say "not supported by shoal"; anything else unknown says "unknown field",
// with a suggestion when one is close.
//
// # Design
//
// The YAML is parsed into a yaml.Node tree and walked against the yaml tags
// of the structs below, decoding one value at a time. That is what gives
// every error a line and lets reading go on past a bad value. Decoding the
// whole document with KnownFields(true), as Prometheus does with yaml.v2's
// UnmarshalStrict, was the simpler design; it lost because it stops at the
// first error and reports unknown fields without saying which Prometheus
// feature shoal lacks. Validation runs after the walk over the decoded
// structs, using line numbers the walk recorded per field.
package config

import (
	"bytes"
	"net/url"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v3"
)

// Config is a whole configuration file. A Config returned by [Load] or
// [Parse] is resolved (see the package doc) and must be treated as read-only:
// the engine and the job store share it.
type Config struct {
	Global        GlobalConfig    `yaml:"global"`
	ScrapeConfigs []*ScrapeConfig `yaml:"scrape_configs"`
}

// GlobalConfig holds the defaults every job inherits. A zero ScrapeInterval
// or ScrapeTimeout means the Prometheus default (see [DefaultGlobalConfig]);
// a zero limit means "no limit".
type GlobalConfig struct {
	// ScrapeInterval defaults to 1m, as in Prometheus.
	ScrapeInterval model.Duration `yaml:"scrape_interval"`
	// ScrapeTimeout defaults to 10s, capped at the interval, as in Prometheus.
	ScrapeTimeout model.Duration `yaml:"scrape_timeout"`
	// ExternalLabels are added to every sample that does not already carry
	// the label (Prometheus applies them at remote write; shoal's output is
	// its remote write).
	ExternalLabels labels.Labels `yaml:"external_labels"`

	// ScrapeProtocols, when set, is the default for jobs that set none;
	// when nil, jobs default to DefaultScrapeProtocols.
	ScrapeProtocols []ScrapeProtocol `yaml:"scrape_protocols,omitempty"`
	// The limits below are inherited by jobs that leave theirs at zero, as
	// in Prometheus. Zero means no limit.
	BodySizeLimit         units.Base2Bytes `yaml:"body_size_limit,omitempty"`
	SampleLimit           uint             `yaml:"sample_limit,omitempty"`
	TargetLimit           uint             `yaml:"target_limit,omitempty"`
	LabelLimit            uint             `yaml:"label_limit,omitempty"`
	LabelNameLengthLimit  uint             `yaml:"label_name_length_limit,omitempty"`
	LabelValueLengthLimit uint             `yaml:"label_value_length_limit,omitempty"`
}

// DefaultGlobalConfig returns the global section of a file that has none.
func DefaultGlobalConfig() GlobalConfig {
	return GlobalConfig{
		// Prometheus's defaults, so a prometheus.yml means the same here.
		ScrapeInterval: model.Duration(time.Minute),
		ScrapeTimeout:  model.Duration(10 * time.Second),
	}
}

// ScrapeProtocol names an exposition format for the Accept header, spelled as
// in Prometheus (OpenMetricsText1.0.0, OpenMetricsText0.0.1,
// PrometheusText1.0.0, PrometheusText0.0.4).
type ScrapeProtocol string

const (
	OpenMetricsText1_0_0 ScrapeProtocol = "OpenMetricsText1.0.0"
	OpenMetricsText0_0_1 ScrapeProtocol = "OpenMetricsText0.0.1"
	PrometheusText1_0_0  ScrapeProtocol = "PrometheusText1.0.0"
	PrometheusText0_0_4  ScrapeProtocol = "PrometheusText0.0.4"
)

// DefaultScrapeProtocols is Prometheus's default preference order without
// protobuf (shoal does not parse the protobuf format). Treat it as read-only:
// configs get a copy.
var DefaultScrapeProtocols = []ScrapeProtocol{OpenMetricsText1_0_0, OpenMetricsText0_0_1, PrometheusText1_0_0, PrometheusText0_0_4}

// ScrapeConfig is one job. Field names and defaults are Prometheus's.
//
// Fields tagged omitempty are those whose zero value means "inherit" or
// "unset", so that marshalling a ScrapeConfig with yaml and reading it back
// with [ParseJob] gives an equal job (the job store relies on this).
type ScrapeConfig struct {
	JobName string `yaml:"job_name"`
	// ScrapeInterval and ScrapeTimeout are zero until resolved by
	// SetDefaults (done by Load and Parse); after that the interval is
	// positive and the timeout is positive and at most the interval.
	ScrapeInterval model.Duration `yaml:"scrape_interval,omitempty"`
	ScrapeTimeout  model.Duration `yaml:"scrape_timeout,omitempty"`
	MetricsPath    string         `yaml:"metrics_path"` // default /metrics
	Scheme         string         `yaml:"scheme"`       // default http; http or https
	Params         url.Values     `yaml:"params,omitempty"`
	HonorLabels    bool           `yaml:"honor_labels"`
	// HonorTimestamps defaults to true.
	HonorTimestamps bool `yaml:"honor_timestamps"`
	// TrackTimestampsStaleness defaults to false: series with explicit
	// timestamps get no staleness markers, as in Prometheus.
	TrackTimestampsStaleness bool `yaml:"track_timestamps_staleness"`

	// StaticConfigs groups have Source set to their index in the list, as
	// Prometheus does, so each group has a stable identity in the job.
	StaticConfigs   []*targetgroup.Group `yaml:"static_configs,omitempty"`
	FileSDConfigs   []*FileSDConfig      `yaml:"file_sd_configs,omitempty"`
	DNSSDConfigs    []*DNSSDConfig       `yaml:"dns_sd_configs,omitempty"`
	ConsulSDConfigs []*ConsulSDConfig    `yaml:"consul_sd_configs,omitempty"`

	// Relabel configs are validated with UTF-8 label names (Prometheus 3's
	// default); their NameValidationScheme is set to model.UTF8Validation.
	RelabelConfigs       []*relabel.Config `yaml:"relabel_configs,omitempty"`
	MetricRelabelConfigs []*relabel.Config `yaml:"metric_relabel_configs,omitempty"`

	// Limits: zero means inherit the global limit, which may itself be zero
	// (no limit). BodySizeLimit is in bytes ("10MB" in YAML is 10 MiB, as in
	// Prometheus) and is never negative.
	SampleLimit           uint             `yaml:"sample_limit,omitempty"`
	LabelLimit            uint             `yaml:"label_limit,omitempty"`
	LabelNameLengthLimit  uint             `yaml:"label_name_length_limit,omitempty"`
	LabelValueLengthLimit uint             `yaml:"label_value_length_limit,omitempty"`
	BodySizeLimit         units.Base2Bytes `yaml:"body_size_limit,omitempty"`
	TargetLimit           uint             `yaml:"target_limit,omitempty"`

	// At most one of BasicAuth, Authorization and BearerToken/BearerTokenFile
	// is set (Prometheus's rule). Use AuthHeader rather than reading these.
	BasicAuth       *BasicAuth     `yaml:"basic_auth,omitempty"`
	Authorization   *Authorization `yaml:"authorization,omitempty"`
	BearerToken     string         `yaml:"bearer_token,omitempty"`
	BearerTokenFile string         `yaml:"bearer_token_file,omitempty"`
	TLSConfig       TLSConfig      `yaml:"tls_config,omitempty"`
	// FollowRedirects defaults to true.
	FollowRedirects bool `yaml:"follow_redirects"`

	// ScrapeProtocols is nil until resolved; then it is the job's list, the
	// global list, or a copy of DefaultScrapeProtocols, in that order.
	ScrapeProtocols        []ScrapeProtocol `yaml:"scrape_protocols,omitempty"`
	FallbackScrapeProtocol ScrapeProtocol   `yaml:"fallback_scrape_protocol,omitempty"`

	// Line is where the job starts in its file (0 when unknown); used in
	// messages about the job. Equal ignores it.
	Line int `yaml:"-"`

	// Where the job came from, for errors from SetDefaults.
	source      string // file name or ParseJob's source
	path        string // e.g. `scrape_configs[2] (job "node")`
	timeoutLine int    // line of scrape_timeout, 0 if not set
}

// DefaultScrapeConfig returns a job with Prometheus's per-job defaults and
// nothing inherited yet: what a scrape_config with only job_name parses to.
func DefaultScrapeConfig() ScrapeConfig {
	return ScrapeConfig{
		MetricsPath: "/metrics", // Prometheus's and every exporter's convention
		Scheme:      "http",     // targets are plain HTTP unless told otherwise
		// Exporters that set timestamps (federation, pushgateway) mean them.
		HonorTimestamps: true,
		// Prometheus follows redirects; exporters behind proxies rely on it.
		FollowRedirects: true,
	}
}

// Interval is ScrapeInterval as a time.Duration.
func (c *ScrapeConfig) Interval() time.Duration { return time.Duration(c.ScrapeInterval) }

// Timeout is ScrapeTimeout as a time.Duration.
func (c *ScrapeConfig) Timeout() time.Duration { return time.Duration(c.ScrapeTimeout) }

// Equal reports whether c and o describe the same job, field by field
// (nested blocks and lists included), ignoring Line. The engine uses it on
// reload to restart only the jobs that changed.
//
// It compares the canonical YAML form of both jobs, so spellings that parse
// to the same value are equal ("60s" and "1m", a regex written in either
// quoting style). The one conservative case: a relabel rule that spells out
// the default regex "(.*)" is not equal to one that leaves it out, which
// only costs a needless restart. A nil job equals only a nil job.
func (c *ScrapeConfig) Equal(o *ScrapeConfig) bool {
	if c == nil || o == nil {
		return c == o
	}
	a, errA := yaml.Marshal(c)
	b, errB := yaml.Marshal(o)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

// MarshalYAML gives the canonical YAML form of a job, which [ParseJob]
// reads back into an equal job (the job store may store jobs this way, and
// Equal compares it). It works around yaml.v3 writing a string key "<<"
// (a legal query parameter or label name) as a merge key.
func (c ScrapeConfig) MarshalYAML() (any, error) {
	type plain ScrapeConfig // without this method, to avoid recursion
	var n yaml.Node
	if err := n.Encode(plain(c)); err != nil {
		return nil, err
	}
	var fix func(*yaml.Node)
	fix = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!merge" {
			n.Tag, n.Style = "!!str", yaml.DoubleQuotedStyle
		}
		for _, c := range n.Content {
			fix(c)
		}
	}
	fix(&n)
	return &n, nil
}

// FileSDConfig is Prometheus's file_sd_configs entry.
type FileSDConfig struct {
	// Files are paths or patterns (only the last path element may hold '*';
	// the name ends in .json, .yml or .yaml). Relative ones are joined to the
	// config file's directory by Load and Parse.
	Files []string `yaml:"files"`
	// RefreshInterval defaults to 5m, as in Prometheus; it is positive.
	RefreshInterval model.Duration `yaml:"refresh_interval"`
}

// DefaultFileSDRefreshInterval is Prometheus's file_sd refresh interval: a
// backstop for missed file-change notifications, not the main trigger.
const DefaultFileSDRefreshInterval = 5 * time.Minute

// DNSSDConfig is Prometheus's dns_sd_configs entry.
type DNSSDConfig struct {
	// Names are looked up each refresh; at least one, none empty.
	Names []string `yaml:"names"`
	// RefreshInterval defaults to 30s, as in Prometheus; it is positive.
	RefreshInterval model.Duration `yaml:"refresh_interval"`
	// Type is SRV (the default), A, AAAA, MX or NS, in any case.
	Type string `yaml:"type"`
	// Port is required (1-65535) for every type but SRV, which carries
	// its own ports and ignores this one.
	Port int `yaml:"port"`
}

// DefaultDNSSDRefreshInterval is Prometheus's dns_sd refresh interval.
const DefaultDNSSDRefreshInterval = 30 * time.Second

// QType is Type upper-cased: "SRV", "A", "AAAA", "MX" or "NS".
func (c *DNSSDConfig) QType() string { return strings.ToUpper(c.Type) }

// ConsulSDConfig is Prometheus's consul_sd_configs entry. The HTTP client
// fields Prometheus inlines (basic_auth, authorization, bearer_token,
// tls_config, follow_redirects, enable_http2) are supported; oauth2, proxies
// and http_headers are not.
type ConsulSDConfig struct {
	// Server is host:port (default localhost:8500). An "http://" or
	// "https://" prefix sets Scheme and "unix://" names a socket, as in
	// Consul's Go client.
	Server     string `yaml:"server"`
	PathPrefix string `yaml:"path_prefix,omitempty"`
	// Token is sent as X-Consul-Token.
	Token string `yaml:"token,omitempty"`
	// Datacenter, when empty, is asked of the agent (/v1/agent/self).
	Datacenter string `yaml:"datacenter,omitempty"`
	Namespace  string `yaml:"namespace,omitempty"` // Consul Enterprise
	Partition  string `yaml:"partition,omitempty"` // Consul Enterprise
	// TagSeparator joins a service's tags in __meta_consul_tags and
	// surrounds them (default ",").
	TagSeparator string `yaml:"tag_separator"`
	Scheme       string `yaml:"scheme"` // http (default) or https
	// Username and Password are basic auth, exclusive with BasicAuth.
	Username string `yaml:"username,omitempty"`
	Password string `yaml:"password,omitempty"`
	// AllowStale lets any Consul server answer (default true).
	AllowStale bool `yaml:"allow_stale"`
	// RefreshInterval (default 30s) is the least time between two
	// queries of one watch: blocking queries return on change, and the
	// next one waits for the next tick.
	RefreshInterval model.Duration `yaml:"refresh_interval"`
	// Services to watch; empty means every service in the catalog.
	Services []string `yaml:"services,omitempty"`
	// Tags an instance must all have (sent as tag= on health queries,
	// and used to pick services from the catalog).
	Tags []string `yaml:"tags,omitempty"`
	// NodeMeta filters nodes by metadata (node-meta=key:value).
	NodeMeta map[string]string `yaml:"node_meta,omitempty"`
	// Filter is a catalog filter expression, HealthFilter a health one.
	Filter       string `yaml:"filter,omitempty"`
	HealthFilter string `yaml:"health_filter,omitempty"`

	BasicAuth       *BasicAuth     `yaml:"basic_auth,omitempty"`
	Authorization   *Authorization `yaml:"authorization,omitempty"`
	BearerToken     string         `yaml:"bearer_token,omitempty"`
	BearerTokenFile string         `yaml:"bearer_token_file,omitempty"`
	TLSConfig       TLSConfig      `yaml:"tls_config,omitempty"`
	// FollowRedirects and EnableHTTP2 default to true, as in Prometheus.
	FollowRedirects bool `yaml:"follow_redirects"`
	EnableHTTP2     bool `yaml:"enable_http2"`
}

// DefaultConsulSDConfig returns a consul_sd_configs entry with Prometheus's
// defaults: what an empty entry parses to.
func DefaultConsulSDConfig() ConsulSDConfig {
	return ConsulSDConfig{
		Server:          "localhost:8500", // the local agent, Consul's own default
		TagSeparator:    ",",
		Scheme:          "http",
		AllowStale:      true, // stale reads are far cheaper; Prometheus's default
		RefreshInterval: model.Duration(DefaultConsulSDRefreshInterval),
		FollowRedirects: true,
		EnableHTTP2:     true,
	}
}

// DefaultConsulSDRefreshInterval is Prometheus's consul_sd refresh interval.
const DefaultConsulSDRefreshInterval = 30 * time.Second

// BasicAuth is HTTP basic authentication. Username and UsernameFile are
// mutually exclusive, as are Password and PasswordFile.
type BasicAuth struct {
	Username     string `yaml:"username,omitempty"`
	UsernameFile string `yaml:"username_file,omitempty"`
	Password     string `yaml:"password,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
}

// Authorization is an Authorization header: Type (default Bearer; never
// Basic, use BasicAuth) and Credentials or CredentialsFile. After parsing,
// Type is trimmed and never empty.
type Authorization struct {
	Type            string `yaml:"type,omitempty"`
	Credentials     string `yaml:"credentials,omitempty"`
	CredentialsFile string `yaml:"credentials_file,omitempty"`
}

// TLSConfig configures TLS to targets. CertFile and KeyFile are set together
// or not at all. See Build.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file,omitempty"`
	CertFile           string `yaml:"cert_file,omitempty"`
	KeyFile            string `yaml:"key_file,omitempty"`
	ServerName         string `yaml:"server_name,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
	// MinVersion is TLS10..TLS13; default TLS12.
	MinVersion string `yaml:"min_version,omitempty"`
}
