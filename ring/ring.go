package ring

import (
	"slices"

	"github.com/cespare/xxhash/v2"
)

// maxProbes bounds the re-probes of a lookup that lands on an empty slot.
// After that many misses the key falls back to rendezvous hashing over the
// occupied slots (see rendezvous). With half the slots empty the fallback
// runs for one key in 2^64; it only matters for rings that are almost all
// holes, where it keeps lookups bounded.
const maxProbes = 64

// fallbackProbes marks, in Assignment.probes, a key placed by rendezvous.
const fallbackProbes = maxProbes + 1

// Ring is an immutable snapshot of the membership: slot number → member ID,
// "" for an empty slot. Build one per membership change with New and swap it
// in atomically (an atomic.Pointer[Ring] in coord/); a Ring is never
// modified after New, so any number of goroutines may call its methods.
//
// The nil *Ring is valid and empty: it owns nothing.
type Ring struct {
	slots    []string // slot → member, "" if empty; len is the slot count
	occupied []int32  // indexes of the non-empty slots, ascending
	self     string
}

// New returns the ring for a membership view. slots[i] is the member holding
// slot i, or "" if slot i is free; len(slots) is the slot count, which
// coord/ must keep as a high-water mark (see the package doc: shrinking it
// moves keys between surviving members). self is this member's ID, used by
// Owns; "" makes Owns always false.
//
// New copies slots. A member listed in several slots owns all of them;
// coord/ gives each member exactly one.
func New(slots []string, self string) *Ring {
	r := &Ring{slots: slices.Clone(slots), self: self}
	for i, m := range r.slots {
		if m != "" {
			r.occupied = append(r.occupied, int32(i))
		}
	}
	return r
}

// Owner returns the member that owns key (job + "/" + instance), or "" if the
// ring has no members. It is pure and does not allocate.
func (r *Ring) Owner(key string) string {
	if r == nil || len(r.occupied) == 0 {
		return ""
	}
	s, _, _ := r.locate(xxhash.Sum64String(key))
	return r.slots[s]
}

// Owns reports whether this member (New's self) owns key. It satisfies
// engine.Owner.
func (r *Ring) Owns(key string) bool {
	if r == nil || r.self == "" {
		return false
	}
	return r.Owner(key) == r.self
}

// Members returns the members in slot order, without empty slots. The slice
// is a fresh copy.
func (r *Ring) Members() []string {
	if r == nil {
		return nil
	}
	out := make([]string, len(r.occupied))
	for i, s := range r.occupied {
		out[i] = r.slots[s]
	}
	return out
}

// Slots returns the slot count (len of New's slots, empty slots included).
func (r *Ring) Slots() int {
	if r == nil {
		return 0
	}
	return len(r.slots)
}

// LowestFreeSlot returns the slot a joining member claims: the lowest empty
// slot, or len(slots) (a new slot at the end) if none is empty. Filling
// holes first keeps the slot count, and so the expected probes per lookup,
// as small as the membership allows.
func LowestFreeSlot(slots []string) int {
	for i, m := range slots {
		if m == "" {
			return i
		}
	}
	return len(slots)
}

// locate returns the slot owning a key hash, the next jump target of probe 0
// (the first j >= slot count in the jump sequence, clamped to MaxInt32: the
// probe-0 slot stays the same for any slot count <= next), and the number
// of re-probes it took (fallbackProbes if rendezvous decided). The ring must
// have at least one member.
func (r *Ring) locate(h uint64) (slot int, next int32, probes uint8) {
	n := len(r.slots)
	b, j := jump(h, n)
	next = clamp32(j)
	if r.slots[b] != "" {
		return int(b), next, 0
	}
	for p := uint64(1); p <= maxProbes; p++ {
		b, _ = jump(mix(h+p*golden), n)
		if r.slots[b] != "" {
			return int(b), next, uint8(p)
		}
	}
	return r.rendezvous(h), next, fallbackProbes
}

// rendezvous picks, among the occupied slots, the one with the highest
// weight mix(h, slot). Like the probes it depends only on the key and on
// which slots are occupied, so a member leaving moves only its own keys and
// a member joining takes keys only for itself. O(members); reached only
// after maxProbes misses.
func (r *Ring) rendezvous(h uint64) int {
	best, bestW := -1, uint64(0)
	for _, s := range r.occupied {
		w := mix(h ^ (uint64(s)+1)*golden2)
		if best < 0 || w > bestW {
			best, bestW = int(s), w
		}
	}
	return best
}

const (
	golden  = 0x9e3779b97f4a7c15 // 2^64 / phi, the splitmix64 increment
	golden2 = 0xc2b2ae3d27d4eb4f // xxhash64 prime 2, another odd constant
)

// mix is the splitmix64 finalizer: a bijection on uint64 with full
// avalanche, so probe p's hash is independent of probe 0's in practice.
func mix(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}

// jump is Lamping & Veach's jump consistent hash ("A Fast, Minimal Memory,
// Consistent Hash Algorithm", 2014, arXiv:1406.2294), exactly as published:
// it returns the bucket in [0, buckets) for key, and also the next jump
// target j >= buckets, so that jump(key, m) == b for every m in
// (b, j]. buckets must be >= 1.
func jump(key uint64, buckets int) (b, next int64) {
	b = -1
	var j int64
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return b, j
}

func clamp32(j int64) int32 {
	if j > 1<<31-1 {
		return 1<<31 - 1
	}
	return int32(j)
}
