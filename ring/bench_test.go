package ring

import (
	"fmt"
	"slices"
	"testing"
)

// Run with:
//
//	go test -run '^$' -bench . -benchtime=200ms ./ring/
//
// BenchmarkOwner is one lookup (hash + jump + occupied check); keys cycle
// through 4096 distinct strings so the branch predictor cannot learn them.
func BenchmarkOwner(b *testing.B) {
	keys := makeKeys(4096)
	for _, n := range []int{3, 10, 100, 1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			r := New(fullSlots(n), "m0")
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r.Owns(keys[i&4095])
				i++
			}
		})
	}
}

// BenchmarkRecompute is a full recompute: the owner of 1M keys from
// scratch (hashing included), what a member does on each membership change
// without an Assignment.
func BenchmarkRecompute(b *testing.B) {
	keys := makeKeys(1000000)
	b.Run("targets=1000000/members=100", func(b *testing.B) {
		r := New(fullSlots(100), "m0")
		b.ReportAllocs()
		for b.Loop() {
			for _, k := range keys {
				r.Owns(k)
			}
		}
	})
}

// BenchmarkChange is one membership change applied with Assignment.Update
// over 1M keys and 100 members: a middle member leaving, a member joining
// that hole (LowestFreeSlot), and a member joining at a new slot at the end.
// ns/op is one Update; between iterations, with the timer stopped, the
// assignment is restored to its state before the change.
func BenchmarkChange(b *testing.B) {
	keys := makeKeys(1000000)
	full := fullSlots(100)
	hole := fullSlots(100)
	hole[50] = ""
	end := append(fullSlots(100), "m100")
	cases := []struct {
		name     string
		from, to []string
	}{
		{"leave", full, hole},
		{"join=hole", hole, full},
		{"join=end", full, end},
	}
	for _, c := range cases {
		b.Run("targets=1000000/"+c.name, func(b *testing.B) {
			from, to := New(c.from, ""), New(c.to, "")
			a := NewAssignment(from, keys)
			saved := *a
			saved.slot = slices.Clone(a.slot)
			saved.next = slices.Clone(a.next)
			saved.probes = slices.Clone(a.probes)
			moved := make([]int, 0, len(keys))
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				a.ring = from
				copy(a.slot, saved.slot)
				copy(a.next, saved.next)
				copy(a.probes, saved.probes)
				b.StartTimer()
				moved = a.Update(to, moved[:0])
			}
			b.ReportMetric(float64(len(moved)), "moved/op")
		})
	}
}
