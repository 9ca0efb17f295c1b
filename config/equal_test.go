package config

import (
	"fmt"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v3"
)

// fullJob returns a new job with every field and every nested field set to
// a non-zero value. It need not be valid (it has every auth method); Equal
// does not validate.
func fullJob() *ScrapeConfig {
	rc := func(action relabel.Action) *relabel.Config {
		return &relabel.Config{
			SourceLabels: model.LabelNames{"a", "b"}, Separator: ";", Regex: relabel.MustNewRegexp("(x+)"),
			Modulus: 3, TargetLabel: "t", Replacement: "$1", Action: action, NameValidationScheme: model.UTF8Validation,
		}
	}
	return &ScrapeConfig{
		JobName: "j", ScrapeInterval: model.Duration(time.Minute), ScrapeTimeout: model.Duration(time.Second),
		MetricsPath: "/m", Scheme: "https", Params: url.Values{"module": {"m"}},
		HonorLabels: true, HonorTimestamps: true, TrackTimestampsStaleness: true,
		StaticConfigs: []*targetgroup.Group{{
			Targets: []model.LabelSet{{model.AddressLabel: "a:1"}}, Labels: model.LabelSet{"l": "v"}, Source: "0",
		}},
		FileSDConfigs: []*FileSDConfig{{Files: []string{"f.json"}, RefreshInterval: model.Duration(time.Minute)}},
		DNSSDConfigs:  []*DNSSDConfig{{Names: []string{"n"}, RefreshInterval: model.Duration(time.Minute), Type: "A", Port: 9}},
		ConsulSDConfigs: []*ConsulSDConfig{{
			Server: "s:1", PathPrefix: "/p", Token: "t", Datacenter: "dc", Namespace: "ns", Partition: "pt", TagSeparator: ";",
			Scheme: "https", Username: "u", Password: "pw", AllowStale: true, RefreshInterval: model.Duration(time.Minute),
			Services: []string{"svc"}, Tags: []string{"tag"}, NodeMeta: map[string]string{"k": "v"}, Filter: "f", HealthFilter: "hf",
			BasicAuth:     &BasicAuth{Username: "u", UsernameFile: "uf", Password: "p", PasswordFile: "pf"},
			Authorization: &Authorization{Type: "Bearer", Credentials: "c", CredentialsFile: "cf"},
			BearerToken:   "b", BearerTokenFile: "bf",
			TLSConfig:       TLSConfig{CAFile: "ca", CertFile: "cert", KeyFile: "key", ServerName: "sn", InsecureSkipVerify: true, MinVersion: "TLS12"},
			FollowRedirects: true, EnableHTTP2: true,
		}},
		RelabelConfigs:       []*relabel.Config{rc(relabel.Replace)},
		MetricRelabelConfigs: []*relabel.Config{rc(relabel.Drop)},
		SampleLimit:          1, LabelLimit: 2, LabelNameLengthLimit: 3, LabelValueLengthLimit: 4, BodySizeLimit: 5, TargetLimit: 6,
		BasicAuth:     &BasicAuth{Username: "u", UsernameFile: "uf", Password: "p", PasswordFile: "pf"},
		Authorization: &Authorization{Type: "Bearer", Credentials: "c", CredentialsFile: "cf"},
		BearerToken:   "b", BearerTokenFile: "bf",
		TLSConfig: TLSConfig{
			CAFile: "ca", CertFile: "cert", KeyFile: "key", ServerName: "sn", InsecureSkipVerify: true, MinVersion: "TLS12",
		},
		FollowRedirects:        true,
		ScrapeProtocols:        []ScrapeProtocol{PrometheusText0_0_4},
		FallbackScrapeProtocol: PrometheusText0_0_4,
		Line:                   7,
	}
}

// ignoredByEqual are the fields Equal deliberately does not compare.
var ignoredByEqual = map[string]bool{
	"ScrapeConfig.Line":           true, // position, not meaning
	"Group.Source":                true, // derived from the index in static_configs
	"Config.NameValidationScheme": true, // always UTF-8 after parsing
	"ScrapeConfig.source":         true, // unexported bookkeeping for messages
	"ScrapeConfig.path":           true,
	"ScrapeConfig.timeoutLine":    true,
}

// leafPaths lists a path (a sequence of field or element indices) to every
// leaf of v: basic values, slices and maps (which are also mutated whole),
// and opaque structs.
func leafPaths(v reflect.Value, prefix []int, names string, out *[]leaf) {
	t := v.Type()
	switch {
	case t == reflect.TypeFor[relabel.Regexp](), t == reflect.TypeFor[labels.Labels]():
		*out = append(*out, leaf{prefix, names})
	case t.Kind() == reflect.Pointer:
		if v.IsNil() {
			*out = append(*out, leaf{prefix, names})
			return
		}
		leafPaths(v.Elem(), prefix, names, out)
	case t.Kind() == reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if ignoredByEqual[t.Name()+"."+f.Name] || !f.IsExported() {
				continue
			}
			leafPaths(v.Field(i), append(append([]int{}, prefix...), i), names+"."+f.Name, out)
		}
	case t.Kind() == reflect.Slice:
		*out = append(*out, leaf{prefix, names + "[+]"})
		if v.Len() > 0 {
			leafPaths(v.Index(0), append(append([]int{}, prefix...), -1), names+"[0]", out)
		}
	default:
		*out = append(*out, leaf{prefix, names})
	}
}

type leaf struct {
	path []int // field indices; -1 means element 0 of a slice
	name string
}

// at follows path from v.
func at(v reflect.Value, path []int) reflect.Value {
	for _, i := range path {
		for v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		if i == -1 {
			v = v.Index(0)
		} else {
			v = v.Field(i)
		}
	}
	return v
}

// mutate changes v to a different value of its type.
func mutate(v reflect.Value, grow bool) {
	switch t := v.Type(); {
	case t == reflect.TypeFor[relabel.Regexp]():
		v.Set(reflect.ValueOf(relabel.MustNewRegexp("changed")))
	case t == reflect.TypeFor[labels.Labels]():
		v.Set(reflect.ValueOf(labels.FromStrings("changed", "x")))
	case grow && t.Kind() == reflect.Slice:
		e := reflect.Zero(t.Elem())
		if t.Elem().Kind() == reflect.Pointer {
			e = reflect.New(t.Elem().Elem())
		}
		v.Set(reflect.Append(v, e))
	case t.Kind() == reflect.Pointer:
		v.Set(reflect.New(t.Elem()))
	case t == reflect.TypeFor[model.LabelSet]() && v.Len() == 1 && v.MapIndex(reflect.ValueOf(model.LabelName(model.AddressLabel))).IsValid():
		// A static target: only its address is part of the config.
		v.Set(reflect.ValueOf(model.LabelSet{model.AddressLabel: "changed:1"}))
	case t.Kind() == reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		v.SetMapIndex(reflect.ValueOf("changed").Convert(t.Key()), reflect.Zero(t.Elem()))
	case t.Kind() == reflect.String:
		v.SetString(v.String() + "x")
	case t.Kind() == reflect.Bool:
		v.SetBool(!v.Bool())
	case t.Kind() == reflect.Int64:
		v.SetInt(v.Int() + int64(time.Second)) // Durations print in ms
	case t.Kind() == reflect.Int:
		v.SetInt(v.Int() + 1)
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	default:
		panic(fmt.Sprintf("mutate: unhandled %s", t))
	}
}

func TestEqualNoticesEveryField(t *testing.T) {
	if !fullJob().Equal(fullJob()) {
		t.Fatal("a job is not equal to a copy of itself")
	}
	var leaves []leaf
	leafPaths(reflect.ValueOf(fullJob()), nil, "ScrapeConfig", &leaves)
	if len(leaves) < 60 {
		t.Fatalf("only %d leaves: fullJob or leafPaths is missing fields", len(leaves))
	}
	for _, l := range leaves {
		j := fullJob()
		v := at(reflect.ValueOf(j), l.path)
		mutate(v, len(l.name) > 3 && l.name[len(l.name)-3:] == "[+]")
		if fullJob().Equal(j) {
			t.Errorf("changing %s is not noticed", l.name)
		}
	}

	// Every exported field of every config struct is either compared or
	// deliberately ignored.
	for _, typ := range []reflect.Type{reflect.TypeFor[ScrapeConfig](), reflect.TypeFor[relabel.Config]()} {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.IsExported() && f.Tag.Get("yaml") == "-" && !ignoredByEqual[typ.Name()+"."+f.Name] {
				t.Errorf("%s.%s is not marshalled, so Equal cannot see it", typ.Name(), f.Name)
			}
		}
	}

	j := fullJob()
	j.Line = 99
	if !fullJob().Equal(j) {
		t.Error("Equal compares Line")
	}
	var nilJob *ScrapeConfig
	if !nilJob.Equal(nil) || nilJob.Equal(fullJob()) || fullJob().Equal(nil) {
		t.Error("nil handling")
	}
}

func TestEqualSemantic(t *testing.T) {
	parse := func(text string) *ScrapeConfig {
		t.Helper()
		j, err := ParseJob([]byte(text), "t")
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	a := parse(doc("job_name: a", "scrape_interval: 1m", "relabel_configs:", "  - regex: 'x+'", "    action: keep"))
	b := parse(doc("# comment", "relabel_configs:", "  - action: keep", "    regex: \"x+\"", "scrape_interval: 60s", "job_name: a"))
	if !a.Equal(b) {
		t.Error("same job, different spelling and order: not equal")
	}
	c := parse(doc("job_name: a", "scrape_interval: 1m", "relabel_configs:", "  - regex: 'x*'", "    action: keep"))
	if a.Equal(c) {
		t.Error("different regex: equal")
	}
}

// TestRoundTrip checks that a job marshalled with yaml and read back with
// ParseJob is equal to the original: the job store may keep jobs that way.
func TestRoundTrip(t *testing.T) {
	cfg, err := Load("testdata/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range cfg.ScrapeConfigs {
		roundTrip(t, j, cfg.Global)
	}
	// Keys yaml.v3 would otherwise write as merge keys.
	for _, text := range []string{
		doc("job_name: a", "params: {'<<': [x], '~': [y], 'null': [z], '': [e]}"),
		doc("job_name: a", "static_configs: [{targets: ['a:1'], labels: {'<<': x}}]"),
		doc("job_name: '<<'", "relabel_configs: [{target_label: x, replacement: '<<', regex: '<<'}]"),
	} {
		j, err := ParseJob([]byte(text), "t")
		if err != nil {
			t.Fatal(err)
		}
		if err := j.SetDefaults(GlobalConfig{}); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, j, GlobalConfig{})
	}

	// Unresolved jobs too.
	j, err := ParseJob([]byte(doc("job_name: a", "static_configs: [{targets: [a:1]}]")), "t")
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseJob(out, "t")
	if err != nil || !back.Equal(j) || back.ScrapeInterval != 0 || back.ScrapeProtocols != nil {
		t.Errorf("unresolved round trip: %v\n%s", err, out)
	}
}

func roundTrip(t *testing.T, j *ScrapeConfig, g GlobalConfig) {
	t.Helper()
	out, err := yaml.Marshal(j)
	if err != nil {
		t.Fatalf("job %q: Marshal: %v", j.JobName, err)
	}
	back, err := ParseJob(out, "roundtrip")
	if err == nil {
		err = back.SetDefaults(g)
	}
	if err != nil {
		t.Fatalf("job %q: reading back: %v\n%s", j.JobName, err, out)
	}
	if !back.Equal(j) {
		again, _ := yaml.Marshal(back)
		t.Fatalf("job %q changed in a round trip:\n%s\n---\n%s", j.JobName, out, again)
	}
}
