package coord

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-scraper/shoal/config"
)

var t0 = time.UnixMilli(1_800_000_000_000)

func member(id string, slot int, since time.Time) Member {
	return Member{ID: id, Slot: slot, Since: since, Address: "127.0.0.1:1"}
}

func state(ms []Member, slots ...time.Time) *State {
	s := &State{Members: map[string]Member{}, Slots: map[int]slotInfo{}}
	for _, m := range ms {
		s.Members[m.ID] = m
	}
	for i, c := range slots {
		s.Slots[i] = slotInfo{Created: c}
	}
	return s
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("job/10.0.%d.%d:9100", i/250, i%250)
	}
	return out
}

// A join announced for an instant ahead changes nothing before it and
// moves only the joiner's keys at it; a new slot counts only from then.
func TestJoinTakesEffectAtSince(t *testing.T) {
	join := t0.Add(2 * time.Second)
	s := state([]Member{member("a", 0, t0), member("b", 1, t0), member("c", 2, join)}, t0, t0, join)
	before, at := s.RingAt(join.Add(-time.Millisecond), "a"), s.RingAt(join, "a")
	if before.Slots() != 2 || at.Slots() != 3 {
		t.Fatalf("slot count before/at the join = %d/%d, want 2/3", before.Slots(), at.Slots())
	}
	moved := 0
	for _, k := range keys(10000) {
		b, a := before.Owner(k), at.Owner(k)
		if b != a {
			moved++
			if a != "c" {
				t.Fatalf("key %s moved %s → %s, not to the joiner", k, b, a)
			}
		}
	}
	if moved < 2500 || moved > 4200 {
		t.Errorf("%d of 10000 keys moved to the third member, want about a third", moved)
	}
	if next, ok := s.NextChange(t0); !ok || !next.Equal(join) {
		t.Errorf("NextChange = %v %v, want the join instant", next, ok)
	}
}

// A graceful leave keeps the leaver's keys until its instant, then moves
// exactly those.
func TestLeaveTakesEffectAtLeaving(t *testing.T) {
	leave := t0.Add(time.Second)
	b := member("b", 1, t0)
	b.Leaving = leave
	s := state([]Member{member("a", 0, t0), b, member("c", 2, t0)}, t0, t0, t0)
	before, after := s.RingAt(leave.Add(-time.Millisecond), "a"), s.RingAt(leave, "a")
	for _, k := range keys(5000) {
		o1, o2 := before.Owner(k), after.Owner(k)
		if o1 != "b" && o1 != o2 {
			t.Fatalf("key %s of %s moved to %s when b left", k, o1, o2)
		}
		if o2 == "b" {
			t.Fatalf("key %s still owned by b after its leave", k)
		}
	}
	if after.Slots() != 3 {
		t.Errorf("slot count after a leave = %d, want 3 (a high-water mark)", after.Slots())
	}
}

func TestClaim(t *testing.T) {
	// A hole at 1: the lowest free slot.
	s := state([]Member{member("a", 0, t0), member("c", 2, t0)}, t0, t0, t0)
	if slot, exists := s.claim("d"); slot != 1 || !exists {
		t.Errorf("claim = %d %v, want the free slot 1", slot, exists)
	}
	// Two holes: a member returns to the slot it held last.
	s = state([]Member{member("a", 0, t0)}, t0, t0, t0)
	s.Slots[2] = slotInfo{Member: "c", Created: t0}
	if slot, _ := s.claim("c"); slot != 2 {
		t.Errorf("returning member claimed %d, want its own slot 2", slot)
	}
	// No hole: a new slot at the end.
	s = state([]Member{member("a", 0, t0), member("b", 1, t0)}, t0, t0)
	if slot, exists := s.claim("c"); slot != 2 || exists {
		t.Errorf("claim = %d %v, want a new slot 2", slot, exists)
	}
	// A member whose old node is still there (previous session) does not
	// count itself as taking a slot.
	s = state([]Member{member("a", 0, t0), member("b", 1, t0)}, t0, t0)
	if slot, _ := s.claim("b"); slot != 1 {
		t.Errorf("claim by b = %d, want its own slot 1", slot)
	}
}

// Two nodes claiming one slot (written by another tool): every member
// picks the same one.
func TestSlotConflictIsDeterministic(t *testing.T) {
	s := state([]Member{member("x", 0, t0), member("a", 0, t0)}, t0)
	if got := s.slotsAt(t0)[0]; got != "a" {
		t.Errorf("slot 0 = %q, want the smaller ID a", got)
	}
}

func TestMemberRoundTrip(t *testing.T) {
	m := Member{ID: "m1", Address: "h:1", Version: "v", Started: t0, Slot: 7, Since: t0.Add(time.Second), Leaving: t0.Add(time.Minute)}
	got, err := decodeMember("m1", m.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Errorf("round trip: %+v, want %+v", got, m)
	}
	if _, err := decodeMember("m1", []byte("{")); err == nil || !strings.Contains(err.Error(), `member "m1"`) {
		t.Errorf("bad member data: err = %v", err)
	}
}

func TestParseJobsSkipsInvalid(t *testing.T) {
	g := config.DefaultGlobalConfig()
	jobs := ParseJobs(map[string][]byte{
		"good":    []byte("job_name: good\nstatic_configs: [{targets: ['a:1']}]\n"),
		"bad":     []byte("job_name: bad\nscrape_interval: often\n"),
		"misname": []byte("job_name: other\n"),
		"binary":  {0xff, 0xfe, 0x00},
	}, g, "/shoal/jobs")
	if n := len(jobs.Config.ScrapeConfigs); n != 1 || jobs.Config.ScrapeConfigs[0].JobName != "good" {
		t.Fatalf("valid jobs: %v", jobs.Config.ScrapeConfigs)
	}
	if jobs.Config.ScrapeConfigs[0].ScrapeInterval == 0 {
		t.Error("valid job not resolved against the globals")
	}
	var names []string
	for _, je := range jobs.Invalid {
		names = append(names, je.Name)
		if !strings.Contains(je.Err.Error(), "/shoal/jobs/"+je.Name) {
			t.Errorf("error for %s does not name its node: %v", je.Name, je.Err)
		}
	}
	if strings.Join(names, ",") != "bad,binary,misname" {
		t.Errorf("invalid jobs = %v", names)
	}
}

func TestReadJobFile(t *testing.T) {
	docs, err := ReadJobFile([]byte("scrape_configs:\n- job_name: a\n  static_configs: [{targets: ['x:1']}]\n- job_name: b\n"), "f.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Name != "a" || docs[1].Name != "b" {
		t.Fatalf("docs = %+v", docs)
	}
	for _, d := range docs {
		if _, err := ParseJob(d.Name, d.YAML, config.DefaultGlobalConfig(), "x"); err != nil {
			t.Errorf("stored YAML of %s does not parse back: %v\n%s", d.Name, err, d.YAML)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"job_name: a\nscrape_interval: 10s\nscrape_timeout: 20s\n", "f.yml:3"},
		{"global: {}\nscrape_configs: []\n", "f.yml:1: global"},
		{"job_name: a/b\n", "must not"},
		{"scrape_configs:\n- job_name: a\n- job_name: a\n", "appears twice"},
		{"job_name: a\nbogus: 1\n", `unknown field "bogus"`},
	} {
		_, err := ReadJobFile([]byte(tc.in), "f.yml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadJobFile(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}
