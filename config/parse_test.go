package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
)

// doc joins lines with newlines, so that a test's line numbers are the
// argument positions (the first argument is line 1).
func doc(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// wantErr checks that err is a non-empty Errors of *Error and that one of
// them is on line and contains every string in want.
func wantErr(t *testing.T, err error, line int, want ...string) {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("got error %v (%T), want Errors", err, err)
	}
	for _, e := range es {
		var pe *Error
		if !errors.As(e, &pe) {
			t.Fatalf("element %v is %T, want *Error", e, e)
		}
	}
	for _, e := range es {
		pe := e.(*Error)
		if pe.Line != line {
			continue
		}
		msg := e.Error()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(msg, w)
		}
		if ok {
			prefix := fmt.Sprintf("%s:%d: ", pe.File, line)
			if line == 0 {
				prefix = pe.File + ": "
			}
			if !strings.HasPrefix(msg, prefix) {
				t.Errorf("message %q does not start with file:line", msg)
			}
			return
		}
	}
	t.Errorf("no error on line %d containing %q; got:\n%v", line, want, err)
}

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(text), "test.yml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func TestDefaults(t *testing.T) {
	sec := func(n int) model.Duration { return model.Duration(time.Duration(n) * time.Second) }
	tests := []struct {
		name  string
		doc   string
		check func(t *testing.T, c *Config)
	}{{
		name: "empty document",
		doc:  "",
		check: func(t *testing.T, c *Config) {
			if c.Global.ScrapeInterval != sec(60) || c.Global.ScrapeTimeout != sec(10) || len(c.ScrapeConfigs) != 0 {
				t.Errorf("got %+v", c)
			}
		},
	}, {
		name: "null global",
		doc:  doc("global:"),
		check: func(t *testing.T, c *Config) {
			if c.Global.ScrapeInterval != sec(60) || c.Global.ScrapeTimeout != sec(10) {
				t.Errorf("got %+v", c.Global)
			}
		},
	}, {
		name: "global timeout capped at a short global interval",
		doc:  doc("global:", "  scrape_interval: 5s"),
		check: func(t *testing.T, c *Config) {
			if c.Global.ScrapeTimeout != sec(5) {
				t.Errorf("timeout %v, want 5s", c.Global.ScrapeTimeout)
			}
		},
	}, {
		name: "job defaults",
		doc:  doc("scrape_configs:", "  - job_name: a"),
		check: func(t *testing.T, c *Config) {
			j := c.ScrapeConfigs[0]
			want := DefaultScrapeConfig()
			want.JobName = "a"
			want.ScrapeInterval, want.ScrapeTimeout = sec(60), sec(10)
			want.ScrapeProtocols = DefaultScrapeProtocols
			if !j.Equal(&want) {
				t.Errorf("got %+v, want %+v", j, want)
			}
			if !j.HonorTimestamps || !j.FollowRedirects || j.HonorLabels || j.TrackTimestampsStaleness {
				t.Errorf("bool defaults wrong: %+v", j)
			}
			if j.MetricsPath != "/metrics" || j.Scheme != "http" {
				t.Errorf("path/scheme defaults wrong: %q %q", j.MetricsPath, j.Scheme)
			}
			if j.Line != 2 {
				t.Errorf("Line = %d, want 2", j.Line)
			}
			if &j.ScrapeProtocols[0] == &DefaultScrapeProtocols[0] {
				t.Error("ScrapeProtocols aliases DefaultScrapeProtocols")
			}
		},
	}, {
		name: "job inherits global",
		doc: doc("global:", "  scrape_interval: 20s", "  scrape_timeout: 7s",
			"  scrape_protocols: [PrometheusText0.0.4]", "  sample_limit: 5", "  body_size_limit: 1KB",
			"  target_limit: 6", "  label_limit: 7", "  label_name_length_limit: 8", "  label_value_length_limit: 9",
			"scrape_configs:", "  - job_name: a", "  - job_name: b", "    sample_limit: 50"),
		check: func(t *testing.T, c *Config) {
			a, b := c.ScrapeConfigs[0], c.ScrapeConfigs[1]
			if a.ScrapeInterval != sec(20) || a.ScrapeTimeout != sec(7) {
				t.Errorf("a: interval %v timeout %v", a.ScrapeInterval, a.ScrapeTimeout)
			}
			if !slices.Equal(a.ScrapeProtocols, []ScrapeProtocol{PrometheusText0_0_4}) {
				t.Errorf("a: protocols %v", a.ScrapeProtocols)
			}
			if a.SampleLimit != 5 || a.BodySizeLimit != units.KiB || a.TargetLimit != 6 || a.LabelLimit != 7 ||
				a.LabelNameLengthLimit != 8 || a.LabelValueLengthLimit != 9 {
				t.Errorf("a: limits %+v", a)
			}
			if b.SampleLimit != 50 {
				t.Errorf("b: sample_limit %d, want its own 50", b.SampleLimit)
			}
		},
	}, {
		name: "inherited timeout capped at the job interval",
		doc:  doc("global:", "  scrape_timeout: 30s", "scrape_configs:", "  - job_name: a", "    scrape_interval: 15s"),
		check: func(t *testing.T, c *Config) {
			if j := c.ScrapeConfigs[0]; j.ScrapeInterval != sec(15) || j.ScrapeTimeout != sec(15) {
				t.Errorf("interval %v timeout %v, want 15s 15s", j.ScrapeInterval, j.ScrapeTimeout)
			}
		},
	}, {
		name: "explicit zero interval means inherit",
		doc:  doc("scrape_configs:", "  - job_name: a", "    scrape_interval: 0s"),
		check: func(t *testing.T, c *Config) {
			if j := c.ScrapeConfigs[0]; j.ScrapeInterval != sec(60) {
				t.Errorf("interval %v", j.ScrapeInterval)
			}
		},
	}, {
		name: "null values mean the default",
		doc: doc("scrape_configs:", "  - job_name: a", "    honor_timestamps:", "    metrics_path:",
			"    basic_auth:", "    static_configs:"),
		check: func(t *testing.T, c *Config) {
			if j := c.ScrapeConfigs[0]; !j.HonorTimestamps || j.MetricsPath != "/metrics" || j.BasicAuth != nil || j.StaticConfigs != nil {
				t.Errorf("got %+v", j)
			}
		},
	}, {
		name: "file_sd refresh_interval",
		doc:  doc("scrape_configs:", "  - job_name: a", "    file_sd_configs:", "      - files: [/t/a.json]", "      - files: [/t/b.yml]", "        refresh_interval: 30s"),
		check: func(t *testing.T, c *Config) {
			sd := c.ScrapeConfigs[0].FileSDConfigs
			if sd[0].RefreshInterval != model.Duration(DefaultFileSDRefreshInterval) || sd[1].RefreshInterval != sec(30) {
				t.Errorf("refresh %v %v", sd[0].RefreshInterval, sd[1].RefreshInterval)
			}
		},
	}, {
		name: "static groups get their index as Source",
		doc: doc("scrape_configs:", "  - job_name: a", "    static_configs:", "      - targets: [a:1]",
			"      - targets: [b:1, c:1]", "        labels: {x: y}"),
		check: func(t *testing.T, c *Config) {
			g := c.ScrapeConfigs[0].StaticConfigs
			if g[0].Source != "0" || g[1].Source != "1" || len(g[1].Targets) != 2 || g[1].Labels["x"] != "y" ||
				g[1].Targets[1][model.AddressLabel] != "c:1" {
				t.Errorf("got %v %v", g[0], g[1])
			}
		},
	}, {
		name: "authorization type defaults to Bearer",
		doc:  doc("scrape_configs:", "  - job_name: a", "    authorization:", "      credentials: x"),
		check: func(t *testing.T, c *Config) {
			if a := c.ScrapeConfigs[0].Authorization; a.Type != "Bearer" {
				t.Errorf("type %q", a.Type)
			}
		},
	}, {
		name: "UTF-8 names, as in Prometheus 3",
		doc: doc("global:", "  external_labels: {service.name: x}", "scrape_configs:", "  - job_name: a",
			"    relabel_configs:", "      - target_label: host.name", "        replacement: x"),
		check: func(t *testing.T, c *Config) {
			if c.Global.ExternalLabels.Get("service.name") != "x" {
				t.Errorf("external labels %v", c.Global.ExternalLabels)
			}
			if rc := c.ScrapeConfigs[0].RelabelConfigs[0]; rc.NameValidationScheme != model.UTF8Validation {
				t.Errorf("relabel scheme %v", rc.NameValidationScheme)
			}
		},
	}, {
		name: "targets with a path are fine when relabeling may rewrite them",
		doc: doc("scrape_configs:", "  - job_name: a", "    static_configs: [{targets: [\"https://x/y\"]}]",
			"    relabel_configs: [{target_label: __address__, replacement: \"b:1\"}]"),
		check: func(*testing.T, *Config) {},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, mustParse(t, tt.doc)) })
	}
}

// errorCases are documents with one problem each: the line it is on and
// strings its message must contain (always the field name). FuzzParse uses
// them as seeds.
var errorCases = []struct {
	name string
	doc  string
	line int
	want []string
}{
	// Timeouts.
	{"job timeout over job interval", doc("scrape_configs:", "  - job_name: a", "    scrape_interval: 5s", "    scrape_timeout: 10s"),
		4, []string{`scrape_configs[0] (job "a").scrape_timeout`, `scrape timeout greater than scrape interval for scrape config with job name "a"`}},
	{"job timeout over inherited interval", doc("global:", "  scrape_interval: 5s", "scrape_configs:", "  - job_name: a", "    scrape_timeout: 6s"),
		5, []string{"scrape_timeout", "scrape timeout greater than scrape interval"}},
	{"global timeout over global interval", doc("global:", "  scrape_interval: 5s", "  scrape_timeout: 10s"),
		3, []string{"global.scrape_timeout", "global scrape timeout greater than scrape interval"}},

	// Job fields.
	{"no job_name", doc("scrape_configs:", "  - scheme: https"), 2, []string{"scrape_configs[0]", "job_name is empty"}},
	{"duplicate job_name", doc("scrape_configs:", "  - job_name: a", "  - job_name: b", "  - job_name: a"),
		4, []string{`scrape_configs[2] (job "a")`, `found multiple scrape configs with job name "a" (first at line 2)`}},
	{"scheme", doc("scrape_configs:", "  - job_name: a", "    scheme: ftp"), 3, []string{"scheme", `"ftp"`}},
	{"bad duration", doc("scrape_configs:", "  - job_name: a", "    scrape_interval: 1x"), 3, []string{"scrape_interval", `"x"`}},
	{"negative limit", doc("scrape_configs:", "  - job_name: a", "    sample_limit: -1"), 3, []string{"sample_limit", "uint"}},
	{"bad bool", doc("scrape_configs:", "  - job_name: a", "    honor_labels: maybe"), 3, []string{"honor_labels", "bool"}},
	{"bad params", doc("scrape_configs:", "  - job_name: a", "    params:", "      module: http_2xx"), 4, []string{"params", "[]string"}},
	{"size without unit", doc("scrape_configs:", "  - job_name: a", "    body_size_limit: 1024"), 3, []string{"body_size_limit", `"1024"`}},
	{"negative size", doc("scrape_configs:", "  - job_name: a", "    body_size_limit: -1MB"), 3, []string{"body_size_limit", "negative"}},
	{"job is not a mapping", doc("scrape_configs:", "  - job_name: a", "  - just a string"), 3, []string{"scrape_configs[1]", "expected a mapping"}},
	{"null job", doc("scrape_configs:", "  - job_name: a", "  -"), 3, []string{"scrape_configs[1]", "empty or null section in scrape_configs"}},
	{"list is a string", doc("scrape_configs:", "  - job_name: a", "    static_configs: foo"), 3, []string{"static_configs", "expected a list"}},

	// Protocols.
	{"protobuf protocol", doc("scrape_configs:", "  - job_name: a", "    scrape_protocols:", "      - OpenMetricsText1.0.0", "      - PrometheusProto"),
		5, []string{"scrape_protocols", `"PrometheusProto" is not supported by shoal`}},
	{"unknown protocol", doc("scrape_configs:", "  - job_name: a", "    scrape_protocols: [Foo]"), 3, []string{"scrape_protocols", `unknown scrape protocol "Foo"`}},
	{"duplicate protocol", doc("scrape_configs:", "  - job_name: a", "    scrape_protocols:", "      - PrometheusText0.0.4", "      - PrometheusText0.0.4"),
		5, []string{"scrape_protocols", "duplicated protocol in scrape_protocols"}},
	{"empty protocols", doc("scrape_configs:", "  - job_name: a", "    scrape_protocols: []"), 3, []string{"scrape_protocols cannot be empty"}},
	{"global protocols", doc("global:", "  scrape_protocols: [Bar]"), 2, []string{"global.scrape_protocols", `"Bar"`, "global config"}},
	{"fallback protocol", doc("scrape_configs:", "  - job_name: a", "    fallback_scrape_protocol: PrometheusProto"), 3, []string{"fallback_scrape_protocol", "not supported by shoal"}},

	// Relabeling.
	{"replace without target_label", doc("scrape_configs:", "  - job_name: a", "    relabel_configs:", "      - action: keep", "        regex: x", "      - action: replace", "        source_labels: [a]"),
		6, []string{`scrape_configs[0] (job "a").relabel_configs[1]`, "target_label"}},
	{"bad regex", doc("scrape_configs:", "  - job_name: a", "    relabel_configs:", "      - action: keep", "        regex: '(a'"),
		5, []string{"relabel_configs[0].regex", "missing closing )"}},
	{"unknown action", doc("scrape_configs:", "  - job_name: a", "    metric_relabel_configs:", "      - action: frobnicate"),
		4, []string{"metric_relabel_configs[0].action", `unknown relabel action "frobnicate"`}},
	{"unknown action and a bad rule", doc("scrape_configs:", "  - job_name: a", "    metric_relabel_configs:", "      - action: frobnicate", "      - action: replace"),
		5, []string{"metric_relabel_configs[1]", "requires 'target_label'"}},
	{"hashmod without modulus", doc("scrape_configs:", "  - job_name: a", "    metric_relabel_configs:", "      - action: hashmod", "        target_label: x"),
		4, []string{"metric_relabel_configs[0]", "modulus"}},
	{"labeldrop with source_labels", doc("scrape_configs:", "  - job_name: a", "    relabel_configs:", "      - action: labeldrop", "        source_labels: [a]", "        regex: x"),
		4, []string{"relabel_configs[0]", "labeldrop action requires only 'regex'"}},
	{"invalid source label", doc("scrape_configs:", "  - job_name: a", "    relabel_configs:", "      - source_labels: ['']", "        target_label: x"),
		4, []string{"relabel_configs[0].source_labels", "not a valid label name"}},
	{"null relabel rule", doc("scrape_configs:", "  - job_name: a", "    relabel_configs:", "      - ~"),
		4, []string{"relabel_configs[0]", "empty or null section in relabel_configs"}},

	// Static targets.
	{"target with a path", doc("scrape_configs:", "  - job_name: a", "    static_configs:", "      - targets:", "          - a:1", "          - http://b:1/metrics"),
		6, []string{"static_configs[0].targets[1]", `"http://b:1/metrics" is not a valid hostname`}},
	{"empty target", doc("scrape_configs:", "  - job_name: a", "    static_configs:", "      - targets:", "          - ''"),
		5, []string{"static_configs[0].targets[0]", "non-empty"}},
	{"bad target label name", doc("scrape_configs:", "  - job_name: a", "    static_configs:", "      - targets: [a:1]", "        labels:", "          '': x"),
		6, []string{"static_configs[0].labels", `"" is not a valid label name`}},
	{"target label value not a string", doc("scrape_configs:", "  - job_name: a", "    static_configs:", "      - targets: [a:1]", "        labels:", "          x: [1]"),
		6, []string{"labels.x", "must be a string"}},
	{"null static entry", doc("scrape_configs:", "  - job_name: a", "    static_configs:", "      -"),
		4, []string{"static_configs[0]", "empty or null section in static_configs"}},

	// Auth.
	{"password and password_file", doc("scrape_configs:", "  - job_name: a", "    basic_auth:", "      password: x", "      password_file: y"),
		5, []string{"basic_auth", "password & password_file"}},
	{"username and username_file", doc("scrape_configs:", "  - job_name: a", "    basic_auth:", "      username: x", "      username_file: y"),
		5, []string{"basic_auth", "username & username_file"}},
	{"credentials and credentials_file", doc("scrape_configs:", "  - job_name: a", "    authorization:", "      credentials: x", "      credentials_file: y"),
		5, []string{"authorization", "credentials & credentials_file"}},
	{"authorization type basic", doc("scrape_configs:", "  - job_name: a", "    authorization:", "      type: Basic", "      credentials: x"),
		4, []string{"authorization.type", `use "basic_auth" instead`}},
	{"bearer_token and bearer_token_file", doc("scrape_configs:", "  - job_name: a", "    bearer_token: x", "    bearer_token_file: y"),
		4, []string{"bearer_token & bearer_token_file"}},
	{"basic_auth and bearer_token", doc("scrape_configs:", "  - job_name: a", "    bearer_token: x", "    basic_auth:", "      username: u"),
		4, []string{"at most one of basic_auth, bearer_token & bearer_token_file"}},
	{"authorization and bearer_token_file", doc("scrape_configs:", "  - job_name: a", "    bearer_token_file: x", "    authorization:", "      credentials: c"),
		4, []string{"authorization is not compatible with bearer_token & bearer_token_file"}},
	{"basic_auth and authorization", doc("scrape_configs:", "  - job_name: a", "    basic_auth:", "      username: u", "    authorization:", "      credentials: c"),
		5, []string{"at most one of basic_auth & authorization"}},

	// TLS.
	{"cert_file without key_file", doc("scrape_configs:", "  - job_name: a", "    tls_config:", "      cert_file: c.pem"),
		4, []string{"tls_config", "key_file must be configured when cert_file"}},
	{"key_file without cert_file", doc("scrape_configs:", "  - job_name: a", "    tls_config:", "      key_file: k.pem"),
		4, []string{"tls_config", "cert_file must be configured when key_file"}},
	{"min_version", doc("scrape_configs:", "  - job_name: a", "    tls_config:", "      min_version: TLS14"),
		4, []string{"tls_config.min_version", `"TLS14"`}},

	// file_sd.
	{"no files", doc("scrape_configs:", "  - job_name: a", "    file_sd_configs:", "      - refresh_interval: 1m"),
		4, []string{"file_sd_configs[0]", "at least one path name", "files"}},
	{"star in a directory", doc("scrape_configs:", "  - job_name: a", "    file_sd_configs:", "      - files:", "          - ok/*.json", "          - bad/*/x.json"),
		6, []string{"file_sd_configs[0].files[1]", `"bad/*/x.json" is not valid for file discovery`}},
	{"wrong extension", doc("scrape_configs:", "  - job_name: a", "    file_sd_configs:", "      - files: [targets.txt]"),
		4, []string{"file_sd_configs[0].files[0]", `"targets.txt"`}},
	{"zero refresh_interval", doc("scrape_configs:", "  - job_name: a", "    file_sd_configs:", "      - files: [a.json]", "        refresh_interval: 0s"),
		5, []string{"file_sd_configs[0].refresh_interval", "positive"}},

	// Global.
	{"external label name", doc("global:", "  external_labels:", "    ok: x", "    '': y"), 4, []string{"global.external_labels", `"" is not a valid label name`}},
	{"duplicate external label", doc("global:", "  external_labels:", "    a: x", "    a: y"), 4, []string{"global.external_labels", `"a" already defined at line 3`}},
	{"external labels not a mapping", doc("global:", "  external_labels: [a]"), 2, []string{"global.external_labels", "!!seq"}},

	// The document itself.
	{"top level is a list", doc("- job_name: a"), 1, []string{"expected a mapping, got a list"}},
	{"syntax error", doc("global:", "  scrape_interval: 1m", "  bad: : x"), 3, []string{"mapping values are not allowed"}},
	{"tab indentation", doc("global:", "\tscrape_interval: 1m"), 2, []string{"cannot start any token"}},
	{"two documents", doc("global: {}", "---", "scrape_configs: []"), 2, []string{"more than one YAML document"}},
	{"duplicate key", doc("scrape_configs:", "  - job_name: a", "    scheme: http", "    scheme: https"), 4, []string{`field "scheme" already set at line 3`}},
	{"duplicate top-level key", doc("global: {}", "global: {}"), 2, []string{`field "global" already set at line 1`}},
	{"recursive alias", doc("scrape_configs:", "  - job_name: a", "    params: &p", "      a: *p"), 3, []string{"too large or recursive"}},
}

func TestValidationErrors(t *testing.T) {
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.doc), "test.yml")
			if cfg != nil {
				t.Errorf("Parse returned a config with an error")
			}
			wantErr(t, err, tt.line, append([]string{"test.yml:"}, tt.want...)...)
		})
	}
}

// TestNoFollowUpErrors checks that a value that fails to decode is reported
// once, without errors about the default left in its place.
func TestNoFollowUpErrors(t *testing.T) {
	for _, text := range []string{
		doc("scrape_configs:", "  - job_name: a", "    relabel_configs:", "      - action: frobnicate"),
		doc("scrape_configs:", "  - job_name: a", "    relabel_configs:", "      - regex: '('", "        action: keep"),
		doc("scrape_configs:", "  - job_name: a", "    scrape_interval: soon"),
	} {
		_, err := Parse([]byte(text), "t.yml")
		if es, ok := err.(Errors); !ok || len(es) != 1 {
			t.Errorf("want exactly one error, got:\n%v", err)
		}
	}
}

func TestUnknownAndUnsupportedFields(t *testing.T) {
	job := func(lines ...string) string {
		return doc(append([]string{"scrape_configs:", "  - job_name: j"}, lines...)...)
	}
	tests := []struct {
		name string
		doc  string
		line int
		want []string
	}{
		{"top-level unknown", doc("scrape_config: []"), 1, []string{`unknown field "scrape_config"; did you mean "scrape_configs"?`}},
		{"top-level unsupported", doc("global: {}", "remote_write: []"), 2, []string{`field "remote_write" is not supported by shoal`}},
		{"top-level job key", doc("job_name: x"), 1, []string{`unknown field "job_name"; it belongs under "scrape_configs"`}},
		{"global unknown", doc("global:", "  scrape_intervl: 1m"), 2, []string{"global:", `unknown field "scrape_intervl"; did you mean "scrape_interval"?`}},
		{"global unsupported", doc("global:", "  evaluation_interval: 1m"), 2, []string{"global:", `field "evaluation_interval" is not supported by shoal`}},
		{"job unknown", job("    static_config: []"), 3, []string{`scrape_configs[0] (job "j"):`, `unknown field "static_config"; did you mean "static_configs"?`}},
		{"job unknown before job_name", doc("scrape_configs:", "  - honour_labels: true", "    job_name: j"), 2, []string{`scrape_configs[0] (job "j"):`, `did you mean "honor_labels"?`}},
		{"kubernetes_sd_configs", job("    kubernetes_sd_configs: [{role: pod}]"), 3, []string{`scrape_configs[0] (job "j"): field "kubernetes_sd_configs" is not supported by shoal`}},
		{"eureka_sd_configs", job("    eureka_sd_configs: []"), 3, []string{`field "eureka_sd_configs" is not supported by shoal`, "dns_sd_configs and consul_sd_configs"}},
		{"oauth2", job("    oauth2: {client_id: x}"), 3, []string{`field "oauth2" is not supported by shoal`}},
		{"proxy_url", job("    proxy_url: http://p:3128"), 3, []string{`field "proxy_url" is not supported by shoal`}},
		{"enable_compression", job("    enable_compression: true"), 3, []string{`field "enable_compression" is not supported by shoal`}},
		{"native_histogram_bucket_limit", job("    native_histogram_bucket_limit: 10"), 3, []string{`field "native_histogram_bucket_limit" is not supported by shoal`}},
		{"tls key at job level", job("    ca_file: ca.pem"), 3, []string{`unknown field "ca_file"; it belongs under "tls_config"`}},
		{"tls_config unknown", job("    tls_config:", "      insecure: true"), 4, []string{`scrape_configs[0] (job "j").tls_config:`, `unknown field "insecure"`}},
		{"tls_config unsupported", job("    tls_config:", "      ca: PEM"), 4, []string{`tls_config: field "ca" is not supported by shoal`}},
		{"basic_auth unknown", job("    basic_auth:", "      user: x"), 4, []string{`basic_auth: unknown field "user"`}},
		{"basic_auth unsupported", job("    basic_auth:", "      password_ref: x"), 4, []string{`basic_auth: field "password_ref" is not supported by shoal`}},
		{"authorization unknown", job("    authorization:", "      token: x"), 4, []string{`authorization: unknown field "token"`}},
		{"authorization unsupported", job("    authorization:", "      credentials_ref: x"), 4, []string{`authorization: field "credentials_ref" is not supported by shoal`}},
		{"relabel entry unknown", job("    relabel_configs:", "      - target_label: x", "        sourcelabels: [a]"), 5, []string{`relabel_configs[0]: unknown field "sourcelabels"; did you mean "source_labels"?`}},
		{"metric relabel entry unknown", job("    metric_relabel_configs:", "      - action: drop", "        regexp: x"), 5, []string{`metric_relabel_configs[0]: unknown field "regexp"; did you mean "regex"?`}},
		{"static entry unknown", job("    static_configs:", "      - targets: [a:1]", "        lables: {a: b}"), 5, []string{`static_configs[0]: unknown field "lables"; did you mean "labels"?`}},
		{"file_sd entry unknown", job("    file_sd_configs:", "      - files: [a.json]", "        file: b.json"), 5, []string{`file_sd_configs[0]: unknown field "file"; did you mean "files"?`}},
		{"non-string key", job("    [a]: b"), 3, []string{"mapping keys must be strings"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "test.yml")
			wantErr(t, err, tt.line, tt.want...)
		})
	}
}

func TestAllErrorsCollected(t *testing.T) {
	_, err := Load("testdata/bad.yml")
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %T %v, want Errors", err, err)
	}
	// The line of every problem planted in bad.yml, in order.
	wantLines := []int{3, 4, 7, 8, 11, 14, 15, 18, 19, 20, 21, 23, 26, 27, 28, 30, 31, 32, 32, 34, 34, 34, 35, 37, 37, 38, 39, 40}
	var lines []int
	for _, e := range es {
		lines = append(lines, e.(*Error).Line)
	}
	if !slices.Equal(lines, wantLines) {
		t.Errorf("error lines\n got %v\nwant %v\nerrors:\n%v", lines, wantLines, err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(es) {
		t.Errorf("Error() has %d lines for %d errors", n, len(es))
	}
	for _, l := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(l, "testdata/bad.yml:") {
			t.Errorf("line without file:line prefix: %q", l)
		}
	}

	_, err = Load("testdata/unsupported.yml")
	for _, tc := range []struct {
		line  int
		field string
	}{{3, "evaluation_interval"}, {4, "alerting"}, {8, "kubernetes_sd_configs"}, {10, "oauth2"}, {12, "proxy_url"},
		{13, "enable_compression"}, {14, "native_histogram_bucket_limit"}, {16, "max_version"}} {
		wantErr(t, err, tc.line, fmt.Sprintf("field %q is not supported by shoal", tc.field))
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yml")
	var pe *Error
	if !errors.As(err, &pe) || !errors.Is(err, os.ErrNotExist) || pe.File != "testdata/does-not-exist.yml" {
		t.Errorf("got %v", err)
	}
}

func TestRelabelSemantics(t *testing.T) {
	cfg := mustParse(t, doc(
		"scrape_configs:",
		"  - job_name: a",
		"    relabel_configs:",
		"      - source_labels: [__address__]", // 0: capture group and $1
		`        regex: "([^:]+):\\d+"`,
		"        target_label: host",
		"      - source_labels: [a]", // 1: anchored: "oo" does not match "foo"
		"        regex: oo",
		"        target_label: anchored",
		"        replacement: matched",
		"      - source_labels: [multi]", // 2: (?s): . matches a newline
		"        regex: x.y",
		"        target_label: dotall",
		"        replacement: yes",
		"      - regex: __meta_(.+)", // 3: labelmap
		"        action: labelmap",
		"      - source_labels: [a, b]", // 4: separator and hashmod
		"        separator: '|'",
		"        modulus: 8",
		"        target_label: shard",
		"        action: hashmod",
		"      - source_labels: [upper]", // 5: lowercase
		"        target_label: lower",
		"        action: lowercase",
		"      - source_labels: [a]", // 6: keepequal
		"        target_label: same",
		"        action: keepequal",
		"      - action: labeldrop", // 7: labeldrop
		"        regex: drop_.*",
		"      - source_labels: [__meta_dc]", // 8: UTF-8 target label
		"        target_label: service.dc",
	))
	rcs := cfg.ScrapeConfigs[0].RelabelConfigs
	lb := labels.NewBuilder(labels.FromStrings(
		"__address__", "node-1:9100", "a", "foo", "b", "bar", "multi", "x\ny",
		"__meta_dc", "eu", "upper", "ABC", "same", "foo", "drop_me", "1"))
	if !relabel.ProcessBuilder(lb, rcs...) {
		t.Fatalf("target dropped")
	}
	got := lb.Labels()
	for name, want := range map[string]string{
		"host": "node-1", "anchored": "", "dotall": "yes", "dc": "eu", "lower": "abc", "drop_me": "", "service.dc": "eu",
	} {
		if v := got.Get(name); v != want {
			t.Errorf("%s = %q, want %q (labels %v)", name, v, want, got)
		}
	}
	if s := got.Get("shard"); len(s) != 1 || s[0] < '0' || s[0] > '7' {
		t.Errorf("shard = %q, want 0..7", s)
	}
	if rcs[1].Regex.String() != "oo" || rcs[0].Separator != ";" || rcs[4].Separator != "|" {
		t.Errorf("regex/separator not kept: %q %q %q", rcs[1].Regex.String(), rcs[0].Separator, rcs[4].Separator)
	}

	// keepequal drops when the values differ.
	lb = labels.NewBuilder(labels.FromStrings("a", "foo", "same", "bar"))
	if relabel.ProcessBuilder(lb, rcs[6]) {
		t.Error("keepequal kept differing values")
	}
}

func TestFullConfig(t *testing.T) {
	cfg, err := Load("testdata/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	sec := func(n int) model.Duration { return model.Duration(time.Duration(n) * time.Second) }
	if cfg.Global.ScrapeInterval != sec(15) || cfg.Global.ScrapeTimeout != sec(10) {
		t.Errorf("global %+v", cfg.Global)
	}
	if want := labels.FromStrings("cluster", "eu-west-1", "replica", "a"); !labels.Equal(cfg.Global.ExternalLabels, want) {
		t.Errorf("external labels %v", cfg.Global.ExternalLabels)
	}
	jobs := map[string]*ScrapeConfig{}
	var names []string
	for _, j := range cfg.ScrapeConfigs {
		jobs[j.JobName] = j
		names = append(names, j.JobName)
	}
	if want := []string{"shoal", "node", "blackbox-http", "api", "kube-state"}; !slices.Equal(names, want) {
		t.Fatalf("jobs %v, want %v", names, want)
	}
	dir := "testdata"

	node := jobs["node"]
	if node.ScrapeInterval != sec(30) || node.ScrapeTimeout != sec(10) || node.Line != 16 {
		t.Errorf("node: %v %v line %d", node.ScrapeInterval, node.ScrapeTimeout, node.Line)
	}
	if sd := node.FileSDConfigs[0]; !slices.Equal(sd.Files, []string{filepath.Join(dir, "targets/node-*.json"), "/etc/shoal/targets/extra.yml"}) ||
		sd.RefreshInterval != sec(60) {
		t.Errorf("node file_sd %+v", sd)
	}
	if len(node.RelabelConfigs) != 2 || len(node.MetricRelabelConfigs) != 1 || node.MetricRelabelConfigs[0].Action != relabel.Drop {
		t.Errorf("node relabel %v %v", node.RelabelConfigs, node.MetricRelabelConfigs)
	}

	bb := jobs["blackbox-http"]
	if bb.MetricsPath != "/probe" || bb.Params.Get("module") != "http_2xx" || bb.ScrapeTimeout != sec(5) {
		t.Errorf("blackbox %q %v %v", bb.MetricsPath, bb.Params, bb.ScrapeTimeout)
	}
	if g := bb.StaticConfigs[0]; len(g.Targets) != 2 || g.Targets[1][model.AddressLabel] != "https://example.org/health" || g.Labels["team"] != "web" {
		t.Errorf("blackbox static %v", g)
	}

	api := jobs["api"]
	if api.Scheme != "https" || !api.HonorLabels || api.HonorTimestamps || !api.TrackTimestampsStaleness || api.FollowRedirects {
		t.Errorf("api bools/scheme %+v", api)
	}
	if api.BodySizeLimit != 10*units.MiB || api.SampleLimit != 50000 || api.LabelLimit != 64 || api.LabelNameLengthLimit != 128 ||
		api.LabelValueLengthLimit != 1024 || api.TargetLimit != 100 {
		t.Errorf("api limits %+v", api)
	}
	if !slices.Equal(api.ScrapeProtocols, []ScrapeProtocol{PrometheusText0_0_4, OpenMetricsText1_0_0}) || api.FallbackScrapeProtocol != PrometheusText0_0_4 {
		t.Errorf("api protocols %v %v", api.ScrapeProtocols, api.FallbackScrapeProtocol)
	}
	wantTLS := TLSConfig{
		CAFile: filepath.Join(dir, "secrets/ca.pem"), CertFile: filepath.Join(dir, "secrets/client.pem"),
		KeyFile: filepath.Join(dir, "secrets/client-key.pem"), ServerName: "api.internal", MinVersion: "TLS13",
	}
	if api.TLSConfig != wantTLS {
		t.Errorf("api tls %+v", api.TLSConfig)
	}
	if want := (BasicAuth{Username: "shoal", PasswordFile: filepath.Join(dir, "secrets/api-password")}); *api.BasicAuth != want {
		t.Errorf("api basic_auth %+v", api.BasicAuth)
	}
	if h, err := api.AuthHeader(); err != nil || h != "Basic c2hvYWw6czNjcmV0" { // shoal:s3cret
		t.Errorf("api AuthHeader = %q, %v", h, err)
	}
	if len(api.StaticConfigs) != 2 || api.StaticConfigs[1].Labels["canary"] != "true" {
		t.Errorf("api static %v", api.StaticConfigs)
	}

	if ks := jobs["kube-state"]; ks.Authorization.CredentialsFile != "/var/run/secrets/token" || ks.Authorization.Type != "Bearer" {
		t.Errorf("kube-state authorization %+v", ks.Authorization)
	}
}

// TestExampleConfig checks the bundled example `make run` uses.
func TestExampleConfig(t *testing.T) {
	cfg, err := Load("../examples/shoal.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("%d jobs, want 1", len(cfg.ScrapeConfigs))
	}
	j := cfg.ScrapeConfigs[0]
	if j.JobName != "shoal" || j.Interval() != 5*time.Second || j.Timeout() != 5*time.Second || j.MetricsPath != "/metrics" ||
		j.Scheme != "http" || len(j.StaticConfigs) != 1 || j.StaticConfigs[0].Targets[0][model.AddressLabel] != "127.0.0.1:9464" {
		t.Errorf("example job %+v", j)
	}

	// The commented-out node_exporter job is valid once uncommented.
	data, err := os.ReadFile("../examples/shoal.yml")
	if err != nil {
		t.Fatal(err)
	}
	uncommented := strings.ReplaceAll(string(data), "  # - job_name: node", "  - job_name: node")
	uncommented = strings.ReplaceAll(uncommented, "  #   ", "    ")
	cfg, err = Parse([]byte(uncommented), "shoal.yml")
	if err != nil {
		t.Fatalf("uncommented example: %v\n%s", err, uncommented)
	}
	if len(cfg.ScrapeConfigs) != 2 || cfg.ScrapeConfigs[1].Interval() != 15*time.Second {
		t.Errorf("uncommented example: %d jobs", len(cfg.ScrapeConfigs))
	}
}

func TestParseJob(t *testing.T) {
	data, err := os.ReadFile("testdata/job.yml")
	if err != nil {
		t.Fatal(err)
	}
	j, err := ParseJob(data, "zk:/shoal/jobs/node")
	if err != nil {
		t.Fatal(err)
	}
	// Unresolved: nothing inherited, relative paths left alone.
	if j.JobName != "node" || j.ScrapeInterval != 0 || j.ScrapeTimeout != model.Duration(20*time.Second) ||
		j.ScrapeProtocols != nil || j.BearerTokenFile != "secrets/token" || j.Line != 2 {
		t.Errorf("unresolved job %+v", j)
	}

	// A global interval shorter than the job's own timeout is an error
	// pointing at the job's scrape_timeout.
	short := *j
	err = short.SetDefaults(GlobalConfig{ScrapeInterval: model.Duration(15 * time.Second)})
	wantErr(t, err, 3, `zk:/shoal/jobs/node:3: job "node".scrape_timeout: scrape timeout greater than scrape interval`)

	if err := j.SetDefaults(GlobalConfig{ScrapeInterval: model.Duration(30 * time.Second), SampleLimit: 9}); err != nil {
		t.Fatal(err)
	}
	if j.ScrapeInterval != model.Duration(30*time.Second) || j.ScrapeTimeout != model.Duration(20*time.Second) ||
		j.SampleLimit != 9 || !slices.Equal(j.ScrapeProtocols, DefaultScrapeProtocols) {
		t.Errorf("resolved job %+v", j)
	}
	j.SetDirectory("/etc/shoal")
	if j.BearerTokenFile != "/etc/shoal/secrets/token" {
		t.Errorf("SetDirectory: %q", j.BearerTokenFile)
	}

	// No globals at all: Prometheus's defaults.
	j, err = ParseJob([]byte("job_name: x\n"), "src")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.SetDefaults(GlobalConfig{}); err != nil || j.Interval() != time.Minute || j.Timeout() != 10*time.Second {
		t.Errorf("SetDefaults(GlobalConfig{}): %v %v %v", err, j.Interval(), j.Timeout())
	}

	for _, tt := range []struct {
		name, doc string
		line      int
		want      []string
	}{
		{"empty", "", 0, []string{"src: empty scrape config"}},
		{"comment only", "# nothing\n", 0, []string{"empty scrape config"}},
		{"no job_name", doc("scheme: https"), 1, []string{"src:1: scrape_config: job_name is empty"}},
		{"unsupported", doc("job_name: x", "http_sd_configs: []"), 2, []string{`src:2: job "x": field "http_sd_configs" is not supported by shoal`}},
		{"timeout over own interval", doc("job_name: x", "scrape_interval: 1s", "scrape_timeout: 2s"), 3, []string{`job "x".scrape_timeout`}},
		{"list", doc("- job_name: x"), 1, []string{"expected a mapping"}},
		{"global section", doc("global: {}"), 1, []string{`unknown field "global"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j, err := ParseJob([]byte(tt.doc), "src")
			if j != nil {
				t.Error("ParseJob returned a job with an error")
			}
			wantErr(t, err, tt.line, tt.want...)
		})
	}
}

func TestYAMLFeatures(t *testing.T) {
	cfg, err := Load("testdata/anchors.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := cfg.ScrapeConfigs[0], cfg.ScrapeConfigs[1], cfg.ScrapeConfigs[2]
	if a.ScrapeInterval != model.Duration(30*time.Second) || a.MetricsPath != "/m" {
		t.Errorf("a: %v %q", a.ScrapeInterval, a.MetricsPath)
	}
	if b.ScrapeInterval != model.Duration(30*time.Second) || b.MetricsPath != "/override" {
		t.Errorf("b: merged keys must lose to explicit ones: %v %q", b.ScrapeInterval, b.MetricsPath)
	}
	if c.StaticConfigs[0].Targets[0][model.AddressLabel] != "b:1" || c.StaticConfigs[0] == b.StaticConfigs[0] {
		t.Errorf("c: alias must give its own copy: %v", c.StaticConfigs)
	}

	// An alias bomb is refused, not expanded.
	var bomb strings.Builder
	bomb.WriteString("scrape_configs:\n  - job_name: a\n    params:\n      l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&bomb, "      l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i, i,
			i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	_, err = Parse([]byte(bomb.String()), "bomb.yml")
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("alias bomb: got %v", err)
	}
}

// TestErrorsSorted checks that problems found by the walk and by validation
// come out in line order.
func TestErrorsSorted(t *testing.T) {
	_, err := Parse([]byte(doc(
		"scrape_configs:",
		"  - job_name: a",
		"    scheme: ftp", // validation
		"    bogus: 1",    // walk
		"  - job_name: a", // validation (duplicate)
		"    bogus: 2",    // walk
	)), "x.yml")
	var lines []int
	for _, e := range err.(Errors) {
		lines = append(lines, e.(*Error).Line)
	}
	if !slices.Equal(lines, []int{3, 4, 5, 6}) {
		t.Errorf("lines %v:\n%v", lines, err)
	}
}

// TestSchemaCoversStructs guards the walker's type switch: every struct
// field of the config types must be decodable by the walker. A new field of
// an unhandled struct type would otherwise be decoded whole, without
// unknown-field checks.
func TestSchemaCoversStructs(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[Config](), reflect.TypeFor[GlobalConfig](), reflect.TypeFor[ScrapeConfig](),
		reflect.TypeFor[FileSDConfig](), reflect.TypeFor[DNSSDConfig](), reflect.TypeFor[ConsulSDConfig](),
		reflect.TypeFor[BasicAuth](), reflect.TypeFor[Authorization](), reflect.TypeFor[TLSConfig](),
	} {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() || f.Tag.Get("yaml") == "-" {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() != reflect.Struct {
				continue
			}
			switch ft {
			case reflect.TypeFor[labels.Labels](), reflect.TypeFor[relabel.Config](), groupType:
				continue // decoded by their own rules, checked in the tests above
			}
			if !walkable(ft) {
				t.Errorf("%s.%s: struct type %s is not walkable", typ.Name(), f.Name, ft)
			}
		}
	}
}
