package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"

	"github.com/shoal-scraper/shoal/produce"
	"github.com/shoal-scraper/shoal/ring"
)

// BenchmarkSetOwner is the engine's share of a rebalance: a member joins a
// pool of 10 (or leaves it), and every target's owner is recomputed and the
// gained ones scheduled, for 100k targets in one job.
//
//	go test -run '^$' -bench SetOwner -benchtime=10x ./engine/
func BenchmarkSetOwner(b *testing.B) {
	const n = 100_000
	e, err := New(Config{Workers: 1, RequireOwner: true}, &produce.Discard{}, prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.ApplyConfig(mustConfig(b, "scrape_configs:\n- job_name: j\n  scrape_interval: 15s\n")); err != nil {
		b.Fatal(err)
	}
	g := &targetgroup.Group{Source: "bench"}
	for i := range n {
		g.Targets = append(g.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(fmt.Sprintf("10.%d.%d.%d:9100", i>>16, (i>>8)&255, i&255))})
	}
	e.SyncTargets("j", []*targetgroup.Group{g})
	slots := make([]string, 11)
	for i := range 10 {
		slots[i] = fmt.Sprintf("m%d", i)
	}
	small, big := ring.New(slots[:10], "m0"), ring.New(append(slots[:10:10], "m10"), "m0")
	e.SetOwner(small, time.Time{})
	b.ResetTimer()
	for i := range b.N {
		r := small
		if i%2 == 0 {
			r = big
		}
		e.SetOwner(r, time.Time{})
	}
	b.StopTimer()
	e.bg.Wait()
}
