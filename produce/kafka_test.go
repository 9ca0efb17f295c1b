package produce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/shoal-scraper/shoal/internal/javakafka"
	"github.com/shoal-scraper/shoal/internal/yieldtest"
)

const testTopic = "shoal-metrics"

// logBuf collects a sink's log lines for assertions; safe for concurrent
// use, and never touches testing.T (the sink logs from its goroutines).
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testSink is a sink under test with its registry and log.
type testSink struct {
	*Kafka
	reg *prometheus.Registry
	log *logBuf
}

func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, testTopic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// newSink starts a sink on brokers with the test defaults, adjusted by
// edit, and closes it when the test ends (if the test did not).
func newSink(t testing.TB, brokers []string, edit func(*KafkaConfig)) *testSink {
	t.Helper()
	cfg := DefaultKafkaConfig()
	cfg.Brokers = brokers
	cfg.Topic = testTopic
	cfg.MemberID = "member-1:9464"
	// Retry fast: tests unblock a refusing broker and want delivery now,
	// not after kgo's backoff has grown to 5 s.
	cfg.ClientOpts = []kgo.Opt{kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }), kgo.MetadataMinAge(50 * time.Millisecond)}
	// Records move at once: most tests are about records, not batches,
	// and would wait out the default linger. TestKafkaRuns is about the
	// gathering.
	cfg.Linger = 0
	if edit != nil {
		edit(&cfg)
	}
	reg := prometheus.NewRegistry()
	lb := &logBuf{}
	k, err := NewKafka(cfg, reg, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close(context.Background()) })
	return &testSink{Kafka: k, reg: reg, log: lb}
}

func (s *testSink) counter(t testing.TB, name string, lv ...string) float64 {
	t.Helper()
	switch name {
	case "records":
		return testutil.ToFloat64(s.m.records)
	case "samples":
		return testutil.ToFloat64(s.m.samples)
	case "bytes":
		return testutil.ToFloat64(s.m.bytes)
	case "dropped":
		return testutil.ToFloat64(s.m.dropped)
	case "errors":
		return testutil.ToFloat64(s.m.errors.WithLabelValues(lv...))
	case "buffer":
		return testutil.ToFloat64(s.m.bufferBytes)
	case "batches":
		return testutil.ToFloat64(s.m.batches)
	case "compressed":
		return testutil.ToFloat64(s.m.compressedBytes)
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// scrape returns a scrape of job/instance with n samples of distinct
// series, values i+base, at time ts.
func testScrape(job, instance string, n int, base float64, ts int64) *Scrape {
	s := &Scrape{Key: job + "/" + instance, Job: job, Instance: instance, T: ts}
	for i := range n {
		s.Samples = append(s.Samples, Sample{
			Series: series("__name__", "m"+strconv.Itoa(i), "instance", instance, "job", job),
			T:      ts,
			V:      float64(i) + base,
		})
	}
	return s
}

// consume reads topic from its start until n records arrived (then a
// little longer, to catch extra ones) or the timeout passes.
func consumeTopic(t testing.TB, brokers []string, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	deadline := time.Now().Add(timeout)
	extra := time.Time{}
	for {
		now := time.Now()
		if len(recs) >= n && extra.IsZero() {
			extra = now.Add(300 * time.Millisecond)
		}
		if now.After(deadline) || (!extra.IsZero() && now.After(extra)) {
			break
		}
		end := deadline
		if !extra.IsZero() {
			end = extra
		}
		ctx, cancel := context.WithDeadline(context.Background(), end)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("consuming: %v", err)
			}
		})
		recs = append(recs, fs.Records()...)
	}
	return recs
}

type sinkSample struct {
	ls labels.Labels
	t  int64
	v  float64
}

func decodeRecord(t testing.TB, r *kgo.Record) []sinkSample {
	t.Helper()
	var out []sinkSample
	if _, err := DecodeRecordValue(recordHeader(r, "content-type"), r.Value, func(ls labels.Labels, ts int64, v float64) {
		out = append(out, sinkSample{ls.Copy(), ts, v})
	}); err != nil {
		t.Fatalf("decoding %s: %v", r.Key, err)
	}
	return out
}

func recordHeader(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// sameSamples compares sinkSample samples with written ones, bit for bit (a
// staleness marker must keep its exact NaN).
func sameSamples(t testing.TB, got []sinkSample, want []Sample) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d samples, want %d", len(got), len(want))
	}
	for i := range want {
		if !labels.Equal(got[i].ls, want[i].Series.Labels()) || got[i].t != want[i].T || math.Float64bits(got[i].v) != math.Float64bits(want[i].V) {
			t.Fatalf("sample %d: %s %d %x, want %s %d %x", i, got[i].ls, got[i].t, math.Float64bits(got[i].v), want[i].Series.Labels(), want[i].T, math.Float64bits(want[i].V))
		}
	}
}

func sinkFormats() []RecordFormat { return []RecordFormat{RW1, RW2} }

// One scrape is one record: key, partition, headers, timestamp and value
// as README.md's "Record format" says, and the metrics count it.
func TestKafkaRecord(t *testing.T) {
	for _, f := range sinkFormats() {
		t.Run("format="+f.String(), func(t *testing.T) {
			c := newCluster(t)
			k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) { c.Format = f })
			s := testScrape("node", "10.0.0.1:9100", 5, 0.5, 1763900000000)
			s.Samples[1].V = StaleNaN
			s.Samples[2].V = math.Inf(-1)
			s.Samples[3].T = 1763899999000 // an explicit timestamp
			if err := k.Write(s); err != nil {
				t.Fatal(err)
			}
			recs := consumeTopic(t, c.ListenAddrs(), testTopic, 1, 10*time.Second)
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			r := recs[0]
			if string(r.Key) != "node/10.0.0.1:9100" {
				t.Errorf("key %q", r.Key)
			}
			if want := javakafka.Partition(r.Key, 3); r.Partition != want {
				t.Errorf("partition %d, want %d (Java's murmur2 partitioner)", r.Partition, want)
			}
			wantHdr := []kgo.RecordHeader{
				{Key: "content-type", Value: []byte(f.ContentType())},
				{Key: "job", Value: []byte("node")},
				{Key: "instance", Value: []byte("10.0.0.1:9100")},
				{Key: "member", Value: []byte("member-1:9464")},
			}
			if !slices.EqualFunc(r.Headers, wantHdr, func(a, b kgo.RecordHeader) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
				t.Errorf("headers %q, want %q", r.Headers, wantHdr)
			}
			if r.Timestamp.UnixMilli() != s.T {
				t.Errorf("record timestamp %d, want the scrape's %d", r.Timestamp.UnixMilli(), s.T)
			}
			sameSamples(t, decodeRecord(t, r), s.Samples)
			if got, err := DecodeRecordValue("", r.Value, func(labels.Labels, int64, float64) {}); err != nil || got != f {
				t.Errorf("decoding without content-type: %s, %v; want %s", got, err, f)
			}
			waitUntil(t, func() bool { return k.counter(t, "records") == 1 }, "records_total to count the ack")
			if got := k.counter(t, "samples"); got != 5 {
				t.Errorf("samples_total %v", got)
			}
			if got := k.counter(t, "bytes"); got != float64(len(r.Value)) {
				t.Errorf("bytes_total %v, want %d", got, len(r.Value))
			}
			if got := testutil.CollectAndCount(k.reg, "shoal_kafka_produce_latency_seconds"); got != 1 {
				t.Errorf("latency histogram: %d series", got)
			}
			if err := k.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := k.Write(s); !errors.Is(err, ErrClosed) {
				t.Errorf("Write after Close: %v", err)
			}
		})
	}
}

func waitUntil(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A scrape larger than MaxRecordBytes becomes several complete messages
// with the same key (so one partition, in order), none over the limit; the
// next scrape of the target is split the same way without being encoded
// whole first; a sample that alone is too large is dropped and counted.
func TestKafkaSplitsLargeScrapes(t *testing.T) {
	const maxRec = 4096
	for _, f := range sinkFormats() {
		t.Run("format="+f.String(), func(t *testing.T) {
			c := newCluster(t)
			k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) {
				c.Format = f
				c.MaxRecordBytes = maxRec
			})
			memo := &Memo{} // the target's, as the engine keeps it
			s := testScrape("big", "h:1", 600, 0, 1000)
			s.Memo = memo
			huge := series("__name__", "huge", "instance", "h:1", "job", "big", "v", strings.Repeat("x", 2*maxRec))
			s.Samples = slices.Insert(s.Samples, 300, Sample{Series: huge, T: 1000, V: 1})
			if err := k.Write(s); err != nil {
				t.Fatal(err)
			}
			if memo.split == 0 {
				t.Fatal("split size not remembered")
			}
			// The second scrape, with the same series, is split at the
			// same places.
			s2 := testScrape("big", "h:1", 600, 1, 2000)
			s2.Memo = memo
			s2.Samples = slices.Insert(s2.Samples, 300, Sample{Series: huge, T: 2000, V: 2})
			if err := k.Write(s2); err != nil {
				t.Fatal(err)
			}
			if err := k.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			recs := consumeTopic(t, c.ListenAddrs(), testTopic, 2, 10*time.Second)
			if len(recs) < 4 {
				t.Fatalf("%d records: the scrapes were not split", len(recs))
			}
			var got []sinkSample
			var sizes []int
			for i, r := range recs {
				if string(r.Key) != s.Key || r.Partition != recs[0].Partition {
					t.Fatalf("record %d: key %q partition %d; all parts must share key and partition", i, r.Key, r.Partition)
				}
				size := len(r.Key) + len(r.Value)
				for _, h := range r.Headers {
					size += len(h.Key) + len(h.Value)
				}
				if size > maxRec {
					t.Errorf("record %d is %d bytes, over the %d limit", i, size, maxRec)
				}
				if i > 0 && r.Offset != recs[i-1].Offset+1 {
					t.Errorf("offsets not consecutive")
				}
				sizes = append(sizes, len(decodeRecord(t, r)))
				got = append(got, decodeRecord(t, r)...)
			}
			want := append(slices.Delete(slices.Clone(s.Samples), 300, 301), slices.Delete(slices.Clone(s2.Samples), 300, 301)...)
			sameSamples(t, got, want)
			// Both scrapes split at the same sample counts.
			half := len(sizes) / 2
			if len(sizes)%2 != 0 || !slices.Equal(sizes[:half], sizes[half:]) {
				t.Errorf("parts per record %v: the second scrape was split differently", sizes)
			}
			if got := k.counter(t, "dropped"); got != 2 {
				t.Errorf("dropped samples %v, want 2 (the huge sample of each scrape)", got)
			}
			if got := k.counter(t, "errors", ErrKindTooLarge); got != 2 {
				t.Errorf("errors_total{kind=too_large} %v, want 2", got)
			}
			if !strings.Contains(k.log.String(), "larger than --kafka.max-record-bytes") {
				t.Errorf("no log line for the dropped sample:\n%s", k.log)
			}
		})
	}
}

// Writing a scrape split into many records lets other goroutines run
// between records on one P: the timing wheel and the other scrapes do not
// wait for a huge target's whole Write.
func TestKafkaSplitYields(t *testing.T) {
	c := newCluster(t)
	k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) { c.MaxRecordBytes = 4096 })
	memo := &Memo{}
	for scrape := range 2 { // the first scrape learns the split; the second hits it
		s := testScrape("big", "h:1", 3000, float64(scrape), int64(1000*(scrape+1)))
		s.Memo = memo
		var err error
		got := yieldtest.Turns(func() { err = k.Write(s) })
		if err != nil {
			t.Fatal(err)
		}
		if memo.split == 0 {
			t.Fatal("the scrape was not split")
		}
		records := (len(s.Samples) + memo.split - 1) / memo.split
		// Allow a turn or two to another goroutine (the sink's pump, a
		// timer); without the yields the counter got none.
		if want := int64(records) - 2; got < want {
			t.Errorf("scrape %d: another goroutine ran %d times while %d samples were written as %d records on one P, want at least %d", scrape, got, len(s.Samples), records, want)
		}
	}
	if err := k.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A target that shrinks to fit in half a record is encoded whole again.
func TestKafkaSplitForgetsShrunkTargets(t *testing.T) {
	c := newCluster(t)
	k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) { c.MaxRecordBytes = 4096 })
	memo := &Memo{}
	big, small := testScrape("j", "i", 500, 0, 1), testScrape("j", "i", 5, 0, 2)
	big.Memo, small.Memo = memo, memo
	if err := k.Write(big); err != nil {
		t.Fatal(err)
	}
	if memo.split == 0 || len(memo.parts) < 2 {
		t.Fatalf("not split: %d samples per record, %d messages remembered", memo.split, len(memo.parts))
	}
	if err := k.Write(small); err != nil {
		t.Fatal(err)
	}
	if memo.split != 0 || len(memo.parts) != 1 {
		t.Fatalf("split size %d and %d messages kept for a small scrape", memo.split, len(memo.parts))
	}
}

// queueState is a consistent view of the sink's queue and in-flight
// records.
type queueState struct {
	queued       []string // keys, oldest first
	inflightRecs int
	canHand      bool
	used         int64
	queuedBytes  int64
}

func (k *Kafka) state() queueState {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := queueState{inflightRecs: k.inflightRecs, used: k.queued + k.inflight, queuedBytes: k.queued}
	// With a zero linger (the tests' default) every queued record is due:
	// only the in-flight share holds the oldest back.
	st.canHand = k.oldest != nil && k.mayHand(k.oldest)
	for e := k.oldest; e != nil; e = e.newer {
		st.queued = append(st.queued, string(e.rec.Key))
	}
	return st
}

// With the broker refusing every produce (a retriable error, so kgo keeps
// retrying), the buffer fills; the oldest queued scrapes are dropped, each
// of their samples counted exactly; the newest stay queued, and everything
// still buffered is delivered once the broker takes produces again.
func TestKafkaBufferFullDropsOldest(t *testing.T) {
	c := newCluster(t)
	deny := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) {
		c.MaxRecordBytes = 4096
		c.BufferBytes = 64 << 10
		c.Topic = testTopic
	})
	const n = 300
	samplesOf := map[string]int{}
	total := 0
	for i := range n {
		inst := fmt.Sprintf("h%03d", i)
		s := testScrape("j", inst, 1+i%7, float64(i), int64(1000+i))
		samplesOf[s.Key] = len(s.Samples)
		total += len(s.Samples)
		if err := k.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := deny.Wait(ctx, 1); err != nil {
		t.Fatal("no produce request reached the broker")
	}
	waitUntil(t, func() bool { return !k.state().canHand }, "the pump to fill its in-flight share")
	st := k.state()
	if st.used > 64<<10 {
		t.Fatalf("buffer holds %d bytes, over its %d bound", st.used, 64<<10)
	}
	if got := k.counter(t, "buffer"); got != float64(st.used) {
		t.Errorf("shoal_kafka_buffer_bytes %v, want %d", got, st.used)
	}
	// The queue holds the newest scrapes, in order, ending with the last
	// one written.
	if len(st.queued) == 0 || st.queued[len(st.queued)-1] != fmt.Sprintf("j/h%03d", n-1) {
		t.Fatalf("queue %v does not end with the newest scrape", st.queued)
	}
	index := func(key string) int {
		i, _ := strconv.Atoi(strings.TrimPrefix(key, "j/h"))
		return i
	}
	first := index(st.queued[0])
	for i := 1; i < len(st.queued); i++ {
		if index(st.queued[i]) <= index(st.queued[i-1]) {
			t.Fatalf("queue %v is not in the order written", st.queued)
		}
	}
	kept := len(st.queued) + st.inflightRecs
	if kept >= n {
		t.Fatalf("nothing dropped (%d kept)", kept)
	}
	dropped := k.counter(t, "dropped")

	deny.Remove()
	recs := consumeTopic(t, c.ListenAddrs(), testTopic, kept, 20*time.Second)
	if len(recs) != kept {
		t.Fatalf("%d records delivered, want the %d buffered (%d in flight + %d queued)", len(recs), kept, st.inflightRecs, len(st.queued))
	}
	delivered := 0
	got := map[string]bool{}
	for _, r := range recs {
		got[string(r.Key)] = true
		delivered += samplesOf[string(r.Key)]
	}
	for _, key := range st.queued {
		if !got[key] {
			t.Errorf("queued %s was not delivered", key)
		}
	}
	// Drops took the oldest: every scrape written after the oldest one
	// queued was delivered, from the queue or from flight. What was in
	// flight is older than what its partition had queued.
	for i := first; i < n; i++ {
		if key := fmt.Sprintf("j/h%03d", i); !got[key] {
			t.Errorf("%s was dropped, but is newer than the oldest queued %s", key, st.queued[0])
		}
	}
	for key := range got {
		if slices.Contains(st.queued, key) {
			continue
		}
		p := javakafka.Partition([]byte(key), 3)
		for _, q := range st.queued {
			if javakafka.Partition([]byte(q), 3) == p && index(q) < index(key) {
				t.Errorf("%s was delivered from flight, but %s of its partition, older, was still queued", key, q)
			}
		}
	}
	if want := float64(total - delivered); dropped != want {
		t.Errorf("dropped samples %v, want %v (samples of the scrapes not delivered)", dropped, want)
	}
	waitUntil(t, func() bool { return k.counter(t, "samples") == float64(delivered) }, "samples_total to count every delivered sample")
	if err := k.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got := k.counter(t, "dropped"); got != dropped {
		t.Errorf("dropped samples grew to %v after delivery", got)
	}
	if !strings.Contains(k.log.String(), "kafka buffer full") {
		t.Errorf("drops were not logged:\n%s", k.log)
	}
	if got := k.counter(t, "buffer"); got != 0 {
		t.Errorf("buffer bytes %v after Close", got)
	}
}

// Records gather in their partition's queue and move a run at a time
// (rule 3 of the design note), each run one batch: a partition's oldest
// records as soon as they fill a batch, without waiting for the linger;
// all of a partition's records once its oldest has waited the linger; and
// everything at Close, linger or not.
func TestKafkaRuns(t *testing.T) {
	// partitionsOf counts the partitions that keys land in (3 in the test
	// topic): one batch each is what a run per partition must produce.
	partitionsOf := func(keys []string) float64 {
		ps := map[int32]bool{}
		for _, k := range keys {
			ps[javakafka.Partition([]byte(k), 3)] = true
		}
		return float64(len(ps))
	}
	write := func(t *testing.T, k *testSink, inst string, n int) string {
		t.Helper()
		s := testScrape("j", inst, n, 1, 1763900000000)
		if err := k.Write(s); err != nil {
			t.Fatal(err)
		}
		return s.Key
	}
	// warm writes one record, the probe that makes kgo load the topic,
	// and waits until it is acknowledged and the sink groups records by
	// the topic's 3 partitions: one batch of one record.
	warm := func(t *testing.T, k *testSink) {
		t.Helper()
		write(t, k, "warm", 1)
		waitUntil(t, func() bool {
			k.mu.Lock()
			defer k.mu.Unlock()
			return k.counter(t, "records") == 1 && k.byTopic[testTopic].n == 3
		}, "the probe to be acknowledged and the partition count known")
	}

	t.Run("trigger=batch", func(t *testing.T) {
		c := newCluster(t)
		buffered := make(chan string, 1000)
		k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) {
			c.Linger = time.Hour
			c.ClientOpts = append(c.ClientOpts, kgo.WithHooks(recordBufferedHook(buffered)))
		})
		warm(t, k)
		<-buffered
		keys := partitionKeys(3, 100)
		// One record in each other partition: they wait for the linger.
		waiting := []string{write(t, k, strings.TrimPrefix(keys[1][0], "j/"), 2000), write(t, k, strings.TrimPrefix(keys[2][0], "j/"), 2000)}
		// Partition 0 fills a batch: once the queue holds more than one,
		// the oldest records that fit it move.
		var full []string
		for i := 0; ; i++ {
			key := write(t, k, strings.TrimPrefix(keys[0][i], "j/"), 2000)
			k.mu.Lock()
			pq := k.byTopic[testTopic].parts[0]
			over := pq != nil && pq.wire > k.batchBytes || k.inflightRecs > 0
			k.mu.Unlock()
			if over {
				waiting = append(waiting, key)
				break
			}
			full = append(full, key)
		}
		if len(full) < 10 {
			t.Fatalf("a run after only %d records of partition 0", len(full))
		}
		for _, want := range full {
			select {
			case key := <-buffered:
				if key != want {
					t.Fatalf("kgo took %s, want %s (the records of partition 0 that fill a batch, in order)", key, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the %d records of partition 0 that fill a batch were not handed over", len(full))
			}
		}
		// kgo counts written batches on a goroutine of its own, after
		// the promises.
		waitUntil(t, func() bool { return k.counter(t, "batches") >= 2 }, "the batch to be acknowledged")
		if got := k.counter(t, "batches"); got != 2 {
			t.Errorf("%d records in %v batches, want the probe's and one", len(full), got-1)
		}
		if st := k.state(); !slices.Equal(st.queued, waiting) {
			t.Errorf("queued %v, want %v waiting for the linger", st.queued, waiting)
		}
		if err := k.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		waitUntil(t, func() bool { return k.counter(t, "batches") >= 2+3 }, "the batches of Close to be counted")
		if got := k.counter(t, "batches"); got != 2+3 {
			t.Errorf("%v batches after Close, want one more per partition (3)", got-2)
		}
	})

	t.Run("trigger=linger", func(t *testing.T) {
		c := newCluster(t)
		const linger = 500 * time.Millisecond
		k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) { c.Linger = linger })
		warm(t, k)
		start := time.Now()
		var keys []string
		for i := range 12 {
			keys = append(keys, write(t, k, fmt.Sprintf("h%03d", i), 20))
		}
		waitUntil(t, func() bool { return k.counter(t, "batches")-1 >= partitionsOf(keys) }, "every record to be acknowledged")
		if took := time.Since(start); took < linger {
			t.Errorf("records acknowledged %s after the first write, before the %s linger", took, linger)
		}
		if got := k.counter(t, "records"); got != float64(1+len(keys)) {
			t.Errorf("%v records acknowledged, want %d", got-1, len(keys))
		}
		if got, want := k.counter(t, "batches")-1, partitionsOf(keys); got != want {
			t.Errorf("%d records in %v batches, want one batch per partition (%v)", len(keys), got, want)
		}
		if got := k.counter(t, "compressed"); got <= 0 || got >= k.counter(t, "bytes") {
			t.Errorf("compressed bytes %v for %v value bytes", got, k.counter(t, "bytes"))
		}
	})

	t.Run("trigger=close", func(t *testing.T) {
		c := newCluster(t)
		k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) { c.Linger = time.Hour })
		warm(t, k)
		var keys []string
		for i := range 5 {
			keys = append(keys, write(t, k, fmt.Sprintf("h%03d", i), 20))
		}
		if err := k.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := k.counter(t, "records"); got != float64(1+len(keys)) {
			t.Errorf("%v records acknowledged at Close, want %d", got-1, len(keys))
		}
		waitUntil(t, func() bool { return k.counter(t, "batches")-1 >= partitionsOf(keys) }, "the batches to be counted")
		if got, want := k.counter(t, "batches")-1, partitionsOf(keys); got != want {
			t.Errorf("%d records in %v batches, want one batch per partition (%v)", len(keys), got, want)
		}
	})
}

// recordBufferedHook sends the key of every record kgo takes (a copy: the
// record is the sink's once its promise ran).
type recordBufferedHook chan string

func (h recordBufferedHook) OnProduceRecordBuffered(r *kgo.Record) { h <- string(r.Key) }

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// With no broker at all, Write still returns at once, every time; the
// buffer stays bounded; Close gives up after its flush timeout and
// reports exactly what it could not deliver.
func TestKafkaWriteNeverBlocks(t *testing.T) {
	addr := closedPort(t)
	k := newSink(t, []string{addr}, func(c *KafkaConfig) {
		c.MaxRecordBytes = 16 << 10
		c.BufferBytes = 256 << 10
		c.FlushTimeout = 300 * time.Millisecond
	})
	const n = 3000
	total := 0
	var slowest time.Duration
	start := time.Now()
	for i := range n {
		s := testScrape("j", fmt.Sprintf("h%d", i%50), 20, float64(i), int64(i+1))
		total += len(s.Samples)
		t0 := time.Now()
		if err := k.Write(s); err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	if took := time.Since(start); took > 5*time.Second || slowest > 500*time.Millisecond {
		t.Fatalf("%d writes took %s, the slowest %s", n, took, slowest)
	}
	st := k.state()
	if st.used > 256<<10 {
		t.Fatalf("buffer holds %d bytes, over its bound", st.used)
	}
	droppedBefore := k.counter(t, "dropped")
	if droppedBefore == 0 {
		t.Fatal("a full buffer dropped nothing")
	}
	t0 := time.Now()
	err := k.Close(context.Background())
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("Close took %s with a 300ms flush timeout", took)
	}
	var ue *UndeliveredError
	if !errors.As(err, &ue) {
		t.Fatalf("Close: %v, want an *UndeliveredError", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v does not wrap the deadline", err)
	}
	if want := int64(len(st.queued) + st.inflightRecs); ue.Records != want {
		t.Errorf("undelivered records %d, want %d (queued + in flight at Close)", ue.Records, want)
	}
	if want := float64(total) - droppedBefore; float64(ue.Samples) != want {
		t.Errorf("undelivered samples %d, want %v", ue.Samples, want)
	}
	if got := k.counter(t, "dropped"); got != float64(total) {
		t.Errorf("dropped samples %v, want every sample written (%d)", got, total)
	}
	if got := k.counter(t, "records"); got != 0 {
		t.Errorf("records_total %v with no broker", got)
	}
	if !strings.Contains(k.log.String(), "undelivered") {
		t.Errorf("Close did not log the loss:\n%s", k.log)
	}
	if got := k.counter(t, "errors", ErrKindNetwork); got == 0 {
		t.Error("failed connections not counted in errors_total{kind=network}")
	}
	if !strings.Contains(k.log.String(), "kafka broker connection failed") || !strings.Contains(k.log.String(), "connection refused") {
		t.Errorf("failed connections not logged:\n%s", k.log)
	}
}

// A SASL listener refusing our password: every failed connection is
// counted in errors_total and logged (rate-limited); records wait, they are
// not failed. (kfake hangs up on a wrong password, kind network; Kafka
// answers SASL_AUTHENTICATION_FAILED, kind auth: the e2e tests check that.)
func TestKafkaSASLRefusedIsCounted(t *testing.T) {
	c := newCluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "shoal", "right"))
	k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) {
		c.SASL = plain.Auth{User: "shoal", Pass: "wrong"}.AsMechanism()
		c.FlushTimeout = 100 * time.Millisecond
	})
	if err := k.Write(testScrape("j", "i", 3, 0, 1)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		return k.counter(t, "errors", ErrKindAuth)+k.counter(t, "errors", ErrKindNetwork) > 0
	}, "errors_total to count the refused connections")
	if got := k.counter(t, "dropped"); got != 0 {
		t.Errorf("dropped %v while the record can still be delivered", got)
	}
	if !strings.Contains(k.log.String(), "kafka broker connection failed") {
		t.Errorf("log:\n%s", k.log)
	}
}

// Close delivers everything buffered when the broker is there.
func TestKafkaCloseFlushes(t *testing.T) {
	c := newCluster(t)
	k := newSink(t, c.ListenAddrs(), nil)
	const n = 200
	for i := range n {
		if err := k.Write(testScrape("j", fmt.Sprintf("h%d", i), 10, 0, int64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := k.counter(t, "records"); got != n {
		t.Errorf("records_total %v after Close, want %d", got, n)
	}
	if recs := consumeTopic(t, c.ListenAddrs(), testTopic, n, 10*time.Second); len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	if !strings.Contains(k.log.String(), "flushed and closed") {
		t.Errorf("log:\n%s", k.log)
	}
}

// Close gives up after its deadline when the broker refuses produces, and
// counts every record it could not deliver.
func TestKafkaCloseReportsUndelivered(t *testing.T) {
	c := newCluster(t)
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) { c.FlushTimeout = 500 * time.Millisecond })
	total := 0
	for i := range 10 {
		s := testScrape("j", fmt.Sprintf("h%d", i), i+1, 0, int64(i+1))
		total += len(s.Samples)
		if err := k.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	err := k.Close(context.Background())
	took := time.Since(t0)
	var ue *UndeliveredError
	if !errors.As(err, &ue) || ue.Records != 10 || ue.Samples != int64(total) {
		t.Fatalf("Close: %v, want 10 records (%d samples) undelivered", err, total)
	}
	if took < 400*time.Millisecond || took > 5*time.Second {
		t.Errorf("Close took %s with a 500ms flush timeout", took)
	}
	if got := k.counter(t, "errors", ErrKindShutdown); got != 10 {
		var kinds []string
		for _, kind := range errKinds {
			kinds = append(kinds, fmt.Sprintf("%s=%v", kind, k.counter(t, "errors", kind)))
		}
		t.Errorf("errors_total{kind=shutdown} %v, want 10 (%s)\n%s", got, kinds, k.log)
	}
	if got := k.counter(t, "dropped"); got != float64(total) {
		t.Errorf("dropped samples %v, want %d", got, total)
	}
	if err2 := k.Close(context.Background()); err2 != err {
		t.Errorf("second Close: %v, want the first's result", err2)
	}
}

// Records kgo fails for good are counted by kind: a missing topic.
func TestKafkaUnknownTopicIsCounted(t *testing.T) {
	c := newCluster(t)
	k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) {
		c.Topic = "no-such-topic"
		c.ClientOpts = append(c.ClientOpts, kgo.UnknownTopicRetries(0))
	})
	if err := k.Write(testScrape("j", "i", 3, 0, 1)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return k.counter(t, "errors", ErrKindUnknownTopic) == 1 }, "errors_total{kind=unknown_topic}")
	if got := k.counter(t, "dropped"); got != 3 {
		t.Errorf("dropped samples %v, want 3", got)
	}
	k.logDrops()
	if !strings.Contains(k.log.String(), "kafka failed records") || !strings.Contains(k.log.String(), "unknown_topic") {
		t.Errorf("log:\n%s", k.log)
	}
}

// With a topic template each job's records go to its own topic, named by
// the sanitized job name.
func TestKafkaTopicTemplate(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "metrics-node", "metrics-black_box"))
	k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) { c.TopicTemplate = "metrics-{{job}}" })
	if err := k.Write(testScrape("node", "a:1", 2, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := k.Write(testScrape("black/box", "b:1", 3, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for topic, key := range map[string]string{"metrics-node": "node/a:1", "metrics-black_box": "black/box/b:1"} {
		recs := consumeTopic(t, c.ListenAddrs(), topic, 1, 10*time.Second)
		if len(recs) != 1 || string(recs[0].Key) != key {
			t.Errorf("topic %s: %d records, want one with key %s", topic, len(recs), key)
		}
	}
}

func TestTopicTemplateParse(t *testing.T) {
	for _, tc := range []struct {
		tmpl, job, want, err string
	}{
		{tmpl: "metrics-{{job}}", job: "node", want: "metrics-node"},
		{tmpl: "{{job}}.metrics", job: "kube state/metrics", want: "kube_state_metrics.metrics"},
		{tmpl: "{{job}}-{{job}}", job: "a", want: "a-a"},
		{tmpl: "{{job}}", job: ".", want: "_"},
		{tmpl: "{{job}}", job: "..", want: "__"},
		{tmpl: "{{job}}", job: "", want: "_"},
		{tmpl: "x{{job}}", job: "ü", want: "x__"},
		{tmpl: "m-{{job}}", job: strings.Repeat("j", 300), want: "m-" + strings.Repeat("j", 247)},
		{tmpl: "metrics", err: "no {{job}} placeholder"},
		{tmpl: "metrics-{{instance}}", err: "no {{job}} placeholder"},
		{tmpl: "m-{{job}}-{{instance}}", err: "only the {{job}} placeholder"},
		{tmpl: "metrics/{{job}}", err: "character '/' not allowed"},
		{tmpl: "m {{job}}", err: "character ' ' not allowed"},
	} {
		tt, err := parseTopicTemplate(tc.tmpl)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.tmpl, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.tmpl, err)
			continue
		}
		got := tt.expand(tc.job)
		if got != tc.want {
			t.Errorf("%q with job %q: %q, want %q", tc.tmpl, tc.job, got, tc.want)
		}
		if err := ValidateTopic(got); err != nil {
			t.Errorf("%q with job %q gives an invalid topic: %v", tc.tmpl, tc.job, err)
		}
	}
}

func TestValidateTopic(t *testing.T) {
	for _, ok := range []string{"shoal-metrics", "a", "A.b_c-9", strings.Repeat("x", 249)} {
		if err := ValidateTopic(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "ü", strings.Repeat("x", 250)} {
		if err := ValidateTopic(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestKafkaConfigValidate(t *testing.T) {
	good := DefaultKafkaConfig()
	good.Brokers = []string{"127.0.0.1:9092", "kafka-1.example:9093"}
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults with brokers: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*KafkaConfig)
		err  string
	}{
		{"no brokers", func(c *KafkaConfig) { c.Brokers = nil }, "no brokers"},
		{"broker without port", func(c *KafkaConfig) { c.Brokers = []string{"kafka"} }, `broker "kafka"`},
		{"broker bad port", func(c *KafkaConfig) { c.Brokers = []string{"kafka:x"} }, "bad port"},
		{"bad topic", func(c *KafkaConfig) { c.Topic = "a/b" }, "not allowed"},
		{"bad template", func(c *KafkaConfig) { c.TopicTemplate = "x" }, "placeholder"},
		{"bad format", func(c *KafkaConfig) { c.Format = 9 }, "invalid record format"},
		{"bad compression", func(c *KafkaConfig) { c.Compression = 9 }, "invalid compression Compression(9)"},
		{"tiny records", func(c *KafkaConfig) { c.MaxRecordBytes = 10 }, "max record bytes"},
		{"small buffer", func(c *KafkaConfig) { c.BufferBytes = 1 << 20 }, "at least 4 × max record bytes"},
		{"negative flush", func(c *KafkaConfig) { c.FlushTimeout = -1 }, "negative flush timeout"},
	} {
		c := good
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.err)
		}
	}
	// A template replaces the topic: an invalid topic then does not matter.
	c := good
	c.Topic, c.TopicTemplate = "", "m-{{job}}"
	if err := c.Validate(); err != nil {
		t.Errorf("template without topic: %v", err)
	}
}

func TestErrorKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", kerr.UnknownTopicOrPartition), ErrKindUnknownTopic},
		{kerr.UnknownTopicID, ErrKindUnknownTopic},
		{kerr.TopicAuthorizationFailed, ErrKindAuth},
		{kerr.SaslAuthenticationFailed, ErrKindAuth},
		{&kgo.ErrFirstReadEOF{}, ErrKindAuth},
		{kerr.MessageTooLarge, ErrKindTooLarge},
		{kerr.RecordListTooLarge, ErrKindTooLarge},
		{ErrSampleTooLarge, ErrKindTooLarge},
		{context.DeadlineExceeded, ErrKindTimeout},
		{kgo.ErrRecordTimeout, ErrKindTimeout},
		{kerr.RequestTimedOut, ErrKindTimeout},
		{os.ErrDeadlineExceeded, ErrKindTimeout},
		{kgo.ErrClientClosed, ErrKindShutdown},
		{kgo.ErrAborting, ErrKindShutdown},
		{context.Canceled, ErrKindShutdown},
		{ErrClosed, ErrKindShutdown},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, ErrKindNetwork},
		{fmt.Errorf("read: %w", io.EOF), ErrKindNetwork},
		{&net.DNSError{Err: "no such host", Name: "kafka"}, ErrKindNetwork},
		{&net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, ErrKindTimeout},
		{kerr.CorruptMessage, ErrKindOther},
		{errors.New("boom"), ErrKindOther},
	} {
		if got := ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestUndeliveredError(t *testing.T) {
	err := error(&UndeliveredError{Records: 3, Samples: 40, Err: context.DeadlineExceeded})
	if got := err.Error(); got != "kafka sink: close: 3 records (40 samples) not delivered: context deadline exceeded" {
		t.Errorf("message %q", got)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("does not unwrap")
	}
}

// The record path allocates nothing in steady state: encode into pooled
// scratch, copy into a pooled record, enqueue.
func TestKafkaWriteSteadyStateDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	c := newCluster(t)
	// Keep the broker from acking, so the pump and kgo sit idle and only
	// Write runs; a small buffer keeps drop-oldest in the loop too.
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	k := newSink(t, c.ListenAddrs(), func(c *KafkaConfig) { c.BufferBytes = 8 << 20; c.FlushTimeout = 100 * time.Millisecond })
	s := testScrape("j", "i", 200, 0, 1)
	for range 2000 {
		k.Write(s)
	}
	waitUntil(t, func() bool { return !k.state().canHand }, "the pump to stop")
	allocs := testing.AllocsPerRun(200, func() { k.Write(s) })
	if allocs > 0 {
		t.Fatalf("%.2f allocations per Write of a 200-sample scrape", allocs)
	}
}

// The buffer size classes: a record is charged at most twice its size.
func TestSizeClasses(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 513, 1000, 1 << 20, 1<<20 + 1} {
		c := classUp(n)
		if 1<<c < n || (n > 1<<minClass && 1<<(c-1) >= n) {
			t.Errorf("classUp(%d) = %d", n, c)
		}
		if d := classDown(1 << c); d != c {
			t.Errorf("classDown(1<<%d) = %d", c, d)
		}
		if d := classDown(1<<c + 1); d != c {
			t.Errorf("classDown(1<<%d+1) = %d", c, d)
		}
	}
}

// BenchmarkKafkaSink measures the sink on one core (-cpu=1), writing the
// scrapes of 128 node_exporter targets round robin (fleetScrapes: values
// that differ per host and change from scrape to scrape), so that
// consecutive records are different targets, as in production:
//
//   - broker=stalled: the broker refuses every produce, so the pump and the
//     client sit idle and only the scrape worker's cost is measured (in
//     steady state each Write also drops the oldest queued record).
//
//   - broker=kfake: records flow to an in-process broker that discards
//     them; Write waits whenever the buffer is half full, and the clock
//     stops only once Close has delivered everything, so ns/sample is the
//     whole pipeline's CPU on one core: encode, enqueue, the pump, kgo's
//     batching, zstd, the produce requests, and kfake's side of them. A
//     partition's records move as soon as they fill a batch, so batches
//     are full, as under load or with a long enough linger.
//     zB/sample is the compressed batch bytes per sample, records/batch
//     what zstd saw together.
//
// ns/sample is wall time; cpu-ns/sample is the process's CPU time (user +
// system, every goroutine, GC included), which other load on a shared
// machine inflates less.
//
//	go test -run '^$' -bench 'BenchmarkKafkaSink' -benchmem -count=10 -cpu=1 ./produce/ | tee sink.txt
//	benchstat -col /broker -row /format sink.txt
func BenchmarkKafkaSink(b *testing.B) {
	fleet := fleetScrapes(b, 128)
	perScrape := len(fleet[0][0].Samples)
	for _, f := range sinkFormats() {
		for _, broker := range []string{"stalled", "kfake"} {
			b.Run("format="+f.String()+"/broker="+broker, func(b *testing.B) {
				c := newCluster(b, kfake.BlackholeProduce())
				if broker == "stalled" {
					c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
				}
				k := newSink(b, c.ListenAddrs(), func(c *KafkaConfig) {
					c.Format = f
					c.BufferBytes = 64 << 20
					c.Linger = DefaultKafkaLinger
					c.ClientOpts = nil // kgo's backoff: a stalled client retries rarely
				})
				next := 0
				write := func() {
					t := next % len(fleet)
					if err := k.Write(fleet[t][(next/len(fleet))%len(fleet[t])]); err != nil {
						b.Fatal(err)
					}
					next++
				}
				for range len(fleet) { // every target's caches warm
					write()
				}
				b.ReportAllocs()
				start, cpu0 := time.Now(), processCPU(b)
				n := 0
				for b.Loop() {
					if broker == "kfake" {
						for k.counter(b, "buffer") > float64(k.cfg.BufferBytes/2) {
							time.Sleep(100 * time.Microsecond)
						}
					}
					write()
					n++
				}
				if broker == "kfake" {
					if err := k.Close(context.Background()); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(k.counter(b, "compressed")/k.counter(b, "samples"), "zB/sample")
					b.ReportMetric(k.counter(b, "records")/k.counter(b, "batches"), "records/batch")
				}
				b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n*perScrape), "ns/sample")
				b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(n*perScrape), "cpu-ns/sample")
				b.ReportMetric(float64(perScrape), "samples/op")
			})
		}
	}
}

// processCPU returns the CPU time (user + system) the process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// README.md's worked example ("Record format") is what the sink writes: if
// this fails, update the README with the encoder.
func TestRecordFormatReadmeExample(t *testing.T) {
	const ts = 1763900000000
	s := &Scrape{Key: "node/10.0.0.1:9100", Job: "node", Instance: "10.0.0.1:9100", T: ts, Samples: []Sample{
		{series("__name__", "node_load1", "instance", "10.0.0.1:9100", "job", "node"), ts, 0.42},
		{series("__name__", "node_filesystem_free_bytes", "device", "/dev/sdb1", "instance", "10.0.0.1:9100", "job", "node"), ts, StaleNaN},
		{series("__name__", "up", "instance", "10.0.0.1:9100", "job", "node"), ts, 1},
	}}
	if p := javakafka.Partition([]byte(s.Key), 6); p != 1 {
		t.Errorf("partition %d of 6, README says 1", p)
	}
	rw1 := NewEncoder(RW1).Append(nil, s)
	rw2 := NewEncoder(RW2).Append(nil, s)
	if len(rw1) != 281 || len(rw2) != 197 {
		t.Errorf("rw1 %d bytes, rw2 %d; README says 281 and 197", len(rw1), len(rw2))
	}
	first := []byte{0x2a, 0x1a, 0x0a, 0x06, 1, 2, 3, 4, 5, 6, 0x12, 0x10, 0x09, 0xe1, 0x7a, 0x14, 0xae, 0x47, 0xe1, 0xda, 0x3f, 0x10, 0x80, 0x8e, 0x88, 0x85, 0xab, 0x33}
	stale := []byte{0x09, 0x02, 0, 0, 0, 0, 0, 0xf0, 0x7f}
	if !bytes.HasPrefix(rw2, []byte{0x22, 0x00, 0x22, 0x08}) || !bytes.Contains(rw2, first) || !bytes.Contains(rw2, stale) {
		t.Errorf("rw2 bytes differ from the README's:\n% x", rw2)
	}
	var syms []string
	if _, err := DecodeRecordValue(RW2.ContentType(), rw2, func(labels.Labels, int64, float64) {}); err != nil {
		t.Fatal(err)
	}
	var r writev2.Request
	if err := r.Unmarshal(rw2); err != nil {
		t.Fatal(err)
	}
	syms = r.Symbols
	want := []string{"", "__name__", "node_load1", "instance", "10.0.0.1:9100", "job", "node", "node_filesystem_free_bytes", "device", "/dev/sdb1", "up"}
	if !slices.Equal(syms, want) {
		t.Errorf("symbols %q, README says %q", syms, want)
	}
	for i, refs := range [][]uint32{{1, 2, 3, 4, 5, 6}, {1, 7, 8, 9, 3, 4, 5, 6}, {1, 10, 3, 4, 5, 6}} {
		if !slices.Equal(r.Timeseries[i].LabelsRefs, refs) {
			t.Errorf("series %d refs %v, README says %v", i, r.Timeseries[i].LabelsRefs, refs)
		}
	}
}
