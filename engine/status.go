package engine

import (
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Health of a target, as on Prometheus's /targets page.
type Health string

const (
	HealthUnknown Health = "unknown" // not scraped yet
	HealthUp      Health = "up"
	HealthDown    Health = "down"
)

// TargetStatus is a point-in-time copy of one target's state, for /targets.
// It shares nothing with the engine: callers may keep it.
type TargetStatus struct {
	Job              string
	Key              string // job + "/" + instance
	URL              string
	Labels           labels.Labels // target labels after relabeling
	DiscoveredLabels labels.Labels // labels before relabeling
	Health           Health
	LastScrape       time.Time // start of the last scrape; zero if none yet
	LastDuration     time.Duration
	LastError        string
	LastSamples      int // samples after metric relabeling in the last scrape
	Interval         time.Duration
	Timeout          time.Duration
	NextScrape       time.Time
}

// JobStatus describes one job: its targets and any job-level problem (an
// invalid job skipped, target_limit exceeded, a discovery failure).
type JobStatus struct {
	Name    string
	Error   string
	Targets []TargetStatus
}

// Owned returns how many targets this member owns now, over all jobs: not
// counting targets it gains or loses at a hand-over instant still ahead.
func (e *Engine) Owned() int {
	now := time.Now().UnixNano()
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, j := range e.jobs {
		for _, t := range j.targets {
			if f, u := t.from.Load(), t.until.Load(); f <= now && (u == 0 || now < u) {
				n++
			}
		}
	}
	return n
}
