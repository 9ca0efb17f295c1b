package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/shoal-scraper/shoal/produce"
)

// Every goroutine a Kafka client or kfake cluster starts must be gone when
// the tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseSelector(t *testing.T) {
	ls := labels.FromStrings("__name__", "node_load1", "job", "node", "instance", "10.0.0.1:9100", "a.b", "x\"y")
	for _, tc := range []struct {
		sel   string
		n     int // matchers
		match bool
		err   string
	}{
		{sel: "", n: 0, match: true},
		{sel: "{}", n: 0, match: true},
		{sel: "node_load1", n: 1, match: true},
		{sel: "up", n: 1, match: false},
		{sel: `{job="node"}`, n: 1, match: true},
		{sel: ` node_load1 { job = "node" , instance=~"10\\..*", } `, n: 3, match: true},
		{sel: `{job!="node"}`, n: 1, match: false},
		{sel: `{instance!~"10.*"}`, n: 1, match: false},
		{sel: `{instance=~"10"}`, n: 1, match: false}, // anchored
		{sel: `{job='node'}`, n: 1, match: true},
		{sel: "{job=`node`}", n: 1, match: true},
		{sel: `{"node_load1"}`, n: 1, match: true},
		{sel: `{"a.b"="x\"y"}`, n: 1, match: true},
		{sel: `{'a.b'='x"y'}`, n: 1, match: true},
		{sel: `{missing=""}`, n: 1, match: true}, // an absent label is ""
		{sel: `{job="node"`, err: "want ',' or '}'"},
		{sel: `{job}`, err: "want =, !=, =~ or !~"},
		{sel: `{job=node}`, err: "want a quoted string"},
		{sel: `{job="node}`, err: "unterminated string"},
		{sel: `{job=~"("}`, err: "error parsing regexp"},
		{sel: `up{} x`, err: "unexpected text"},
		{sel: `{1a="x"}`, err: "want a label name"},
	} {
		ms, err := parseSelector(tc.sel)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one containing %q", tc.sel, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.sel, err)
			continue
		}
		if len(ms) != tc.n || matches(ms, ls) != tc.match {
			t.Errorf("%s: %d matchers %v, matches %v; want %d, %v", tc.sel, len(ms), ms, matches(ms, ls), tc.n, tc.match)
		}
	}
}

func parseRunFlags(t *testing.T, args ...string) *runFlags {
	t.Helper()
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &f
}

func TestKafkaFlagsDefaults(t *testing.T) {
	f := parseRunFlags(t, "--kafka.brokers=k1:9092, k2:9092")
	c, err := f.kafka.config("m:9464")
	if err != nil {
		t.Fatal(err)
	}
	want := produce.DefaultKafkaConfig()
	if !equalStrings(c.Brokers, []string{"k1:9092", "k2:9092"}) || c.Topic != want.Topic || c.ClientID != "shoal" ||
		c.Format != produce.RW2 || c.Compression != produce.Zstd || c.BufferBytes != 256<<20 || c.MaxRecordBytes != 1_000_000 ||
		c.FlushTimeout != 10*time.Second || c.MemberID != "m:9464" || c.TLS != nil || c.SASL != nil || c.TopicTemplate != "" {
		t.Errorf("config %+v", c)
	}
	f = parseRunFlags(t, "--kafka.brokers=k:1", "--kafka.topic-template=metrics-{{job}}", "--kafka.format=rw1",
		"--kafka.compression=zstd-fastest", "--kafka.buffer-bytes=64MiB", "--kafka.max-record-bytes=500000", "--kafka.flush-timeout=3s", "--kafka.client-id=x")
	if c, err = f.kafka.config("m"); err != nil {
		t.Fatal(err)
	}
	if c.TopicTemplate != "metrics-{{job}}" || c.Format != produce.RW1 || c.Compression != produce.ZstdFastest || c.BufferBytes != 64<<20 ||
		c.MaxRecordBytes != 500000 || c.FlushTimeout != 3*time.Second || c.ClientID != "x" {
		t.Errorf("config %+v", c)
	}
}

func equalStrings(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func TestKafkaFlagErrors(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{nil, "needs --kafka.brokers"},
		{[]string{"--kafka.brokers=k"}, "want host:port"},
		{[]string{"--kafka.brokers=k:1", "--kafka.format=rw3"}, "parse record format"},
		{[]string{"--kafka.brokers=k:1", "--kafka.compression=lz4"}, "--kafka.compression: parse compression \"lz4\": want zstd, zstd-fastest or none"},
		{[]string{"--kafka.brokers=k:1", "--kafka.topic=a/b"}, "not allowed"},
		{[]string{"--kafka.brokers=k:1", "--kafka.topic-template=m-{{instance}}"}, "placeholder"},
		{[]string{"--kafka.brokers=k:1", "--kafka.buffer-bytes=1MiB"}, "at least 4 × max record bytes"},
		{[]string{"--kafka.brokers=k:1", "--kafka.flush-timeout=0s"}, "positive duration"},
		{[]string{"--kafka.brokers=k:1", "--kafka.tls.ca-file=x"}, "needs --kafka.tls.enable"},
		{[]string{"--kafka.brokers=k:1", "--kafka.tls.enable", "--kafka.tls.ca-file=" + filepath.Join(dir, "none")}, "no such file"},
		{[]string{"--kafka.brokers=k:1", "--kafka.tls.enable", "--kafka.tls.ca-file=" + pw}, "no PEM certificate"},
		{[]string{"--kafka.brokers=k:1", "--kafka.tls.enable", "--kafka.tls.cert-file=" + pw}, "go together"},
		{[]string{"--kafka.brokers=k:1", "--kafka.sasl.username=u"}, "need --kafka.sasl.mechanism"},
		{[]string{"--kafka.brokers=k:1", "--kafka.sasl.mechanism=PLAIN", "--kafka.sasl.password=p"}, "needs --kafka.sasl.username"},
		{[]string{"--kafka.brokers=k:1", "--kafka.sasl.mechanism=PLAIN", "--kafka.sasl.username=u"}, "exactly one of"},
		{[]string{"--kafka.brokers=k:1", "--kafka.sasl.mechanism=PLAIN", "--kafka.sasl.username=u", "--kafka.sasl.password=p", "--kafka.sasl.password-file=" + pw}, "exactly one of"},
		{[]string{"--kafka.brokers=k:1", "--kafka.sasl.mechanism=PLAIN", "--kafka.sasl.username=u", "--kafka.sasl.password-file=" + filepath.Join(dir, "none")}, "no such file"},
		{[]string{"--kafka.brokers=k:1", "--kafka.sasl.mechanism=GSSAPI", "--kafka.sasl.username=u", "--kafka.sasl.password=p"}, "want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
	} {
		f := parseRunFlags(t, tc.args...)
		if _, err := f.kafka.config("m"); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %v, want an error containing %q", tc.args, err, tc.err)
		}
	}
	for _, mech := range []string{"PLAIN", "scram-sha-256", "SCRAM-SHA-512"} {
		f := parseRunFlags(t, "--kafka.brokers=k:1", "--kafka.sasl.mechanism="+mech, "--kafka.sasl.username=u", "--kafka.sasl.password-file="+pw)
		c, err := f.kafka.config("m")
		if err != nil || c.SASL == nil || c.SASL.Name() != strings.ToUpper(mech) {
			t.Errorf("%s: %v %v", mech, c.SASL, err)
		}
	}
	f := parseRunFlags(t, "--kafka.brokers=k:1", "--kafka.tls.enable", "--kafka.tls.server-name=kafka.example", "--kafka.tls.insecure-skip-verify")
	c, err := f.kafka.config("m")
	if err != nil || c.TLS == nil || c.TLS.ServerName != "kafka.example" || !c.TLS.InsecureSkipVerify {
		t.Errorf("TLS %+v %v", c.TLS, err)
	}
}

func TestBytesFlag(t *testing.T) {
	for in, want := range map[string]int64{"268435456": 256 << 20, "256MiB": 256 << 20, "1GiB": 1 << 30, "512KB": 512 << 10} {
		var b bytesFlag
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("%q: %d %v, want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "x", "-5", "0", "12 MiB x"} {
		var b bytesFlag
		if err := b.Set(in); err == nil {
			t.Errorf("%q accepted as %d", in, b)
		}
	}
	b := bytesFlag(256 << 20)
	if b.String() != "256MiB" {
		t.Errorf("String %q", b.String())
	}
}

func TestDefaultMemberID(t *testing.T) {
	host, _ := os.Hostname()
	if id, err := defaultMemberID(":9464"); err != nil || id != host+":9464" {
		t.Errorf("%q %v", id, err)
	}
	if _, err := defaultMemberID("nope"); err == nil {
		t.Error("no error without a port")
	}
}

// `shoal run --sink=kafka` without brokers stops at the flags.
func TestRunKafkaNeedsBrokers(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"run", "--config.file=../../examples/shoal.yml", "--sink=kafka"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "needs --kafka.brokers") {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
}

// shoal tail prints what the Kafka sink wrote, in both formats, filtered
// by --match.
func TestTail(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t-rw1", "t-rw2"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := strings.Join(c.ListenAddrs(), ",")
	mk := func(kv ...string) *produce.Series {
		ls := labels.FromStrings(kv...)
		return produce.NewSeries(ls)
	}
	s := &produce.Scrape{Key: "node/h:9100", Job: "node", Instance: "h:9100", T: 1763900000000, Samples: []produce.Sample{
		{Series: mk("__name__", "node_load1", "instance", "h:9100", "job", "node"), T: 1763900000000, V: 0.42},
		{Series: mk("__name__", "node_gone", "instance", "h:9100", "job", "node"), T: 1763900000000, V: produce.StaleNaN},
		{Series: mk("__name__", "up", "instance", "h:9100", "job", "node"), T: 1763900000000, V: 1},
	}}
	for _, f := range []produce.RecordFormat{produce.RW1, produce.RW2} {
		cfg := produce.DefaultKafkaConfig()
		cfg.Brokers, cfg.Topic, cfg.Format, cfg.MemberID = c.ListenAddrs(), "t-"+f.String(), f, "m:1"
		k, err := produce.NewKafka(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Write(s); err != nil {
			t.Fatal(err)
		}
		if err := k.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, topic := range []string{"t-rw1", "t-rw2"} {
		var out, errb bytes.Buffer
		code := run([]string{"tail", "--kafka.brokers=" + brokers, "--kafka.topic=" + topic, "--from-beginning", "--max-samples=3"}, &out, &errb)
		want := `node_load1{instance="h:9100",job="node"} 0.42 1763900000000
node_gone{instance="h:9100",job="node"} stale 1763900000000
up{instance="h:9100",job="node"} 1 1763900000000
`
		if code != 0 || out.String() != want {
			t.Errorf("%s: exit %d, output:\n%s\nwant:\n%s\nstderr: %s", topic, code, out.String(), want, errb.String())
		}

		out.Reset()
		code = run([]string{"tail", "--kafka.brokers=" + brokers, "--kafka.topic=" + topic, "--from-beginning", "--max-samples=1",
			"--format=json", `--match={__name__=~"node_.*", job="node"}`}, &out, &errb)
		var got tailJSON
		if err := json.Unmarshal(out.Bytes(), &got); code != 0 || err != nil {
			t.Fatalf("%s: exit %d, %v: %s (stderr %s)", topic, code, err, out.String(), errb.String())
		}
		if got.Topic != topic || got.Key != "node/h:9100" || got.Value != "0.42" || got.Timestamp != 1763900000000 ||
			got.Labels["__name__"] != "node_load1" || got.Labels["job"] != "node" || got.Offset != 0 {
			t.Errorf("%s: json %+v", topic, got)
		}

		out.Reset()
		code = run([]string{"tail", "--kafka.brokers=" + brokers, "--kafka.topic=" + topic, "--from-beginning", "--max-samples=1",
			"--match=node_gone", "--format=json"}, &out, &errb)
		if err := json.Unmarshal(out.Bytes(), &got); code != 0 || err != nil || got.Value != "stale" {
			t.Errorf("%s: stale marker as %q (%v)", topic, got.Value, err)
		}
	}
}

func TestTailFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--kafka.topic=x"}, "--kafka.brokers is required"},
		{[]string{"--kafka.brokers=k:1", "--match={"}, "--match"},
		{[]string{"--kafka.brokers=k:1", "--format=xml"}, "want text or json"},
		{[]string{"--kafka.brokers=k:1", "--kafka.topic="}, "--kafka.topic is required"},
		{[]string{"--kafka.brokers=k:1", "extra"}, "unexpected arguments"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"tail"}, tc.args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("%q: exit %d, stderr %s; want 2 and %q", tc.args, code, errb.String(), tc.err)
		}
	}
}

func TestAppendTextSample(t *testing.T) {
	ls := labels.FromStrings("__name__", "m", "a", "b")
	for v, want := range map[float64]string{1.5: "m{a=\"b\"} 1.5 7\n", math.Inf(1): "m{a=\"b\"} +Inf 7\n"} {
		if got := string(appendTextSample(nil, ls, 7, v)); got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
	if got := string(appendTextSample(nil, ls, 7, produce.StaleNaN)); got != "m{a=\"b\"} stale 7\n" {
		t.Errorf("stale: %q", got)
	}
}
