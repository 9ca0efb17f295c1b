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
// none of them is reported stale again after the next one.
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
	// index maps a key to its entry: an open-addressing table with linear
	// probing whose slots hold an index into entries plus one (0: empty).
	// Its length is a power of two, at least twice the entries (see grow).
	//
	// Why not a map[string]int32: its slots hold the 16-byte string header
	// besides the index, at a lower load, about 55 bytes per series, a
	// fifth of all the memory a node_exporter series costs a target with
	// the Kafka sink; this table costs 8. The keys are in entries already,
	// so the table needs only indexes. The map was no faster either: in
	// steady state Get does not look at the index at all (see next).
	index   []uint32
	seed    maphash.Seed
	entries []cacheEntry[V]
	// iter numbers scrapes: Begin increments it. 0 means never seen.
	iter uint32
	// next is the entry expected to be looked up next: the one after the
	// last hit. Targets expose their series in the same order every scrape
	// and entries are appended in first-seen order, so in steady state Get
	// compares one key instead of hashing and probing.
	next int32
}

type cacheEntry[V any] struct {
	// key is the series, interned: targets of one kind expose the same
	// series bytes (the target labels are added later), so a fleet of N
	// node_exporters shares one copy of each instead of holding N. The
	// handle keeps the canonical copy alive (unique frees it when no
	// handle is left); the index's key is key.Value(), the same bytes.
	key  unique.Handle[string]
	v    V
	seen uint32 // last iteration in which the entry was seen
	prev uint32 // the one before, restored by Abort
}

// evictAfter is how many scrapes an entry may go unseen before Stale
// evicts it.
const evictAfter = 10

// NewCache returns an empty cache.
func NewCache[V any]() *Cache[V] {
	return &Cache[V]{seed: maphash.MakeSeed(), iter: 1}
}

// find returns the slot of key in the index: the one holding its entry,
// or the empty slot where it would go. The index is never full (see grow).
func (c *Cache[V]) find(key string) (slot int, found bool) {
	mask := len(c.index) - 1
	slot = int(maphash.String(c.seed, key)) & mask
	for {
		i := c.index[slot]
		if i == 0 {
			return slot, false
		}
		if c.entries[i-1].key.Value() == key {
			return slot, true
		}
		slot = (slot + 1) & mask
	}
}

// grow doubles the index (or creates it) when adding one entry would
// fill it more than half: linear probing stays short below that.
func (c *Cache[V]) grow() {
	if 2*(len(c.entries)+1) <= len(c.index) {
		return
	}
	n := max(16, 1<<bits.Len(uint(2*(len(c.entries)+1)-1)))
	c.index = make([]uint32, n)
	for i := range c.entries {
		slot, _ := c.find(c.entries[i].key.Value())
		c.index[slot] = uint32(i) + 1
	}
}

// unindex removes the index slot of an entry and closes the gap: the
// entries after it in its probe run move back when their home slot allows
// (backward-shift deletion), so find needs no tombstones.
func (c *Cache[V]) unindex(slot int) {
	mask := len(c.index) - 1
	for {
		c.index[slot] = 0
		next := slot
		for {
			next = (next + 1) & mask
			i := c.index[next]
			if i == 0 {
				return
			}
			home := int(maphash.String(c.seed, c.entries[i-1].key.Value())) & mask
			// The entry at next may fill the gap unless its home lies
			// cyclically in (slot, next]: then it is already as close
			// to home as it may be.
			if (next-home)&mask >= (next-slot)&mask {
				c.index[slot] = i
				slot = next
				break
			}
		}
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
		if len(c.index) == 0 {
			return v, 0, false
		}
		slot, found := c.find(yoloString(series))
		if !found {
			return v, 0, false
		}
		i = int32(c.index[slot] - 1)
	}
	c.next = i + 1
	e := &c.entries[i]
	if e.seen == c.iter {
		return e.v, SeenThisScrape, true
	}
	seen = SeenLastScrape
	if e.seen != c.iter-1 {
		seen = SeenEarlier
	}
	e.prev, e.seen = e.seen, c.iter
	return e.v, seen, true
}

// Put sets the value for series, marking it seen in this scrape. series is
// interned if it is new (copied once per process, however many caches hold
// it); an existing entry is updated in place.
func (c *Cache[V]) Put(series []byte, v V) {
	if len(c.index) > 0 {
		if slot, found := c.find(yoloString(series)); found {
			e := &c.entries[c.index[slot]-1]
			e.v = v
			if e.seen != c.iter {
				e.prev, e.seen = e.seen, c.iter
			}
			return
		}
	}
	c.grow()
	// unique.Make copies a string it does not know yet, so the string may
	// share series' memory.
	h := unique.Make(yoloString(series))
	slot, _ := c.find(h.Value())
	c.index[slot] = uint32(len(c.entries)) + 1
	c.entries = append(c.entries, cacheEntry[V]{key: h, v: v, seen: c.iter})
}

// Abort forgets that entries were seen in this scrape, for a scrape that
// failed after calling Get or Put: their previous marks are restored, so
// Stale reports every series of the previous scrape. Entries Put in this
// scrape stay cached, as never seen. It walks the whole cache.
func (c *Cache[V]) Abort() {
	for i := range c.entries {
		if e := &c.entries[i]; e.seen == c.iter {
			e.seen, e.prev = e.prev, 0
		}
	}
}

// Stale calls fn with the value of every entry seen in the previous scrape
// and not in this one, then evicts the entries not seen for more than
// evictAfter scrapes. Call it once per scrape, after its Gets and Puts (or
// after Begin, or Abort, for a failed scrape). fn must not call c's methods.
func (c *Cache[V]) Stale(fn func(v V)) {
	prev := c.iter - 1
	for i := 0; i < len(c.entries); {
		e := &c.entries[i]
		if e.seen == prev {
			fn(e.v)
		}
		if c.iter-e.seen <= evictAfter {
			i++
			continue
		}
		// Swap-delete: the last entry moves to i and is visited next.
		slot, _ := c.find(e.key.Value())
		c.unindex(slot)
		last := len(c.entries) - 1
		if i != last {
			slot, _ := c.find(c.entries[last].key.Value())
			c.index[slot] = uint32(i) + 1
			c.entries[i] = c.entries[last]
		}
		c.entries[last] = cacheEntry[V]{} // drop references for the GC
		c.entries = c.entries[:last]
	}
}

// Live calls fn with the value of every entry seen in the current scrape
// (the one the last Begin started): after a successful scrape, the target's
// live series, which need staleness markers when the target goes away.
// After a failed scrape there are none: they were marked stale already.
// fn must not call c's methods.
func (c *Cache[V]) Live(fn func(v V)) {
	for i := range c.entries {
		if c.entries[i].seen == c.iter {
			fn(c.entries[i].v)
		}
	}
}

// Len returns the number of entries.
func (c *Cache[V]) Len() int { return len(c.entries) }
