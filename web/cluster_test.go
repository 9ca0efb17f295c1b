package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-scraper/shoal/coord"
)

type fakeCluster struct{ st coord.Status }

func (f fakeCluster) Status() coord.Status { return f.st }

type owned int

func (o owned) Owned() int { return int(o) }

// /cluster shows every member with the target count it reports itself,
// and a member that does not answer with its error; /api/v1/cluster is
// this member's view, with ?peers=1 everyone's counts.
func TestCluster(t *testing.T) {
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(ClusterView{OwnedTargets: 1234})
	}))
	defer peer.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()

	since := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	src := fakeCluster{coord.Status{
		Self: "a", Connected: true, Registered: true, Slots: 3, Jobs: 2,
		Members: []coord.MemberStatus{
			{ID: "a", Address: deadAddr, Slot: 0, Since: since, Active: true},
			{ID: "b", Address: strings.TrimPrefix(peer.URL, "http://"), Slot: 1, Since: since, Active: true},
			{ID: "c", Address: deadAddr, Slot: 2, Since: since, Active: true},
		},
		InvalidJobs: []coord.JobStatus{{Name: "broken", Error: `scrape_interval: not a valid duration string: "often"`}},
	}}
	s := newTestServer(t, &fakeSource{}, nil)
	RegisterCluster(s, src, owned(42))

	rec := get(t, s.mux, "/api/v1/cluster")
	var v ClusterView
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || rec.Code != 200 {
		t.Fatalf("/api/v1/cluster: %d %v\n%s", rec.Code, err, rec.Body)
	}
	if v.Self != "a" || v.OwnedTargets != 42 || len(v.Members) != 3 || v.Peers != nil {
		t.Errorf("/api/v1/cluster = %+v", v)
	}

	rec = get(t, s.mux, "/api/v1/cluster?peers=1")
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Peers) != 3 || v.Peers[1].OwnedTargets != 1234 || v.Peers[2].Error == "" {
		t.Errorf("peers = %+v", v.Peers)
	}

	rec = get(t, s.mux, "/cluster")
	page := rec.Body.String()
	for _, want := range []string{"<td>b</td>", "<td>1234</td>", "<td>c</td>", "? (", "broken", "not a valid duration", "42 targets owned here"} {
		if !strings.Contains(page, want) {
			t.Errorf("/cluster lacks %q:\n%s", want, page)
		}
	}
}
