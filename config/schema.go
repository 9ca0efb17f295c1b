package config

import (
	"reflect"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/model/relabel"
)

// This file describes which keys each YAML mapping may hold. Supported keys
// come from the yaml tags of the Go structs, so adding a field to a struct is
// all it takes to accept a new key. Keys Prometheus knows but shoal does not
// implement are listed here so their error can say "not supported by shoal"
// instead of "unknown field"; the lists follow Prometheus v0.315.0.

// unsupportedSD are the service discovery mechanisms Prometheus v0.315.0
// registers that shoal does not implement (it has static_configs,
// file_sd_configs, dns_sd_configs and consul_sd_configs).
var unsupportedSD = []string{
	"aws", "azure", "digitalocean", "docker", "dockerswarm",
	"ec2", "ecs", "elasticache", "eureka", "gce", "hetzner", "http", "ionos",
	"kubernetes", "kuma", "lightsail", "linode", "marathon", "msk", "nerve",
	"nomad", "oci", "openstack", "outscale", "ovhcloud", "puppetdb", "rds",
	"scaleway", "serverset", "stackit", "triton", "uyuni", "vultr",
}

// unsupportedKeys maps a struct type to the Prometheus keys it does not
// accept, each with an optional reason appended to the message.
var unsupportedKeys = func() map[reflect.Type]map[string]string {
	const (
		noRules  = "shoal evaluates no rules"
		noTSDB   = "shoal stores nothing; it sends every scrape to Kafka"
		noNative = "shoal does not scrape native histograms"
		noProxy  = "shoal connects directly, without a proxy"
		onlyFile = "use the _file form"
		names    = "shoal validates names as UTF-8, like Prometheus 3"
	)
	scrape := map[string]string{
		"scrape_native_histograms":           noNative,
		"always_scrape_classic_histograms":   noNative,
		"convert_classic_histograms_to_nhcb": noNative,
		"native_histogram_bucket_limit":      noNative,
		"native_histogram_min_bucket_factor": noNative,
		"scrape_failure_log_file":            "",
		"enable_compression":                 "shoal always asks for gzip",
		"keep_dropped_targets":               "",
		"metric_name_validation_scheme":      names,
		"metric_name_escaping_scheme":        names,
		"extra_scrape_metrics":               "",
		"oauth2":                             "",
		"enable_http2":                       "",
		"proxy_url":                          noProxy,
		"no_proxy":                           noProxy,
		"proxy_from_environment":             noProxy,
		"proxy_connect_header":               noProxy,
		"http_headers":                       "",
	}
	for _, sd := range unsupportedSD {
		scrape[sd+"_sd_configs"] = "shoal discovers targets with static_configs, file_sd_configs, dns_sd_configs and consul_sd_configs"
	}
	return map[reflect.Type]map[string]string{
		reflect.TypeFor[Config](): {
			"runtime":             "",
			"alerting":            "shoal sends no alerts",
			"rule_files":          noRules,
			"scrape_config_files": "",
			"storage":             noTSDB,
			"tracing":             "",
			"remote_write":        noTSDB,
			"remote_read":         noTSDB,
			"otlp":                noTSDB,
		},
		reflect.TypeFor[GlobalConfig](): {
			"evaluation_interval":                noRules,
			"rule_query_offset":                  noRules,
			"query_log_file":                     noRules,
			"scrape_failure_log_file":            "",
			"keep_dropped_targets":               "",
			"metric_name_validation_scheme":      names,
			"metric_name_escaping_scheme":        names,
			"scrape_native_histograms":           noNative,
			"convert_classic_histograms_to_nhcb": noNative,
			"always_scrape_classic_histograms":   noNative,
			"extra_scrape_metrics":               "",
		},
		reflect.TypeFor[ScrapeConfig](): scrape,
		reflect.TypeFor[ConsulSDConfig](): {
			"oauth2":                 "",
			"proxy_url":              noProxy,
			"no_proxy":               noProxy,
			"proxy_from_environment": noProxy,
			"proxy_connect_header":   noProxy,
			"http_headers":           "",
		},
		reflect.TypeFor[BasicAuth](): {
			"username_ref": onlyFile,
			"password_ref": onlyFile,
		},
		reflect.TypeFor[Authorization](): {
			"credentials_ref": onlyFile,
		},
		reflect.TypeFor[TLSConfig](): {
			"ca":          onlyFile,
			"cert":        onlyFile,
			"key":         onlyFile,
			"ca_ref":      onlyFile,
			"cert_ref":    onlyFile,
			"key_ref":     onlyFile,
			"max_version": "",
		},
	}
}()

// fieldInfo is what the walker needs about one struct.
type fieldInfo struct {
	byKey map[string]int // yaml key → field index
	keys  []string       // supported keys, sorted, for suggestions
}

// fieldsOf returns the yaml keys of struct type t. Fields tagged "-" or
// unexported are not keys; untagged exported fields use the lower-cased
// field name, as yaml does. It is not cached: the structs have a few dozen
// fields and a config a few hundred mappings, and a cache would be package
// state.
func fieldsOf(t reflect.Type) *fieldInfo {
	fi := &fieldInfo{byKey: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fi.byKey[name] = i
		fi.keys = append(fi.keys, name)
	}
	sort.Strings(fi.keys)
	return fi
}

// unknownFieldHint suggests what the user may have meant by key in a mapping
// of type t: a close spelling of a key t supports, or the nested block where
// key is a supported key. It returns "" when it has nothing useful to say.
func unknownFieldHint(t reflect.Type, key string) string {
	fi := fieldsOf(t)
	best, bestDist := "", 3 // suggest only within edit distance 2
	for _, k := range fi.keys {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" && bestDist < len(key) {
		return "; did you mean \"" + best + "\"?"
	}
	for _, k := range fi.keys {
		ft := t.Field(fi.byKey[k]).Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Struct || !walkable(ft) {
			continue
		}
		if _, ok := fieldsOf(ft).byKey[key]; ok {
			return "; it belongs under \"" + k + "\""
		}
	}
	return ""
}

// walkable reports whether the walker descends into struct type t key by key
// (rather than decoding it whole with its own UnmarshalYAML).
func walkable(t reflect.Type) bool {
	switch t {
	case reflect.TypeFor[Config](), reflect.TypeFor[GlobalConfig](), reflect.TypeFor[ScrapeConfig](),
		reflect.TypeFor[FileSDConfig](), reflect.TypeFor[DNSSDConfig](), reflect.TypeFor[ConsulSDConfig](),
		reflect.TypeFor[BasicAuth](), reflect.TypeFor[Authorization](),
		reflect.TypeFor[TLSConfig](), reflect.TypeFor[relabel.Config]():
		return true
	}
	return false
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
