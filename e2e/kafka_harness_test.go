package e2e

// The Kafka half of the harness: the real broker scripts/testenv.sh starts
// (SHOAL_TEST_KAFKA*, see README.md), topics, a franz-go consumer that
// decodes shoal's records back into samples, exporters whose every answer is
// known in advance, and stopping and restarting the broker mid-test.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// Content types of the two record formats (DESIGN.md, "Kafka record
// format"): the remote-write 1.0 and 2.0 content types.
var kafkaContentType = map[string]string{
	"rw1": "application/x-protobuf;proto=prometheus.WriteRequest",
	"rw2": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
}

// kafkaEnv is the test broker.
type kafkaEnv struct {
	brokers    string // PLAINTEXT listener, host:port
	sasl       string // SASL_PLAINTEXT listener (mechanism PLAIN)
	user, pass string // a user the SASL listener knows
	logDir     string // the broker's log.dirs
	ctl        string // scripts/testenv.sh
	testenvDir string // its TESTENV_DIR
}

// kafkaBroker returns the broker of SHOAL_TEST_KAFKA*, following the
// README's rule: skip only under -short, otherwise a missing variable fails.
func kafkaBroker(t *testing.T) kafkaEnv {
	t.Helper()
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			if testing.Short() {
				t.Skip(name + " not set (-short)")
			}
			t.Fatal(name + " not set: run `make test`, or `scripts/testenv.sh up` and `set -a; . .testenv/env; set +a` first (or go test -short to skip)")
		}
		return v
	}
	return kafkaEnv{
		brokers:    get("SHOAL_TEST_KAFKA"),
		sasl:       get("SHOAL_TEST_KAFKA_SASL"),
		user:       get("SHOAL_TEST_KAFKA_SASL_USER"),
		pass:       get("SHOAL_TEST_KAFKA_SASL_PASSWORD"),
		logDir:     get("SHOAL_TEST_KAFKA_LOGDIR"),
		ctl:        get("SHOAL_TEST_KAFKA_CTL"),
		testenvDir: get("SHOAL_TEST_KAFKA_TESTENV_DIR"),
	}
}

// The broker is shared by every test that uses it, also by other packages'
// test binaries running at the same time, and one test stops it for half a
// minute. So every test that uses it holds a shared flock on
// TESTENV_DIR/kafka.lock for its whole run, and the test that stops the
// broker holds it exclusively. (flock locks belong to the open file, so two
// tests of one binary exclude each other too.) Other packages' Kafka tests
// should take the shared lock the same way.

// useBroker takes the shared lock until the test ends.
func (k kafkaEnv) useBroker(t *testing.T) { k.flock(t, syscall.LOCK_SH) }

// ownBroker takes the exclusive lock until the test ends: nobody else uses
// the broker meanwhile, so the test may stop it.
func (k kafkaEnv) ownBroker(t *testing.T) { k.flock(t, syscall.LOCK_EX) }

func (k kafkaEnv) flock(t *testing.T, how int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(k.testenvDir, "kafka.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// Blocks while another test holds it the other way: for the outage
	// test, about a minute.
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// ctlRun runs scripts/testenv.sh with args against the testenv directory
// that started the broker.
func (k kafkaEnv) ctlRun(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(k.ctl, args...)
	cmd.Env = append(os.Environ(), "TESTENV_DIR="+k.testenvDir)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", k.ctl, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s: %v", filepath.Base(k.ctl), strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// stopBroker stops the broker (same ports and data kept); it is started
// again when the test ends if the test has not done so itself. The caller
// must hold ownBroker.
func (k kafkaEnv) stopBroker(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		// A no-op when it runs. Other tests need it back even if this one
		// failed half-way.
		cmd := exec.Command(k.ctl, "start-service", "kafka")
		cmd.Env = append(os.Environ(), "TESTENV_DIR="+k.testenvDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("restarting the broker after the test: %v\n%s", err, out)
		}
	})
	k.ctlRun(t, "stop-service", "kafka")
}

// startBroker starts the stopped broker again and waits until it answers.
func (k kafkaEnv) startBroker(t *testing.T) { k.ctlRun(t, "start-service", "kafka") }

// admin returns a kadm client on the PLAINTEXT listener, closed when the
// test ends.
func (k kafkaEnv) admin(t testing.TB) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.brokers))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// newTopic creates a topic with a name no other test (or earlier run) uses,
// and returns the name.
func (k kafkaEnv) newTopic(t *testing.T, partitions int32) string {
	t.Helper()
	name := fmt.Sprintf("e2e-%s-%d", strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name())), time.Now().UnixNano()%1e9)
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := k.admin(t).CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", name, err)
	}
	return name
}

// logBytes sums the sizes of the topic's log segments (*.log) under the
// broker's log.dirs: the record batches as stored, without the indexes
// (preallocated to 10 MB each while a segment is active).
func (k kafkaEnv) logBytes(t *testing.T, topic string) int64 {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(k.logDir, topic+"-*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no partition directories of %s under %s (%v)", topic, k.logDir, err)
	}
	var n int64
	for _, d := range dirs {
		// Only this topic's partitions: topic-N, not topic-other-N.
		if _, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), topic+"-")); err != nil {
			continue
		}
		segs, _ := filepath.Glob(filepath.Join(d, "*.log"))
		for _, s := range segs {
			fi, err := os.Stat(s)
			if err != nil {
				t.Fatal(err)
			}
			n += fi.Size()
		}
	}
	return n
}

// shoalKafkaArgs are the flags of a `shoal run` writing to topic on brokers.
func shoalKafkaArgs(brokers, topic, format string, extra ...string) []string {
	return append([]string{
		"--sink=kafka",
		"--kafka.brokers=" + brokers,
		"--kafka.topic=" + topic,
		"--kafka.format=" + format,
		"--kafka.client-id=shoal-e2e",
		"--cluster.member-id=" + e2eMember,
	}, extra...)
}

// e2eMember is the --cluster.member-id the tests give shoal: the member
// header of every record.
const e2eMember = "e2e-member-1"

// record is one consumed Kafka record, decoded.
type record struct {
	key       string
	partition int32
	offset    int64
	headers   map[string]string
	nHeaders  int // how many headers, duplicates included
	size      int // bytes of the value
	samples   []sample
	err       error // decoding the value
}

func (r record) String() string {
	return fmt.Sprintf("partition %d offset %d key %q (%d samples, %d bytes)", r.partition, r.offset, r.key, len(r.samples), r.size)
}

// consumer reads a topic from its start in the background and decodes
// every record with the format's decoder.
type consumer struct {
	t      testing.TB
	cl     *kgo.Client
	format string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	recs    []record
	lastErr error // the latest fetch error, for messages
}

// consume starts a consumer of topic on the PLAINTEXT listener; it stops
// when the test ends.
func consume(t testing.TB, brokers, topic, format string) *consumer {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(250*time.Millisecond),
		kgo.FetchMaxPartitionBytes(16<<20),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{t: t, cl: cl, format: format, cancel: cancel, done: make(chan struct{})}
	go c.run(ctx)
	t.Cleanup(func() {
		cancel()
		<-c.done
		cl.Close()
	})
	return c
}

func (c *consumer) run(ctx context.Context) {
	defer close(c.done)
	for ctx.Err() == nil {
		fs := c.cl.PollFetches(ctx)
		var errs []error
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", topic, p, err))
			}
		})
		var got []record
		fs.EachRecord(func(r *kgo.Record) { got = append(got, decodeRecord(c.format, r)) })
		c.mu.Lock()
		c.recs = append(c.recs, got...)
		if len(errs) > 0 {
			c.lastErr = errors.Join(errs...)
		}
		c.mu.Unlock()
	}
}

// records returns a copy of every record consumed so far, in the order
// consumed (offset order within each partition).
func (c *consumer) records() []record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

// waitRecords polls the records consumed so far until cond is true.
func (c *consumer) waitRecords(within time.Duration, what string, cond func([]record) (bool, string)) []record {
	c.t.Helper()
	var recs []record
	waitFor(c.t, within, what, func() (bool, string) {
		recs = c.records()
		ok, msg := cond(recs)
		c.mu.Lock()
		if c.lastErr != nil {
			msg += fmt.Sprintf(" (last fetch error: %v)", c.lastErr)
		}
		c.mu.Unlock()
		return ok, fmt.Sprintf("%d records: %s", len(recs), msg)
	})
	return recs
}

// waitEnd asks the broker for the topic's end offsets now, and waits until
// the consumer has read up to them: once the producer is gone, every record
// it wrote.
func (c *consumer) waitEnd(k kafkaEnv, topic string, within time.Duration) []record {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	ends, err := k.admin(c.t).ListEndOffsets(ctx, topic)
	if err != nil {
		c.t.Fatalf("end offsets of %s: %v", topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			c.t.Fatalf("end offset of %s[%d]: %v", topic, o.Partition, o.Err)
		}
		want[o.Partition] = o.Offset
	})
	return c.waitRecords(within, fmt.Sprintf("every record up to the end offsets %v", want), func(recs []record) (bool, string) {
		got := map[int32]int64{}
		for _, r := range recs {
			got[r.partition] = max(got[r.partition], r.offset+1)
		}
		for p, end := range want {
			if got[p] < end {
				return false, fmt.Sprintf("read up to %v", got)
			}
		}
		return true, ""
	})
}

// decodeRecord decodes a record's value in format (rw1 or rw2) into
// samples, in the order of the message (series by series, each series'
// samples in order).
func decodeRecord(format string, r *kgo.Record) record {
	rec := record{
		key:       string(r.Key),
		partition: r.Partition,
		offset:    r.Offset,
		headers:   map[string]string{},
		nHeaders:  len(r.Headers),
		size:      len(r.Value),
	}
	for _, h := range r.Headers {
		rec.headers[h.Key] = string(h.Value)
	}
	switch format {
	case "rw1":
		rec.samples, rec.err = decodeRW1(r.Value)
	case "rw2":
		rec.samples, rec.err = decodeRW2(r.Value)
	case "raw": // no decoding
	default:
		rec.err = fmt.Errorf("unknown format %q", format)
	}
	return rec
}

// decodeRW1 decodes a prometheus.WriteRequest (remote write 1.0).
func decodeRW1(b []byte) ([]sample, error) {
	var req prompb.WriteRequest
	if err := req.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("prompb.WriteRequest: %w", err)
	}
	var out []sample
	for i, ts := range req.Timeseries {
		pairs := make([]string, 0, 2*len(ts.Labels))
		for _, l := range ts.Labels {
			pairs = append(pairs, l.Name, l.Value)
		}
		if len(ts.Histograms) > 0 || len(ts.Exemplars) > 0 {
			return nil, fmt.Errorf("series %d: %d histograms, %d exemplars: shoal writes float samples only", i, len(ts.Histograms), len(ts.Exemplars))
		}
		ss, err := toSamples(i, pairs, len(ts.Samples), func(j int) (float64, int64) { return ts.Samples[j].Value, ts.Samples[j].Timestamp })
		if err != nil {
			return nil, err
		}
		out = append(out, ss...)
	}
	return out, nil
}

// decodeRW2 decodes an io.prometheus.write.v2.Request (remote write 2.0).
func decodeRW2(b []byte) ([]sample, error) {
	var req writev2.Request
	if err := req.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("io.prometheus.write.v2.Request: %w", err)
	}
	if len(req.Symbols) == 0 || req.Symbols[0] != "" {
		return nil, fmt.Errorf("symbols must start with the empty string: %.5q", req.Symbols)
	}
	var out []sample
	for i, ts := range req.Timeseries {
		if len(ts.LabelsRefs)%2 != 0 {
			return nil, fmt.Errorf("series %d: odd number of label refs (%d)", i, len(ts.LabelsRefs))
		}
		pairs := make([]string, 0, len(ts.LabelsRefs))
		for _, ref := range ts.LabelsRefs {
			if int(ref) >= len(req.Symbols) {
				return nil, fmt.Errorf("series %d: label ref %d out of %d symbols", i, ref, len(req.Symbols))
			}
			pairs = append(pairs, req.Symbols[ref])
		}
		if len(ts.Histograms) > 0 || len(ts.Exemplars) > 0 {
			return nil, fmt.Errorf("series %d: %d histograms, %d exemplars: shoal writes float samples only", i, len(ts.Histograms), len(ts.Exemplars))
		}
		ss, err := toSamples(i, pairs, len(ts.Samples), func(j int) (float64, int64) { return ts.Samples[j].Value, ts.Samples[j].Timestamp })
		if err != nil {
			return nil, err
		}
		out = append(out, ss...)
	}
	return out, nil
}

// toSamples checks one series' labels as both remote-write versions require
// (a __name__, names sorted and unique, no empty value) and makes its
// samples, whose timestamps must increase.
func toSamples(i int, pairs []string, n int, at func(int) (float64, int64)) ([]sample, error) {
	labels := map[string]string{}
	var name string
	for j := 0; j+1 < len(pairs); j += 2 {
		k, v := pairs[j], pairs[j+1]
		if j > 0 && pairs[j-2] >= k {
			return nil, fmt.Errorf("series %d: labels not sorted by name or repeated: %q after %q", i, k, pairs[j-2])
		}
		if v == "" {
			return nil, fmt.Errorf("series %d: label %q with an empty value", i, k)
		}
		if k == "__name__" {
			name = v
		} else {
			labels[k] = v
		}
	}
	if name == "" {
		return nil, fmt.Errorf("series %d: no __name__ in %q", i, pairs)
	}
	if n == 0 {
		return nil, fmt.Errorf("series %d (%s): no samples", i, name)
	}
	series := canonicalSeries(name, labels)
	out := make([]sample, 0, n)
	for j := range n {
		v, ts := at(j)
		if j > 0 && ts <= out[j-1].ts {
			return nil, fmt.Errorf("series %d (%s): timestamps not increasing: %d after %d", i, series, ts, out[j-1].ts)
		}
		s := sample{series: series, name: name, labels: labels, value: v, ts: ts, stale: math.Float64bits(v) == value.StaleNaN}
		s.line = fmt.Sprintf("%s %s %d", series, fmtValue(v), ts)
		out = append(out, s)
	}
	return out, nil
}

// canonicalSeries writes name{a="x",b="y"} with the labels sorted: one
// string per series, whatever order they came in.
func canonicalSeries(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

// fmtValue formats a value for messages, telling a staleness marker from
// another NaN.
func fmtValue(v float64) string {
	if math.Float64bits(v) == value.StaleNaN {
		return "stale"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// seqOf returns the value of e2e_seq in samples: the exporter's request
// number the scrape saw; -1 if there is none.
func seqOf(samples []sample) int {
	for _, s := range samples {
		if s.name == "e2e_seq" && !s.stale {
			return int(s.value)
		}
	}
	return -1
}

// ---------------------------------------------------------------------------
// Exporters with known answers
// ---------------------------------------------------------------------------

// expSample is one sample an exporter serves.
type expSample struct {
	name   string
	labels [][2]string // in exposition order
	value  float64
	ts     int64 // an explicit timestamp (ms); 0: none
}

// genExporter serves, for its n-th request (1-based), the samples gen(n)
// returns, followed by `e2e_seq n`, and keeps what it served and when, so a
// test can compare every consumed scrape with the request it came from.
type genExporter struct {
	t    testing.TB
	srv  *httptest.Server
	addr string
	gen  func(n int) []expSample

	mu     sync.Mutex
	served []servedScrape // by request number - 1
}

type servedScrape struct {
	arrival time.Time
	samples []expSample // with e2e_seq
	done    bool        // the whole body was written
}

func newGenExporter(t testing.TB, gen func(n int) []expSample) *genExporter {
	t.Helper()
	e := &genExporter{t: t, gen: gen}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.Listener.Close()
	e.srv.Listener = listenFree(t)
	e.srv.Start()
	e.addr = strings.TrimPrefix(e.srv.URL, "http://")
	t.Cleanup(e.srv.Close)
	return e
}

func (e *genExporter) serve(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	e.mu.Lock()
	n := len(e.served) + 1
	e.served = append(e.served, servedScrape{arrival: now})
	e.mu.Unlock()

	samples := append(e.gen(n), expSample{name: "e2e_seq", value: float64(n)})
	body := renderExposition(samples)
	w.Header().Set("Content-Type", textFormat)
	_, err := w.Write(body)

	e.mu.Lock()
	e.served[n-1].samples = samples
	e.served[n-1].done = err == nil
	e.mu.Unlock()
}

// requests returns what was served so far.
func (e *genExporter) requests() []servedScrape {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.served)
}

// count is the number of requests so far.
func (e *genExporter) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.served)
}

// renderExposition writes samples in the text format 0.0.4. It is on the
// exporters' request path, in a -race binary, for bodies of megabytes: keep
// it cheap.
func renderExposition(samples []expSample) []byte {
	b := make([]byte, 0, 64*len(samples))
	for _, s := range samples {
		b = append(b, s.name...)
		if len(s.labels) > 0 {
			b = append(b, '{')
			for i, l := range s.labels {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, l[0]...)
				b = append(b, `="`...)
				if strings.ContainsAny(l[1], "\\\"\n") {
					b = append(b, labelEscaper.Replace(l[1])...)
				} else {
					b = append(b, l[1]...)
				}
				b = append(b, '"')
			}
			b = append(b, '}')
		}
		b = append(b, ' ')
		switch {
		case math.IsInf(s.value, 1):
			b = append(b, "+Inf"...)
		case math.IsInf(s.value, -1):
			b = append(b, "-Inf"...)
		case math.IsNaN(s.value):
			b = append(b, "NaN"...)
		default:
			b = strconv.AppendFloat(b, s.value, 'g', -1, 64)
		}
		if s.ts != 0 {
			b = append(b, ' ')
			b = strconv.AppendInt(b, s.ts, 10)
		}
		b = append(b, '\n')
	}
	return b
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// seriesOf is the canonical series of an exporter's sample once scraped
// with the target labels job and instance.
func (s expSample) seriesOf(job, instance string) string {
	m := map[string]string{"job": job, "instance": instance}
	for _, l := range s.labels {
		m[l[0]] = l[1]
	}
	return canonicalSeries(s.name, m)
}

// ---------------------------------------------------------------------------
// shoal's metrics
// ---------------------------------------------------------------------------

// metricSum returns the sum of every series of name on /metrics (0 if
// there is none), and the series, for messages.
func (p *proc) metricSum(name string) (float64, []metric) {
	p.t.Helper()
	var sum float64
	var got []metric
	for _, m := range p.metrics() {
		if m.name == name {
			sum += m.value
			got = append(got, m)
		}
	}
	return sum, got
}

// scrapesOK is shoal_scrapes_total{job,result="success"}.
func (p *proc) scrapesOK(job string) float64 {
	p.t.Helper()
	v, _ := p.metricValue("shoal_scrapes_total", lbl("job", job, "result", "success"))
	return v
}

// kafkaTestbed checks the broker itself, with franz-go alone: a record
// produced on the PLAINTEXT listener and on the SASL listener (with the
// test user) comes back, a wrong password is refused, and a produce to a
// topic that does not exist fails (no auto-creation). kafkaFaults
// relies on all three.
func kafkaTestbed(t *testing.T) {
	k := kafkaBroker(t)
	t.Parallel()
	k.useBroker(t)
	topic := k.newTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	produce := func(seed string, topic string, opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seed), kgo.UnknownTopicRetries(2), kgo.RecordRetries(3)}, opts...)...)
		if err != nil {
			return err
		}
		defer cl.Close()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(seed), Value: []byte("v")}).FirstErr()
	}
	if err := produce(k.brokers, topic); err != nil {
		t.Errorf("PLAINTEXT: %v", err)
	}
	if err := produce(k.sasl, topic, kgo.SASL(plain.Auth{User: k.user, Pass: k.pass}.AsMechanism())); err != nil {
		t.Errorf("SASL_PLAINTEXT as %s: %v", k.user, err)
	}
	// A ping, not a produce: franz-go retries a refused login for 16s.
	bad, err := kgo.NewClient(kgo.SeedBrokers(k.sasl), kgo.SASL(plain.Auth{User: k.user, Pass: "not-" + k.pass}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Ping(ctx)
	bad.Close()
	if err == nil || !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
		t.Errorf("SASL_PLAINTEXT with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	err = produce(k.brokers, topic+"-missing")
	if err == nil || !strings.Contains(err.Error(), "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("produce to a missing topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	c := consume(t, k.brokers, topic, "raw")
	c.waitRecords(20*time.Second, "both records back", func(recs []record) (bool, string) {
		keys := map[string]bool{}
		for _, r := range recs {
			keys[r.key] = true
		}
		return keys[k.brokers] && keys[k.sasl], fmt.Sprint(keys)
	})
}
