package produce

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka is the sink that publishes every scrape to Kafka as one record (or
// a few, see splitting) holding a remote-write message. The record format
// is specified for consumers in README.md, "Record format".
//
// # Design
//
// Write runs on the engine's scrape workers and must never wait for
// Kafka. It encodes the scrape with a pooled Encoder into a pooled buffer
// and appends the record to the queue in memory; that is all. The queue is
// one FIFO for the whole sink and, threaded through the same records, one
// FIFO per partition (kafka_queue.go).
//
// One goroutine, the pump, takes records from the heads of partition
// queues and hands them to the franz-go client (kgo) in runs, a batch at a
// time (rule 3); kgo batches them per partition, compresses the batches
// with zstd, sends them with acks=all and idempotence, and retries without
// limit. kgo calls a promise per record
// once it is acknowledged or failed for good; the promise releases the
// record's bytes and returns its buffer to the pool.
//
// The byte bound: every record is charged its buffer's capacity plus a
// fixed bookkeeping overhead, from enqueue until its promise runs, so
//
//	queued + inflight <= KafkaConfig.BufferBytes
//
// where queued is what the queue holds (all partitions) and inflight what
// kgo holds. Two rules keep it, and a third decides when records move:
//
//  1. The pump hands a record over only while inflight stays within a
//     quarter of the budget (or kgo holds nothing: a record can always
//     move). kgo can be given records but never asked to drop one, so
//     this share is what a broker outage can pin; it is also far more
//     than a healthy broker needs in flight (a quarter of 256 MiB is
//     64 MiB).
//  2. Write makes room by dropping the oldest records still queued in
//     the whole sink, whatever their partition (never those kgo holds),
//     counting every sample; a scrape that cannot fit even in an empty
//     queue is dropped itself.
//  3. Records gather in the queue of the partition kgo will put them in
//     (its own partitioner, over the topic's partition count as kgo last
//     used it) and move in runs, one partition's records at a time:
//     a. as soon as a partition's queue holds more than a batch
//     (ProducerBatchMaxBytes, about 1 MB), its oldest records that fill
//     one;
//     b. when the oldest record of the whole queue has waited
//     KafkaConfig.Linger, when the queue holds an eighth of the budget,
//     or once Close has begun, every record of that oldest record's
//     partition.
//     A run takes microseconds, so kgo (lingering 10 ms) puts it in one
//     batch: full batches for busy partitions, and for quiet ones every
//     scrape of the partition's targets within the linger. zstd sees the
//     whole batch (kafka_zstd.go) and stores what its scrapes share once.
//     Holding more than a batch per partition would buy no compression
//     (kgo cuts batches there, and the zstd window is one batch), only
//     memory: at 1,000 node_exporter targets × 5 s on 6 partitions the
//     queue holds 2-5 MB where a sink-wide burst per linger held up to
//     29 MB.
//
// So during an outage about the oldest quarter waits in kgo (runs take a
// partition's records together, so kgo may hold a few records newer than
// another partition's oldest queued), is retried, and is delivered first
// when the broker is back, followed by the newest three quarters, and what
// was dropped in between is counted. kgo's own limits (MaxBufferedRecords,
// set from the same numbers) are never the binding ones, so the pump does
// not block in Produce either.
//
// Partition counts: the sink's kgo partitioner wraps kgo's and records the
// count kgo partitions each topic over. Until kgo has partitioned a record
// of a topic (at start, or a new topic of TopicTemplate), the topic's
// records wait in one queue of their own, apart from one that goes ahead
// alone to make kgo load the topic; when the count is known, or changes,
// the pump groups the topic's queued records again, oldest first. A guess
// made before the pump has seen a change costs a batch's fullness, never
// order or delivery: kgo's partitioner still decides.
//
// The serialization point is mu: Write (push and drop), the pump (pop) and
// promises (release) each hold it for a few field updates and never do
// anything that blocks under it, so a promise never waits on a scrape
// worker (STYLE 15) and a worker waits at most for another's push. kgo's
// partitioner takes mu only when kgo first meets a topic (ForTopic); per
// record it touches an atomic.
//
// Order: one target's records are written by one worker at a time (the
// engine never overlaps scrapes of a target), pushed in order into one
// partition queue (they share a key), handed to kgo in order, and kgo
// keeps per-partition order (idempotent producer); drops remove the
// oldest, so a consumer sees gaps but never reordering.
//
// Buffers: record buffers come from pools by power-of-two size class
// (STYLE 12), so a record is charged at most twice its size. A message is
// encoded into the worker's spare buffer, which becomes the record when the
// message fills more than half of it (see record); only the spares of
// pooled encoder states, one per concurrent Write (each up to
// 4 × MaxRecordBytes), and the released big buffers kept for reuse
// (Kafka.kept, 16 MiB at most) live outside the bound.
//
// Goroutines: NewKafka starts the pump and a reporter that logs drops at a
// bounded rate; kgo runs its own. Close stops all of them, in the order
// written out in close, and returns only once they have exited.
//
// # Tried and dropped
//
// Encoding into one growing scratch buffer per encoder and copying each
// message into a right-sized record buffer: simple, but the copy (into
// memory not in cache) was a quarter of Write's time for a node_exporter
// scrape in rw2.
//
// Lingering in kgo (ProducerLinger) instead of in the queue: while kgo
// holds its share of a small buffer, new records wait out the linger in
// kgo, so throughput is capped at a quarter of the buffer per linger, and
// records kgo holds cannot be dropped for newer ones. In the queue they
// can, and the size trigger of rule 3 turns a small buffer into smaller
// batches instead of a cap.
//
// One FIFO for the whole sink, handed over in bursts of everything queued
// when the oldest had waited the linger (or an eighth of the budget was
// queued): a burst of 5 s at 1,000 targets × 5 s became about four full
// batches and one partial batch per partition, and the queue held up to
// 29 MB to get them. A sink-wide byte trigger instead (a burst at 8 MiB
// queued) cut the memory but left a partial, badly compressed batch per
// partition in every burst: +10% bytes per sample (at 16 MiB the bytes
// held and the memory saved was less). Per-partition queues give full
// batches at a batch's memory per partition.
//
// Handing records straight to kgo from Write with TryProduce and kgo's
// MaxBufferedBytes as the bound: when the buffer is full TryProduce fails
// the newest record, not the oldest, and kgo offers no way to evict the
// oldest records it holds. A blocking Produce would stall scrape workers,
// which the engine must never see.
type Kafka struct {
	cfg         KafkaConfig
	log         *slog.Logger
	cl          *kgo.Client
	m           *kafkaMetrics
	topics      *topics
	contentType []byte // header values shared by every record; kgo does not modify them
	member      []byte
	fixedHdr    int   // header bytes common to every record: keys, content type, member
	inflightCap int64 // rule 1 above
	earlyBytes  int64 // rule 3 above: queued bytes that start a run before the linger is up
	batchBytes  int64 // rule 3 above: a full batch, as batchSize counts records
	maxClass    int   // largest buffer class kept in the pools

	// pools hold *entry by the size class of cap(entry.buf): pools[c]
	// has buffers with capacity in [2^c, 2^(c+1)).
	pools [maxClass + 1]sync.Pool
	encs  sync.Pool // *encState

	// kept holds released entries of the big classes (keptMinClass and
	// up) and encoder states out of the collector's reach, up to
	// keptMaxBytes of buffers and keptMaxEncs states; sync.Pool takes the
	// rest.
	// Why: a sync.Pool empties within two collections, and a huge target
	// (a kube-state-metrics, a few 1 MiB records a scrape) used its
	// buffers once an interval: every collection made its next scrape
	// allocate its records, its spare and a fresh encoder again, which
	// brought on the next collection (1.2 MB/s allocated, 7 collections a
	// minute at 1000 targets + 1 with GOGC 5).
	keptMu    sync.Mutex
	kept      [maxClass + 1][]*entry
	keptBytes int
	keptEncs  []*encState

	produceCtx    context.Context // records are handed to kgo with it; canceled when Close gives up
	cancelProduce context.CancelFunc
	wake          chan struct{} // cap 1: the queue grew, inflight shrank, a partition count changed, or Close began
	regroupDue    atomic.Bool   // a topic's partition count changed: the pump groups its records again
	resolved      chan struct{} // cap 1: inflight reached zero while closing
	abort         chan struct{} // closed when Close gives up: the pump leaves the queue
	pumpDone      chan struct{}
	stopReport    chan struct{}
	wg            sync.WaitGroup // the pump and the drop reporter
	closed        atomic.Bool    // Write's fast check; closing below is the authority
	connFailures  atomic.Int64   // failed broker connections since the last log line about them
	connLogged    atomic.Int64   // unix ns of that line
	gaveUp        atomic.Bool    // Close ran out of time: later failures are shutdown losses
	closeOnce     sync.Once
	closeErr      error

	// mu guards the queue and its accounting. Nothing blocks under it.
	// The queue's structure is in kafka_queue.go.
	mu                   sync.Mutex
	oldest, newest       *entry // every queued record, in the order of enqueue
	nqueued              int
	queued               int64 // bytes charged to queued records
	inflight             int64 // bytes charged to records handed to kgo, promise not yet run
	inflightRecs         int
	byTopic              map[string]*topicQueue
	keyPart              kgo.TopicPartitioner // kgo's partitioner for keyed records, to group them as kgo will
	topicList            []*topicQueue
	run                  *partQueue // the partition queue being handed over (rule 3)
	readyHead, readyTail *partQueue // partition queues that may start a run before their linger
	closing              bool
	aborted              bool
	drops                dropCounts // since the last drop log line
	lostRecs             int64      // records (and samples) that will never be delivered, since start
	lostSamples          int64
}

// entryOverhead is charged to every record on top of its buffer: the entry
// with its kgo.Record and headers, and kgo's bookkeeping per record.
const entryOverhead = 512

// kgoLinger is kgo's linger: long enough that a run from the pump (a few
// microseconds per record) lands in one batch, short enough to add
// nothing noticeable to KafkaConfig.Linger.
const kgoLinger = 10 * time.Millisecond

// Size classes of record buffers: 512 B up to 1 GiB.
const (
	minClass = 9
	maxClass = 30
)

// entry is one record, from Write until its promise. Its buffer holds the
// value, then the key, job and instance, which the record and its headers
// slice; kgo reads them until the promise and never writes them.
type entry struct {
	rec     kgo.Record
	hdrs    [4]kgo.RecordHeader
	buf     []byte // cap(buf) is what the record is charged
	samples int
	size    int64 // cap(buf) + entryOverhead
	wire    int64 // batchSize(&rec)
	enq     time.Time
	promise func(*kgo.Record, error) // calls Kafka.finish with this entry; made once per entry

	// From enqueue on (kafka_queue.go), guarded by Kafka.mu: its topic,
	// and while queued its partition queue and its places in the lists.
	tq           *topicQueue
	pq           *partQueue
	older, newer *entry // the sink-wide list
	next         *entry // its partition queue
}

// encState is one worker's encoding state, pooled: the Encoder, the
// entry whose buffer the next message is encoded into, and the records of
// the scrape being written.
type encState struct {
	enc   *Encoder
	spare *entry
	parts []*entry
}

// NewKafka returns a Kafka sink for cfg (zero fields take
// DefaultKafkaConfig's values) and starts its goroutines; Close stops them.
// Metrics are registered with reg (nil: not registered). The client
// connects lazily: unreachable brokers are not an error here, records wait
// in the buffer.
func NewKafka(cfg KafkaConfig, reg prometheus.Registerer, logger *slog.Logger) (*Kafka, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tp, err := newTopics(&cfg)
	if err != nil {
		return nil, err
	}
	k := &Kafka{
		cfg:         cfg,
		log:         logger,
		topics:      tp,
		contentType: []byte(cfg.Format.ContentType()),
		member:      []byte(cfg.MemberID),
		maxClass:    classUp(cfg.MaxRecordBytes),
		wake:        make(chan struct{}, 1),
		resolved:    make(chan struct{}, 1),
		abort:       make(chan struct{}),
		pumpDone:    make(chan struct{}),
		stopReport:  make(chan struct{}),
	}
	k.fixedHdr = len(hdrContentType) + len(hdrJob) + len(hdrInstance) + len(hdrMember) + len(k.contentType) + len(k.member)
	k.m = newKafkaMetrics(reg, cfg.BufferBytes) // before the client: its hooks count errors

	// kgo's batch limit must take the largest record with its framing; it
	// stays under the broker's default message.max.bytes (1,048,588) for
	// the default MaxRecordBytes.
	batchMax := int32(max(1_000_012, cfg.MaxRecordBytes+1024))
	k.initQueue(batchMax)
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.WithLogger(kgoLogger{logger}),
		// Durability: the leader answers once every in-sync replica has
		// the batch. Idempotent writes are kgo's default and stay on:
		// client retries then neither duplicate nor reorder records, with
		// up to 5 requests in flight per broker.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Keyed records go to toPositive(murmur2(key)) % partitions, the
		// Java client's choice for keyed records (its DefaultPartitioner
		// and, since 3.3, BuiltInPartitioner.partitionForKey): with a nil
		// hasher StickyKeyPartitioner uses KafkaHasher(murmur2), which
		// masks the high bit (Utils.toPositive) and takes the modulo
		// (franz-go pkg/kgo/partitioner.go). TestKafkaPartitionerIsJavas
		// checks it against an independent port and Kafka's vectors.
		// partitioner is that partitioner, and tells the sink each topic's
		// partition count, by which it groups queued records (rule 3).
		kgo.RecordPartitioner(partitioner{k}),
		kgo.ProducerBatchMaxBytes(batchMax),
		// The pump gathers each partition's records and hands them over
		// a batch at a time (rule 3); kgo's own linger only has to keep
		// a run together in one batch.
		kgo.ProducerLinger(kgoLinger),
		// The broker-side timeout of a produce request (kgo's default);
		// a timed-out request is retried, not failed.
		kgo.ProduceRequestTimeout(10 * time.Second),
		// Retries: kgo's defaults, unlimited (no RecordRetries, no
		// RecordDeliveryTimeout) with backoff 250 ms doubling to 5 s,
		// jittered, so records kgo holds survive any outage; the sink's
		// own buffer is what gives way.
		//
		// Never the binding limit (see the design note): every record
		// in flight is charged at least entryOverhead bytes.
		kgo.MaxBufferedRecords(int(k.inflightCap/entryOverhead) + 1024),
		// Failed broker connections (dial, TLS, SASL) are counted and
		// logged: records then wait, and the operator must know why.
		// Written batches are counted, so that records per batch and
		// bytes per sample on the wire can be watched.
		kgo.WithHooks(clientHook{k}),
	}
	opts = append(opts, cfg.Compression.kgoOpts()...)
	if cfg.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.TLS))
	}
	if cfg.SASL != nil {
		opts = append(opts, kgo.SASL(cfg.SASL))
	}
	if cfg.AllowAutoTopicCreation {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	opts = append(opts, cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	k.cl = cl
	k.produceCtx, k.cancelProduce = context.WithCancel(context.Background())
	k.wg.Add(2)
	go func() {
		defer k.wg.Done()
		defer close(k.pumpDone)
		k.pump()
	}()
	go func() {
		defer k.wg.Done()
		k.report()
	}()
	return k, nil
}

// Header keys of every record.
const (
	hdrContentType = "content-type"
	hdrJob         = "job"
	hdrInstance    = "instance"
	hdrMember      = "member"
)

// Write encodes s into one record, or several when it is larger than
// MaxRecordBytes, and queues them. It never blocks on Kafka: when the
// buffer is full the oldest queued records are dropped and counted. Safe
// for concurrent use; s is not used after Write returns. The only error is
// ErrClosed, after Close has begun; drops are not errors (they are counted
// in shoal_kafka_dropped_samples_total and logged).
func (k *Kafka) Write(s *Scrape) error {
	if len(s.Samples) == 0 {
		return nil
	}
	if k.closed.Load() {
		return ErrClosed
	}
	now := time.Now()
	st := k.getEnc()
	defer k.putEnc(st)
	topic := k.topics.forJob(s.Job)
	// The value may take what the key and headers leave of a record.
	limit := k.cfg.MaxRecordBytes - len(s.Key) - len(s.Job) - len(s.Instance) - k.fixedHdr
	// A target whose scrapes are larger than one record has in its memo
	// how many samples went into each record, so that the next scrape is
	// split at the same places without being encoded whole first (the
	// encoder's memo hits only then, see Encoder).
	per := 0
	if s.Memo != nil {
		per = s.Memo.split
	}
	if per == 0 {
		if msg := k.encode(st, s, 0); len(msg) <= limit {
			st.parts = append(st.parts, k.record(st, s, len(s.Samples), topic, now))
			s.Memo.trim(1)
			return k.enqueue(st.parts)
		}
		// Too large for one record: aim for records 90% full, split by
		// sample count, and remember the count for the next scrape.
		per = 1
		if aim := limit * 9 / 10; aim > 0 {
			parts := (len(st.spare.buf) + aim - 1) / aim
			per = (len(s.Samples) + parts - 1) / parts
		}
	}
	return k.writeSplit(st, s, topic, limit, per, now)
}

// writeSplit writes s as records of per samples each, in order, with the
// same key (so they stay in order); each is a complete message. A range of
// per samples that is still too large is halved, recursively, and a single
// sample that alone is too large is dropped and counted.
//
// The split points depend only on per, which is remembered in the
// target's memo, so a steady target is split at the same places every
// scrape, each range the same message of it (which the encoder's memo
// needs to hit, see Encoder). per
// shrinks by a quarter after a scrape in which a range was too large on
// its own (not because of one oversized sample), so it settles where every
// range fits.
//
// writeSplit yields the processor after each range (runtime.Gosched), as
// the engine does while it parses a huge scrape: a range is up to a record
// (1 MB by default, some 20,000 samples), which takes the encoder 0.5 ms
// when the memo hits and 5 ms when it does not (a target's first scrape, a
// changed series set), and the runtime preempts only after 10 ms, so on
// one P a huge target held the timing wheel and every other scrape for
// its whole Write.
func (k *Kafka) writeSplit(st *encState, s *Scrape, topic string, limit, per int, now time.Time) error {
	var r splitRun
	for lo := 0; lo < len(s.Samples); lo += per {
		k.writeRange(st, s, lo, min(lo+per, len(s.Samples)), limit, topic, now, &r)
		runtime.Gosched()
	}
	switch {
	case r.tooLarge == 0 && r.bytes <= limit/2:
		// Fits in half a record: back to being encoded whole; the gap
		// between half and full keeps a target from flapping.
		per = 0
	case r.shrink:
		per = max(1, per*3/4)
	}
	if s.Memo != nil {
		s.Memo.split = per
	}
	s.Memo.trim(r.msgs)
	if r.tooLarge > 0 {
		k.dropTooLarge(s.Key, r.tooLarge)
	}
	if len(st.parts) == 0 {
		return nil
	}
	return k.enqueue(st.parts)
}

// splitRun is what writeSplit learns while writing ranges.
type splitRun struct {
	msgs     int  // messages encoded: the next one's part in the memo
	bytes    int  // value bytes written
	tooLarge int  // samples dropped, each alone too large
	shrink   bool // a range was too large without holding such a sample
}

// writeRange appends the records of s.Samples[lo:hi] to st.parts: one if
// it fits, else those of its two halves.
func (k *Kafka) writeRange(st *encState, s *Scrape, lo, hi, limit int, topic string, now time.Time, r *splitRun) {
	sub := *s
	sub.Samples = s.Samples[lo:hi]
	msg := k.encode(st, &sub, r.msgs)
	r.msgs++
	if len(msg) <= limit {
		r.bytes += len(msg)
		st.parts = append(st.parts, k.record(st, &sub, hi-lo, topic, now))
		return
	}
	if hi-lo == 1 {
		r.tooLarge++
		return
	}
	before := r.tooLarge
	mid := lo + (hi-lo)/2
	k.writeRange(st, s, lo, mid, limit, topic, now, r)
	k.writeRange(st, s, mid, hi, limit, topic, now, r)
	if r.tooLarge == before {
		r.shrink = true
	}
}

// encode encodes s as the part-th message of its scrape into st's spare
// entry and returns the message, which stays in st.spare.buf until the
// next encode.
func (k *Kafka) encode(st *encState, s *Scrape, part int) []byte {
	if st.spare == nil {
		st.spare = k.getEntry(0)
	}
	st.spare.buf = st.enc.AppendPart(st.spare.buf[:0], s, part)
	return st.spare.buf
}

// record returns a pooled entry holding a record of the message just
// encoded into st.spare, for the scrape's target, with n samples.
//
// When the record fills more than half of the spare's buffer, the spare
// itself becomes the record and a buffer of the same size class replaces
// it (in steady state the one an acknowledged record just returned to the
// pool); otherwise the message is copied into a buffer of its own class.
// Either way a record is charged at most twice its size, and a message is
// copied only when it is small for the buffer it was encoded into.
func (k *Kafka) record(st *encState, s *Scrape, n int, topic string, now time.Time) *entry {
	msg := st.spare.buf
	need := len(msg) + len(s.Key) + len(s.Job) + len(s.Instance)
	var e *entry
	var b []byte
	if c := cap(msg); need <= c && need > c/2 {
		e = st.spare
		st.spare = k.getEntry(1 << classDown(c))
		b = msg
	} else {
		e = k.getEntry(need)
		b = append(e.buf[:0], msg...)
	}
	v := len(msg)
	b = append(b, s.Key...)
	b = append(b, s.Job...)
	b = append(b, s.Instance...)
	kEnd := v + len(s.Key)
	jEnd := kEnd + len(s.Job)
	e.buf = b
	e.hdrs = [4]kgo.RecordHeader{
		{Key: hdrContentType, Value: k.contentType},
		{Key: hdrJob, Value: b[kEnd:jEnd:jEnd]},
		{Key: hdrInstance, Value: b[jEnd:len(b):len(b)]},
		{Key: hdrMember, Value: k.member},
	}
	ts := now
	if s.T != 0 {
		ts = time.UnixMilli(s.T)
	}
	e.rec = kgo.Record{
		Topic:     topic,
		Key:       b[v:kEnd:kEnd],
		Value:     b[:v:v],
		Headers:   e.hdrs[:],
		Timestamp: ts,
	}
	e.samples = n
	e.size = int64(cap(b)) + entryOverhead
	e.enq = now
	return e
}

// enqueue appends es (the records of one scrape, in order) to the queue,
// first dropping the oldest queued records until they fit (rule 2). If
// they cannot fit even in an empty queue they are dropped instead, and the
// queue is left alone.
func (k *Kafka) enqueue(es []*entry) error {
	var need, samples int64
	for _, e := range es {
		need += e.size
		samples += int64(e.samples)
		e.wire = batchSize(&e.rec)
	}
	var dropRecs, dropSamples int64
	k.mu.Lock()
	if k.closing {
		k.mu.Unlock()
		for _, e := range es {
			k.release(e)
		}
		return ErrClosed
	}
	if k.inflight+need > k.cfg.BufferBytes {
		for _, e := range es {
			k.release(e)
		}
		dropRecs, dropSamples = int64(len(es)), samples
	} else {
		for k.queued+k.inflight+need > k.cfg.BufferBytes && k.oldest != nil {
			old := k.dropOldest()
			dropRecs++
			dropSamples += int64(old.samples)
			k.release(old)
		}
		for _, e := range es {
			e.tq = k.topicQueue(e.rec.Topic)
			k.push(e)
		}
	}
	if dropRecs > 0 {
		k.drops.bufferFullRecs += dropRecs
		k.drops.bufferFullSamples += dropSamples
		k.lostRecs += dropRecs
		k.lostSamples += dropSamples
	}
	k.m.bufferBytes.Set(float64(k.queued + k.inflight))
	k.mu.Unlock()
	if dropSamples > 0 {
		k.m.dropped.Add(float64(dropSamples))
	}
	signal(k.wake)
	return nil
}

// dropTooLarge counts n samples of target key dropped because each alone
// makes a record larger than MaxRecordBytes.
func (k *Kafka) dropTooLarge(key string, n int) {
	k.m.errorsBy[ErrKindTooLarge].Add(float64(n))
	k.m.dropped.Add(float64(n))
	k.mu.Lock()
	k.drops.tooLargeSamples += int64(n)
	k.drops.tooLargeKey = strings.Clone(key)
	k.lostSamples += int64(n)
	k.mu.Unlock()
}

// pump hands queued records to kgo, a run of one partition's records at a
// time (rule 3 of the design note), while the in-flight share allows (rule
// 1). It returns when the queue is empty after Close began, or when Close
// gives up.
func (k *Kafka) pump() {
	// timer wakes the pump when the oldest queued record has lingered
	// long enough; it is armed only while the pump waits for that.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	// Records are handed over in chunks of up to len(hand), so that a
	// long run holds k.mu only briefly at a time.
	var hand [64]*entry
	for {
		k.mu.Lock()
		var pq *partQueue
		for {
			if k.aborted {
				k.mu.Unlock()
				return
			}
			if k.regroupDue.Swap(false) {
				k.regroup()
			}
			if pq = k.nextRun(); pq != nil {
				break
			}
			if k.closing && k.oldest == nil {
				k.mu.Unlock()
				return
			}
			// With a run under way, only the in-flight share holds
			// it back, and a promise wakes the pump; otherwise the
			// next thing due is the oldest record's linger (or a
			// write, which wakes the pump too).
			var due <-chan time.Time
			if k.run == nil && k.oldest != nil {
				timer.Reset(time.Until(k.oldest.enq.Add(k.cfg.Linger)))
				due = timer.C
			}
			k.mu.Unlock()
			select {
			case <-k.wake:
			case <-due:
			case <-k.abort:
			}
			k.mu.Lock()
		}
		n := k.handOver(pq, hand[:])
		k.mu.Unlock()
		for i := range n {
			// The entry belongs to kgo now: the promise may already
			// have released it when Produce returns.
			k.cl.Produce(k.produceCtx, &hand[i].rec, hand[i].promise)
			hand[i] = nil
		}
	}
}

// finish is every record's promise. kgo calls promises one at a time on
// its own goroutine: this must not block (STYLE 15), and it does not: a
// short critical section, atomic metric updates, non-blocking signals.
func (k *Kafka) finish(e *entry, err error) {
	var kind string
	if err == nil {
		k.m.records.Inc()
		k.m.bytes.Add(float64(len(e.rec.Value)))
		k.m.samples.Add(float64(e.samples))
		k.m.latency.Observe(time.Since(e.enq).Seconds())
	} else {
		kind = ErrorKind(err)
		if k.gaveUp.Load() {
			// Close gave up on it; kgo may report the broker's last
			// error rather than the cancellation (the log keeps it).
			kind = ErrKindShutdown
		}
		k.m.errorsBy[kind].Inc()
		k.m.dropped.Add(float64(e.samples))
	}
	k.mu.Lock()
	k.inflight -= e.size
	k.inflightRecs--
	if e.tq.inflight--; e.tq.inflight == 0 {
		k.checkReady(&e.tq.unknown) // a failed probe: another may go
	}
	if err != nil {
		k.drops.failedRecs++
		k.drops.failedSamples += int64(e.samples)
		k.drops.lastErr, k.drops.lastKind = err, kind
		k.lostRecs++
		k.lostSamples += int64(e.samples)
	}
	k.m.bufferBytes.Set(float64(k.queued + k.inflight))
	drained := k.closing && k.inflightRecs == 0
	k.mu.Unlock()
	k.release(e)
	signal(k.wake)
	if drained {
		signal(k.resolved)
	}
}

// Close stops accepting scrapes, delivers what is buffered, closes the
// client and stops the sink's goroutines; they have all exited when it
// returns. It waits at most FlushTimeout, or until ctx is done, whichever
// comes first, then fails what is left. It returns nil if everything
// written was delivered (or dropped before Close began), and otherwise an
// *UndeliveredError counting the records and samples lost during Close.
// Later calls return the first call's result.
func (k *Kafka) Close(ctx context.Context) error {
	k.closeOnce.Do(func() { k.closeErr = k.close(ctx) })
	return k.closeErr
}

func (k *Kafka) close(ctx context.Context) error {
	if k.cfg.FlushTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, k.cfg.FlushTimeout)
		defer cancel()
	}
	start := time.Now()

	// 1. Stop accepting: Write returns ErrClosed from here on.
	k.closed.Store(true)
	k.mu.Lock()
	k.closing = true
	lostRecs0, lostSamples0 := k.lostRecs, k.lostSamples
	k.mu.Unlock()
	signal(k.wake)

	// 2. The pump hands the rest of the queue to kgo, oldest partition
	// first, still within its in-flight share, and exits when the queue
	// is empty.
	var gaveUp error
	select {
	case <-k.pumpDone:
	case <-ctx.Done():
		gaveUp = ctx.Err()
	}
	// 3. kgo delivers what it holds. Flush returns once every promise has
	// run, or with ctx's error.
	if gaveUp == nil {
		gaveUp = k.cl.Flush(ctx)
	}
	// 4. Out of time: the pump leaves the queue, and what is still queued
	// is lost. Canceling the produce context makes kgo fail the records it
	// has not sent yet (records in a request already sent wait for its
	// answer or the connection's end: idempotence cannot abandon them).
	if gaveUp != nil {
		k.gaveUp.Store(true)
		k.mu.Lock()
		k.aborted = true
		k.mu.Unlock()
		close(k.abort)
		k.cancelProduce()
		<-k.pumpDone
		var recs, samples int64
		k.mu.Lock()
		for k.oldest != nil {
			e := k.dropOldest()
			recs++
			samples += int64(e.samples)
			k.release(e)
		}
		k.lostRecs += recs
		k.lostSamples += samples
		k.m.bufferBytes.Set(float64(k.queued + k.inflight))
		k.mu.Unlock()
		k.m.errorsBy[ErrKindShutdown].Add(float64(recs))
		k.m.dropped.Add(float64(samples))
	}
	// 5. Close the client: it fails whatever it still holds
	// (ErrClientClosed, through the promises, which count it), closes its
	// connections and stops its goroutines.
	k.cl.Close()
	k.cancelProduce()
	// 6. Wait for the last promises, which kgo runs promptly after Close.
	k.waitResolved()
	// 7. Stop the drop reporter, then log the drops it had not logged.
	close(k.stopReport)
	k.wg.Wait()
	k.logDrops()

	k.mu.Lock()
	recs, samples := k.lostRecs-lostRecs0, k.lostSamples-lostSamples0
	k.mu.Unlock()
	if recs == 0 && samples == 0 {
		k.log.Info("kafka sink flushed and closed", "took", time.Since(start).Round(time.Millisecond))
		return nil
	}
	err := &UndeliveredError{Records: recs, Samples: samples, Err: gaveUp}
	k.log.Error("kafka sink closed with undelivered records", "records", recs, "samples", samples, "took", time.Since(start).Round(time.Millisecond), "err", gaveUp)
	return err
}

// waitResolved waits until every record handed to kgo has had its promise.
// After Client.Close kgo fails every record it holds at once, so this is
// quick; the bound only guards against a kgo bug hanging shutdown.
func (k *Kafka) waitResolved() {
	const bound = 10 * time.Second
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		k.mu.Lock()
		n := k.inflightRecs
		k.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-k.resolved:
		case <-timer.C:
			k.log.Error("kafka client closed but records are still unresolved; not waiting longer", "records", n, "waited", bound)
			return
		}
	}
}

// signal does a non-blocking send on a capacity-one channel: wakeups
// coalesce, and the sender never waits.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// classUp is the smallest size class whose buffers hold n bytes.
func classUp(n int) int {
	c := minClass
	for c < maxClass && 1<<c < n {
		c++
	}
	return c
}

// classDown is the class of a buffer of capacity n: the largest c with
// 2^c <= n.
func classDown(n int) int {
	c := minClass
	for c < maxClass && 1<<(c+1) <= n {
		c++
	}
	return c
}

// getEntry returns an entry whose buffer holds n bytes: from its size
// class's pool, else the next class up, else new.
func (k *Kafka) getEntry(n int) *entry {
	c := classUp(n)
	for i := c; i <= c+1 && i <= k.maxClass; i++ {
		if i >= keptMinClass {
			if e := k.takeKept(i); e != nil {
				return e
			}
		}
		if e, _ := k.pools[i].Get().(*entry); e != nil {
			return e
		}
	}
	e := &entry{buf: make([]byte, 0, 1<<c)}
	e.promise = func(_ *kgo.Record, err error) { k.finish(e, err) }
	return e
}

// release resets e and returns it to its pool; e must not be used after
// release. Buffers above the largest class a record can need are not kept.
func (k *Kafka) release(e *entry) {
	c := classDown(cap(e.buf))
	if cap(e.buf) < 1<<minClass || c > k.maxClass {
		return
	}
	e.rec = kgo.Record{}
	e.hdrs = [4]kgo.RecordHeader{}
	e.buf = e.buf[:0]
	e.samples, e.size, e.wire, e.enq = 0, 0, 0, time.Time{}
	e.tq, e.pq, e.older, e.newer, e.next = nil, nil, nil, nil, nil
	if c >= keptMinClass && k.keep(e, c) {
		return
	}
	k.pools[c].Put(e)
}

// keptMinClass is the smallest class whose entries are kept across
// collections (256 KiB: a node_exporter's record is 25 KB), and
// keptMaxBytes the most buffer memory kept: a few records of a huge
// target, beyond BufferBytes as the encoder states' spares are.
const (
	keptMinClass = 18
	keptMaxBytes = 16 << 20
	keptMaxEncs  = 4
)

// keep puts e, of class c, in k.kept if the budget allows.
func (k *Kafka) keep(e *entry, c int) bool {
	k.keptMu.Lock()
	defer k.keptMu.Unlock()
	if k.keptBytes+cap(e.buf) > keptMaxBytes {
		return false
	}
	k.kept[c] = append(k.kept[c], e)
	k.keptBytes += cap(e.buf)
	return true
}

// takeKept returns a kept entry of class c, or nil.
func (k *Kafka) takeKept(c int) *entry {
	k.keptMu.Lock()
	defer k.keptMu.Unlock()
	l := k.kept[c]
	if len(l) == 0 {
		return nil
	}
	e := l[len(l)-1]
	l[len(l)-1] = nil
	k.kept[c] = l[:len(l)-1]
	k.keptBytes -= cap(e.buf)
	return e
}

func (k *Kafka) getEnc() *encState {
	k.keptMu.Lock()
	if n := len(k.keptEncs); n > 0 {
		st := k.keptEncs[n-1]
		k.keptEncs[n-1] = nil
		k.keptEncs = k.keptEncs[:n-1]
		k.keptMu.Unlock()
		return st
	}
	k.keptMu.Unlock()
	if st, _ := k.encs.Get().(*encState); st != nil {
		return st
	}
	return &encState{enc: NewEncoder(k.cfg.Format)}
}

// putEnc returns st to the pool; st must not be used after putEnc. A
// spare grown far past a record (an oversized scrape encoded whole) is not
// kept.
//
// Pooled states and their spares are the sink's only memory outside
// BufferBytes: at most one per concurrent Write (so per scrape worker),
// each the size of the largest message it encoded; keptMaxEncs of them
// are kept, and sync.Pool lets the rest go within two GCs once fewer
// Writes run at once.
func (k *Kafka) putEnc(st *encState) {
	if st.spare != nil && cap(st.spare.buf) > 4*k.cfg.MaxRecordBytes {
		st.spare = nil
	}
	clear(st.parts)
	st.parts = st.parts[:0]
	k.keptMu.Lock()
	if len(k.keptEncs) < keptMaxEncs {
		k.keptEncs = append(k.keptEncs, st)
		k.keptMu.Unlock()
		return
	}
	k.keptMu.Unlock()
	k.encs.Put(st)
}

// dropCounts are drops since the last log line. Guarded by Kafka.mu.
type dropCounts struct {
	bufferFullRecs, bufferFullSamples int64
	failedRecs, failedSamples         int64
	lastErr                           error
	lastKind                          string
	tooLargeSamples                   int64
	tooLargeKey                       string // the last target that had one
}

// report logs drops every DropLogInterval until Close.
func (k *Kafka) report() {
	t := time.NewTicker(k.cfg.DropLogInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			k.logDrops()
		case <-k.stopReport:
			return
		}
	}
}

// logDrops logs the drops since the last call, one line per cause, and
// resets the counts.
func (k *Kafka) logDrops() {
	k.mu.Lock()
	d := k.drops
	k.drops = dropCounts{}
	k.mu.Unlock()
	if d.bufferFullRecs > 0 {
		k.log.Warn("kafka buffer full: dropped the oldest queued records", "records", d.bufferFullRecs, "samples", d.bufferFullSamples, "buffer_bytes", k.cfg.BufferBytes)
	}
	if d.failedRecs > 0 {
		k.log.Error("kafka failed records", "records", d.failedRecs, "samples", d.failedSamples, "last_kind", d.lastKind, "last_err", d.lastErr)
	}
	if d.tooLargeSamples > 0 {
		k.log.Error("samples larger than --kafka.max-record-bytes dropped", "samples", d.tooLargeSamples, "last_target", d.tooLargeKey, "max_record_bytes", k.cfg.MaxRecordBytes)
	}
}

// clientHook counts failed broker connections in errors_total by kind and
// logs them at most once per DropLogInterval, with the count since the
// last line. kgo reports the dial and the connection's initialization (TLS
// handshake, API versions, SASL) through OnBrokerConnect. It also counts
// the batches kgo writes and their compressed size.
type clientHook struct{ k *Kafka }

// OnProduceBatchWritten runs on kgo's goroutine once a batch is
// acknowledged; it only updates counters.
func (h clientHook) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	h.k.m.batches.Inc()
	h.k.m.compressedBytes.Add(float64(m.CompressedBytes))
}

func (h clientHook) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	k := h.k
	if err == nil || k.closed.Load() {
		return
	}
	kind := ErrorKind(err)
	k.m.errorsBy[kind].Inc()
	k.connFailures.Add(1)
	now := time.Now().UnixNano()
	last := k.connLogged.Load()
	if now-last >= int64(k.cfg.DropLogInterval) && k.connLogged.CompareAndSwap(last, now) {
		k.log.Warn("kafka broker connection failed; records wait in the buffer",
			"broker", net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))), "kind", kind,
			"failures", k.connFailures.Swap(0), "err", err)
	}
}

// kgoLogger logs kgo's messages with slog: errors and warnings as such,
// kgo's info (connections, metadata) at debug, kgo's debug not at all.
type kgoLogger struct{ l *slog.Logger }

func (g kgoLogger) Level() kgo.LogLevel {
	if g.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (g kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var lv slog.Level
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelInfo:
		lv = slog.LevelDebug
	default:
		return
	}
	g.l.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}
