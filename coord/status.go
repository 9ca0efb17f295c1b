package coord

import (
	"fmt"
	"sort"
	"time"
)

// Status is this member's view of the pool, for /cluster.
type Status struct {
	Self      string `json:"self"`
	Connected bool   `json:"connected"`
	// ConnectedSince is when the current connection came up: peers that
	// lost theirs use it to tell "only I am cut off" from "ZooKeeper was
	// down for everyone".
	ConnectedSince time.Time      `json:"connected_since,omitzero"`
	Session        string         `json:"session"`
	Registered     bool           `json:"registered"`
	Suspended      bool           `json:"suspended"`
	Members        []MemberStatus `json:"members"`
	Slots          int            `json:"slots"`
	RingChanged    time.Time      `json:"ring_changed"`
	Jobs           int            `json:"jobs"`
	InvalidJobs    []JobStatus    `json:"invalid_jobs"`
}

// MemberStatus is one member as this member sees it.
type MemberStatus struct {
	ID      string    `json:"id"`
	Address string    `json:"address"`
	Version string    `json:"version"`
	Slot    int       `json:"slot"`
	Started time.Time `json:"started"`
	Since   time.Time `json:"since"`
	Leaving time.Time `json:"leaving,omitzero"`
	Active  bool      `json:"active"` // owns targets now
}

// JobStatus names an invalid job and why.
type JobStatus struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// Status returns a copy of this member's view; safe from any goroutine.
func (c *Coordinator) Status() Status {
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	s := c.status
	s.Members = append([]MemberStatus(nil), s.Members...)
	s.InvalidJobs = append([]JobStatus(nil), s.InvalidJobs...)
	return s
}

// publishStatus copies Run's state into the status; Run's goroutine only.
func (c *Coordinator) publishStatus() {
	now := time.Now()
	ms := make([]MemberStatus, 0, len(c.state.Members))
	activeN := 0
	for _, m := range c.state.Members {
		a := active(m, now)
		if a {
			activeN++
		}
		ms = append(ms, MemberStatus{ID: m.ID, Address: m.Address, Version: m.Version, Slot: m.Slot, Started: m.Started, Since: m.Since, Leaving: m.Leaving, Active: a})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Slot < ms[j].Slot || ms[i].Slot == ms[j].Slot && ms[i].ID < ms[j].ID })
	c.m.members.Set(float64(activeN))
	var inv []JobStatus
	for _, je := range c.jobsOut.Invalid {
		inv = append(inv, JobStatus{Name: je.Name, Error: je.Err.Error()})
	}
	jobs := 0
	if c.jobsOut.Config != nil {
		jobs = len(c.jobsOut.Config.ScrapeConfigs)
	}
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	c.status.Connected = c.connected
	c.status.ConnectedSince = c.connectedSince
	c.status.Session = fmt.Sprintf("%#x", c.conn.SessionID())
	c.status.Registered = c.regSession != 0 && c.regSession == c.conn.SessionID()
	c.status.Members = ms
	c.status.Slots = c.state.slotCount(now)
	c.status.Jobs = jobs
	c.status.InvalidJobs = inv
}
