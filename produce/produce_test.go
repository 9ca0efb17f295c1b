package produce

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// A series keeps its own labels apart from its target's only when its
// labels are exactly their union; either way its labels are what it was
// made with, in order, and series of different targets with the same own
// labels share one copy of them.
func TestBaseLabelsSeries(t *testing.T) {
	base1 := NewBaseLabels(labels.FromStrings("instance", "a:1", "job", "node", "zone", "z"))
	base2 := NewBaseLabels(labels.FromStrings("instance", "b:1", "job", "node", "zone", "z"))
	for _, tc := range []struct {
		name  string
		ls    labels.Labels
		split bool
	}{
		{"union", labels.FromStrings("__name__", "m", "cpu", "0", "instance", "a:1", "job", "node", "mode", "idle", "zone", "z"), true},
		{"name only", labels.FromStrings("__name__", "up", "instance", "a:1", "job", "node", "zone", "z"), true},
		{"base label overridden", labels.FromStrings("__name__", "m", "instance", "other", "job", "node", "zone", "z"), false},
		{"base label dropped", labels.FromStrings("__name__", "m", "instance", "a:1", "job", "node"), false},
		{"no base labels", labels.FromStrings("__name__", "m"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base1.Series(tc.ls)
			if split := s.base != nil; split != tc.split {
				t.Errorf("split %v, want %v", split, tc.split)
			}
			if got := s.Labels(); !labels.Equal(got, tc.ls) {
				t.Errorf("Labels() = %s, want %s", got, tc.ls)
			}
			var ranged labels.ScratchBuilder
			s.Range(func(l labels.Label) { ranged.Add(l.Name, l.Value) })
			if got := ranged.Labels(); !labels.Equal(got, tc.ls) { // ScratchBuilder.Labels does not sort: order checked too
				t.Errorf("Range gave %s, want %s", got, tc.ls)
			}
		})
	}

	// The same exposed series on two targets: one interned copy.
	s1 := base1.Series(labels.FromStrings("__name__", "m", "cpu", "0", "instance", "a:1", "job", "node", "zone", "z"))
	s2 := base2.Series(labels.FromStrings("__name__", "m", "cpu", "0", "instance", "b:1", "job", "node", "zone", "z"))
	if s1.own != s2.own {
		t.Error("own labels of the same series on two targets are not shared")
	}
	if s1.Labels().Get("instance") != "a:1" || s2.Labels().Get("instance") != "b:1" {
		t.Errorf("instances %s, %s", s1.Labels(), s2.Labels())
	}
	if n := testing.AllocsPerRun(100, func() { s1.Range(func(labels.Label) {}) }); n != 0 {
		t.Errorf("Range: %v allocations, want 0", n)
	}
	var zero Series
	if !zero.Labels().IsEmpty() {
		t.Errorf("zero Series has labels %s", zero.Labels())
	}
}
