package coord

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/shoal-scraper/shoal/ring"
)

// Member is what a member writes into its ephemeral node
// ROOT/members/ID, as JSON. Times are Unix milliseconds on the wire.
type Member struct {
	ID string `json:"-"`
	// Address is the member's web address (host:port): peers and
	// `shoal members` read its /api/v1/cluster there.
	Address string    `json:"address"`
	Version string    `json:"version"`
	Started time.Time `json:"-"`
	// Slot is the ring slot the member holds (ROOT/slots/NNNN).
	Slot int `json:"slot"`
	// Since is the instant the member starts owning targets: its join time
	// plus the hand-over delay, so that every peer switches at the same
	// instant (see the package doc).
	Since time.Time `json:"-"`
	// Leaving, if set, is the instant the member stops owning targets: a
	// graceful shutdown announces it, keeps scraping until then, then
	// deletes its node.
	Leaving time.Time `json:"-"`
}

type memberWire struct {
	Address string `json:"address"`
	Version string `json:"version"`
	Started int64  `json:"started_ms"`
	Slot    int    `json:"slot"`
	Since   int64  `json:"since_ms"`
	Leaving int64  `json:"leaving_ms,omitempty"`
}

func (m Member) encode() []byte {
	w := memberWire{Address: m.Address, Version: m.Version, Started: ms(m.Started), Slot: m.Slot, Since: ms(m.Since), Leaving: ms(m.Leaving)}
	b, _ := json.Marshal(w) // cannot fail: plain fields
	return b
}

func decodeMember(id string, b []byte) (Member, error) {
	var w memberWire
	if err := json.Unmarshal(b, &w); err != nil {
		return Member{}, fmt.Errorf("member %q: node data is not member JSON: %w", id, err)
	}
	if w.Slot < 0 || w.Slot > maxSlot {
		return Member{}, fmt.Errorf("member %q: slot %d out of range", id, w.Slot)
	}
	return Member{ID: id, Address: w.Address, Version: w.Version, Started: fromMs(w.Started), Slot: w.Slot, Since: fromMs(w.Since), Leaving: fromMs(w.Leaving)}, nil
}

// slotInfo is the data of the persistent node ROOT/slots/NNNN: the member
// that claimed the slot last (a restarted member prefers its own slot, so it
// gets its own targets back) and the instant the slot came into existence,
// from which on it counts toward the ring's slot count.
type slotInfo struct {
	Member  string    `json:"-"`
	Created time.Time `json:"-"`
	version int32
}

type slotWire struct {
	Member  string `json:"member"`
	Created int64  `json:"created_ms"`
}

func (s slotInfo) encode() []byte {
	b, _ := json.Marshal(slotWire{Member: s.Member, Created: ms(s.Created)})
	return b
}

func decodeSlot(b []byte) (slotInfo, error) {
	var w slotWire
	if err := json.Unmarshal(b, &w); err != nil {
		return slotInfo{}, err
	}
	return slotInfo{Member: w.Member, Created: fromMs(w.Created)}, nil
}

// maxSlot bounds slot numbers: four digits in the node name, and far more
// members than a pool needs.
const maxSlot = 9999

func slotName(i int) string { return fmt.Sprintf("%04d", i) }

func parseSlotName(s string) (int, bool) {
	if len(s) != 4 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMs(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// State is the membership as read from ZooKeeper: the member nodes and
// the slot nodes. Every member holds the same State (up to notification
// delay) and derives the same ring from it with RingAt.
type State struct {
	Members map[string]Member
	Slots   map[int]slotInfo
}

// active reports whether m owns targets at t.
func active(m Member, t time.Time) bool {
	return !t.Before(m.Since) && (m.Leaving.IsZero() || t.Before(m.Leaving))
}

// slotCount is the ring's slot count at t: one past the highest slot that
// exists by then. Slot nodes are persistent and never deleted, so the count
// is a high-water mark (ring/ requires it never to shrink), and a new
// slot counts only from its creator's join instant, so the count grows in
// the same view change that fills the slot.
func (s *State) slotCount(t time.Time) int {
	n := 0
	for i, si := range s.Slots {
		if i+1 > n && !t.Before(si.Created) {
			n = i + 1
		}
	}
	return n
}

// RingAt returns the ring in force at t, as seen by member self.
func (s *State) RingAt(t time.Time, self string) *ring.Ring {
	return ring.New(s.slotsAt(t), self)
}

// slotsAt lists slot → active member at t ("" for empty). If two members
// claim one slot (only possible if something other than shoal wrote the
// nodes), the smaller ID wins on every member alike.
func (s *State) slotsAt(t time.Time) []string {
	slots := make([]string, s.slotCount(t))
	for _, m := range s.Members {
		if !active(m, t) || m.Slot >= len(slots) {
			continue
		}
		if cur := slots[m.Slot]; cur == "" || m.ID < cur {
			slots[m.Slot] = m.ID
		}
	}
	return slots
}

// NextChange returns the first instant after t at which the ring changes
// (a member's Since or Leaving, a slot's creation), if any.
func (s *State) NextChange(t time.Time) (time.Time, bool) {
	var next time.Time
	consider := func(x time.Time) {
		if !x.IsZero() && x.After(t) && (next.IsZero() || x.Before(next)) {
			next = x
		}
	}
	for _, m := range s.Members {
		consider(m.Since)
		consider(m.Leaving)
	}
	for _, si := range s.Slots {
		consider(si.Created)
	}
	return next, !next.IsZero()
}

// claim picks the slot a joining member takes: a free slot it held before
// (its own targets come back to it), else the lowest free slot, else a new
// slot at the end. A slot is free when no member node, active or not,
// names it.
func (s *State) claim(self string) (slot int, exists bool) {
	taken := map[int]bool{}
	for _, m := range s.Members {
		if m.ID != self {
			taken[m.Slot] = true
		}
	}
	idx := make([]int, 0, len(s.Slots))
	for i := range s.Slots {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		if !taken[i] && s.Slots[i].Member == self {
			return i, true
		}
	}
	for _, i := range idx {
		if !taken[i] {
			return i, true
		}
	}
	n := 0
	if len(idx) > 0 {
		n = idx[len(idx)-1] + 1
	}
	return n, false
}

// sameSlots reports whether two rings have the same slots and members (and
// so the same owner for every key).
func sameSlots(a, b []string) bool { return slices.Equal(a, b) }

// RegisterForTest writes a member node as a member would, without running
// one: for benchmarks that simulate peers. The slot node must not exist or
// be free.
func RegisterForTest(conn *zk.Conn, root, id string, m Member) error {
	p := paths{members: root + "/members", slots: root + "/slots", jobs: root + "/jobs"}
	si := slotInfo{Member: id, Created: m.Since}
	_, err := conn.Create(p.slot(m.Slot), si.encode(), 0, zk.WorldACL(zk.PermAll))
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return err
	}
	_, err = conn.Create(p.member(id), m.encode(), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	return err
}
