package bench

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// histogram is a Prometheus histogram read back from a registry: cumulative
// counts per upper bound, ascending, the +Inf bucket being count.
type histogram struct {
	bounds []float64
	counts []uint64 // cumulative, counts[i] observations ≤ bounds[i]
	count  uint64
}

// gathered is a registry's histograms and counters (and gauges) by series, keyed as
// name{label="value",...} with labels sorted, as Gather returns them. Read
// this way rather than through client_model's types so that this package
// needs no direct dependency on them.
type gathered struct {
	hists    map[string]histogram
	counters map[string]float64
}

func gather(g prometheus.Gatherer) (gathered, error) {
	mfs, err := g.Gather()
	if err != nil {
		return gathered{}, fmt.Errorf("bench: gathering engine metrics: %w", err)
	}
	out := gathered{hists: map[string]histogram{}, counters: map[string]float64{}}
	var key strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key.Reset()
			key.WriteString(mf.GetName())
			if len(m.GetLabel()) > 0 {
				sep := byte('{')
				for _, lp := range m.GetLabel() {
					key.WriteByte(sep)
					sep = ','
					key.WriteString(lp.GetName())
					key.WriteString("=")
					key.WriteString(strconv.Quote(lp.GetValue()))
				}
				key.WriteByte('}')
			}
			if c := m.GetCounter(); c != nil {
				out.counters[key.String()] = c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				out.counters[key.String()] = g.GetValue()
			}
			if sm := m.GetSummary(); sm != nil {
				out.counters[key.String()+"_count"] = float64(sm.GetSampleCount())
			}
			if h := m.GetHistogram(); h != nil {
				var hg histogram
				for _, b := range h.GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						continue // the sample count says the same
					}
					hg.bounds = append(hg.bounds, b.GetUpperBound())
					hg.counts = append(hg.counts, b.GetCumulativeCount())
				}
				hg.count = h.GetSampleCount()
				out.hists[key.String()] = hg
			}
		}
	}
	return out, nil
}

// histogram returns the histogram series key, or an error naming it.
func (g gathered) histogram(key string) (histogram, error) {
	h, ok := g.hists[key]
	if !ok {
		return h, fmt.Errorf("bench: the engine exports no histogram %s", key)
	}
	return h, nil
}

// sub returns h − o, the observations between two reads of one histogram.
func (h histogram) sub(o histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]uint64, len(h.counts)), count: h.count - o.count}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(o.counts) {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: find the bucket holding rank q×count and interpolate linearly
// within it, the first bucket starting at 0. A rank in the +Inf bucket
// returns the highest finite bound. NaN without observations.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 || len(h.bounds) == 0 {
		return math.NaN()
	}
	rank := q * float64(h.count)
	i := sort.Search(len(h.bounds), func(i int) bool { return float64(h.counts[i]) >= rank })
	if i == len(h.bounds) {
		return h.bounds[len(h.bounds)-1]
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = h.bounds[i-1], float64(h.counts[i-1])
	}
	in := float64(h.counts[i]) - below
	if in == 0 {
		return h.bounds[i]
	}
	return lo + (h.bounds[i]-lo)*(rank-below)/in
}

// fractionBelow estimates the fraction of observations ≤ x, exact when x
// is a bucket bound, interpolated linearly within a bucket otherwise. NaN
// without observations.
func (h histogram) fractionBelow(x float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	lo, below := 0.0, 0.0
	for i, b := range h.bounds {
		c := float64(h.counts[i])
		if x <= b {
			// x == b gives c exactly.
			return (below + (c-below)*(x-lo)/(b-lo)) / float64(h.count)
		}
		lo, below = b, c
	}
	return below / float64(h.count) // x beyond the last bound: the +Inf bucket is unknown
}
