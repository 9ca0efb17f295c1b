// Package ring decides which member scrapes a target: a pure,
// allocation-free function owner(key) over an immutable membership
// snapshot, with key = job + "/" + instance (engine.Owner).
//
// # Design: jump hash over stable slots, re-probing empty slots
//
// Every member holds a slot number. A joining member claims the lowest free
// slot (LowestFreeSlot), so slots stay dense; coord/ keeps the slots in
// ZooKeeper, here they are only New's input. With N slots (occupied or not)
// and h = xxhash(key):
//
//	s = jump(h, N)                              // Lamping & Veach
//	while slot s is empty (probe p = 1, 2, …, 64):
//	    s = jump(splitmix64(h + p·φ), N)        // still over all N slots
//	if still empty after 64 probes: rendezvous over the occupied slots
//	owner = the member in slot s
//
// Why this and not the alternatives:
//
//   - Plain jump hash over the sorted member list keeps the invariants only
//     when the last member of the list leaves. Jump maps keys to bucket
//     numbers; remove a member from the middle and every member after it
//     gets a new number, so 60–70 % of all keys move (DESIGN.md invariant 1).
//     Stable slot numbers make a member's bucket its own, whatever else
//     leaves.
//   - Rendezvous (highest-random-weight) hashing keeps the invariants
//     exactly too, but costs O(members) hashes per lookup: at 1000 members
//     and 1M targets that is 10^9 hashes per resync, against ln(N)+1 jump
//     steps per key here (~8 at 1000). It is kept as the bounded fallback for near-empty rings.
//   - Re-probing over all N slots (rather than, say, falling back to a
//     lower jump bucket) spreads an empty slot's keys evenly over every
//     occupied slot, so holes cost no balance (TestBalance, "holes").
//
// # Invariants (each one a test)
//
//  1. Pure: Owner depends only on the key and on slots (not on self, time
//     or history); every member with the same view computes the same owner.
//  2. Leave (TestLeave): when any member leaves, its slot becomes empty and
//     exactly its keys move. A key's probe sequence depends only on h and N;
//     it stops at the first occupied slot, and emptying another slot leaves
//     that prefix unchanged. Rendezvous has the same property.
//  3. Join (TestJoin): a member taking a free slot, or a new slot at the end
//     (jump's own guarantee: jump(h, N+1) is jump(h, N) or N), takes keys
//     only for itself, about 1/(m+1) of them for m members: its slot's 1/N
//     plus its share of the keys re-probed out of the remaining holes.
//  4. Balance (TestBalance): max/mean ≤ 1.04 at 100 members and 1M keys,
//     full or with 20 % holes.
//  5. Hash (TestJumpGolden): jump matches the reference C++ output
//     published in dgryski/go-jump's jump_test.go.
//  6. Lookup allocates nothing (TestOwnerAllocs); New copies its input and a
//     Ring is never modified, so coord/ swaps snapshots with an
//     atomic.Pointer and readers need no lock.
//
// The slot count N is part of the view and must not shrink: a key that was
// re-probed out of a dropped empty slot would move to jump(h, N') instead,
// between two surviving members. coord/ therefore keeps N as a high-water
// mark (the highest slot ever claimed + 1). LowestFreeSlot makes that mark
// the largest membership seen, not the number of joins. (Dropping the last
// slot is safe only in the same view change that empties it, and only when
// no other slot is empty: then it is plain jump's last-bucket removal.)
//
// # What an empty slot costs
//
// With m of N slots occupied, each probe lands on an occupied slot with
// probability q = m/N, independently, so a lookup takes 1/q jumps on
// average: 1.11 with 10 % holes, 2 with half the slots empty. The fallback
// runs with probability (1−q)^64: 5·10^-20 at q = ½, only relevant when a
// ring is almost all holes (it then costs O(m), with m small). Because new
// members fill the lowest hole first, holes exist only between a leave and
// the next join.
//
// # Recomputing after a change
//
// Owner for 1M keys takes ~50 ms (BenchmarkRecompute). Assignment keeps
// each key's hash, slot, probe count and probe 0's next jump target, and
// Update recomputes only the keys that can move (see Assignment): ~2 ms for
// a leave or a join at 1M keys and 100 members, almost all of it one linear
// scan (BenchmarkChange).
//
// Benchmarks: go test -run '^$' -bench . -benchtime=200ms ./ring/
package ring
