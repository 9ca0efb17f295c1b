package produce

import (
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The sink's queue (rule 3 of the design note in kafka.go): every queued
// record is on two lists at once, both threaded through the entries, so
// that queueing allocates nothing in steady state:
//
//   - the sink-wide list, oldest first (Kafka.oldest, entry.older and
//     entry.newer), which drops and the linger rule read;
//   - its partition queue (partQueue, entry.next), oldest first, which
//     runs hand over from.
//
// A record's partition queue is the partition kgo will choose for it, as
// far as the sink can tell: kgo's own partitioner applied to the record's
// key and its topic's partition count, which the sink learns from that
// same partitioner (see partitioner). Until kgo has partitioned a record
// of a topic, the topic's records wait in one queue of their own
// (topicQueue.unknown) and one record goes ahead alone to make kgo load
// the topic; when the count becomes known, or changes, the topic's queued
// records are grouped again, oldest first. A wrong guess (the count changed
// and the sink has not seen it yet) costs a batch's fullness, never order
// or delivery: kgo's partitioner still decides.

// topicQueue holds the partition queues of one topic. Guarded by Kafka.mu
// except seen.
type topicQueue struct {
	n        int          // partitions the queued records are grouped by; 0 until known
	seen     atomic.Int32 // partitions kgo last partitioned this topic over; 0: never
	regroup  bool         // during Kafka.regroup: n changed
	parts    []*partQueue // by partition, len n, each made on first use
	unknown  partQueue    // records queued while n == 0
	inflight int          // records handed to kgo whose promise has not run
}

// partQueue is the FIFO of one partition's queued records. Guarded by
// Kafka.mu.
type partQueue struct {
	tq         *topicQueue
	part       int // -1: the topic's unknown queue
	head, tail *entry
	n          int
	wire       int64 // the records' size in a record batch (batchSize)
	run        int   // records still to hand over while this is Kafka.run
	ready      bool  // in the ready list
	nextReady  *partQueue
}

// initQueue sets up the queue's state; NewKafka calls it, and so do tests
// that drive the queue without a pump.
func (k *Kafka) initQueue(batchMax int32) {
	k.inflightCap = k.cfg.BufferBytes / 4
	k.earlyBytes = k.cfg.BufferBytes / 8
	// What a batch holds besides its records: the batch header, and the
	// longer length prefix of flexible produce requests, with room to
	// spare.
	k.batchBytes = int64(batchMax) - 128
	k.byTopic = map[string]*topicQueue{}
	k.keyPart = kgo.StickyKeyPartitioner(nil).ForTopic("")
}

// topicQueue returns topic's queues, made on first use. k.mu is held.
func (k *Kafka) topicQueue(topic string) *topicQueue {
	if tq := k.byTopic[topic]; tq != nil {
		return tq
	}
	tq := &topicQueue{}
	tq.unknown = partQueue{tq: tq, part: -1}
	k.byTopic[topic] = tq
	k.topicList = append(k.topicList, tq)
	return tq
}

// partQueueOf returns the queue e belongs in. k.mu is held.
func (k *Kafka) partQueueOf(e *entry) *partQueue {
	tq := e.tq
	if tq.n == 0 {
		return &tq.unknown
	}
	// kgo's partitioner for keyed records is a pure function of the key
	// and the count (murmur2, as Kafka's Java client); every record has
	// a key. Called only under k.mu, so its sticky state for unkeyed
	// records, unused here, would be safe too.
	p := k.keyPart.Partition(&e.rec, tq.n)
	pq := tq.parts[p]
	if pq == nil {
		pq = &partQueue{tq: tq, part: p}
		tq.parts[p] = pq
	}
	return pq
}

// push appends e, whose tq and size are set, to the queue. k.mu is held.
func (k *Kafka) push(e *entry) {
	e.older = k.newest
	if k.newest != nil {
		k.newest.newer = e
	} else {
		k.oldest = e
	}
	k.newest = e
	k.nqueued++
	k.queued += e.size
	k.pushPart(k.partQueueOf(e), e)
}

// pushPart appends e to pq and puts pq in the ready list if it now holds
// more than a batch, or if it is an unknown topic's queue and no record of
// the topic is on its way to kgo. k.mu is held.
func (k *Kafka) pushPart(pq *partQueue, e *entry) {
	e.pq = pq
	if pq.tail != nil {
		pq.tail.next = e
	} else {
		pq.head = e
	}
	pq.tail = e
	pq.n++
	pq.wire += e.wire
	k.checkReady(pq)
}

// checkReady puts pq in the ready list if a run may start on it without
// waiting for the linger: it holds more than a batch, or it is the queue
// of a topic whose partition count kgo has not yet told, and none of the
// topic's records is in kgo to make it (the probe). k.mu is held.
func (k *Kafka) checkReady(pq *partQueue) {
	if pq.ready || !k.readyNow(pq) {
		return
	}
	pq.ready = true
	if k.readyTail != nil {
		k.readyTail.nextReady = pq
	} else {
		k.readyHead = pq
	}
	k.readyTail = pq
}

func (k *Kafka) readyNow(pq *partQueue) bool {
	if pq.part >= 0 {
		return pq.wire > k.batchBytes
	}
	tq := pq.tq
	return pq.n > 0 && tq.n == 0 && tq.inflight == 0 && tq.seen.Load() == 0
}

// popHead removes pq's oldest record from the queue and returns it. k.mu
// is held.
func (k *Kafka) popHead(pq *partQueue) *entry {
	e := pq.head
	pq.head = e.next
	if pq.head == nil {
		pq.tail = nil
	}
	pq.n--
	pq.wire -= e.wire
	if k.run == pq {
		if pq.run--; pq.run == 0 || pq.n == 0 {
			pq.run = 0
			k.run = nil
		}
	}
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		k.oldest = e.newer
	}
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		k.newest = e.older
	}
	e.older, e.newer, e.next, e.pq = nil, nil, nil, nil
	k.nqueued--
	k.queued -= e.size
	return e
}

// dropOldest removes the oldest queued record, which heads its partition
// queue (both lists are in the order of enqueue), and returns it. The
// queue must not be empty; k.mu is held.
func (k *Kafka) dropOldest() *entry { return k.popHead(k.oldest.pq) }

// nextRun returns the partition queue to hand records over from now, or
// nil: nothing is due, or the in-flight share has no room for the next
// record (rule 1). A run, once started, goes on until its records are
// handed over (or dropped). k.mu is held.
func (k *Kafka) nextRun() *partQueue {
	if k.run == nil {
		k.run = k.startRun()
	}
	if k.run == nil || !k.mayHand(k.run.head) {
		return nil
	}
	return k.run
}

// startRun picks the partition queue whose records move next, and how
// many (rule 3): the queue holding the oldest record, all of it, when
// that record has waited Linger, when the queue as a whole holds
// earlyBytes, or once Close began; else a queue holding more than a batch,
// the oldest records that fill one; else an unknown topic's queue, its
// oldest record alone (the probe). nil if none is due. k.mu is held.
func (k *Kafka) startRun() *partQueue {
	if o := k.oldest; o != nil && (k.closing || k.queued >= k.earlyBytes || time.Since(o.enq) >= k.cfg.Linger) {
		o.pq.run = o.pq.n
		return o.pq
	}
	for k.readyHead != nil {
		pq := k.readyHead
		k.readyHead, pq.nextReady, pq.ready = pq.nextReady, nil, false
		if k.readyHead == nil {
			k.readyTail = nil
		}
		if !k.readyNow(pq) {
			continue // the records went with a linger run, or were dropped or grouped again
		}
		if pq.part < 0 {
			pq.run = 1
			return pq
		}
		var sum int64
		for e := pq.head; e != nil && (pq.run == 0 || sum+e.wire <= k.batchBytes); e = e.next {
			sum += e.wire
			pq.run++
		}
		return pq
	}
	return nil
}

// handOver takes up to len(hand) records of pq's run (pq is k.run) out
// of the queue, while the in-flight share allows, puts them in hand and
// charges them to inflight; the caller hands them to kgo. It returns how
// many it took. k.mu is held.
func (k *Kafka) handOver(pq *partQueue, hand []*entry) int {
	n := 0
	for n < len(hand) && k.run == pq && k.mayHand(pq.head) {
		e := k.popHead(pq)
		k.inflight += e.size
		k.inflightRecs++
		e.tq.inflight++
		hand[n] = e
		n++
	}
	if k.run != pq {
		k.checkReady(pq) // it may hold another batch already
	}
	return n
}

// mayHand reports whether e may be handed to kgo within its share of the
// budget (rule 1): a record can always move when kgo holds nothing. k.mu is
// held.
func (k *Kafka) mayHand(e *entry) bool {
	return k.inflight == 0 || k.inflight+e.size <= k.inflightCap
}

// regroup groups the queued records of every topic whose partition count
// kgo has changed (or told for the first time) by the new count, oldest
// first, so each partition queue stays in the order of enqueue. Rare: once
// per topic, and once per change of its partition count. k.mu is held.
func (k *Kafka) regroup() {
	changed := false
	for _, tq := range k.topicList {
		if n := int(tq.seen.Load()); n > 0 && n != tq.n {
			tq.n, tq.regroup, changed = n, true, true
			tq.unknown.reset()
			for _, pq := range tq.parts {
				if pq != nil {
					pq.reset()
				}
			}
			if n <= cap(tq.parts) {
				tq.parts = tq.parts[:n]
			} else {
				tq.parts = append(tq.parts[:cap(tq.parts)], make([]*partQueue, n-cap(tq.parts))...)
			}
			if k.run != nil && k.run.tq == tq {
				k.run = nil
			}
		}
	}
	if !changed {
		return
	}
	for e := k.oldest; e != nil; e = e.newer {
		if e.tq.regroup {
			e.next = nil
			k.pushPart(k.partQueueOf(e), e)
		}
	}
	for _, tq := range k.topicList {
		tq.regroup = false
	}
}

// reset empties pq's list without touching its records (regroup puts them
// in again); a place in the ready list is rechecked when it comes up.
func (pq *partQueue) reset() {
	pq.head, pq.tail, pq.n, pq.wire, pq.run = nil, nil, 0, 0, 0
}

// partitioner is the sink's kgo.Partitioner: kgo's StickyKeyPartitioner(nil)
// (murmur2 of the key, as Kafka's Java client), which in passing tells the
// sink the partition count kgo partitions each topic over.
type partitioner struct{ k *Kafka }

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	p.k.mu.Lock()
	tq := p.k.topicQueue(topic)
	p.k.mu.Unlock()
	return &topicPartitioner{TopicPartitioner: kgo.StickyKeyPartitioner(nil).ForTopic(topic), k: p.k, tq: tq}
}

// topicPartitioner has only the methods of kgo.TopicPartitioner, not the
// OnNewBatch of the sticky partitioner it wraps: that only serves records
// without a key, and the sink's all have one.
type topicPartitioner struct {
	kgo.TopicPartitioner
	k  *Kafka
	tq *topicQueue
}

// Partition runs on kgo's goroutines, under kgo's locks: it only stores
// the count and wakes the pump, which groups the topic's records again.
func (p *topicPartitioner) Partition(r *kgo.Record, n int) int {
	if int(p.tq.seen.Load()) != n {
		p.tq.seen.Store(int32(n))
		p.k.regroupDue.Store(true)
		signal(p.k.wake)
	}
	return p.TopicPartitioner.Partition(r, n)
}

// batchSize is what r adds to a record batch as kgo counts it against
// ProducerBatchMaxBytes, or a little more: the timestamp and offset
// deltas, which depend on the batch, are taken at their largest likely
// sizes. Over-counting by a few bytes leaves a batch that much emptier;
// under-counting would push a run's last record into a batch of its own.
func batchSize(r *kgo.Record) int64 {
	n := 1 + // attributes
		5 + // timestamp delta, up to ±198 days
		4 + // offset delta
		kbin.VarintLen(int32(len(r.Key))) + len(r.Key) +
		kbin.VarintLen(int32(len(r.Value))) + len(r.Value) +
		kbin.VarintLen(int32(len(r.Headers)))
	for _, h := range r.Headers {
		n += kbin.VarintLen(int32(len(h.Key))) + len(h.Key) + kbin.VarintLen(int32(len(h.Value))) + len(h.Value)
	}
	return int64(kbin.VarintLen(int32(n)) + n)
}
