package ring

import "github.com/cespare/xxhash/v2"

// Assignment is the owner of every key in a fixed key set under one Ring,
// kept so that a membership change recomputes only the keys that can move.
// It is not safe for concurrent use; it is meant for the one goroutine that
// applies membership changes (coord/ or a benchmark), not for lookups.
//
// Per key it keeps the xxhash of the key (so no key is hashed twice), the
// owning slot, the number of re-probes that placed it, and probe 0's next
// jump target (see jump). Update(r) then recomputes key k only if
//
//   - it was re-probed (probes > 0): an empty slot on its probe path may now
//     be filled; or
//   - its slot changed hands (member left, or another took the slot); or
//   - the slot count grew past its next jump target, so probe 0 now lands
//     on a new slot (jump's own property: only 1/(n+1) of keys for n → n+1);
//   - or the slot count shrank, or either ring is empty (everything).
//
// Every other key provably keeps its owner: its probe-0 slot is unchanged,
// still occupied, by the same member. So a leave recomputes the leaver's
// ~1/n of keys plus those placed by re-probing; a join into a hole recomputes
// only re-probed keys; a join at the end the 1/(n+1) that jump moves plus
// re-probed keys. The rest of the cost is one linear scan of three small
// arrays (17 bytes per key).
type Assignment struct {
	ring   *Ring
	keys   []string
	hash   []uint64
	slot   []int32 // -1: no owner (empty ring)
	next   []int32
	probes []uint8

	changed []bool // scratch for Update: slot changed hands
}

// NewAssignment computes the owner of every key under r. It keeps keys (not
// a copy); the caller must not modify it.
func NewAssignment(r *Ring, keys []string) *Assignment {
	a := &Assignment{
		ring:   r,
		keys:   keys,
		hash:   make([]uint64, len(keys)),
		slot:   make([]int32, len(keys)),
		next:   make([]int32, len(keys)),
		probes: make([]uint8, len(keys)),
	}
	for i, k := range keys {
		a.hash[i] = xxhash.Sum64String(k)
		a.place(i)
	}
	return a
}

// Owner returns the owner of key i (keys[i] of NewAssignment).
func (a *Assignment) Owner(i int) string {
	if a.slot[i] < 0 {
		return ""
	}
	return a.ring.slots[a.slot[i]]
}

// Ring returns the ring the assignment currently reflects.
func (a *Assignment) Ring() *Ring { return a.ring }

// place recomputes key i under a.ring.
func (a *Assignment) place(i int) {
	r := a.ring
	if r == nil || len(r.occupied) == 0 {
		a.slot[i], a.next[i], a.probes[i] = -1, 0, fallbackProbes
		return
	}
	s, next, p := r.locate(a.hash[i])
	a.slot[i], a.next[i], a.probes[i] = int32(s), next, p
}

// Update moves the assignment to ring r, recomputing only the keys that can
// move, and appends to moved the index of every key whose owner changed.
func (a *Assignment) Update(r *Ring, moved []int) []int {
	old := a.ring
	a.ring = r
	all := old == nil || r == nil || len(old.occupied) == 0 ||
		len(r.occupied) == 0 || len(r.slots) < len(old.slots)
	if all {
		for i := range a.keys {
			was := ownerOf(old, a.slot[i])
			a.place(i)
			if a.Owner(i) != was {
				moved = append(moved, i)
			}
		}
		return moved
	}

	n := int32(len(r.slots))
	if cap(a.changed) < len(old.slots) {
		a.changed = make([]bool, len(old.slots))
	}
	changed := a.changed[:len(old.slots)]
	for s := range changed {
		changed[s] = old.slots[s] != r.slots[s]
	}
	for i := range a.keys {
		s := a.slot[i]
		if a.probes[i] == 0 && a.next[i] >= n && !changed[s] {
			continue
		}
		was := old.slots[s]
		a.place(i)
		if r.slots[a.slot[i]] != was {
			moved = append(moved, i)
		}
	}
	return moved
}

func ownerOf(r *Ring, s int32) string {
	if s < 0 {
		return ""
	}
	return r.slots[s]
}
