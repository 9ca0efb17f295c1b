package parse

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// scrape runs one scrape of series against c, as the engine does, and
// returns the values Stale reported. A nil series list is a failed scrape;
// failAfter > 0 fails the scrape after that many Gets/Puts.
func scrape(c *Cache[string], series []string, failAfter int) (stale []string) {
	c.Begin()
	failed := series == nil
	for i, s := range series {
		if failAfter > 0 && i == failAfter {
			failed = true
			break
		}
		if _, _, ok := c.Get([]byte(s)); !ok {
			c.Put([]byte(s), s)
		}
	}
	if failed {
		c.Abort()
	}
	c.Stale(func(v string) { stale = append(stale, v) })
	slices.Sort(stale)
	return stale
}

func TestCacheStaleness(t *testing.T) {
	c := NewCache[string]()
	f := func(series []string, failAfter int, wantStale string) {
		t.Helper()
		if got := strings.Join(scrape(c, series, failAfter), ","); got != wantStale {
			t.Errorf("scrape %v (failAfter %d): stale %q, want %q", series, failAfter, got, wantStale)
		}
	}
	f([]string{"a", "b", "c"}, 0, "")
	f([]string{"a", "b", "c"}, 0, "")
	f([]string{"a", "c", "d"}, 0, "b") // b gone
	f([]string{"a", "c", "d"}, 0, "")  // not stale twice
	f([]string{"a", "b"}, 0, "c,d")    // b back: new again
	f(nil, 0, "a,b")                   // failed scrape: everything of the last one
	f(nil, 0, "")                      // no double staleness after a failed scrape
	f([]string{"a"}, 0, "")            // a comes back after the failure: nothing was live
	f([]string{"a", "e", "f"}, 2, "a") // fails after 2 Gets/Puts: as if nothing was seen
	f([]string{"a", "e"}, 0, "")
	f([]string{"e"}, 0, "a")
}

func TestCacheGetPutDuplicates(t *testing.T) {
	c := NewCache[int]()
	c.Begin()
	if _, _, ok := c.Get([]byte("x")); ok {
		t.Fatal("hit in an empty cache")
	}
	c.Put([]byte("x"), 1)
	if v, seen, ok := c.Get([]byte("x")); !ok || seen != SeenThisScrape || v != 1 {
		t.Fatalf("Get after Put in the same scrape = %v, %v, %v; want 1, seen, ok", v, seen, ok)
	}
	c.Begin()
	if v, seen, ok := c.Get([]byte("x")); !ok || seen != SeenLastScrape || v != 1 {
		t.Fatalf("first Get in a new scrape = %v, %v, %v; want 1, seen last scrape, ok", v, seen, ok)
	}
	if _, seen, _ := c.Get([]byte("x")); seen != SeenThisScrape {
		t.Fatal("second Get in a scrape must report a duplicate")
	}
	c.Put([]byte("x"), 2) // update in place
	if v, _, _ := c.Get([]byte("x")); v != 2 || c.Len() != 1 {
		t.Fatalf("after update: v=%d len=%d", v, c.Len())
	}
	key := []byte("y")
	c.Put(key, 3)
	key[0] = 'z' // Put must have copied the key
	if _, _, ok := c.Get([]byte("y")); !ok {
		t.Fatal("Put did not copy the key")
	}
}

func TestCacheEviction(t *testing.T) {
	c := NewCache[string]()
	var all []string
	for i := range 50 {
		all = append(all, fmt.Sprintf("s%02d", i))
	}
	scrape(c, all, 0)
	keep := all[:5]
	for range evictAfter {
		scrape(c, keep, 0)
	}
	if c.Len() != 50 {
		t.Fatalf("evicted too early: len %d", c.Len())
	}
	scrape(c, keep, 0) // the others are now unseen for evictAfter+1 scrapes
	if c.Len() != 5 {
		t.Fatalf("len %d after eviction, want 5", c.Len())
	}
	for _, s := range all {
		_, _, ok := c.Get([]byte(s))
		if want := slices.Contains(keep, s); ok != want {
			t.Fatalf("Get(%s) ok=%v, want %v", s, ok, want)
		}
	}
	var live []string
	c.Live(func(v string) { live = append(live, v) })
	slices.Sort(live)
	if !slices.Equal(live, keep) {
		t.Fatalf("Live = %v, want %v", live, keep)
	}
}

func TestCacheLiveAfterFailure(t *testing.T) {
	c := NewCache[string]()
	scrape(c, []string{"a", "b"}, 0)
	var live []string
	c.Live(func(v string) { live = append(live, v) })
	if len(live) != 2 {
		t.Fatalf("Live = %v", live)
	}
	scrape(c, nil, 0)
	live = live[:0]
	c.Live(func(v string) { live = append(live, v) })
	if len(live) != 0 {
		t.Fatalf("Live after a failed scrape = %v, want none (already stale)", live)
	}
}

// TestCacheAllocs checks the steady state: Begin, Get hits and Stale do not
// allocate.
func TestCacheAllocs(t *testing.T) {
	c := NewCache[int]()
	var keys [][]byte
	for i := range 1000 {
		keys = append(keys, fmt.Appendf(nil, `node_cpu_seconds_total{cpu="%d",mode="idle"}`, i))
	}
	c.Begin()
	for i, k := range keys {
		c.Put(k, i)
	}
	sum := 0
	allocs := testing.AllocsPerRun(50, func() {
		c.Begin()
		for _, k := range keys {
			v, _, ok := c.Get(k)
			if !ok {
				t.Fatal("miss")
			}
			sum += v
		}
		// In reverse order too: the map path, not only the next-entry hint.
		for i := len(keys) - 1; i >= 0; i -= 7 {
			c.Get(keys[i])
		}
		c.Stale(func(v int) { sum += v })
	})
	if allocs != 0 {
		t.Errorf("%v allocations per scrape, want 0", allocs)
	}
}

// A series absent from the previous scrape and back now is SeenEarlier:
// the engine counts it in scrape_series_added, as Prometheus does.
func TestCacheReturningSeries(t *testing.T) {
	c := NewCache[int]()
	c.Begin()
	c.Put([]byte("a"), 1)
	c.Put([]byte("b"), 2)
	c.Stale(func(int) {})
	c.Begin() // b absent
	c.Get([]byte("a"))
	c.Stale(func(int) {})
	c.Begin()
	if _, seen, ok := c.Get([]byte("a")); !ok || seen != SeenLastScrape {
		t.Fatalf("a: %v %v", seen, ok)
	}
	if _, seen, ok := c.Get([]byte("b")); !ok || seen != SeenEarlier {
		t.Fatalf("returning b: %v %v, want SeenEarlier", seen, ok)
	}
}

// TestCacheIndexModel drives a cache through scrapes of random subsets of
// keys in random order, with evictions, and checks every key against a
// model after each scrape: present exactly when seen within evictAfter
// scrapes, with the value it was put with. It exercises the index's
// probing, growth and backward-shift deletion on many shapes.
func TestCacheIndexModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := NewCache[int]()
	var keys [][]byte
	for i := range 400 {
		keys = append(keys, fmt.Appendf(nil, `m{i="%d"}`, i))
	}
	lastSeen := map[int]uint32{} // key index → scrape number, 1-based
	for n := uint32(1); n <= 300; n++ {
		c.Begin()
		// Phases of growth and shrinkage: at times most keys, at times few.
		width := 1 + rng.IntN(len(keys))
		if n%50 > 25 {
			width = 1 + rng.IntN(20)
		}
		for _, k := range rng.Perm(len(keys))[:rng.IntN(width)] {
			v, _, ok := c.Get(keys[k])
			_, want := lastSeen[k]
			if ok != want {
				t.Fatalf("scrape %d: Get(%s) ok=%v, want %v", n, keys[k], ok, want)
			}
			if ok && v != k {
				t.Fatalf("scrape %d: Get(%s) = %d, want %d", n, keys[k], v, k)
			}
			if !ok {
				c.Put(keys[k], k)
			}
			lastSeen[k] = n
		}
		c.Stale(func(int) {})
		for k, s := range lastSeen {
			if n-s > evictAfter {
				delete(lastSeen, k)
			}
		}
		if c.Len() != len(lastSeen) {
			t.Fatalf("scrape %d: %d entries, model has %d", n, c.Len(), len(lastSeen))
		}
	}
}

// The entry layout the memory budget counts on: 24 bytes with an 8-byte
// value (the engine's is a pointer), 8-byte aligned, no padding.
func TestCacheEntryLayout(t *testing.T) {
	var e cacheEntry[*int]
	if s, a := unsafe.Sizeof(e), unsafe.Alignof(e); s != 24 || a != 8 {
		t.Fatalf("cacheEntry[*int]: %d bytes, aligned to %d; want 24, 8", s, a)
	}
}

// refCache is the cache's protocol as it was with 32-bit iteration
// numbers (0: never seen) and no index: the model TestCacheRandomModel
// holds Cache to.
type refCache struct {
	iter    uint32
	entries map[string]*refEntry
}

type refEntry struct {
	v          int
	seen, prev uint32
}

func (r *refCache) begin() { r.iter++ }

func (r *refCache) get(k string) (int, Seen, bool) {
	e := r.entries[k]
	if e == nil {
		return 0, 0, false
	}
	if e.seen == r.iter {
		return e.v, SeenThisScrape, true
	}
	seen := SeenLastScrape
	if e.seen != r.iter-1 {
		seen = SeenEarlier
	}
	e.prev, e.seen = e.seen, r.iter
	return e.v, seen, true
}

func (r *refCache) put(k string, v int) {
	if e := r.entries[k]; e != nil {
		e.v = v
		if e.seen != r.iter {
			e.prev, e.seen = e.seen, r.iter
		}
		return
	}
	r.entries[k] = &refEntry{v: v, seen: r.iter}
}

func (r *refCache) abort() {
	for _, e := range r.entries {
		if e.seen == r.iter {
			e.seen, e.prev = e.prev, 0
		}
	}
}

func (r *refCache) stale() (stale []int) {
	for k, e := range r.entries {
		if e.seen == r.iter-1 {
			stale = append(stale, e.v)
		}
		if r.iter-e.seen > evictAfter {
			delete(r.entries, k)
		}
	}
	slices.Sort(stale)
	return stale
}

func (r *refCache) live() (live []int) {
	for _, e := range r.entries {
		if e.seen == r.iter {
			live = append(live, e.v)
		}
	}
	slices.Sort(live)
	return live
}

// TestCacheRandomModel runs more than 65536 scrapes (so the entries'
// 16-bit iteration numbers wrap) of random shapes against refCache: keys
// that stay, come and go, or vanish for longer than evictAfter; scrapes in
// exposition or random order, with duplicates, value updates, and
// failures (Abort) before or after new Puts. Every Get, every Stale, Live
// and Len must agree with the model's. With -short, a young cache and one
// started just before the wrap.
func TestCacheRandomModel(t *testing.T) {
	if testing.Short() {
		randomModel(t, 1, 3000)
		randomModel(t, 65536-3000, 6000)
		return
	}
	randomModel(t, 1, 70000)
}

func randomModel(t *testing.T, start uint32, scrapes int) {
	rng := rand.New(rand.NewPCG(3, uint64(start)))
	c := NewCache[int]()
	c.iter = start
	r := &refCache{iter: start, entries: map[string]*refEntry{}}
	var keys []string
	for i := range 48 {
		keys = append(keys, fmt.Sprintf(`m{i="%d"}`, i))
	}
	val := 0
	for n := range scrapes {
		c.Begin()
		r.begin()
		var order []int
		switch rng.IntN(6) {
		case 0: // a random subset in a random order
			order = rng.Perm(len(keys))[:rng.IntN(len(keys))]
		case 1: // nothing: everything stale, then aging towards eviction
		default: // a stable core in exposition order, churn at the end
			for i := range 16 {
				order = append(order, i)
			}
			for range rng.IntN(4) {
				order = append(order, 16+rng.IntN(len(keys)-16))
			}
		}
		if rng.IntN(20) == 0 && len(order) > 0 {
			order = append(order, order[rng.IntN(len(order))]) // a duplicate
		}
		failAt := -1
		// More failures in a young cache and just past each wrap, where a
		// never-seen mark is most easily wrong.
		if rng.IntN(10) == 0 || uint16(c.iter) < 2*evictAfter && rng.IntN(2) == 0 {
			failAt = rng.IntN(len(order) + 1)
		}
		for j, k := range order {
			if j == failAt {
				break
			}
			key := []byte(keys[k])
			v, seen, ok := c.Get(key)
			rv, rseen, rok := r.get(keys[k])
			if ok != rok || v != rv || seen != rseen {
				t.Fatalf("scrape %d: Get(%s) = %d, %d, %v; model %d, %d, %v", n, key, v, seen, ok, rv, rseen, rok)
			}
			if !ok || rng.IntN(50) == 0 {
				val++
				c.Put(key, val)
				r.put(keys[k], val)
			}
		}
		if failAt >= 0 {
			c.Abort()
			r.abort()
		}
		var stale []int
		c.Stale(func(v int) { stale = append(stale, v) })
		slices.Sort(stale)
		if want := r.stale(); !slices.Equal(stale, want) {
			t.Fatalf("scrape %d: Stale reported %v, model %v", n, stale, want)
		}
		var live []int
		c.Live(func(v int) { live = append(live, v) })
		slices.Sort(live)
		if want := r.live(); !slices.Equal(live, want) {
			t.Fatalf("scrape %d: Live %v, model %v", n, live, want)
		}
		if c.Len() != len(r.entries) {
			t.Fatalf("scrape %d: %d entries, model %d", n, c.Len(), len(r.entries))
		}
	}
}

// TestCacheIterationWrap: over three wraps of the entries' 16-bit
// iteration numbers, a series seen every scrape is never stale, and one
// that comes and goes is stale once when it goes, kept while away for up
// to evictAfter scrapes, and evicted after.
func TestCacheIterationWrap(t *testing.T) {
	c := NewCache[string]()
	const period = 29 // b: present 3 scrapes, then away 26
	for n := range 3*65536 + 100 {
		c.Begin()
		if _, seen, ok := c.Get([]byte("a")); n > 0 && (!ok || seen != SeenLastScrape) {
			t.Fatalf("scrape %d: a: %v, %v; want seen last scrape", n, seen, ok)
		} else if !ok {
			c.Put([]byte("a"), "a")
		}
		phase := n % period
		if phase < 3 {
			_, seen, ok := c.Get([]byte("b"))
			switch {
			case phase == 0 && ok:
				t.Fatalf("scrape %d: b back after %d scrapes away: still cached", n, period-3)
			case phase > 0 && (!ok || seen != SeenLastScrape):
				t.Fatalf("scrape %d: b: %v, %v; want seen last scrape", n, seen, ok)
			}
			if !ok {
				c.Put([]byte("b"), "b")
			}
		}
		var stale []string
		c.Stale(func(v string) { stale = append(stale, v) })
		if want := phase == 3; want != (len(stale) == 1) || len(stale) > 1 || want && stale[0] != "b" {
			t.Fatalf("scrape %d (iter %d): stale %v", n, c.iter, stale)
		}
		// b was last seen at phase 2: evicted once unseen for more than
		// evictAfter scrapes.
		wantLen := 2
		if phase-2 > evictAfter {
			wantLen = 1
		}
		if c.Len() != wantLen {
			t.Fatalf("scrape %d (iter %d): len %d, want %d", n, c.iter, c.Len(), wantLen)
		}
	}
}

// TestCacheAbortRestores: Abort puts back the marks that Get and Put
// changed in the failed scrape, so staleness, Seen and eviction go on as if
// the failed scrape had not seen the series, around the wrap of the 16-bit
// iteration numbers too.
func TestCacheAbortRestores(t *testing.T) {
	for _, start := range []uint32{1, 100, 65530, 65535, 65536, 2*65536 - 3} {
		t.Run(fmt.Sprint(start), func(t *testing.T) {
			c := NewCache[string]()
			c.iter = start
			get := func(k string, want Seen) {
				t.Helper()
				if _, seen, ok := c.Get([]byte(k)); !ok || seen != want {
					t.Fatalf("iter %d: Get(%s) = %v, %v; want %v", c.iter, k, seen, ok, want)
				}
			}
			stale := func(want string) {
				t.Helper()
				var got []string
				c.Stale(func(v string) { got = append(got, v) })
				slices.Sort(got)
				if strings.Join(got, ",") != want {
					t.Fatalf("iter %d: stale %v, want %q", c.iter, got, want)
				}
			}
			c.Begin()
			c.Put([]byte("a"), "a")
			c.Put([]byte("b"), "b")
			stale("")
			c.Begin() // b away: stale
			get("a", SeenLastScrape)
			stale("b")
			for range 3 { // b away 4 scrapes in all
				c.Begin()
				get("a", SeenLastScrape)
				stale("")
			}
			c.Begin() // fails after seeing a, b and a new c
			get("a", SeenLastScrape)
			get("b", SeenEarlier)
			c.Put([]byte("c"), "c")
			c.Abort()
			stale("a") // a was live; b and c were not
			if c.iter-start > evictAfter && c.Len() != 2 {
				t.Fatalf("c, new in a failed scrape, still cached: len %d", c.Len())
			}
			var live []string
			c.Live(func(v string) { live = append(live, v) })
			if len(live) != 0 {
				t.Fatalf("live after a failed scrape: %v", live)
			}
			c.Begin() // a back after the failure; b still away
			get("a", SeenEarlier)
			stale("")
			// b was last seen in the first scrape, 6 ago, not in the
			// failed one: evicted once unseen for evictAfter+1.
			for range evictAfter - 6 {
				c.Begin()
				get("a", SeenLastScrape)
				stale("")
			}
			if c.Len() < 2 {
				t.Fatal("b evicted too early")
			}
			c.Begin()
			get("a", SeenLastScrape)
			stale("")
			if c.Len() != 1 {
				t.Fatalf("b not evicted %d scrapes after it was last seen: len %d", evictAfter+1, c.Len())
			}
		})
	}
}

// TestCacheSettle: once a target's series stop changing, the entries'
// append slack and an index left oversized by evictions are given back,
// once; the steady state then allocates nothing.
func TestCacheSettle(t *testing.T) {
	c := NewCache[int]()
	var keys [][]byte
	for i := range 507 {
		keys = append(keys, fmt.Appendf(nil, `node_x{i="%d"}`, i))
	}
	run := func(keys [][]byte) {
		c.Begin()
		for i, k := range keys {
			if _, _, ok := c.Get(k); !ok {
				c.Put(k, i)
			}
		}
		c.Stale(func(int) {})
	}
	run(keys)
	if cap(c.entries) <= 507+507/8 {
		t.Fatalf("cap %d after filling: the test expects append slack", cap(c.entries))
	}
	run(keys) // the first scrape with no new entry: settles
	if n := cap(c.entries); n < 507 || n > 507+507/8 {
		t.Fatalf("cap %d after settling, want 507 to %d", n, 507+507/8)
	}
	if len(c.buckets) != 256 {
		t.Fatalf("%d buckets for 507 entries, want 256", len(c.buckets))
	}
	allocs := testing.AllocsPerRun(20, func() { run(keys) })
	if allocs != 0 {
		t.Fatalf("settled scrape: %v allocations, want 0", allocs)
	}
	for range evictAfter + 1 { // all but 50 evicted
		run(keys[:50])
	}
	if c.Len() != 50 {
		t.Fatalf("len %d, want 50", c.Len())
	}
	run(keys[:50])
	if cap(c.entries) > 50+50/8 || len(c.buckets) != 32 {
		t.Fatalf("after evictions: cap %d, %d buckets; want at most %d, 32", cap(c.entries), len(c.buckets), 50+50/8)
	}
	c.Begin()
	for i, k := range keys[:50] {
		if v, seen, ok := c.Get(k); !ok || v != i || seen != SeenLastScrape {
			t.Fatalf("Get(%s) after settling = %d, %v, %v", k, v, seen, ok)
		}
	}
}
