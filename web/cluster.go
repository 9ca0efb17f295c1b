package web

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sync"
	"time"

	"github.com/shoal-scraper/shoal/coord"
)

// ClusterSource is this member's view of the pool; *coord.Coordinator
// satisfies it.
type ClusterSource interface {
	Status() coord.Status
}

// OwnedCounter counts the targets this member scrapes; *engine.Engine
// satisfies it.
type OwnedCounter interface {
	Owned() int
}

// ClusterView is the JSON of /api/v1/cluster.
type ClusterView struct {
	coord.Status
	// OwnedTargets is how many targets this member scrapes now.
	OwnedTargets int `json:"owned_targets"`
	// Peers, with ?peers=1 (and on the HTML page): every member's own
	// count, asked from its /api/v1/cluster.
	Peers []PeerView `json:"peers,omitempty"`
}

// PeerView is one member's answer, or why there is none.
type PeerView struct {
	ID           string `json:"id"`
	Address      string `json:"address"`
	OwnedTargets int    `json:"owned_targets"`
	Error        string `json:"error,omitempty"`
}

// RegisterCluster adds /cluster (HTML) and /api/v1/cluster (JSON) to s.
func RegisterCluster(s *Server, c ClusterSource, owned OwnedCounter) {
	h := &clusterHandler{c: c, owned: owned, client: &http.Client{Timeout: 2 * time.Second}}
	s.Handle("GET /api/v1/cluster", http.HandlerFunc(h.api))
	s.Handle("GET /cluster", http.HandlerFunc(h.page))
}

type clusterHandler struct {
	c      ClusterSource
	owned  OwnedCounter
	client *http.Client
}

func (h *clusterHandler) view(ctx context.Context, peers bool) ClusterView {
	v := ClusterView{Status: h.c.Status(), OwnedTargets: h.owned.Owned()}
	if peers {
		v.Peers = FetchPeers(ctx, h.client, v.Members)
	}
	return v
}

func (h *clusterHandler) api(w http.ResponseWriter, r *http.Request) {
	v := h.view(r.Context(), r.URL.Query().Get("peers") != "")
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// FetchPeers asks every member for its own target count, concurrently.
func FetchPeers(ctx context.Context, client *http.Client, members []coord.MemberStatus) []PeerView {
	out := make([]PeerView, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i] = PeerView{ID: m.ID, Address: m.Address}
		wg.Go(func() {
			n, err := peerOwned(ctx, client, m.Address)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].OwnedTargets = n
		})
	}
	wg.Wait()
	return out
}

func peerOwned(ctx context.Context, client *http.Client, addr string) (int, error) {
	var v ClusterView
	err := coord.FetchCluster(ctx, client, addr, &v)
	return v.OwnedTargets, err
}

func (h *clusterHandler) page(w http.ResponseWriter, r *http.Request) {
	v := h.view(r.Context(), true)
	peer := map[string]PeerView{}
	for _, p := range v.Peers {
		peer[p.ID] = p
	}
	type row struct {
		coord.MemberStatus
		Self  bool
		Owned string
	}
	rows := make([]row, len(v.Members))
	for i, m := range v.Members {
		p := peer[m.ID]
		owned := fmt.Sprint(p.OwnedTargets)
		if p.Error != "" {
			owned = "? (" + p.Error + ")"
		}
		rows[i] = row{MemberStatus: m, Self: m.ID == v.Self, Owned: owned}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = clusterTmpl.Execute(w, struct {
		V    ClusterView
		Rows []row
		Now  string
	}{v, rows, time.Now().UTC().Format(time.RFC3339)})
}

var clusterTmpl = template.Must(template.New("cluster").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05.000")
	},
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>shoal cluster</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.self{font-weight:bold}.err{color:#b00}</style>
</head><body>
<h1>Cluster</h1>
<p>Member <b>{{.V.Self}}</b> ·
{{if .V.Connected}}ZooKeeper session {{.V.Session}}{{else}}<span class="err">not connected to ZooKeeper</span>{{end}}
{{if .V.Suspended}} · <span class="err">suspended: scraping nothing until re-registered</span>{{end}}
· {{.V.OwnedTargets}} targets owned here · ring of {{.V.Slots}} slots, last changed {{ts .V.RingChanged}} · {{.V.Jobs}} jobs · {{.Now}}</p>
<table><tr><th>slot</th><th>member</th><th>address</th><th>version</th><th>owns targets</th><th>targets owned</th><th>since</th><th>leaving</th></tr>
{{range .Rows}}<tr{{if .Self}} class="self"{{end}}><td>{{.Slot}}</td><td>{{.ID}}</td><td><a href="http://{{.Address}}/cluster">{{.Address}}</a></td><td>{{.Version}}</td><td>{{if .Active}}yes{{else}}no{{end}}</td><td>{{.Owned}}</td><td>{{ts .Since}}</td><td>{{ts .Leaving}}</td></tr>
{{end}}</table>
{{if .V.InvalidJobs}}<h2>Invalid jobs (skipped)</h2><ul>{{range .V.InvalidJobs}}<li class="err"><b>{{.Name}}</b>: {{.Error}}</li>{{end}}</ul>{{end}}
<p><a href="/targets">targets</a> · <a href="/api/v1/cluster?peers=1">JSON</a></p>
</body></html>
`))
