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
// on one core.
type RampConfig struct {
	// Base is every step's configuration but Targets. Its Interval
	// defaults to 1s and its Duration to 6s here.
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
		c.Saturated = 0.95
	}
}

// RampResult is one scraper's ramp.
type RampResult struct {
	Scraper string `json:"scraper"`
	// Steps in the order run; a step that failed and was run again
	// appears twice.
	Steps []E2EResult `json:"steps"`
	// MaxSustained is the highest samples/s of a step that served at least
	// MinServed of its scrapes; MaxSustainedTargets its target count.
	MaxSustained        float64 `json:"max_sustained_samples_per_sec"`
	MaxSustainedTargets int     `json:"max_sustained_targets"`
	// Stop says why the ramp ended.
	Stop string `json:"stop"`
}

// RunRamp runs the ramp cfg describes.
func RunRamp(ctx context.Context, cfg RampConfig) (RampResult, error) {
	cfg.setDefaults()
	if cfg.Factor <= 1 || cfg.Start <= 0 {
		return RampResult{}, fmt.Errorf("ramp: start %d, factor %g: need start > 0 and factor > 1", cfg.Start, cfg.Factor)
	}
	rr := RampResult{Scraper: cfg.Base.Scraper}
	for n := cfg.Start; ; n = int(math.Ceil(float64(n) * cfg.Factor)) {
		if n > cfg.MaxTargets {
			rr.Stop = fmt.Sprintf("reached the ramp's limit of %d targets", cfg.MaxTargets)
			return rr, nil
		}
		c := cfg.Base
		c.Targets = n
		// The machine is shared: a step that fails is run once more
		// before the ramp ends, so one disturbed window does not end it.
		var r E2EResult
		kept := false
		for attempt := 0; attempt < 2 && !kept; attempt++ {
			var err error
			if r, err = RunE2E(ctx, c); err != nil {
				return rr, err
			}
			rr.Steps = append(rr.Steps, r)
			kept = r.Served >= cfg.MinServed && r.WarmedUp
		}
		if kept && r.SamplesPerSec > rr.MaxSustained {
			rr.MaxSustained, rr.MaxSustainedTargets = r.SamplesPerSec, n
		}
		switch {
		case !kept:
			rr.Stop = fmt.Sprintf("%d targets: %.2f%% of the scheduled scrapes served", n, 100*r.Served)
			if !r.WarmedUp {
				rr.Stop += " (never reached a steady state after start)"
			}
			rr.Stop += ", twice"
			return rr, nil
		case r.CoreUtil >= cfg.Saturated:
			rr.Stop = fmt.Sprintf("%d targets: core saturated (%.0f%%)", n, 100*r.CoreUtil)
			return rr, nil
		case r.FarmCoreUtil >= cfg.Saturated:
			rr.Stop = fmt.Sprintf("%d targets: the farm's core saturated (%.0f%%): the scraper's limit is higher", n, 100*r.FarmCoreUtil)
			return rr, nil
		}
	}
}
