package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shoal-scraper/shoal/engine"
)

var _ engine.Owner = (*Ring)(nil)

// TestJumpGolden checks jump against the vectors dgryski/go-jump's
// jump_test.go generated from the paper's reference C++ code: want[i] is
// Jump(key, i+1).
func TestJumpGolden(t *testing.T) {
	tests := []struct {
		key  uint64
		want []int64
	}{
		{0, []int64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{1, []int64{0, 0, 0, 0, 0, 0, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 17, 17}},
		{0xdeadbeef, []int64{0, 1, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 16, 16, 16}},
		{0x0ddc0ffeebadf00d, []int64{0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 15, 15, 15, 15}},
	}
	for _, tt := range tests {
		for i, want := range tt.want {
			if got, _ := jump(tt.key, i+1); got != want {
				t.Errorf("jump(%#x, %d) = %d, want %d", tt.key, i+1, got, want)
			}
		}
	}
}

// TestJumpNext checks the next jump target locate relies on: jump(k, m) is
// the same bucket for every m in (b, next], and changes at next+1.
func TestJumpNext(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		k := rng.Uint64()
		n := 1 + rng.IntN(300)
		b, next := jump(k, n)
		if next < int64(n) || b >= int64(n) {
			t.Fatalf("jump(%#x, %d) = %d, next %d: out of range", k, n, b, next)
		}
		for _, m := range []int64{b + 1, next} {
			if got, _ := jump(k, int(m)); got != b {
				t.Fatalf("jump(%#x, %d) = %d, want %d (b=%d next=%d)", k, m, got, b, b, next)
			}
		}
		if next < 1<<20 {
			if got, _ := jump(k, int(next)+1); got != next {
				t.Fatalf("jump(%#x, %d) = %d, want %d", k, next+1, got, next)
			}
		}
	}
}

func TestLowestFreeSlot(t *testing.T) {
	tests := []struct {
		slots []string
		want  int
	}{
		{nil, 0},
		{[]string{"a"}, 1},
		{[]string{"", "b"}, 0},
		{[]string{"a", "", "c", ""}, 1},
		{[]string{"a", "b", ""}, 2},
	}
	for _, tt := range tests {
		if got := LowestFreeSlot(tt.slots); got != tt.want {
			t.Errorf("LowestFreeSlot(%q) = %d, want %d", tt.slots, got, tt.want)
		}
	}
}

func TestEmptyRing(t *testing.T) {
	for _, r := range []*Ring{nil, New(nil, "a"), New([]string{"", ""}, "a")} {
		if got := r.Owner("job/x:1"); got != "" {
			t.Errorf("Owner on empty ring = %q, want \"\"", got)
		}
		if r.Owns("job/x:1") {
			t.Errorf("Owns on empty ring = true")
		}
		if got := r.Members(); len(got) != 0 {
			t.Errorf("Members = %q, want none", got)
		}
	}
}

func TestOwnsAndMembers(t *testing.T) {
	slots := []string{"a", "", "c"}
	r := New(slots, "c")
	slots[0] = "mutated" // New copies
	if got, want := r.Members(), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("Members = %q, want %q", got, want)
	}
	other := New([]string{"a", "", "c"}, "a")
	for _, k := range makeKeys(1000) {
		o := r.Owner(k)
		if o != "a" && o != "c" {
			t.Fatalf("Owner(%q) = %q, not a member", k, o)
		}
		if r.Owns(k) != (o == "c") || other.Owns(k) != (o == "a") {
			t.Fatalf("Owns(%q) disagrees with Owner %q", k, o)
		}
		if other.Owner(k) != o {
			t.Fatalf("Owner(%q) depends on self", k)
		}
	}
	if New([]string{"a"}, "").Owns("job/x:1") {
		t.Error("Owns with self \"\" = true")
	}
}

func TestOwnerAllocs(t *testing.T) {
	r := New(fullSlots(100), "m7")
	keys := makeKeys(64)
	i := 0
	if n := testing.AllocsPerRun(1000, func() { r.Owns(keys[i%64]); r.Owner(keys[i%64]); i++ }); n != 0 {
		t.Errorf("Owner+Owns allocate %v times per call, want 0", n)
	}
}

// shapes are the membership views the move tests start from: full, with
// holes in the middle, and sparse enough (3 of 200 slots) that the
// rendezvous fallback places a third of the keys.
func shapes() map[string][]string {
	holes := fullSlots(13)
	holes[2], holes[7], holes[8] = "", "", ""
	sparse := make([]string, 200)
	sparse[5], sparse[90], sparse[199] = "m5", "m90", "m199"
	return map[string][]string{"full": fullSlots(10), "holes": holes, "sparse": sparse}
}

// TestLeave: when any member leaves (its slot becomes empty), exactly its
// targets move; the slot count is unchanged.
func TestLeave(t *testing.T) {
	keys := makeKeys(20000)
	for name, slots := range shapes() {
		before := owners(New(slots, ""), keys)
		for s, leaver := range slots {
			if leaver == "" {
				continue
			}
			next := slices.Clone(slots)
			next[s] = ""
			after := owners(New(next, ""), keys)
			for i := range keys {
				if before[i] == leaver && (after[i] == leaver || after[i] == "") {
					t.Fatalf("%s: leave %s: key %q stays with %q", name, leaver, keys[i], after[i])
				}
				if before[i] != leaver && after[i] != before[i] {
					t.Fatalf("%s: leave %s: key %q moved %s → %s", name, leaver, keys[i], before[i], after[i])
				}
			}
		}
	}
}

// TestJoin: a member joining at LowestFreeSlot (a hole in the middle, or a
// new slot at the end) takes keys only for itself, about 1/(m+1) of them
// for m members before the join. With 100,000 keys the binomial standard
// deviation at m=10 is ~1% of the expected count; the test allows 10%.
func TestJoin(t *testing.T) {
	keys := makeKeys(100000)
	for name, slots := range shapes() {
		r := New(slots, "")
		before := owners(r, keys)
		m := len(r.Members())
		for _, at := range []string{"lowest", "end"} {
			next := slices.Clone(slots)
			switch at {
			case "lowest":
				if s := LowestFreeSlot(next); s < len(next) {
					next[s] = "joiner"
				} else {
					next = append(next, "joiner")
				}
			case "end":
				next = append(next, "joiner")
			}
			after := owners(New(next, ""), keys)
			moved := 0
			for i := range keys {
				if after[i] != before[i] {
					moved++
					if after[i] != "joiner" {
						t.Fatalf("%s/%s: key %q moved %s → %s", name, at, keys[i], before[i], after[i])
					}
				}
			}
			frac, want := float64(moved)/float64(len(keys)), 1/float64(m+1)
			if frac < 0.9*want || frac > 1.1*want {
				t.Errorf("%s/%s: %.4f of keys moved, want ≈ %.4f", name, at, frac, want)
			}
		}
	}
}

// TestBalance: max/mean of keys per member ≤ 1.04 at 100 members and 1M
// keys, with all slots full and with 25 holes (their keys re-probed). Under
// -short it runs 10 members and 100,000 keys: the same 10,000 keys per
// member, so the same statistical margin (σ = 1% of the mean; the max of
// 100 members lands near +2.5σ).
func TestBalance(t *testing.T) {
	members, nkeys := 100, 1000000
	if testing.Short() {
		members, nkeys = 10, 100000
	}
	keys := makeKeys(nkeys)
	holes := make([]string, members+members/4)
	for i := range members {
		holes[i*len(holes)/members] = fmt.Sprintf("m%d", i)
	}
	for name, slots := range map[string][]string{"full": fullSlots(members), "holes": holes} {
		r := New(slots, "")
		count := map[string]int{}
		for _, k := range keys {
			count[r.Owner(k)]++
		}
		if len(count) != members {
			t.Fatalf("%s: %d members own keys, want %d", name, len(count), members)
		}
		mx := 0
		for _, c := range count {
			mx = max(mx, c)
		}
		mean := float64(nkeys) / float64(members)
		if ratio := float64(mx) / mean; ratio > 1.04 {
			t.Errorf("%s: max/mean = %.4f, want ≤ 1.04", name, ratio)
		} else {
			t.Logf("%s: max/mean = %.4f", name, ratio)
		}
	}
}

// TestAssignmentUpdate runs random joins, leaves and replacements and
// checks that Update's incremental result equals a full recompute and that
// it reports exactly the keys whose owner changed.
func TestAssignmentUpdate(t *testing.T) {
	keys := makeKeys(30000)
	rng := rand.New(rand.NewPCG(3, 4))
	slots := fullSlots(8)
	a := NewAssignment(New(slots, ""), keys)
	id := 100
	var moved []int
	for step := range 60 {
		prev := owners(a.Ring(), keys)
		next := slices.Clone(slots)
		occ := New(next, "").occupied
		switch op := rng.IntN(4); {
		case op == 0 && len(occ) > 0: // leave
			next[occ[rng.IntN(len(occ))]] = ""
		case op == 1 && len(occ) > 0: // replace in place
			next[occ[rng.IntN(len(occ))]] = fmt.Sprintf("m%d", id)
		case op == 2: // join at the end
			next = append(next, fmt.Sprintf("m%d", id))
		default: // join at the lowest free slot
			if s := LowestFreeSlot(next); s < len(next) {
				next[s] = fmt.Sprintf("m%d", id)
			} else {
				next = append(next, fmt.Sprintf("m%d", id))
			}
		}
		id++
		slots = next
		r := New(slots, "")
		moved = a.Update(r, moved[:0])
		want := owners(r, keys)
		var wantMoved []int
		for i := range keys {
			if got := a.Owner(i); got != want[i] {
				t.Fatalf("step %d: key %q: Update says %q, full recompute %q", step, keys[i], got, want[i])
			}
			if prev[i] != want[i] {
				wantMoved = append(wantMoved, i)
			}
		}
		if !slices.Equal(moved, wantMoved) {
			t.Fatalf("step %d: Update reported %d moved keys, want %d", step, len(moved), len(wantMoved))
		}
	}
	// Shrinking and emptying take the recompute-everything path.
	for _, s := range [][]string{slots[:len(slots)/2], nil, fullSlots(3)} {
		r := New(s, "")
		a.Update(r, nil)
		want := owners(r, keys)
		for i := range keys {
			if got := a.Owner(i); got != want[i] {
				t.Fatalf("slots %q: key %q: Update says %q, full recompute %q", s, keys[i], got, want[i])
			}
		}
	}
}

func makeKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("node/10.%d.%d.%d:9100", i>>16&255, i>>8&255, i&255)
	}
	return keys
}

func fullSlots(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("m%d", i)
	}
	return s
}

func owners(r *Ring, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = r.Owner(k)
	}
	return out
}
