package coord_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"

	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/coord"
	"github.com/shoal-scraper/shoal/engine"
	"github.com/shoal-scraper/shoal/internal/zktest"
	"github.com/shoal-scraper/shoal/produce"
	"github.com/shoal-scraper/shoal/ring"
)

// recorder is a Handler that keeps the last ring and signals each change.
type recorder struct {
	mu      sync.Mutex
	ring    *ring.Ring
	at      time.Time
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) SetJobs(coord.Jobs) {}
func (r *recorder) Resume()            {}
func (r *recorder) SetOwner(rg *ring.Ring, at time.Time) {
	r.mu.Lock()
	r.ring, r.at = rg, at
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) members() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ring.Members()
}

func root(t testing.TB) string {
	return fmt.Sprintf("/coord-test-%d", time.Now().UnixNano())
}

func startCoord(t testing.TB, ctx context.Context, wg *sync.WaitGroup, servers []string, root, id string, h coord.Handler) *coord.Coordinator {
	t.Helper()
	c, err := coord.New(coord.Config{Servers: servers, Root: root, MemberID: id, Address: "127.0.0.1:1", SessionTimeout: 2 * time.Second, HandoverDelay: 200 * time.Millisecond}, h, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	return c
}

// Members that start at the same moment race for ring slots: each must end
// up in its own slot, and all must agree on the ring.
func TestConcurrentJoinsGetDistinctSlots(t *testing.T) {
	servers := []string{zktest.Addr(t)}
	r := root(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	const n = 6
	recs := make([]*recorder, n)
	coords := make([]*coord.Coordinator, n)
	for i := range n {
		recs[i] = newRecorder()
		coords[i] = startCoord(t, ctx, &wg, servers, r, fmt.Sprintf("m%d", i), recs[i])
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		agree := true
		for _, rc := range recs {
			agree = agree && len(rc.members()) == n
		}
		if agree {
			break
		}
		if time.Now().After(deadline) {
			for i, rc := range recs {
				t.Logf("m%d sees %v", i, rc.members())
			}
			t.Fatal("members did not converge on a ring of all of them")
		}
		time.Sleep(20 * time.Millisecond)
	}
	slots := map[int]string{}
	for i, c := range coords {
		for _, m := range c.Status().Members {
			if m.ID != fmt.Sprintf("m%d", i) {
				continue
			}
			if other, dup := slots[m.Slot]; dup {
				t.Errorf("m%d and %s both hold slot %d", i, other, m.Slot)
			}
			slots[m.Slot] = m.ID
		}
	}
	if len(slots) != n {
		t.Errorf("%d distinct slots for %d members: %v", len(slots), n, slots)
	}
	for i, rc := range recs[1:] {
		if fmt.Sprint(rc.members()) != fmt.Sprint(recs[0].members()) {
			t.Errorf("m%d's ring %v differs from m0's %v", i+1, rc.members(), recs[0].members())
		}
	}
}

// BenchmarkRebalance measures a rebalance end to end at 100k targets: from
// a member node appearing in ZooKeeper (a join that takes effect at once)
// to the engine having recomputed and rescheduled every target; then the
// same for the node going away.
//
//	scripts/testenv.sh up zookeeper && set -a && . .testenv/env && set +a
//	go test -run '^$' -bench Rebalance -benchtime=20x ./coord/
func BenchmarkRebalance(b *testing.B) {
	servers := []string{zktest.Addr(b)}
	r := root(b)
	e, err := engine.New(engine.Config{Workers: 1, RequireOwner: true}, &produce.Discard{}, prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Parse([]byte("scrape_configs:\n- job_name: j\n  scrape_interval: 15s\n"), "bench.yml")
	if err != nil {
		b.Fatal(err)
	}
	if err := e.ApplyConfig(cfg); err != nil {
		b.Fatal(err)
	}
	g := &targetgroup.Group{Source: "bench"}
	for i := range 100_000 {
		g.Targets = append(g.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(fmt.Sprintf("10.%d.%d.%d:9100", i>>16, (i>>8)&255, i&255))})
	}
	e.SyncTargets("j", []*targetgroup.Group{g})
	h := &engineHandler{e: e, rec: newRecorder()}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	startCoord(b, ctx, &wg, servers, r, "self", h)
	waitMembers(b, h.rec, 1)

	conn, _ := zktest.Connect(b, servers, 5*time.Second)
	peer := coord.Member{Address: "127.0.0.1:2", Slot: 1}
	b.ResetTimer()
	for range b.N {
		peer.Since = time.Now().Add(-time.Second) // in force at once
		if err := coord.RegisterForTest(conn, r, "peer", peer); err != nil {
			b.Fatal(err)
		}
		waitMembers(b, h.rec, 2)
		if err := conn.Delete(r+"/members/peer", -1); err != nil {
			b.Fatal(err)
		}
		waitMembers(b, h.rec, 1)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N)/1e6, "ms/rebalance")
}

type engineHandler struct {
	e   *engine.Engine
	rec *recorder
}

func (h *engineHandler) SetJobs(coord.Jobs) {}
func (h *engineHandler) Resume()            { h.e.Resume() }
func (h *engineHandler) SetOwner(r *ring.Ring, at time.Time) {
	h.e.SetOwner(r, at)
	h.rec.SetOwner(r, at)
}

func waitMembers(b testing.TB, rc *recorder, n int) {
	deadline := time.Now().Add(10 * time.Second)
	for len(rc.members()) != n {
		select {
		case <-rc.changed:
		case <-time.After(time.Until(deadline)):
			b.Fatalf("ring did not reach %d members: %v", n, rc.members())
		}
	}
}
