package web

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/shoal-scraper/shoal/discovery"
	"github.com/shoal-scraper/shoal/engine"
)

// /targets and /api/v1/targets.
//
// Both read one snapshot from TargetSource.Jobs and stream it: the HTML
// template ranges over a lazy iterator of table rows (see appendRow), the
// JSON is written target by target with a json.Encoder, both into a 32 KiB
// bufio.Writer over the ResponseWriter (net/http's own buffer is 4 KiB, so
// this cuts the number of chunks and write calls eightfold). Memory beyond
// the snapshot is O(one target) per request.
//
// Filters, in the query string, apply to both formats:
//   - job=NAME (repeatable; scrapePool=NAME is accepted as Prometheus's
//     spelling) keeps only those jobs.
//   - health=up|down|unknown (repeatable, or comma-separated) keeps only
//     targets in those states. Under a health filter a job is listed only
//     if some target matches or it has a job-level error, so
//     "?health=down" is a short list of what is broken.
//
// A job's "N/M up" always counts all its targets, filtered or not.

// writeBufferSize is the buffered writer over the ResponseWriter.
const writeBufferSize = 32 << 10

//go:embed targets.html
var targetsHTML string

var targetsTmpl = template.Must(template.New("targets").Parse(targetsHTML))

// filter selects jobs and targets. The zero value selects everything.
type filter struct {
	jobs   []string        // empty: every job
	health []engine.Health // empty: every health
}

// parseFilter reads job=, scrapePool= and health= from q. Empty values are
// ignored (an HTML form's "any" choice); an unknown health is an error.
func parseFilter(q url.Values) (filter, error) {
	var f filter
	for _, key := range []string{"job", "scrapePool"} {
		for _, j := range q[key] {
			if j != "" {
				f.jobs = append(f.jobs, j)
			}
		}
	}
	for _, v := range q["health"] {
		for h := range strings.SplitSeq(v, ",") {
			switch hh := engine.Health(strings.TrimSpace(h)); hh {
			case "":
			case engine.HealthUp, engine.HealthDown, engine.HealthUnknown:
				f.health = append(f.health, hh)
			default:
				return filter{}, fmt.Errorf("invalid health %q: want up, down or unknown", h)
			}
		}
	}
	return f, nil
}

func (f *filter) matchJob(name string) bool {
	return len(f.jobs) == 0 || slices.Contains(f.jobs, name)
}

func (f *filter) matchTarget(t *engine.TargetStatus) bool {
	return len(f.health) == 0 || slices.Contains(f.health, healthOf(t))
}

// healthOf is t.Health, with anything but up and down (the zero value
// included) read as unknown, so counts, filters and output agree.
func healthOf(t *engine.TargetStatus) engine.Health {
	switch t.Health {
	case engine.HealthUp, engine.HealthDown:
		return t.Health
	}
	return engine.HealthUnknown
}

// selectJobs applies f to a snapshot and counts each selected job's targets
// by health. The returned views point into jobs.
func selectJobs(jobs []engine.JobStatus, sd map[string][]discovery.Status, f *filter, now time.Time) []jobView {
	var out []jobView
	for i := range jobs {
		js := &jobs[i]
		if !f.matchJob(js.Name) {
			continue
		}
		v := jobView{JobStatus: js, f: f, now: now}
		for _, st := range sd[js.Name] {
			v.Discovery = append(v.Discovery, sdView{Status: st, Ago: formatAgo(now, st.LastRefresh)})
			v.sdFailing = v.sdFailing || st.Error != ""
		}
		for k := range js.Targets {
			t := &js.Targets[k]
			switch healthOf(t) {
			case engine.HealthUp:
				v.Up++
			case engine.HealthDown:
				v.Down++
			default:
				v.Unknown++
			}
			if f.matchTarget(t) {
				v.Shown++
			}
		}
		if len(f.health) > 0 && v.Shown == 0 && js.Error == "" && !v.sdFailing {
			continue
		}
		out = append(out, v)
	}
	return out
}

// jobView is one job as the HTML template sees it.
type jobView struct {
	*engine.JobStatus
	Up, Down, Unknown int // over all the job's targets
	Shown             int // targets that pass the filter
	// Discovery is the job's SD configs' state (none for static-only
	// jobs or without a DiscoverySource).
	Discovery []sdView
	sdFailing bool

	f   *filter
	now time.Time
}

// sdView is one SD config on the page.
type sdView struct {
	discovery.Status
	Ago string // since LastRefresh, "never" before the first
}

// Total is the number of the job's targets, filtered or not.
func (j jobView) Total() int { return len(j.JobStatus.Targets) }

// Rows yields the table rows of the targets that pass the filter, one at a
// time, each already escaped (see appendRow).
func (j jobView) Rows() iter.Seq[template.HTML] {
	return func(yield func(template.HTML) bool) {
		var buf []byte // scratch, reused across rows
		for k := range j.JobStatus.Targets {
			t := &j.JobStatus.Targets[k]
			if !j.f.matchTarget(t) {
				continue
			}
			buf = appendRow(buf[:0], t, j.now)
			if !yield(template.HTML(buf)) {
				return
			}
		}
	}
}

// appendRow appends one target's <tr> to dst, escaping every value.
//
// Rows are written in Go rather than in the template because they are all
// of the page's size and time. With every cell a template action (24 per
// row with five labels), html/template's reflection and escaper calls cost
// 25µs and 225 allocations per row: 2.5s for 100k targets.
// BenchmarkTargetsPage/targets=10000/format=html, benchstat over 10 runs
// each: 251ms → 39ms per page (-84%), 2249k → 168k allocs (-93%). The
// page shell stays in targets.html. The contract that keeps this
// safe: every value from the snapshot passes through appendEscaped (text
// and double-quoted attributes alike), only http and https URLs become
// links, and the health class is one of three constants. FuzzAppendRow
// checks that no value can add markup.
func appendRow(dst []byte, t *engine.TargetStatus, now time.Time) []byte {
	dst = append(dst, `<tr><td class="url">`...)
	if isHTTPURL(t.URL) {
		dst = append(dst, `<a href="`...)
		dst = appendEscaped(dst, t.URL)
		dst = append(dst, `">`...)
		dst = appendEscaped(dst, t.URL)
		dst = append(dst, `</a>`...)
	} else {
		dst = appendEscaped(dst, t.URL)
	}

	health := healthOf(t)
	dst = append(dst, `</td><td><span class="state `...)
	dst = append(dst, health...)
	dst = append(dst, `">`...)
	dst = append(dst, health...)
	dst = append(dst, `</span></td><td title="Discovered labels: `...)
	dst = appendEscaped(dst, t.DiscoveredLabels.String())
	dst = append(dst, `">`...)
	t.Labels.Range(func(l labels.Label) {
		dst = append(dst, `<span class="chip">`...)
		dst = appendEscaped(dst, l.Name)
		dst = append(dst, `="`...)
		dst = appendEscaped(dst, l.Value)
		dst = append(dst, `"</span>`...)
	})

	dst = append(dst, `</td><td class="t" title="interval `...)
	dst = append(dst, model.Duration(t.Interval).String()...)
	dst = append(dst, `, timeout `...)
	dst = append(dst, model.Duration(t.Timeout).String()...)
	if !t.NextScrape.IsZero() {
		dst = append(dst, `, next `...)
		dst = append(dst, formatAgo(now, t.NextScrape)...)
	}
	dst = append(dst, `">`...)
	dst = append(dst, formatAgo(now, t.LastScrape)...)
	dst = append(dst, `</td><td class="num">`...)
	if !t.LastScrape.IsZero() {
		dst = append(dst, formatDuration(t.LastDuration)...)
		dst = append(dst, `</td><td class="num">`...)
		dst = strconv.AppendInt(dst, int64(t.LastSamples), 10)
	} else {
		dst = append(dst, `</td><td class="num">`...)
	}
	dst = append(dst, `</td><td class="err">`...)
	dst = appendEscaped(dst, t.LastError)
	return append(dst, "</td></tr>\n"...)
}

// appendEscaped appends s to dst escaped for HTML text and for quoted
// attribute values, with the same entities as html/template.
func appendEscaped(dst []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '&':
			esc = "&amp;"
		case '"':
			esc = "&#34;"
		case '\'':
			esc = "&#39;"
		case 0:
			esc = "\uFFFD"
		default:
			continue
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, esc...)
		last = i + 1
	}
	return append(dst, s[last:]...)
}

// isHTTPURL reports whether u may be a link: only http and https, so a
// javascript: or data: URL from a hostile relabeling is shown as text.
func isHTTPURL(u string) bool {
	scheme, _, ok := strings.Cut(u, "://")
	return ok && (strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https"))
}

// pageData is the HTML template's root.
type pageData struct {
	Version   string
	Now       string
	Ready     bool
	Jobs      []jobView
	Up, Total int // over the listed jobs, all their targets
	JobFilter string
	Views     []viewLink
}

// viewLink is one of the "show: all | up | down | unknown" links.
type viewLink struct {
	Name   string
	Query  string
	Active bool
}

func healthLinks(q url.Values, f *filter) []viewLink {
	cur := ""
	if len(f.health) == 1 {
		cur = string(f.health[0])
	}
	var out []viewLink
	for _, h := range []string{"", "up", "down", "unknown"} {
		qq := url.Values{}
		for _, key := range []string{"job", "scrapePool"} {
			if v, ok := q[key]; ok {
				qq[key] = v
			}
		}
		name := "all"
		if h != "" {
			qq.Set("health", h)
			name = h
		}
		out = append(out, viewLink{
			Name:   name,
			Query:  "?" + qq.Encode(),
			Active: (h == "" && len(f.health) == 0) || (h != "" && h == cur),
		})
	}
	return out
}

// serveTargets serves the HTML page, or JSON when asked by ?format=json or
// by an Accept header that prefers application/json to text/html.
func (s *Server) serveTargets(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Accept")
	asJSON, err := wantsJSON(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if asJSON {
		s.serveTargetsAPI(w, r)
		return
	}
	q := r.URL.Query()
	f, err := parseFilter(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := s.cfg.Now()
	data := pageData{
		Version:   s.cfg.Version,
		Now:       now.UTC().Format(time.RFC3339),
		Ready:     s.src.Ready(),
		Jobs:      selectJobs(s.src.Jobs(), s.sdStatus(), &f, now),
		JobFilter: strings.Join(f.jobs, ", "),
		Views:     healthLinks(q, &f),
	}
	for _, j := range data.Jobs {
		data.Up += j.Up
		data.Total += j.Total()
	}

	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw := &recordingWriter{w: w}
	bw := bufio.NewWriterSize(rw, writeBufferSize)
	err = targetsTmpl.Execute(bw, data)
	if err == nil {
		err = bw.Flush()
	}
	s.logRenderError(r.URL.Path, rw, err)
}

// recordingWriter remembers whether writing to the client failed, to tell a
// client that went away from a rendering bug.
type recordingWriter struct {
	w   http.ResponseWriter
	err error
}

func (rw *recordingWriter) Write(p []byte) (int, error) {
	n, err := rw.w.Write(p)
	if err != nil && rw.err == nil {
		rw.err = err
	}
	return n, err
}

// logRenderError logs a failure after the status line was sent, when
// nothing can be told to the client any more. A failed write is the client
// going away (debug); any other error is a bug (error).
func (s *Server) logRenderError(page string, rw *recordingWriter, err error) {
	switch {
	case err == nil:
	case rw.err != nil:
		s.logger.Debug("writing page", "page", page, "err", err)
	default:
		s.logger.Error("rendering page", "page", page, "err", err)
	}
}

// wantsJSON decides the /targets format: ?format=json|html wins, then the
// Accept header: JSON if it lists application/json and lists it before
// text/html (or has no text/html). q-values are not weighed; browsers list
// text/html first and API clients ask for JSON alone.
func wantsJSON(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "json":
		return true, nil
	case "html":
		return false, nil
	case "":
	default:
		return false, fmt.Errorf("invalid format %q: want json or html", f)
	}
	jsonAt, htmlAt := -1, -1
	i := 0
	for _, h := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(h, ",") {
			mt, _, _ := strings.Cut(part, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case "application/json":
				if jsonAt < 0 {
					jsonAt = i
				}
			case "text/html":
				if htmlAt < 0 {
					htmlAt = i
				}
			}
			i++
		}
	}
	return jsonAt >= 0 && (htmlAt < 0 || jsonAt < htmlAt), nil
}

// apiTarget is one element of activeTargets. Field names follow
// Prometheus's /api/v1/targets where Prometheus has the field; job, key,
// lastSamples and nextScrape are shoal's.
type apiTarget struct {
	Job                string        `json:"job"`
	ScrapePool         string        `json:"scrapePool"` // = job
	Key                string        `json:"key"`
	ScrapeURL          string        `json:"scrapeUrl"`
	Labels             labels.Labels `json:"labels"`
	DiscoveredLabels   labels.Labels `json:"discoveredLabels"`
	Health             engine.Health `json:"health"`
	LastScrape         time.Time     `json:"lastScrape"`         // RFC3339Nano; zero time if never
	LastScrapeDuration float64       `json:"lastScrapeDuration"` // seconds
	LastError          string        `json:"lastError"`
	LastSamples        int           `json:"lastSamples"`
	ScrapeInterval     string        `json:"scrapeInterval"` // Prometheus duration, "15s"
	ScrapeTimeout      string        `json:"scrapeTimeout"`
	NextScrape         time.Time     `json:"nextScrape"`
}

// apiJob is one element of jobs: job-level state Prometheus has no place
// for. Discovery lists the job's SD configs (not static_configs): each
// with config ("dns_sd_configs[0]"), mechanism, targets (what it
// contributes now, the last good ones while it fails), lastRefresh and
// error ("" when the last refresh succeeded).
type apiJob struct {
	Name      string             `json:"name"`
	Error     string             `json:"error"`
	Discovery []discovery.Status `json:"discovery,omitempty"`
}

// sdStatus is the discovery state, or nil without a DiscoverySource.
func (s *Server) sdStatus() map[string][]discovery.Status {
	if s.cfg.Discovery == nil {
		return nil
	}
	return s.cfg.Discovery.Status()
}

// serveTargetsAPI streams
//
//	{"status":"success","data":{"activeTargets":[...],"jobs":[...]}}
//
// with the same filters as the HTML page. A bad filter gets Prometheus's
// error shape with status 400.
func (s *Server) serveTargetsAPI(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(struct {
			Status    string `json:"status"`
			ErrorType string `json:"errorType"`
			Error     string `json:"error"`
		}{"error", "bad_data", err.Error()})
		return
	}
	jobs := selectJobs(s.src.Jobs(), s.sdStatus(), &f, time.Time{})

	w.Header().Set("Content-Type", "application/json")
	rw := &recordingWriter{w: w}
	bw := bufio.NewWriterSize(rw, writeBufferSize)
	s.logRenderError(r.URL.Path, rw, writeTargetsJSON(bw, jobs, &f))
}

// writeTargetsJSON writes the API document for the selected jobs and
// flushes bw. It returns the first write error.
func writeTargetsJSON(bw *bufio.Writer, jobs []jobView, f *filter) error {
	enc := json.NewEncoder(bw)
	_, _ = bw.WriteString(`{"status":"success","data":{"activeTargets":[`)
	first := true
	var at apiTarget // reused: Encode is done with it before the next target
	for _, j := range jobs {
		for k := range j.JobStatus.Targets {
			t := &j.JobStatus.Targets[k]
			if !f.matchTarget(t) {
				continue
			}
			if !first {
				_ = bw.WriteByte(',')
			}
			first = false
			at = apiTarget{
				Job:                t.Job,
				ScrapePool:         t.Job,
				Key:                t.Key,
				ScrapeURL:          t.URL,
				Labels:             t.Labels,
				DiscoveredLabels:   t.DiscoveredLabels,
				Health:             healthOf(t),
				LastScrape:         t.LastScrape,
				LastScrapeDuration: t.LastDuration.Seconds(),
				LastError:          t.LastError,
				LastSamples:        t.LastSamples,
				ScrapeInterval:     model.Duration(t.Interval).String(),
				ScrapeTimeout:      model.Duration(t.Timeout).String(),
				NextScrape:         t.NextScrape,
			}
			// bufio.Writer errors are sticky, so checking Encode is
			// enough to stop early when the client has gone.
			if err := enc.Encode(&at); err != nil {
				return err
			}
		}
	}
	_, _ = bw.WriteString(`],"jobs":[`)
	for i, j := range jobs {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		aj := apiJob{Name: j.Name, Error: j.Error}
		for _, d := range j.Discovery {
			aj.Discovery = append(aj.Discovery, d.Status)
		}
		if err := enc.Encode(aj); err != nil {
			return err
		}
	}
	_, _ = bw.WriteString("]}}\n")
	return bw.Flush()
}

// formatAgo renders now-t as "3.2s ago" ("in 2s" for a time ahead of now),
// or "never" for the zero time.
func formatAgo(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + formatDuration(-d)
	}
	return formatDuration(d) + " ago"
}

// formatDuration renders d compactly at a precision fit for humans:
// "850µs", "52.3ms", "3.2s", "2m5s".
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	default:
		return d.Round(time.Second).String()
	}
}
