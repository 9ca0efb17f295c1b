package engine

import "sync"

// sizedPool pools objects by capacity class, classes twice apart from
// 1<<minShift to 1<<(minShift+classes-1) units (bytes, samples). An object
// goes back to the class its capacity falls in and is taken by requests
// that fit it. New objects are made for the size asked and an eighth more
// (alloc), not rounded up to a class: a 17 MB body gets a 22 MB buffer,
// not 32 MiB.
//
// Why classes: the gunzipped bodies of a huge target (a kube-state-metrics
// of 90,000 series, 17 MB) once shared one pool with those of ordinary
// targets. Its buffer went to whichever scrape came next, and the huge
// target, handed a small one, grew a new one, doubling as it went; its
// Scrape, over the old pool's 65,536-sample cap, was dropped and regrown
// by append every time. With 200 node_exporters and one such target that
// was 4 MB/s of garbage, two collections in 20 s, 1.4 MB of RSS per target
// and p99 lateness of 3 to 5 ms; pooled by class, 50 KB/s, none, 1.0 MB
// and 1 ms (bench/README.md, "A huge target").
//
// Objects of the big classes (keepShift and up) are also kept out of
// reach of the garbage collector, keepBig per class: a sync.Pool empties in
// two collections, and a huge target uses its buffer once an interval. With
// the Kafka sink and one such target, collections came every few seconds
// (GOGC is 5 once shoal allocates little, and a 20 MB allocation is more
// than that of a 200 MB heap), each emptied the pools, the next scrape
// allocated its buffer again and so set off the next collection: 2.5 MB/s,
// nine collections a minute and p99 lateness of 38 ms at 1000 targets.
// What is kept is at most keepBig of each big class a process has had in
// flight at once.
//
// The zero sizedPool pools nothing.
type sizedPool struct {
	minShift int
	keepFrom int // the first class whose objects are also kept
	classes  []sizeClass
	capOf    func(any) int
}

// keepBig is how many objects of each big class survive collections.
const keepBig = 2

type sizeClass struct {
	pool sync.Pool
	mu   sync.Mutex
	kept []any // big classes: objects collections do not take
}

func newSizedPool(minShift, classes, keepShift int, capOf func(any) int) sizedPool {
	return sizedPool{minShift: minShift, keepFrom: keepShift - minShift, classes: make([]sizeClass, classes), capOf: capOf}
}

func (p *sizedPool) take(k int) any {
	c := &p.classes[k]
	if k >= p.keepFrom {
		c.mu.Lock()
		if n := len(c.kept); n > 0 {
			x := c.kept[n-1]
			c.kept[n-1] = nil
			c.kept = c.kept[:n-1]
			c.mu.Unlock()
			return x
		}
		c.mu.Unlock()
	}
	return c.pool.Get()
}

func (p *sizedPool) give(k int, x any) {
	c := &p.classes[k]
	if k >= p.keepFrom {
		c.mu.Lock()
		if len(c.kept) < keepBig {
			c.kept = append(c.kept, x)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
	c.pool.Put(x)
}

// max is the capacity of the largest class: larger objects are not pooled,
// so one outlier does not pin memory.
func (p *sizedPool) max() int { return 1 << (p.minShift + len(p.classes) - 1) }

// alloc is the capacity to make an object with for a request of n: n and
// an eighth, so that the next request of a target whose size moves a little
// (values of another width, a series more) still fits it, or the smallest
// class's capacity (smaller objects are not pooled). With n alone, a gzip
// node_exporter scrape whose body grew by a few bytes made a new buffer.
func (p *sizedPool) alloc(n int) int { return max(n+n/8, 1<<p.minShift) }

// get returns a pooled object with capacity for at least n, or nil. Class
// k holds capacities in [2^k, 2^(k+1)) units (the last one: exactly its
// own): an object of the class at or above n always fits; one of the class
// below may, and goes back if it does not.
func (p *sizedPool) get(n int) any {
	if len(p.classes) == 0 || n > p.max() {
		return nil
	}
	k := p.class(max(n, 1))
	below := 1<<(p.minShift+k) < n // class k may hold objects too small for n
	if below {
		k++
	}
	if x := p.take(k); x != nil {
		return x
	}
	if below {
		if x := p.take(k - 1); x != nil {
			if p.capOf(x) >= n {
				return x
			}
			p.give(k-1, x)
		}
	}
	return nil
}

// put gives x, of capacity c, back to its class; x is dropped when c is
// outside the classes.
func (p *sizedPool) put(x any, c int) {
	if len(p.classes) == 0 || c > p.max() || c < 1<<p.minShift {
		return
	}
	p.give(p.class(c), x)
}

// class is the class of capacity c (1 <= c <= max): the largest k with
// 2^(minShift+k) <= c, 0 below the smallest class.
func (p *sizedPool) class(c int) int {
	k := 0
	for k+1 < len(p.classes) && 1<<(p.minShift+k+1) <= c {
		k++
	}
	return k
}
