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
// The zero sizedPool pools nothing.
type sizedPool struct {
	minShift int
	pools    []sync.Pool
	capOf    func(any) int
}

func newSizedPool(minShift, classes int, capOf func(any) int) sizedPool {
	return sizedPool{minShift: minShift, pools: make([]sync.Pool, classes), capOf: capOf}
}

// max is the capacity of the largest class: larger objects are not pooled,
// so one outlier does not pin memory.
func (p *sizedPool) max() int { return 1 << (p.minShift + len(p.pools) - 1) }

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
	if len(p.pools) == 0 || n > p.max() {
		return nil
	}
	k := p.class(max(n, 1))
	below := 1<<(p.minShift+k) < n // class k may hold objects too small for n
	if below {
		k++
	}
	if k < len(p.pools) {
		if x := p.pools[k].Get(); x != nil {
			return x
		}
	}
	if below {
		if x := p.pools[k-1].Get(); x != nil {
			if p.capOf(x) >= n {
				return x
			}
			p.pools[k-1].Put(x)
		}
	}
	return nil
}

// put gives x, of capacity c, back to its class; x is dropped when c is
// outside the classes.
func (p *sizedPool) put(x any, c int) {
	if len(p.pools) == 0 || c > p.max() || c < 1<<p.minShift {
		return
	}
	p.pools[p.class(c)].Put(x)
}

// class is the class of capacity c (1 <= c <= max): the largest k with
// 2^(minShift+k) <= c, 0 below the smallest class.
func (p *sizedPool) class(c int) int {
	k := 0
	for k+1 < len(p.pools) && 1<<(p.minShift+k+1) <= c {
		k++
	}
	return k
}
