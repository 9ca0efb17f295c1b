package parse

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
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
