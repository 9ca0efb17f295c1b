package bench

import (
	"context"
	"fmt"
	"math"
)

// RampConfig raises one scraper's target count step by step, each step a
// fresh RunE2E, until the scraper stops keeping up: fewer than MinServed of
// the scheduled scrapes served, or its core saturated. The largest
// samples/s of a step that kept up is the scraper's maximum sustained rate
// on one core. Where a step fails, steps halfway (geometrically) between
// the last that kept up and the first that did not narrow the maximum
// down, until they are at most Precision apart.
type RampConfig struct {
	// Base is every step's configuration but Targets. Its Interval
	// defaults to 1s, and its Duration to 6s here.
	Base E2EConfig
	// Start is the first step's target count (default 250); each next
	// step has Factor times as many (default 1.5).
	Start  int
	Factor float64
	// MaxTargets ends the ramp (default 15000: the scraper holds a
	// connection per target, and a process may have 20000 descriptors).
	MaxTargets int
	// MinServed is the served fraction a step needs (default 0.99), and
	// Saturated the core share at which the scraper's core counts as full
	// (default 0.95).
	MinServed, Saturated float64
	// Precision is how far apart (a ratio of target counts) the last
	// step that kept up and the first that did not may be when the ramp
	// ends (default 1.15: with Factor 1.5, two steps between them).
	Precision float64

	// run measures one step; RunE2E unless a test sets it.
	run func(context.Context, E2EConfig) (E2EResult, error)
}

func (c *RampConfig) setDefaults() {
	if c.Base.Interval == 0 {
		c.Base.Interval = 1e9
	}
	if c.Base.Duration == 0 {
		c.Base.Duration = 6e9
	}
	if c.Start == 0 {
		c.Start = 250
	}
	if c.Factor == 0 {
		c.Factor = 1.5
	}
	if c.MaxTargets == 0 {
		c.MaxTargets = 15000
	}
	if c.MinServed == 0 {
		c.MinServed = 0.99
	}
	if c.Saturated == 0 {
		c.Saturated = saturatedCore
	}
	if c.Precision <= 1 {
		c.Precision = 1.15
	}
	if c.run == nil {
		c.run = RunE2E
	}
}

// RampResult is one scraper's ramp.
type RampResult struct {
	Scraper string `json:"scraper"`
	// Steps in the order run; a step that failed and was run again
	// appears twice. After the first step that failed come steps at the
	// geometric mean of the closest target counts that kept up and that
	// did not, until those are at most Precision apart.
	Steps []E2EResult `json:"steps"`
	// MaxSustained is the highest samples/s of a step that served at least
	// MinServed of its scrapes, counting no more than its scheduled
	// scrapes' samples; MaxSustainedTargets its target count.
	MaxSustained        float64 `json:"max_sustained_samples_per_sec"`
	MaxSustainedTargets int     `json:"max_sustained_targets"`
	// Stop says why the ramp ended.
	Stop string `json:"stop"`
}

// saturatedCore is the share of its core at which a scraper counts as
// saturated (RampConfig.Saturated's default).
const saturatedCore = 0.95

// RunRamp runs the ramp cfg describes.
func RunRamp(ctx context.Context, cfg RampConfig) (RampResult, error) {
	cfg.setDefaults()
	if cfg.Factor <= 1 || cfg.Start <= 0 {
		return RampResult{}, fmt.Errorf("ramp: start %d, factor %g: need start > 0 and factor > 1", cfg.Start, cfg.Factor)
	}
	rr := RampResult{Scraper: cfg.Base.Scraper}
	// step runs n targets and says whether the scraper kept up. The
	// machine is shared: a step that fails is run once more, so one
	// disturbed window does not end the ramp; not when it failed with its
	// core full, as a second run would for the same lack of CPU.
	step := func(n int) (r E2EResult, kept bool, runs int, err error) {
		c := cfg.Base
		c.Targets = n
		for runs < 2 && !kept {
			if r, err = cfg.run(ctx, c); err != nil {
				return r, false, runs, err
			}
			runs++
			rr.Steps = append(rr.Steps, r)
			kept = r.Served >= cfg.MinServed && r.WarmedUp
			if !kept && r.CoreUtil >= cfg.Saturated {
				break
			}
		}
		// A step that served more than its schedule was working off a
		// backlog from its start (it kept up, with room to spare): what it
		// sustains is its scheduled rate, not the catch-up's.
		if sustained := r.SamplesPerSec / max(1, r.Served); kept && sustained > rr.MaxSustained {
			rr.MaxSustained, rr.MaxSustainedTargets = sustained, n
		}
		return r, kept, runs, nil
	}
	last := 0 // the last step that kept up
	for n := cfg.Start; ; n = int(math.Ceil(float64(n) * cfg.Factor)) {
		if n > cfg.MaxTargets {
			rr.Stop = fmt.Sprintf("reached the ramp's limit of %d targets", cfg.MaxTargets)
			return rr, nil
		}
		r, kept, runs, err := step(n)
		if err != nil {
			return rr, err
		}
		switch {
		case !kept:
			rr.Stop = fmt.Sprintf("%d targets: %.2f%% of the scheduled scrapes served", n, 100*r.Served)
			if !r.WarmedUp {
				rr.Stop += " (never reached a steady state after start)"
			}
			if r.CoreUtil >= cfg.Saturated {
				rr.Stop += fmt.Sprintf(", core saturated (%.0f%%)", 100*r.CoreUtil)
			}
			if runs > 1 {
				rr.Stop += ", twice"
			}
			// The true limit lies between the last step that kept up
			// and this one, up to Factor apart: each step at their
			// geometric mean halves that uncertainty. A single grid step
			// of 1.5 left a fifth of the maximum unmeasured.
			for lo, hi := last, n; lo > 0 && float64(hi) > cfg.Precision*float64(lo); {
				mid := int(math.Round(math.Sqrt(float64(lo) * float64(hi))))
				if mid <= lo || mid >= hi {
					break
				}
				_, midKept, _, err := step(mid)
				if err != nil {
					return rr, err
				}
				if midKept {
					rr.Stop += fmt.Sprintf("; %d targets kept up", mid)
					lo = mid
				} else {
					rr.Stop += fmt.Sprintf("; %d targets did not keep up either", mid)
					hi = mid
				}
			}
			return rr, nil
		case r.CoreUtil >= cfg.Saturated:
			rr.Stop = fmt.Sprintf("%d targets: core saturated (%.0f%%)", n, 100*r.CoreUtil)
			return rr, nil
		case r.FarmCoreUtil >= cfg.Saturated:
			rr.Stop = fmt.Sprintf("%d targets: the farm's core saturated (%.0f%%): the scraper's limit is higher", n, 100*r.FarmCoreUtil)
			return rr, nil
		}
		last = n
	}
}
