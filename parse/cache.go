package parse

import (
	"hash/maphash"
	"math/bits"
	"unique"
)

// Cache maps the raw series bytes of one target (Parser.Series) to a value
// of the caller's, typically the series' labels or encoded form, so that a
// series seen before skips Labels. It also remembers in which scrape each
// entry was last seen, which gives Prometheus's staleness: a series present
// in the previous scrape and absent from this one is stale.
//
// A scrape goes Begin, then Get (and Put on a miss) for every sample, then
// Stale. A scrape that fails (a parse error, a timeout) goes Begin, then
// Abort if it had called Get or Put, then Stale: every series of the
// previous scrape is then stale, and, since the failed scrape saw nothing,
// none of them is reported stale again after the next one. Every Begin
// needs its Stale: entries mark scrapes with 16-bit numbers that Stale's
// evictions keep from wrapping (see cacheEntry.seen).
//
// Entries not seen for more than 10 scrapes are evicted by Stale, so a
// target whose series churn does not grow its cache without bound while a
// series that comes and goes keeps its entry for a while; Get reports such
// a series as SeenEarlier, so the caller can still count it as added, as
// Prometheus (whose scrape cache forgets it at once) does.
//
// A Cache may be used with bodies of either Format (see Parser.Series).
// Not safe for concurrent use: one target is scraped by one worker at a
// time. The zero value is not usable; use NewCache.
type Cache[V any] struct {
	// buckets index the entries by key: a power-of-two table of hash
	// chains, each slot holding the number (plus one, 0: none) of the
	// chain's first entry; an entry's link holds the next one's. There
	// are at least half as many buckets as entries (see grow): chains
	// average one to two entries.
	//
	// Why chains rather than open addressing (this index's previous
	// form): the link fits in padding the entry has anyway (see
	// cacheEntry), so the index costs 2 to 4 bytes per series (2 for a
	// node_exporter's 507 series) where a table of uint32 slots at load
	// ≤ 0.5 cost 8, and an open table cannot run above load 1. A lookup
	// walks about as many keys either way (1.5 to 2 on a hit, 1 to 2 on
	// a miss), and in steady state Get does not look at the index at all
	// (see next).
	//
	// Why not a map[string]int32: its slots hold the 16-byte string
	// header besides the index, at a lower load, about 55 bytes per
	// series. The keys are in entries already, so the index needs only
	// entry numbers.
	buckets []uint32
	seed    maphash.Seed
	entries []cacheEntry[V]
	// iter numbers scrapes: Begin increments it. Entries keep its low 16
	// bits (see cacheEntry.seen).
	iter uint32
	// next is the entry expected to be looked up next: the one after the
	// last hit. Targets expose their series in the same order every scrape
	// and entries are appended in first-seen order, so in steady state Get
	// compares one key instead of hashing and walking a chain.
	next int32
	// added: Put appended an entry in this scrape. unsettled: entries were
	// appended or evicted since the cache last settled (see settle).
	added, unsettled bool
}

// cacheEntry is 24 bytes with an 8-byte V (the engine's is a pointer):
// key 8, v 8, link 4 and two 16-bit iteration numbers, with no padding
// (TestCacheEntryLayout). With 32-bit iteration numbers the link would not
// fit, and the entry would be 32 bytes.
type cacheEntry[V any] struct {
	// key is the series, interned: targets of one kind expose the same
	// series bytes (the target labels are added later), so a fleet of N
	// node_exporters shares one copy of each instead of holding N. The
	// handle keeps the canonical copy alive (unique frees it when no
	// handle is left); the index's key is key.Value(), the same bytes.
	key  unique.Handle[string]
	v    V
	link uint32 // the next entry of the key's bucket, plus one (0: none)
	// seen is the low 16 bits of the iteration in which the entry was last
	// seen; prev is the one before, restored by Abort.
	//
	// Every use compares ages, uint16(iter)-seen in 16-bit arithmetic,
	// never the numbers themselves, so they may wrap: Stale evicts every
	// entry older than evictAfter, so between a Begin and its Stale no age
	// exceeds evictAfter+1, far below 65536, however long the cache lives
	// (TestCacheIterationWrap). A cache whose Begins were not each followed
	// by a Stale (against the protocol) could see an entry 65536 scrapes
	// old as seen in this one.
	seen, prev uint16
}

// evictAfter is how many scrapes an entry may go unseen before Stale
// evicts it.
const evictAfter = 10

// NewCache returns an empty cache.
func NewCache[V any]() *Cache[V] {
	return &Cache[V]{seed: maphash.MakeSeed(), iter: 1}
}

// neverSeen is the seen mark of an entry never seen (Put in a scrape that
// then failed). With 32-bit marks it was 0, an age of iter: Stale evicted
// the entry at once unless the cache had had fewer than evictAfter
// scrapes. The same age capped at evictAfter+1 keeps that behaviour (every
// age above evictAfter is evicted by this scrape's Stale) without wrapping.
func (c *Cache[V]) neverSeen() uint16 {
	return uint16(c.iter - min(c.iter, evictAfter+1))
}

// minBuckets is the index's smallest size; maxLoad the most entries per
// bucket on average (see grow).
const (
	minBuckets = 8
	maxLoad    = 2
)

// bucketsFor returns the index size for n entries: the smallest power of
// two with at most maxLoad entries per bucket.
func bucketsFor(n int) int {
	return max(minBuckets, 1<<bits.Len(uint((max(n, 1)+maxLoad-1)/maxLoad-1)))
}

func (c *Cache[V]) bucket(h uint64) *uint32 {
	return &c.buckets[int(h)&(len(c.buckets)-1)]
}

// find returns the number of key's entry, or -1.
func (c *Cache[V]) find(key string) int32 {
	for i := *c.bucket(maphash.String(c.seed, key)); i != 0; i = c.entries[i-1].link {
		if c.entries[i-1].key.Value() == key {
			return int32(i - 1)
		}
	}
	return -1
}

// ref returns the link that holds entry i: its bucket's slot, or the link
// of the entry before it in the chain.
func (c *Cache[V]) ref(i int) *uint32 {
	p := c.bucket(maphash.String(c.seed, c.entries[i].key.Value()))
	for *p != uint32(i)+1 {
		p = &c.entries[*p-1].link
	}
	return p
}

// grow makes room in the index for one more entry: it doubles the buckets
// (or makes them) when the chains would average more than maxLoad
// entries. At 2, a node_exporter's 507 series take 256 buckets (1 KiB, 2
// bytes a series) and a lookup through the index compares 1.5 to 2 keys.
func (c *Cache[V]) grow() {
	if len(c.entries)+1 <= maxLoad*len(c.buckets) {
		return
	}
	c.rehash(bucketsFor(len(c.entries) + 1))
}

// rehash rebuilds the index with n buckets.
func (c *Cache[V]) rehash(n int) {
	c.buckets = make([]uint32, n)
	for i := range c.entries {
		e := &c.entries[i]
		b := c.bucket(maphash.String(c.seed, e.key.Value()))
		e.link, *b = *b, uint32(i)+1
	}
}

// settle runs at the end of Stale. Once the entries stop changing (the
// first scrape that neither appends nor evicts after one that did), it
// gives back what growing left unused: the entries' append slack (up to
// a third of the slice: 507 node_exporter entries sit in room for 682,
// 4 KiB or 8 bytes a series) and an index that evictions left at four
// times the size it needs or more. It copies the entries once per such change,
// never on every scrape, not even for a target whose series churn in
// every scrape (its cache never settles, and keeps its slack).
func (c *Cache[V]) settle(evicted bool) {
	if c.added || evicted {
		c.added, c.unsettled = false, true
		return
	}
	if !c.unsettled {
		return
	}
	c.unsettled = false
	if n := len(c.entries); cap(c.entries) > n+n/8 {
		// append rounds the capacity up to the allocation's size
		// class: the slack left is what the allocation has anyway.
		c.entries = append([]cacheEntry[V](nil), c.entries...)
	}
	if n := bucketsFor(len(c.entries)); n < len(c.buckets)/2 {
		c.rehash(n)
	}
}

// Begin starts a scrape. Call it before each scrape, including the first.
func (c *Cache[V]) Begin() { c.iter++ }

// Seen says when a cached series was seen before the current Get.
type Seen uint8

const (
	// SeenLastScrape: in the previous scrape, the steady state.
	SeenLastScrape Seen = iota
	// SeenEarlier: cached, but absent from the previous scrape: a series
	// that came back (Prometheus counts it in scrape_series_added again).
	SeenEarlier
	// SeenThisScrape: already seen in this scrape, a duplicate series in
	// one body.
	SeenThisScrape
)

// Get looks series up and, if present, marks it seen in this scrape and
// says when it was seen before. series is not retained; Get does not
// allocate.
func (c *Cache[V]) Get(series []byte) (v V, seen Seen, ok bool) {
	i := c.next
	if int(i) >= len(c.entries) || c.entries[i].key.Value() != string(series) {
		if len(c.buckets) == 0 {
			return v, 0, false
		}
		if i = c.find(yoloString(series)); i < 0 {
			return v, 0, false
		}
	}
	c.next = i + 1
	e := &c.entries[i]
	it := uint16(c.iter)
	switch it - e.seen {
	case 0:
		return e.v, SeenThisScrape, true
	case 1:
		seen = SeenLastScrape
	default:
		seen = SeenEarlier
	}
	e.prev, e.seen = e.seen, it
	return e.v, seen, true
}

// Put sets the value for series, marking it seen in this scrape. series is
// interned if it is new (copied once per process, however many caches hold
// it); an existing entry is updated in place.
func (c *Cache[V]) Put(series []byte, v V) {
	key := yoloString(series)
	h := maphash.String(c.seed, key)
	it := uint16(c.iter)
	if len(c.buckets) > 0 {
		for i := *c.bucket(h); i != 0; i = c.entries[i-1].link {
			if e := &c.entries[i-1]; e.key.Value() == key {
				e.v = v
				if e.seen != it {
					e.prev, e.seen = e.seen, it
				}
				return
			}
		}
	}
	c.grow()
	// unique.Make copies a string it does not know yet, so the string may
	// share series' memory.
	b := c.bucket(h)
	c.entries = append(c.entries, cacheEntry[V]{key: unique.Make(key), v: v, link: *b, seen: it, prev: c.neverSeen()})
	*b = uint32(len(c.entries))
	c.added = true
}

// Abort forgets that entries were seen in this scrape, for a scrape that
// failed after calling Get or Put: their previous marks are restored, so
// Stale reports every series of the previous scrape. Entries Put in this
// scrape count as never seen: the Stale that follows evicts them, except in
// the cache's first evictAfter-1 scrapes (see neverSeen). It walks the
// whole cache.
func (c *Cache[V]) Abort() {
	it := uint16(c.iter)
	for i := range c.entries {
		if e := &c.entries[i]; e.seen == it {
			e.seen = e.prev
		}
	}
}

// Stale calls fn with the value of every entry seen in the previous scrape
// and not in this one, then evicts the entries not seen for more than
// evictAfter scrapes. Call it once per scrape, after its Gets and Puts (or
// after Begin, or Abort, for a failed scrape). fn must not call c's methods.
func (c *Cache[V]) Stale(fn func(v V)) {
	it := uint16(c.iter)
	evicted := false
	for i := 0; i < len(c.entries); {
		e := &c.entries[i]
		age := it - e.seen
		if age == 1 {
			fn(e.v)
		}
		if age <= evictAfter {
			i++
			continue
		}
		// Swap-delete: the last entry moves to i and is visited next.
		evicted = true
		*c.ref(i) = e.link
		last := len(c.entries) - 1
		if i != last {
			*c.ref(last) = uint32(i) + 1
			c.entries[i] = c.entries[last]
		}
		c.entries[last] = cacheEntry[V]{} // drop references for the GC
		c.entries = c.entries[:last]
	}
	c.settle(evicted)
}

// Live calls fn with the value of every entry seen in the current scrape
// (the one the last Begin started): after a successful scrape, the target's
// live series, which need staleness markers when the target goes away.
// After a failed scrape there are none: they were marked stale already.
// fn must not call c's methods.
func (c *Cache[V]) Live(fn func(v V)) {
	it := uint16(c.iter)
	for i := range c.entries {
		if c.entries[i].seen == it {
			fn(c.entries[i].v)
		}
	}
}

// Len returns the number of entries.
func (c *Cache[V]) Len() int { return len(c.entries) }
