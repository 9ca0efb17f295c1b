package engine

import "sync"

// sizedPool pools objects by capacity class, classes twice apart from
// 1<<minShift to 1<<(minShift+classes-1) units (bytes, samples). An object
// goes back to the class its capacity fills and is taken by requests that
// fit it.
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
type sizedPool struct {
	minShift int
	pools    []sync.Pool
}

func newSizedPool(minShift, classes int) sizedPool {
	return sizedPool{minShift: minShift, pools: make([]sync.Pool, classes)}
}

// max is the capacity of the largest class: larger objects are not pooled,
// so one outlier does not pin memory.
func (p *sizedPool) max() int { return 1 << (p.minShift + len(p.pools) - 1) }

// get returns a pooled object of the smallest class with room for n, and
// that class's capacity to make one with when the pool is empty; for n
// above max, nil and n.
func (p *sizedPool) get(n int) (any, int) {
	if n > p.max() {
		return nil, n
	}
	k := 0
	for 1<<(p.minShift+k) < n {
		k++
	}
	return p.pools[k].Get(), 1 << (p.minShift + k)
}

// put gives x, of capacity c, back to the largest class not above c; x is
// dropped when c is outside the classes.
func (p *sizedPool) put(x any, c int) {
	if c > p.max() || c < 1<<p.minShift {
		return
	}
	k := len(p.pools) - 1
	for 1<<(p.minShift+k) > c {
		k--
	}
	p.pools[k].Put(x)
}
