package config

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestSDDefaults(t *testing.T) {
	cfg := mustParse(t, doc(
		"scrape_configs:",
		"  - job_name: a",
		"    dns_sd_configs:",
		"      - names: [_node._tcp.example.test]",
		"      - names: [db.example.test]",
		"        type: aaaa",
		"        port: 9187",
		"        refresh_interval: 5s",
		"    consul_sd_configs:",
		"      - {}",
		"      - server: https://consul.internal:8501",
		"        services: [web, api]",
		"        tags: [prod]",
		"        node_meta: {rack: r1}",
		"        allow_stale: false",
		"        tag_separator: ';'",
		"        token: secret",
		"        tls_config: {ca_file: ca.pem}",
	))
	j := cfg.ScrapeConfigs[0]
	if len(j.DNSSDConfigs) != 2 || len(j.ConsulSDConfigs) != 2 {
		t.Fatalf("got %d dns and %d consul configs", len(j.DNSSDConfigs), len(j.ConsulSDConfigs))
	}
	srv, aaaa := j.DNSSDConfigs[0], j.DNSSDConfigs[1]
	if srv.QType() != "SRV" || srv.Port != 0 || srv.RefreshInterval != model.Duration(30*time.Second) {
		t.Errorf("SRV defaults: %+v", srv)
	}
	if aaaa.QType() != "AAAA" || aaaa.Port != 9187 || aaaa.RefreshInterval != model.Duration(5*time.Second) {
		t.Errorf("AAAA: %+v", aaaa)
	}

	def := DefaultConsulSDConfig()
	if c := j.ConsulSDConfigs[0]; c.Server != "localhost:8500" || c.Scheme != "http" || c.TagSeparator != "," || !c.AllowStale ||
		c.RefreshInterval != model.Duration(30*time.Second) || !c.FollowRedirects || !c.EnableHTTP2 {
		t.Errorf("consul defaults: %+v", c)
	} else if !slices.Equal(c.Services, def.Services) {
		t.Errorf("services %v", c.Services)
	}
	c := j.ConsulSDConfigs[1]
	if c.Server != "https://consul.internal:8501" || !slices.Equal(c.Services, []string{"web", "api"}) || !slices.Equal(c.Tags, []string{"prod"}) ||
		c.NodeMeta["rack"] != "r1" || c.AllowStale || c.TagSeparator != ";" || c.Token != "secret" {
		t.Errorf("consul: %+v", c)
	}
	if want := filepath.Join(".", "ca.pem"); c.TLSConfig.CAFile != want {
		t.Errorf("tls ca_file %q, want %q (joined to the config's directory)", c.TLSConfig.CAFile, want)
	}
	roundTrip(t, j, cfg.Global)
}

func TestSDValidation(t *testing.T) {
	job := func(lines ...string) string {
		return doc(append([]string{"scrape_configs:", "  - job_name: j"}, lines...)...)
	}
	for _, tt := range []struct {
		name string
		doc  string
		line int
		want []string
	}{
		// dns_sd_configs, with Prometheus's messages where it has them.
		{"dns no names", job("    dns_sd_configs:", "      - type: SRV"), 4,
			[]string{`scrape_configs[0] (job "j").dns_sd_configs[0]`, "DNS-SD config must contain at least one SRV record name"}},
		{"dns empty name", job("    dns_sd_configs:", "      - names:", "          - a.test", "          - ''"), 6,
			[]string{"dns_sd_configs[0].names[1]", "must not be empty"}},
		{"dns bad type", job("    dns_sd_configs:", "      - names: [a.test]", "        type: TXT"), 5,
			[]string{"dns_sd_configs[0].type", "invalid DNS-SD records type TXT"}},
		{"dns A without port", job("    dns_sd_configs:", "      - names: [a.test]", "        type: A"), 4,
			[]string{"dns_sd_configs[0]", "a port is required in DNS-SD configs for all record types except SRV"}},
		{"dns port range", job("    dns_sd_configs:", "      - names: [a.test]", "        type: MX", "        port: 70000"), 6,
			[]string{"dns_sd_configs[0].port", "out of range"}},
		{"dns zero refresh", job("    dns_sd_configs:", "      - names: [a.test]", "        refresh_interval: 0s"), 5,
			[]string{"dns_sd_configs[0].refresh_interval", "positive"}},
		{"dns unknown field", job("    dns_sd_configs:", "      - names: [a.test]", "        name: b.test"), 5,
			[]string{"dns_sd_configs[0]", `unknown field "name"; did you mean "names"?`}},
		{"dns port not a number", job("    dns_sd_configs:", "      - names: [a.test]", "        port: http"), 5,
			[]string{"dns_sd_configs[0].port", "`http` into int"}},
		{"dns second entry", job("    dns_sd_configs:", "      - names: [a.test]", "      - names: []"), 5,
			[]string{"dns_sd_configs[1]", "at least one"}},

		// consul_sd_configs.
		{"consul empty server", job("    consul_sd_configs:", "      - server: ' '"), 4,
			[]string{`scrape_configs[0] (job "j").consul_sd_configs[0]`, "consul SD configuration requires a server address"}},
		{"consul server with path", job("    consul_sd_configs:", "      - server: consul:8500/v1"), 4,
			[]string{"consul_sd_configs[0].server", "path_prefix"}},
		{"consul server scheme", job("    consul_sd_configs:", "      - server: ftp://consul:8500"), 4,
			[]string{"consul_sd_configs[0].server", `unknown protocol scheme "ftp"`}},
		{"consul scheme", job("    consul_sd_configs:", "      - scheme: tcp"), 4,
			[]string{"consul_sd_configs[0].scheme", `"tcp"`}},
		{"consul zero refresh", job("    consul_sd_configs:", "      - refresh_interval: 0s"), 4,
			[]string{"consul_sd_configs[0].refresh_interval", "positive"}},
		{"consul username and basic_auth", job("    consul_sd_configs:", "      - username: u", "        basic_auth:", "          username: v"), 5,
			[]string{"consul_sd_configs[0]", "at most one of consul SD configuration username and password and basic auth"}},
		{"consul token and authorization", job("    consul_sd_configs:", "      - token: t", "        authorization:", "          credentials: c"), 5,
			[]string{"consul_sd_configs[0]", "at most one of consul SD token, authorization, or oauth2"}},
		{"consul bearer and authorization", job("    consul_sd_configs:", "      - bearer_token: t", "        authorization:", "          credentials: c"), 5,
			[]string{"consul_sd_configs[0]", "authorization is not compatible with bearer_token"}},
		{"consul tls", job("    consul_sd_configs:", "      - tls_config:", "          cert_file: c.pem"), 5,
			[]string{"consul_sd_configs[0].tls_config", "key_file must be configured"}},
		{"consul oauth2", job("    consul_sd_configs:", "      - oauth2: {client_id: x}"), 4,
			[]string{"consul_sd_configs[0]", `field "oauth2" is not supported by shoal`}},
		{"consul proxy", job("    consul_sd_configs:", "      - proxy_url: http://p:3128"), 4,
			[]string{`field "proxy_url" is not supported by shoal (shoal connects directly, without a proxy)`}},
		{"consul unknown field", job("    consul_sd_configs:", "      - service: [web]"), 4,
			[]string{"consul_sd_configs[0]", `unknown field "service"; did you mean "services"?`}},
		{"consul empty service", job("    consul_sd_configs:", "      - services:", "          - web", "          - ''"), 6,
			[]string{"consul_sd_configs[0].services[1]", "must not be empty"}},
		{"consul node_meta not a map", job("    consul_sd_configs:", "      - node_meta: [a]"), 4,
			[]string{"consul_sd_configs[0].node_meta"}},
		{"consul allow_stale not a bool", job("    consul_sd_configs:", "      - allow_stale: sometimes"), 4,
			[]string{"consul_sd_configs[0].allow_stale", "bool"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.doc), "test.yml")
			if cfg != nil {
				t.Error("Parse returned a config with an error")
			}
			wantErr(t, err, tt.line, append([]string{"test.yml:"}, tt.want...)...)
		})
	}
}

func TestSDParseJob(t *testing.T) {
	// The job store's form: one scrape_config, errors named by source.
	_, err := ParseJob([]byte(doc("job_name: x", "dns_sd_configs:", "  - names: [a.test]", "    type: A")), "zk:/shoal/jobs/x")
	wantErr(t, err, 3, `zk:/shoal/jobs/x:3: job "x".dns_sd_configs[0]: a port is required`)
}

func TestConsulAuthHeader(t *testing.T) {
	for _, tt := range []struct {
		c    ConsulSDConfig
		want string
	}{
		{ConsulSDConfig{}, ""},
		{ConsulSDConfig{Username: "u", Password: "p"}, "Basic dTpw"},
		{ConsulSDConfig{BasicAuth: &BasicAuth{Username: "u", Password: "p"}}, "Basic dTpw"},
		{ConsulSDConfig{BearerToken: "t"}, "Bearer t"},
		{ConsulSDConfig{Authorization: &Authorization{Type: "Token", Credentials: "c"}}, "Token c"},
		{ConsulSDConfig{Token: "consul-acl"}, ""}, // sent as X-Consul-Token instead
	} {
		if got, err := tt.c.AuthHeader(); err != nil || got != tt.want {
			t.Errorf("%+v: got %q, %v; want %q", tt.c, got, err, tt.want)
		}
	}
	c := ConsulSDConfig{BearerTokenFile: "testdata/does-not-exist"}
	if _, err := c.AuthHeader(); err == nil {
		t.Error("an unreadable bearer_token_file gave no error")
	}
}
