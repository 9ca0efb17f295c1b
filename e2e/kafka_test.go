package e2e

// Integration tests of `shoal run --sink=kafka` against the real broker of
// scripts/testenv.sh (Apache Kafka, KRaft, one node): what a consumer of the
// topic gets, compared with what the exporters served; a broker outage;
// broken configurations; scrapes larger than a record. The consumer side is
// franz-go, decoding with Prometheus's own remote-write types.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-scraper/shoal/internal/javakafka"
)

// TestKafka runs `shoal run --sink=kafka` against the real broker. The
// outage test runs first and alone (no other Kafka test may run while the
// broker is down), in this test's own slot of -parallel, so the other e2e
// tests go on beside it; then the rest, in parallel.
//
// One test with subtests rather than several top-level tests: a top-level
// parallel test waiting for the broker would hold a -parallel slot (two on
// two cores) for the whole outage, and the other tests would queue behind
// it.
func TestKafka(t *testing.T) {
	kafkaBroker(t)
	t.Parallel()
	t.Run("BrokerOutage", kafkaBrokerOutage)
	t.Run("Testbed", kafkaTestbed)
	t.Run("Records", kafkaRecords)
	t.Run("Faults", kafkaFaults)
	t.Run("SplitRecords", kafkaSplitRecords)
}

// appGen is what the in-test exporter number target serves on its n-th
// request: values that change with every request and can be predicted
// from n, labels that need escaping, the special floats, a series with its
// own timestamp, and one (e2e_flaky) that is missing from every third
// answer, so the scrape after it carries a staleness marker.
func appGen(target int, tsBase int64) func(n int) []expSample {
	tl := strconv.Itoa(target)
	return func(n int) []expSample {
		f := float64(n)
		s := []expSample{
			{name: "e2e_requests_total", labels: [][2]string{{"target", tl}}, value: f},
			{name: "e2e_gauge", labels: [][2]string{{"kind", "fraction"}, {"target", tl}}, value: f*0.25 + float64(target)},
			{name: "e2e_gauge", labels: [][2]string{{"kind", "negative"}, {"target", tl}}, value: -f / 1000},
			{name: "e2e_gauge", labels: [][2]string{{"kind", "huge"}, {"target", tl}}, value: f * 1e300},
			{name: "e2e_gauge", labels: [][2]string{{"kind", "subnormal"}, {"target", tl}}, value: f * 5e-324},
			{name: "e2e_special", labels: [][2]string{{"v", "nan"}}, value: math.NaN()},
			{name: "e2e_special", labels: [][2]string{{"v", "+inf"}}, value: math.Inf(1)},
			{name: "e2e_special", labels: [][2]string{{"v", "-inf"}}, value: math.Inf(-1)},
			{name: "e2e_special", labels: [][2]string{{"v", "zero"}}, value: 0},
			// Label names out of order on purpose: remote write wants them sorted.
			{name: "e2e_labels", labels: [][2]string{{"zeta", "last"}, {"alpha", "first"}, {"quote", `a"b`}, {"backslash", `c\d`}, {"newline", "e\nf"}, {"utf8", "żółw ☃ 🐢"}}, value: f},
			{name: "e2e_hist_bucket", labels: [][2]string{{"le", "0.5"}}, value: f},
			{name: "e2e_hist_bucket", labels: [][2]string{{"le", "+Inf"}}, value: 2 * f},
			{name: "e2e_hist_sum", value: f * 0.3},
			{name: "e2e_hist_count", value: 2 * f},
			{name: "e2e_explicit_ts", labels: [][2]string{{"target", tl}}, value: f, ts: tsBase + int64(n)*1000},
		}
		if n%3 != 0 {
			s = append(s, expSample{name: "e2e_flaky", labels: [][2]string{{"target", tl}}, value: f})
		}
		return s
	}
}

// kafkaRecords scrapes three in-test exporters and the real
// node_exporter into a topic of three partitions, in both record formats,
// and checks every record a consumer reads: key, partition, headers, and
// samples equal to what each exporter served for the request the scrape
// made (names, labels with job and instance, values bit for bit, staleness
// markers, timestamps), with every request consumed once and in order. It
// also logs the topic's bytes on disk per sample.
func kafkaRecords(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"rw1", "rw2"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			testKafkaRecords(t, format)
		})
	}
}

func testKafkaRecords(t *testing.T, format string) {
	k := kafkaBroker(t)
	node := nodeExporter(t)
	k.useBroker(t)
	const partitions = 3
	topic := k.newTopic(t, partitions)
	// Explicit timestamps: whole seconds, starting ten minutes ago.
	tsBase := time.Now().Add(-10 * time.Minute).UnixMilli()
	tsBase -= tsBase % 1000

	exs := make([]*genExporter, 3)
	var addrs []string
	for i := range exs {
		exs[i] = newGenExporter(t, appGen(i, tsBase))
		addrs = append(addrs, exs[i].addr)
	}
	c := consume(t, k.brokers, topic, format)
	p := startShoal(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: app
    static_configs:
      - targets: [%q, %q, %q]
  - job_name: node
    static_configs:
      - targets: [%q]
`, addrs[0], addrs[1], addrs[2], node), shoalKafkaArgs(k.brokers, topic, format)...)

	keys := []string{"node/" + node}
	for _, a := range addrs {
		keys = append(keys, "app/"+a)
	}
	byKey := func(recs []record) map[string][]record {
		m := map[string][]record{}
		for _, r := range recs {
			m[r.key] = append(m[r.key], r)
		}
		return m
	}
	c.waitRecords(45*time.Second, "5 records of each target", func(recs []record) (bool, string) {
		if p.exited() {
			t.Fatalf("shoal exited: %v", p.exitErr)
		}
		m := byKey(recs)
		var counts []string
		ok := true
		for _, key := range keys {
			counts = append(counts, fmt.Sprintf("%s: %d", key, len(m[key])))
			ok = ok && len(m[key]) >= 5
		}
		return ok, strings.Join(counts, ", ")
	})
	// Right after: node_exporter's own answer, to compare with its last
	// scrape below.
	direct, directNames := fetchExposition(t, "http://"+node+"/metrics")

	// SIGTERM flushes the sink: afterwards every request an exporter
	// answered must reach the topic.
	p.signal(syscall.SIGTERM)
	if code := p.waitExit(30 * time.Second); code != 0 {
		t.Fatalf("shoal exited with %d after SIGTERM", code)
	}
	recs := c.waitRecords(30*time.Second, "a record for every request the exporters answered", func(recs []record) (bool, string) {
		m := byKey(recs)
		var missing []string
		for _, e := range exs {
			got := map[int]bool{}
			for _, r := range m["app/"+e.addr] {
				got[seqOf(r.samples)] = true
			}
			for n := 1; n <= e.count(); n++ {
				if !got[n] {
					missing = append(missing, fmt.Sprintf("%s request %d", e.addr, n))
				}
			}
		}
		return len(missing) == 0, fmt.Sprintf("not consumed: %v", missing)
	})
	m := byKey(recs)

	// Every record: decodes, has its headers, and sits in the partition
	// the Java client's partitioner picks for its key.
	var total int
	for _, r := range recs {
		total += len(r.samples)
		if r.err != nil {
			t.Errorf("record %v: %v", r, r.err)
			continue
		}
		if !slices.Contains(keys, r.key) {
			t.Errorf("record %v: unexpected key %q (want one of %q)", r, r.key, keys)
			continue
		}
		job, instance, _ := strings.Cut(r.key, "/")
		want := map[string]string{"content-type": kafkaContentType[format], "job": job, "instance": instance, "member": e2eMember}
		if !maps.Equal(r.headers, want) || r.nHeaders != len(want) {
			t.Errorf("record %v: headers %q (%d), want %q", r, r.headers, r.nHeaders, want)
		}
		if want := javakafka.Partition([]byte(r.key), int32(partitions)); r.partition != want {
			t.Errorf("record %v: partition %d, but the Java client's murmur2 partitioner puts key %q in %d", r, r.partition, r.key, want)
		}
	}

	for i, e := range exs {
		checkAppRecords(t, "app", e, m["app/"+e.addr], i)
	}
	checkNodeRecords(t, node, m["node/"+node], direct, directNames)

	// shoal tail prints the same samples for one target, in both formats.
	checkTail(t, k, topic, "app/"+exs[0].addr, m["app/"+exs[0].addr])

	logBytes := k.logBytes(t, topic)
	t.Logf("%s: %d records, %d samples; topic %s holds %d bytes of log segments: %.2f bytes/sample (%d%% node_exporter samples)",
		format, len(recs), total, topic, logBytes, float64(logBytes)/float64(total), 100*countSamples(m["node/"+node])/max(1, total))
}

// checkAppRecords checks the records of one in-test exporter (target
// number i of job): one per request, in request order in one partition,
// each sample equal to what the exporter served, plus the synthetic series
// and the staleness marker of e2e_flaky where it went missing.
func checkAppRecords(t *testing.T, job string, e *genExporter, recs []record, target int) {
	t.Helper()
	served := e.requests()
	inst := e.addr
	if len(recs) != len(served) {
		t.Errorf("%s: %d records for %d requests (every request must come out once)", inst, len(recs), len(served))
	}
	checkSeriesOrder(t, inst, recs)
	prevSeq := 0
	for _, r := range recs {
		if r.err != nil {
			continue // reported by the caller
		}
		n := seqOf(r.samples)
		if n < 1 || n > len(served) {
			t.Errorf("%s: record %v: e2e_seq %d, but %d requests were served", inst, r, n, len(served))
			continue
		}
		if n <= prevSeq {
			t.Errorf("%s: record %v carries request %d after request %d: out of order or repeated", inst, r, n, prevSeq)
		}
		prevSeq = n
		if r.partition != recs[0].partition {
			t.Errorf("%s: record %v in partition %d, the target's first record in %d", inst, r, r.partition, recs[0].partition)
		}
		s := served[n-1]
		if !s.done {
			t.Errorf("%s: request %d was not answered in full, yet its scrape was written", inst, n)
		}

		// The scrape's timestamp: the one of its synthetic series.
		up := findSample(r.samples, "up")
		if up == nil {
			t.Errorf("%s: record %v: no up sample", inst, r)
			continue
		}
		ts := up.ts
		if arr := s.arrival.UnixMilli(); ts > arr || arr-ts > 2000 {
			t.Errorf("%s: request %d arrived at %d, but its scrape is stamped %d: a scrape's timestamp is its start, before its request arrives", inst, n, arr, ts)
		}

		want := map[string]sample{}
		add := func(series string, v float64, ts int64) {
			if _, dup := want[series]; dup {
				t.Fatalf("test bug: %s twice", series)
			}
			want[series] = sample{series: series, value: v, ts: ts}
		}
		for _, es := range s.samples {
			sts := ts
			if es.ts != 0 {
				sts = es.ts
			}
			add(es.seriesOf(job, inst), es.value, sts)
		}
		tl := map[string]string{"job": job, "instance": inst}
		scraped := float64(len(s.samples))
		for name, v := range map[string]float64{"up": 1, "scrape_samples_scraped": scraped, "scrape_samples_post_metric_relabeling": scraped} {
			add(canonicalSeries(name, tl), v, ts)
		}
		if n%3 == 0 { // e2e_flaky was in request n-1 and is not in n
			add(canonicalSeries("e2e_flaky", map[string]string{"job": job, "instance": inst, "target": strconv.Itoa(target)}), math.Float64frombits(staleNaNBits), ts)
		}

		got := map[string]sample{}
		for _, g := range r.samples {
			if _, dup := got[g.series]; dup {
				t.Errorf("%s: request %d: %s twice in one record", inst, n, g.series)
			}
			got[g.series] = g
			if g.labels["job"] != job || g.labels["instance"] != inst {
				t.Errorf("%s: request %d: %s without the target labels job=%q instance=%q", inst, n, g.series, job, inst)
			}
			switch g.name {
			case "scrape_duration_seconds":
				if !(g.value > 0 && g.value <= 1) || g.ts != ts {
					t.Errorf("%s: request %d: %s, want a duration in (0, 1s] at %d", inst, n, g.line, ts)
				}
				continue
			case "scrape_series_added":
				// Every series is new on the first scrape; afterwards only
				// e2e_flaky comes back (the stdout tests check the rule).
				if (n == 1 && g.value != scraped) || (n > 1 && g.value > 1) || g.ts != ts {
					t.Errorf("%s: request %d: %s", inst, n, g.line)
				}
				continue
			}
			w, ok := want[g.series]
			if !ok {
				t.Errorf("%s: request %d: %s was not served", inst, n, g.line)
				continue
			}
			if !sameSample(g, w) {
				t.Errorf("%s: request %d: got %s, served %s %s %d", inst, n, g.line, w.series, fmtValue(w.value), w.ts)
			}
		}
		for series, w := range want {
			if _, ok := got[series]; !ok {
				t.Errorf("%s: request %d: %s %s %d served but not in the record", inst, n, series, fmtValue(w.value), w.ts)
			}
		}
		for _, name := range syntheticNames {
			if findSample(r.samples, name) == nil {
				t.Errorf("%s: request %d: no %s", inst, n, name)
			}
		}
	}
}

const staleNaNBits = 0x7ff0000000000002 // value.StaleNaN

// sameSample compares value and timestamp; a NaN matches a NaN unless one
// of them is a staleness marker and the other is not.
func sameSample(got, want sample) bool {
	if got.ts != want.ts {
		return false
	}
	if math.IsNaN(got.value) || math.IsNaN(want.value) {
		gs, ws := math.Float64bits(got.value) == staleNaNBits, math.Float64bits(want.value) == staleNaNBits
		return math.IsNaN(got.value) && math.IsNaN(want.value) && gs == ws
	}
	return got.value == want.value
}

func findSample(samples []sample, name string) *sample {
	for i := range samples {
		if samples[i].name == name {
			return &samples[i]
		}
	}
	return nil
}

// checkSeriesOrder checks that within each partition, in offset order,
// every series' timestamps strictly increase: a consumer sees each
// target's scrapes in the order they were made.
func checkSeriesOrder(t *testing.T, what string, recs []record) {
	t.Helper()
	type pk struct {
		p      int32
		series string
	}
	last := map[pk]int64{}
	lastOff := map[int32]int64{}
	for _, r := range recs {
		if off, ok := lastOff[r.partition]; ok && r.offset <= off {
			t.Errorf("%s: records out of offset order in partition %d: %d after %d", what, r.partition, r.offset, off)
		}
		lastOff[r.partition] = r.offset
		for _, s := range r.samples {
			key := pk{r.partition, s.series}
			if prev, ok := last[key]; ok && s.ts <= prev {
				t.Errorf("%s: partition %d offset %d: %s at %d after %d: not in time order", what, r.partition, r.offset, s.series, s.ts, prev)
			}
			last[key] = s.ts
		}
	}
}

// checkNodeRecords checks node_exporter's records: target labels, the
// synthetic series, consistent counts and timestamps, and the last scrape
// against node_exporter's own answer.
func checkNodeRecords(t *testing.T, addr string, recs []record, direct map[string]float64, directNames map[string]bool) {
	t.Helper()
	if len(recs) < 5 {
		t.Fatalf("node_exporter: %d records, want at least 5", len(recs))
	}
	checkSeriesOrder(t, "node_exporter", recs)
	for _, r := range recs {
		if r.err != nil {
			continue
		}
		up := findSample(r.samples, "up")
		if up == nil || up.value != 1 {
			t.Errorf("node_exporter: record %v: up %v, want 1", r, up)
			continue
		}
		var served float64
		for _, s := range r.samples {
			if s.labels["job"] != "node" || s.labels["instance"] != addr {
				t.Errorf("node_exporter: %s without job=node instance=%s", s.series, addr)
			}
			if s.ts != up.ts {
				t.Errorf("node_exporter: %s at %d, the scrape at %d (node_exporter sends no timestamps)", s.series, s.ts, up.ts)
			}
			if !isSynthetic(s.name) && !s.stale {
				served++
			}
		}
		if sc := findSample(r.samples, "scrape_samples_scraped"); sc == nil || sc.value != served || served < 100 {
			t.Errorf("node_exporter: record %v: scrape_samples_scraped %v, %v samples in the record (want equal, ≥100)", r, sc, served)
		}
	}
	// The last scrape against a direct answer (as TestNodeExporter): the
	// same metric names and nearly the same series.
	last := recs[len(recs)-1]
	got, gotNames := map[string]float64{}, map[string]bool{}
	for _, s := range last.samples {
		if !isSynthetic(s.name) && !s.stale {
			got[seriesKey(s.name, s.labels)] = s.value
			gotNames[s.name] = true
		}
	}
	if !maps.Equal(gotNames, directNames) {
		t.Errorf("node_exporter: metric names differ from its own answer:\nrecord: %v\ndirect: %v", slices.Sorted(maps.Keys(gotNames)), slices.Sorted(maps.Keys(directNames)))
	}
	compareWithDirect(t, "record", got, direct)
}

func countSamples(recs []record) int {
	n := 0
	for _, r := range recs {
		n += len(r.samples)
	}
	return n
}

// kafkaFaults: a topic that does not exist (the broker does not create
// topics), a broker address nobody listens on, and a SASL listener refusing
// a wrong password. Each must be a clear error in the log and a count in
// shoal_kafka_errors_total, and never stop scraping or crash shoal. The
// right password on the same listener works, so the refusal is about the
// password.
func kafkaFaults(t *testing.T) {
	k := kafkaBroker(t)
	t.Parallel()
	cases := []struct {
		name    string
		args    func(topic string) []string
		logWant *regexp.Regexp // a log line at level WARN or ERROR must match
		kind    string         // the kind label of shoal_kafka_errors_total that counts it
		good    bool
	}{
		{
			name: "missing_topic",
			args: func(topic string) []string {
				return shoalKafkaArgs(k.brokers, topic+"-missing", "rw1")
			},
			logWant: regexp.MustCompile(`(?i)(UNKNOWN_TOPIC|unknown topic|does not exist|not exist)`),
			kind:    "unknown_topic",
		},
		{
			name: "wrong_address",
			args: func(string) []string {
				return shoalKafkaArgs(freePort(t), "shoal-metrics", "rw1")
			},
			logWant: regexp.MustCompile(`(?i)(connection refused|dial|unable to connect|unreachable)`),
			kind:    "network",
		},
		{
			name: "sasl_wrong_password",
			args: func(topic string) []string {
				return shoalKafkaArgs(k.sasl, topic, "rw1", "--kafka.sasl.mechanism=PLAIN", "--kafka.sasl.username="+k.user, "--kafka.sasl.password=not-"+k.pass)
			},
			logWant: regexp.MustCompile(`(?i)(SASL|authentication|auth)`),
			kind:    "auth",
		},
		{
			name: "sasl_right_password",
			args: func(topic string) []string {
				return shoalKafkaArgs(k.sasl, topic, "rw1", "--kafka.sasl.mechanism=PLAIN", "--kafka.sasl.username="+k.user, "--kafka.sasl.password="+k.pass)
			},
			good: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k.useBroker(t)
			topic := k.newTopic(t, 1)
			e := newExporter(t, reply{body: "e2e_fault 1\n", seq: true})
			c := consume(t, k.brokers, topic, "rw1")
			p := startShoal(t, fmt.Sprintf(`
global:
  scrape_interval: 500ms
scrape_configs:
  - job_name: faults
    static_configs:
      - targets: [%q]
`, e.addr), tc.args(topic)...)

			if tc.good {
				c.waitRecords(30*time.Second, "records through the SASL listener", func(recs []record) (bool, string) {
					return len(recs) >= 3, ""
				})
				if v, series := p.metricSum("shoal_kafka_errors_total"); v != 0 {
					t.Errorf("right password: shoal_kafka_errors_total %v %v, want 0", v, series)
				}
				return
			}

			waitFor(t, 45*time.Second, fmt.Sprintf("shoal_kafka_errors_total{kind=%q} to count the fault", tc.kind), func() (bool, string) {
				if p.exited() {
					t.Fatalf("shoal exited: %v", p.exitErr)
				}
				v, _ := p.metricValue("shoal_kafka_errors_total", lbl("kind", tc.kind))
				_, series := p.metricSum("shoal_kafka_errors_total")
				return v > 0, fmt.Sprint(series)
			})
			_, series := p.metricSum("shoal_kafka_errors_total")
			t.Logf("shoal_kafka_errors_total: %v", series)
			waitFor(t, 15*time.Second, "a log line naming the cause", func() (bool, string) {
				for line := range strings.Lines(p.stderr.String()) {
					if (strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN")) && tc.logWant.MatchString(line) {
						t.Logf("log: %s", strings.TrimSpace(line))
						return true, ""
					}
				}
				return false, "stderr:\n" + tail(p.stderr.String(), 20)
			})
			// Scraping goes on, the target stays up, shoal stays healthy.
			before := p.scrapesOK("faults")
			waitFor(t, 10*time.Second, "3 more successful scrapes", func() (bool, string) {
				if p.exited() {
					t.Fatalf("shoal exited: %v", p.exitErr)
				}
				n := p.scrapesOK("faults")
				return n >= before+3, fmt.Sprintf("shoal_scrapes_total %v, %v before", n, before)
			})
			if at, ok := p.target("faults", e.addr); !ok || at.Health != "up" {
				t.Errorf("/targets: %+v (found %v), want health up", at, ok)
			}
			if err := p.waitHealthy(5 * time.Second); err != nil {
				t.Error(err)
			}
			if recs := c.records(); len(recs) != 0 {
				t.Errorf("%d records reached the test's topic", len(recs))
			}
		})
	}
}

// kafkaSplitRecords serves a 2 MB scrape to a shoal whose records may
// not exceed 64 KiB: each scrape is split into several records with the
// target's key, each a complete message of its own, and together they hold
// every sample, in the order served.
func kafkaSplitRecords(t *testing.T) {
	t.Parallel()
	// The other Kafka tests run the default compression (zstd); these two
	// also have the real broker validate (it decompresses every batch) and
	// the consumer decode the other two.
	for _, tc := range []struct{ format, compression string }{{"rw1", "none"}, {"rw2", "zstd-fastest"}} {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			testKafkaSplitRecords(t, tc.format, tc.compression)
		})
	}
}

func testKafkaSplitRecords(t *testing.T, format, compression string) {
	k := kafkaBroker(t)
	k.useBroker(t)
	const maxRecord = 64 << 10
	const lines = 26000
	labels := make([][][2]string, lines)
	for i := range labels {
		labels[i] = [][2]string{{"i", fmt.Sprintf("%06d", i)}, {"pad", "padding-padding-padding-padding-padding"}}
	}
	gen := func(n int) []expSample {
		s := make([]expSample, lines)
		for i := range s {
			s[i] = expSample{name: "e2e_big", labels: labels[i], value: float64(n)*1e6 + float64(i)}
		}
		return s
	}
	if size := len(renderExposition(gen(1))); size < 2e6 {
		t.Fatalf("test bug: the body is %d bytes, want 2 MB", size)
	}
	e := newGenExporter(t, gen)
	topic := k.newTopic(t, 2)
	c := consume(t, k.brokers, topic, format)
	// A 3s interval and timeout: on a loaded machine a 2 MB scrape can
	// take more than a second.
	p := startShoal(t, fmt.Sprintf(`
global:
  scrape_interval: 3s
scrape_configs:
  - job_name: big
    static_configs:
      - targets: [%q]
`, e.addr), shoalKafkaArgs(k.brokers, topic, format, fmt.Sprintf("--kafka.max-record-bytes=%d", maxRecord), "--kafka.compression="+compression)...)

	// Records by scrape: the timestamp all their samples share.
	byScrape := func(recs []record) (map[int64][]record, []int64) {
		m := map[int64][]record{}
		for _, r := range recs {
			if len(r.samples) == 0 {
				m[-1] = append(m[-1], r)
				continue
			}
			m[r.samples[0].ts] = append(m[r.samples[0].ts], r)
		}
		return m, slices.Sorted(maps.Keys(m))
	}
	complete := func(recs []record) int {
		m, _ := byScrape(recs)
		n := 0
		for _, rs := range m {
			ok := false
			for _, r := range rs {
				if up := findSample(r.samples, "up"); up != nil && up.value == 1 {
					ok = true
				}
			}
			if ok && countSamples(rs) >= lines+1+5 {
				n++
			}
		}
		return n
	}
	c.waitRecords(60*time.Second, "2 complete scrapes", func(recs []record) (bool, string) {
		if p.exited() {
			t.Fatalf("shoal exited: %v", p.exitErr)
		}
		n := complete(recs)
		return n >= 2, fmt.Sprintf("%d complete scrapes", n)
	})
	p.signal(syscall.SIGTERM)
	if code := p.waitExit(30 * time.Second); code != 0 {
		t.Fatalf("shoal exited with %d after SIGTERM", code)
	}
	served := e.requests()
	recs := c.waitEnd(k, topic, 30*time.Second)

	m, tss := byScrape(recs)
	if rs, ok := m[-1]; ok {
		t.Errorf("%d records without samples: %v", len(rs), rs)
	}
	key := "big/" + e.addr
	good := 0
	for _, ts := range tss {
		rs := m[ts]
		if ts < 0 {
			continue
		}
		var all []sample
		for _, r := range rs {
			if r.err != nil {
				t.Errorf("record %v: not a valid message: %v", r, r.err)
			}
			if r.key != key {
				t.Errorf("record %v: key %q, want %q", r, r.key, key)
			}
			if r.size > maxRecord {
				t.Errorf("record %v: value of %d bytes, over --kafka.max-record-bytes=%d", r, r.size, maxRecord)
			}
			if r.partition != rs[0].partition {
				t.Errorf("record %v: partition %d, the scrape's first record in %d", r, r.partition, rs[0].partition)
			}
			if r.headers["content-type"] != kafkaContentType[format] || r.headers["job"] != "big" || r.headers["instance"] != e.addr || r.headers["member"] != e2eMember {
				t.Errorf("record %v: headers %q", r, r.headers)
			}
			all = append(all, r.samples...)
		}
		if up := findSample(all, "up"); up == nil || up.value != 1 {
			// A failed scrape (a timeout on a loaded machine): nothing was
			// served to compare with; it is written like any other.
			t.Logf("scrape at %d failed (up %v): %d records, %d samples", ts, up, len(rs), len(all))
			continue
		}
		good++
		if len(rs) < 2 {
			t.Errorf("scrape at %d: %d record(s); a 2 MB scrape cannot fit in %d bytes", ts, len(rs), maxRecord)
		}
		n := seqOf(all)
		if n < 1 || n > len(served) {
			t.Errorf("scrape at %d: e2e_seq %d of %d requests (%d samples in %d records)", ts, n, len(served), len(all), len(rs))
			continue
		}
		want := gen(n)
		var big []sample
		seen := map[string]int{}
		for _, s := range all {
			seen[s.series]++
			if s.ts != ts {
				t.Errorf("scrape at %d: %s at %d", ts, s.series, s.ts)
			}
			if s.name == "e2e_big" {
				big = append(big, s)
			}
		}
		for series, c := range seen {
			if c != 1 {
				t.Errorf("scrape at %d (request %d): %s in %d records", ts, n, series, c)
			}
		}
		if len(big) != len(want) {
			t.Errorf("scrape at %d (request %d): %d e2e_big samples, %d served", ts, n, len(big), len(want))
			continue
		}
		bad := 0
		for i, s := range big {
			if ws := want[i].seriesOf("big", e.addr); s.series != ws || s.value != want[i].value {
				if bad++; bad <= 5 {
					t.Errorf("scrape at %d (request %d): sample %d is %s, served %s %v (order or value)", ts, n, i, s.line, ws, want[i].value)
				}
			}
		}
		for _, name := range syntheticNames {
			if findSample(all, name) == nil {
				t.Errorf("scrape at %d: no %s", ts, name)
			}
		}
		bytes := 0
		for _, r := range rs {
			bytes += r.size
		}
		t.Logf("%s: scrape at %d (request %d): %d records, %d samples, %d bytes", format, ts, n, len(rs), len(all), bytes)
	}
	if good < 2 {
		t.Errorf("%d successful scrapes in the topic, want at least 2", good)
	}
	if len(tss) > len(served) {
		t.Errorf("%d scrapes in the topic for %d requests", len(tss), len(served))
	}
}

// checkTail runs `shoal tail --from-beginning` on topic, selecting one
// target (key job/instance) with --match and stopping after as many samples
// as recs hold, in both output formats, and compares what it prints with
// recs, the test consumer's records of that target.
func checkTail(t *testing.T, k kafkaEnv, topic, key string, recs []record) {
	t.Helper()
	job, inst, _ := strings.Cut(key, "/")
	var want []sample
	for _, r := range recs {
		want = append(want, r.samples...)
	}
	args := []string{
		"tail", "--kafka.brokers=" + k.brokers, "--kafka.topic=" + topic, "--from-beginning",
		fmt.Sprintf(`--match={job=%q,instance=%q}`, job, inst), fmt.Sprintf("--max-samples=%d", len(want)),
	}
	run := func(format string) []string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, shoalBin, append(args, "--format="+format)...)
		var stderr syncBuffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("shoal %s --format=%s: %v\nstderr:\n%s", strings.Join(args, " "), format, err, stderr.String())
		}
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(lines) != len(want) {
			t.Fatalf("shoal tail --format=%s printed %d lines, want %d samples", format, len(lines), len(want))
		}
		return lines
	}
	same := func(got, want sample) bool {
		return got.series == want.series && got.stale == want.stale && sameSample(got, want)
	}
	for i, line := range run("text") {
		got, err := parseSampleLine(line)
		if err != nil {
			t.Fatalf("shoal tail: line %d %q: %v", i+1, line, err)
		}
		got.series = canonicalSeries(got.name, got.labels)
		if got.stale {
			got.value = math.Float64frombits(staleNaNBits)
		}
		if !same(got, want[i]) {
			t.Errorf("shoal tail: line %d is %q, the record has %s", i+1, line, want[i].line)
		}
	}
	for i, line := range run("json") {
		var j struct {
			Topic     string            `json:"topic"`
			Partition int32             `json:"partition"`
			Offset    *int64            `json:"offset"`
			Key       string            `json:"key"`
			Labels    map[string]string `json:"labels"`
			Value     string            `json:"value"`
			Timestamp int64             `json:"timestamp"`
		}
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatalf("shoal tail --format=json: line %d %q: %v", i+1, line, err)
		}
		got := sample{ts: j.Timestamp, stale: j.Value == "stale"}
		got.name = j.Labels["__name__"]
		delete(j.Labels, "__name__")
		got.series = canonicalSeries(got.name, j.Labels)
		if got.stale {
			got.value = math.Float64frombits(staleNaNBits)
		} else if v, err := strconv.ParseFloat(j.Value, 64); err == nil {
			got.value = v
		} else {
			t.Errorf("shoal tail --format=json: line %d: value %q: %v", i+1, j.Value, err)
		}
		if !same(got, want[i]) || j.Topic != topic || j.Key != key || j.Offset == nil {
			t.Errorf("shoal tail --format=json: line %d is %s, the record has %s (topic %s, key %s)", i+1, line, want[i].line, topic, key)
		}
	}
}

// outageGen serves constSamples samples whose values move with n; their
// number never changes, so a scrape that never reached the topic is known
// to have had constSamples+1 (e2e_seq) + 5 synthetic samples.
const constSamples = 40

func outageGen(n int) []expSample {
	s := make([]expSample, constSamples)
	for i := range s {
		s[i] = expSample{name: "e2e_outage", labels: [][2]string{{"i", fmt.Sprintf("%03d", i)}, {"pad", "some-label-value-to-make-the-record-bigger"}}, value: float64(n*1000 + i)}
	}
	return s
}

// samplesPerOutageScrape is how many samples one scrape of an outageGen
// exporter writes: its samples, e2e_seq, and the five synthetic series.
const samplesPerOutageScrape = constSamples + 1 + 5

// kafkaBrokerOutage stops the broker for 30 s while two shoals write to
// it and starts it again (same ports, same data). The one with a large
// buffer must lose nothing: every request its exporters answered reaches
// the topic (duplicates, which at-least-once delivery allows, are counted
// and logged), in order. The one with a small buffer drops scrapes, and
// shoal_kafka_dropped_samples_total must equal exactly the samples the
// consumer never sees.
func kafkaBrokerOutage(t *testing.T) {
	k := kafkaBroker(t)
	k.ownBroker(t) // nobody else uses the broker while it is down
	const outage = 30 * time.Second

	type side struct {
		name  string
		topic string
		exs   []*genExporter
		p     *proc
		c     *consumer
	}
	sides := []*side{{name: "large"}, {name: "small"}}
	// The small buffer holds a handful of scrapes (about 2 KB each); it must
	// be at least 4 records, so records are small too.
	bufferFlags := map[string][]string{
		"large": {"--kafka.buffer-bytes=67108864"},
		"small": {"--kafka.buffer-bytes=16384", "--kafka.max-record-bytes=4096"},
	}
	for _, s := range sides {
		s.topic = k.newTopic(t, 2)
		var targets []string
		for range 2 {
			e := newGenExporter(t, outageGen)
			s.exs = append(s.exs, e)
			targets = append(targets, strconv.Quote(e.addr))
		}
		s.c = consume(t, k.brokers, s.topic, "rw2")
		s.p = startShoal(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: outage
    static_configs:
      - targets: [%s]
`, strings.Join(targets, ", ")), shoalKafkaArgs(k.brokers, s.topic, "rw2", bufferFlags[s.name]...)...)
	}

	// seqs returns, per exporter address, the request numbers consumed in
	// consumption order (a record with e2e_seq stands for its scrape).
	seqs := func(s *side) map[string][]int {
		m := map[string][]int{}
		for _, r := range s.c.records() {
			if r.err != nil {
				t.Fatalf("%s: record %v: %v", s.name, r, r.err)
			}
			if n := seqOf(r.samples); n > 0 {
				inst := strings.TrimPrefix(r.key, "outage/")
				m[inst] = append(m[inst], n)
			}
		}
		return m
	}
	// accounting counts, per target, the samples of the scrapes up to the
	// last request consumed: how many were made (every scrape has
	// samplesPerOutageScrape) and how many distinct ones the consumer got. A
	// scrape may have been split into records, and any of them dropped, so
	// samples are grouped by the scrape's timestamp, not by record.
	accounting := func(s *side) (made, got float64, msg string) {
		type tgt struct {
			scrapes map[int64]map[string]bool // by timestamp, the series consumed
			maxSeq  int
			maxTS   int64
		}
		by := map[string]*tgt{}
		for _, r := range s.c.records() {
			inst := strings.TrimPrefix(r.key, "outage/")
			g := by[inst]
			if g == nil {
				g = &tgt{scrapes: map[int64]map[string]bool{}}
				by[inst] = g
			}
			for _, smp := range r.samples {
				if g.scrapes[smp.ts] == nil {
					g.scrapes[smp.ts] = map[string]bool{}
				}
				g.scrapes[smp.ts][smp.series] = true
				if smp.name == "e2e_seq" && int(smp.value) > g.maxSeq {
					g.maxSeq, g.maxTS = int(smp.value), smp.ts
				}
			}
		}
		var parts []string
		for _, e := range s.exs {
			g := by[e.addr]
			if g == nil {
				parts = append(parts, e.addr+": nothing")
				continue
			}
			made += float64(g.maxSeq * samplesPerOutageScrape)
			var partial []int64
			for ts, series := range g.scrapes {
				if ts <= g.maxTS {
					got += float64(len(series))
				}
				if len(series) != samplesPerOutageScrape {
					partial = append(partial, ts)
				}
			}
			parts = append(parts, fmt.Sprintf("%s: %d requests up to %d, %d scrapes consumed (partly: %v)", e.addr, g.maxSeq, g.maxTS, len(g.scrapes), partial))
		}
		return made, got, strings.Join(parts, "; ")
	}
	// Flowing before the outage.
	for _, s := range sides {
		s.c.waitRecords(30*time.Second, s.name+": 2 records per target before the outage", func([]record) (bool, string) {
			m := seqs(s)
			ok := true
			for _, e := range s.exs {
				ok = ok && len(m[e.addr]) >= 2
			}
			return ok, fmt.Sprint(m)
		})
	}

	k.stopBroker(t)
	down := time.Now()
	// During the outage shoal keeps scraping and stays healthy; the small
	// buffer overflows.
	small, large := sides[1], sides[0]
	startScrapes := large.p.scrapesOK("outage")
	waitFor(t, outage, "the small buffer to drop samples while the broker is down", func() (bool, string) {
		v, _ := small.p.metricSum("shoal_kafka_dropped_samples_total")
		return v > 0, fmt.Sprintf("shoal_kafka_dropped_samples_total %v", v)
	})
	time.Sleep(time.Until(down.Add(outage))) // the outage the test is about, not a synchronisation
	for _, s := range sides {
		if s.p.exited() {
			t.Fatalf("%s: shoal exited during the outage: %v", s.name, s.p.exitErr)
		}
		if err := s.p.waitHealthy(5 * time.Second); err != nil {
			t.Fatalf("%s: unhealthy during the outage: %v", s.name, err)
		}
		buf, _ := s.p.metricSum("shoal_kafka_buffer_bytes")
		dropped, _ := s.p.metricSum("shoal_kafka_dropped_samples_total")
		t.Logf("%s buffer: after %v of outage: shoal_kafka_buffer_bytes %v, shoal_kafka_dropped_samples_total %v", s.name, time.Since(down).Round(time.Second), buf, dropped)
	}
	if got := large.p.scrapesOK("outage") - startScrapes; got < 40 {
		t.Errorf("only %v successful scrapes during a 30s outage of 2 targets at 1s: scraping must go on while Kafka is away", got)
	}
	if buf, _ := large.p.metricSum("shoal_kafka_buffer_bytes"); buf <= 0 {
		t.Errorf("large buffer: shoal_kafka_buffer_bytes %v after 30s of outage, want the buffered scrapes", buf)
	}
	if d, _ := large.p.metricSum("shoal_kafka_dropped_samples_total"); d != 0 {
		t.Errorf("large buffer: shoal_kafka_dropped_samples_total %v during the outage, want 0", d)
	}
	k.startBroker(t)
	up := time.Now()

	// Catch-up: every target has a record of a request made after the
	// restart, so (one partition per target, in order) everything before
	// it has been delivered or dropped.
	for _, s := range sides {
		after := map[string]int{}
		for _, e := range s.exs {
			after[e.addr] = e.count()
		}
		s.c.waitRecords(45*time.Second, s.name+": records of scrapes made after the restart", func([]record) (bool, string) {
			m := seqs(s)
			ok := true
			var msg []string
			for _, e := range s.exs {
				l := m[e.addr]
				ok = ok && len(l) > 0 && slices.Max(l) > after[e.addr]
				msg = append(msg, fmt.Sprintf("%s: %d records, restart at request %d", e.addr, len(l), after[e.addr]))
			}
			return ok, strings.Join(msg, "; ")
		})
	}
	t.Logf("caught up %v after the restart", time.Since(up).Round(100*time.Millisecond))

	// Small buffer: what the consumer misses is what shoal says it dropped.
	var missed, lastDropped float64
	var detail string
	waitFor(t, 20*time.Second, "shoal_kafka_dropped_samples_total to equal the samples the consumer missed", func() (bool, string) {
		made, got, msg := accounting(small)
		missed, detail = made-got, msg
		lastDropped, _ = small.p.metricSum("shoal_kafka_dropped_samples_total")
		return lastDropped == missed, fmt.Sprintf("dropped %v, missed %v of %v samples: %s", lastDropped, missed, made, detail)
	})
	if missed == 0 {
		t.Errorf("small buffer: nothing dropped during a 30s outage with a 16 KiB buffer; the test proves nothing")
	}
	sinkDropped, _ := small.p.metricSum("shoal_sink_dropped_samples_total")
	kerrs, kerrSeries := small.p.metricSum("shoal_kafka_errors_total")
	t.Logf("small buffer: %v samples dropped (%v scrapes); %s; shoal_sink_dropped_samples_total %v, shoal_kafka_errors_total %v %v",
		missed, missed/samplesPerOutageScrape, detail, sinkDropped, kerrs, kerrSeries)

	// Large buffer: stop shoal (SIGTERM flushes), then every answered
	// request must be in the topic.
	for _, s := range sides {
		s.p.signal(syscall.SIGTERM)
	}
	for _, s := range sides {
		if code := s.p.waitExit(30 * time.Second); code != 0 {
			t.Errorf("%s: shoal exited with %d after SIGTERM", s.name, code)
		}
	}
	large.c.waitRecords(30*time.Second, "large buffer: every answered request in the topic", func([]record) (bool, string) {
		m := seqs(large)
		var missing []string
		for _, e := range large.exs {
			got := map[int]bool{}
			for _, n := range m[e.addr] {
				got[n] = true
			}
			for n := 1; n <= e.count(); n++ {
				if !got[n] {
					missing = append(missing, fmt.Sprintf("%s #%d", e.addr, n))
				}
			}
		}
		return len(missing) == 0, fmt.Sprintf("missing %d: %v", len(missing), missing)
	})
	if made, got, msg := accounting(large); made != got {
		t.Errorf("large buffer: %v of %v samples missing: %s", made-got, made, msg)
	}
	m := seqs(large)
	dups := 0
	for _, e := range large.exs {
		seen := map[int]bool{}
		prev := 0
		for _, n := range m[e.addr] {
			if seen[n] {
				dups++
				continue
			}
			seen[n] = true
			if n < prev {
				t.Errorf("large buffer: %s: request %d consumed after request %d: order lost", e.addr, n, prev)
			}
			prev = n
		}
		t.Logf("large buffer: %s: %d requests answered, %d records", e.addr, e.count(), len(m[e.addr]))
	}
	t.Logf("large buffer: %d duplicate records (at-least-once redelivery)", dups)
	t.Logf("outage test took %v", time.Since(down).Round(time.Second))
}
