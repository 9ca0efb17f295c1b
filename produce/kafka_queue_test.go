package produce

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shoal-scraper/shoal/internal/javakafka"
)

// These tests drive the queue (kafka_queue.go) without a pump or a client:
// the test decides when runs are taken and when kgo partitions or
// acknowledges, so every step is deterministic.

// qsink is a sink with a queue but no client and no goroutines, and the
// records it handed over and kgo has not acknowledged.
type qsink struct {
	*Kafka
	handed []*entry
}

func queueSink(buffer int64, linger time.Duration) *qsink {
	k := &Kafka{
		cfg:  KafkaConfig{BufferBytes: buffer, Linger: linger},
		m:    newKafkaMetrics(nil, buffer),
		wake: make(chan struct{}, 1),
	}
	k.initQueue(1_000_012)
	return &qsink{Kafka: k}
}

// qrec is a record of topic for key with a value of n bytes, written at enq.
func qrec(topic, key string, n int, enq time.Time) *entry {
	e := &entry{buf: make([]byte, n), samples: 1, enq: enq}
	e.rec = kgo.Record{Topic: topic, Key: []byte(key), Value: e.buf}
	e.size = int64(cap(e.buf)) + entryOverhead
	return e
}

// write enqueues e as Write does.
func (k *qsink) write(t *testing.T, e *entry) {
	t.Helper()
	if err := k.enqueue([]*entry{e}); err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if used := k.queued + k.inflight; used > k.cfg.BufferBytes {
		t.Fatalf("%d bytes queued and in flight, over the %d bound", used, k.cfg.BufferBytes)
	}
}

// take does what the pump does between two waits, and returns the keys of
// the records it would hand to kgo (nil: nothing may move now).
func (k *qsink) take() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.regroupDue.Swap(false) {
		k.regroup()
	}
	var keys []string
	for {
		pq := k.nextRun()
		if pq == nil {
			return keys
		}
		var hand [64]*entry
		n := k.handOver(pq, hand[:])
		for _, e := range hand[:n] {
			keys = append(keys, string(e.rec.Key))
			k.handed = append(k.handed, e)
		}
		if k.run == nil {
			return keys // one run at a time
		}
	}
}

// ack runs the promises of every record take handed over, with err.
func (k *qsink) ack(err error) {
	for _, e := range k.handed {
		k.finish(e, err)
	}
	k.handed = nil
}

// partitionKeys are keys of test topic records, n for each of parts
// partitions: keys[p] land in partition p.
func partitionKeys(parts, n int) [][]string {
	keys := make([][]string, parts)
	for i := 0; ; i++ {
		key := "j/h" + strconv.Itoa(i)
		p := javakafka.Partition([]byte(key), int32(parts))
		if len(keys[p]) < n {
			keys[p] = append(keys[p], key)
		}
		done := true
		for _, ks := range keys {
			done = done && len(ks) == n
		}
		if done {
			return keys
		}
	}
}

// partition has kgo's partitioner partition a record of topic over n
// partitions, as kgo does when it takes a record, and returns the choice.
func (k *Kafka) partition(topic, key string, n int) int {
	return partitioner{k}.ForTopic(topic).Partition(&kgo.Record{Topic: topic, Key: []byte(key)}, n)
}

func (k *Kafka) queuedKeys() (all []string, byPart map[int][]string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	byPart = map[int][]string{}
	for e := k.oldest; e != nil; e = e.newer {
		all = append(all, string(e.rec.Key))
	}
	for _, tq := range k.topicList {
		for _, pq := range append(slices.Clone(tq.parts), &tq.unknown) {
			if pq == nil {
				continue
			}
			for e := pq.head; e != nil; e = e.next {
				byPart[pq.part] = append(byPart[pq.part], string(e.rec.Key))
			}
		}
	}
	return all, byPart
}

// A partition's records move as soon as they fill a batch, without waiting
// for the linger, and exactly a batch of them: the oldest that fit. Other
// partitions' records wait.
func TestKafkaQueueBatchRun(t *testing.T) {
	k := queueSink(256<<20, time.Hour)
	keys := partitionKeys(3, 40)
	k.partition("t", keys[0][0], 3) // kgo has loaded the topic
	k.take()
	now := time.Now()
	const value = 60 << 10
	k.write(t, qrec("t", keys[1][0], value, now))
	k.write(t, qrec("t", keys[2][0], value, now))
	var sum int64
	var written []string
	for i := 0; ; i++ {
		e := qrec("t", keys[0][i], value, now)
		wire := batchSize(&e.rec)
		k.write(t, e)
		written = append(written, keys[0][i])
		if sum+wire > k.batchBytes {
			break
		}
		sum += wire
		if got := k.take(); got != nil {
			t.Fatalf("%v moved with %d of %d batch bytes queued in their partition", got, sum, k.batchBytes)
		}
	}
	full := written[:len(written)-1]
	if got := k.take(); !slices.Equal(got, full) {
		t.Fatalf("handed over %v, want the %d records that fill a batch %v", got, len(full), full)
	}
	if got := k.take(); got != nil {
		t.Fatalf("then %v moved too", got)
	}
	all, _ := k.queuedKeys()
	if want := []string{keys[1][0], keys[2][0], written[len(written)-1]}; !slices.Equal(all, want) {
		t.Errorf("queued %v, want %v", all, want)
	}
	// The batch that fills is what kgo takes as one: the records'
	// sizes as kgo counts them stay under ProducerBatchMaxBytes.
	if sum+61 > 1_000_012 {
		t.Errorf("a run of %d batch bytes does not fit kgo's batch", sum)
	}
}

// With a known partition count records are grouped by kgo's choice; before
// it, one record goes ahead alone (the probe) and the rest wait; once kgo
// has partitioned it they are grouped in the order written, and again when
// the count changes.
func TestKafkaQueueProbeAndRegroup(t *testing.T) {
	k := queueSink(256<<20, time.Hour)
	now := time.Now()
	var written []string
	for i := range 30 {
		key := "j/h" + strconv.Itoa(i%10) // three records per target
		k.write(t, qrec("t", key, 100, now.Add(time.Duration(i))))
		written = append(written, key)
	}
	if got := k.take(); !slices.Equal(got, written[:1]) {
		t.Fatalf("handed over %v, want the oldest record alone", got)
	}
	if got := k.take(); got != nil {
		t.Fatalf("%v moved while the probe is in kgo", got)
	}
	// The probe failed before kgo saw the topic: another goes.
	k.ack(errors.New("unknown topic"))
	if got := k.take(); !slices.Equal(got, written[1:2]) {
		t.Fatalf("after a failed probe handed over %v, want %v", got, written[1:2])
	}
	for _, parts := range []int{3, 7} {
		k.partition("t", "x", parts)
		k.take()
		all, byPart := k.queuedKeys()
		if !slices.Equal(all, written[2:]) {
			t.Fatalf("queue %v, want %v", all, written[2:])
		}
		want := map[int][]string{}
		for _, key := range written[2:] {
			p := int(javakafka.Partition([]byte(key), int32(parts)))
			want[p] = append(want[p], key)
		}
		if fmt.Sprint(byPart) != fmt.Sprint(want) {
			t.Errorf("over %d partitions grouped as %v, want %v", parts, byPart, want)
		}
	}
	if got := k.take(); got != nil {
		t.Fatalf("%v moved with no batch full and no linger up", got)
	}
}

// A full buffer drops the oldest queued records of the whole sink, whatever
// their partition, even those of a run under way, and keeps the bound.
func TestKafkaQueueDropOldestSpansPartitions(t *testing.T) {
	const buffer = 64 << 10
	const charged = 2048 // each record's buffer and bookkeeping
	k := queueSink(buffer, time.Hour)
	keys := partitionKeys(3, 60)
	k.partition("t", keys[0][0], 3)
	k.take()
	now := time.Now()
	var written []string
	write := func(n int) {
		for range n {
			i := len(written)
			key := keys[i%3][i/3]
			k.write(t, qrec("t", key, charged-entryOverhead, now))
			written = append(written, key)
		}
	}
	check := func(inflight int) {
		t.Helper()
		all, byPart := k.queuedKeys()
		var kept []string // written and not handed over
		for _, key := range written {
			if !slices.ContainsFunc(k.handed, func(e *entry) bool { return string(e.rec.Key) == key }) {
				kept = append(kept, key)
			}
		}
		n := buffer/charged - inflight
		if len(all) != n || !slices.Equal(all, kept[len(kept)-n:]) {
			t.Fatalf("queue %v, want the newest %d records written and not handed over %v", all, n, kept)
		}
		for p := range 3 {
			if len(byPart[p]) == 0 {
				t.Errorf("partition %d lost all its records: drops must take the oldest of the whole sink", p)
			}
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.run != nil && (k.run.run <= 0 || k.run.run > k.run.n) {
			t.Errorf("a run of %d records left on a partition queue of %d", k.run.run, k.run.n)
		}
	}
	write(60)
	check(0)
	if got, want := testutil.ToFloat64(k.m.dropped), float64(60-buffer/charged); got != want {
		t.Errorf("dropped %v samples, want %v", got, want)
	}
	// An eighth of the buffer is queued, and more: the partition of the
	// oldest record moves, oldest first, as far as kgo's quarter allows.
	all, byPart := k.queuedKeys()
	got := k.take()
	if want := byPart[int(javakafka.Partition([]byte(all[0]), 3))][:buffer/4/charged]; !slices.Equal(got, want) {
		t.Fatalf("handed over %v, want the oldest record's partition, a quarter of the buffer %v", got, want)
	}
	// The run waits for kgo; the queue keeps dropping its oldest, the
	// run's records among them.
	for range 3 * buffer / charged {
		write(1)
		check(len(k.handed))
		if got := k.take(); got != nil {
			t.Fatalf("%v handed over with kgo's quarter full", got)
		}
	}
	k.ack(nil)
	if got := k.take(); len(got) == 0 {
		t.Fatal("nothing moves once kgo has room")
	}
}

// Released record buffers of the big classes, and encoder states, survive
// collections: a huge target uses its buffers once an interval, and a
// sync.Pool empties within two collections.
func TestKafkaBigEntriesSurviveCollections(t *testing.T) {
	k := queueSink(64<<20, time.Second)
	k.maxClass = classUp(8 << 20)
	k.cfg.Format = RW2
	big := k.getEntry(1 << 20)
	small := k.getEntry(25_000)
	k.release(big)
	k.release(small)
	st := k.getEnc()
	k.putEnc(st)
	runtime.GC()
	runtime.GC()
	runtime.GC()
	if got := k.getEntry(1 << 20); got != big {
		t.Errorf("after three collections a 1 MiB record got a new buffer of %d bytes, not the one released", cap(got.buf))
	}
	if got := k.getEnc(); got != st {
		t.Error("after three collections Write got a new encoder state")
	}
	// No more than keptMaxBytes of buffers are kept.
	var es []*entry
	for range keptMaxBytes/(1<<20) + 4 {
		es = append(es, k.getEntry(1<<20))
	}
	for _, e := range es {
		k.release(e)
	}
	if k.keptBytes > keptMaxBytes || k.keptBytes < keptMaxBytes-(2<<20) {
		t.Errorf("%d bytes of buffers kept, want at most %d and close to it", k.keptBytes, keptMaxBytes)
	}
	if n := len(k.kept[classUp(25_000)]); n != 0 {
		t.Errorf("%d small buffers kept, want 0: sync.Pool's", n)
	}
}
