package proc

import (
	"os"
	"testing"
	"time"
)

func TestReadings(t *testing.T) {
	c0, err := CPU()
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := range 50_000_000 {
		x ^= i
	}
	_ = x
	c1, err := CPU()
	if err != nil {
		t.Fatal(err)
	}
	if c1 <= c0 {
		t.Errorf("CPU did not grow over a busy loop: %s then %s", c0, c1)
	}
	if rss, err := RSS(); err != nil || rss < 1<<20 {
		t.Errorf("RSS = %d, %v; want at least 1 MiB", rss, err)
	}
	busy, total, err := HostCPU()
	if err != nil || busy == 0 || busy > total {
		t.Errorf("HostCPU = %d busy of %d, %v", busy, total, err)
	}
	all, err := Steal(-1)
	if err != nil {
		t.Fatalf("Steal(-1): %v", err)
	}
	core0, err := Steal(0)
	if err != nil || core0 > all || all > time.Duration(total)*(time.Second/userHZ) {
		t.Errorf("Steal(0) = %s, %v; Steal(-1) = %s; want no more than all cores' steal, and that no more than their time", core0, err, all)
	}
	if _, err := Steal(1 << 20); err == nil {
		t.Error("Steal of a core that does not exist: no error")
	}
}

// TestPid: the /proc/PID readers agree with this process's own view.
func TestPid(t *testing.T) {
	pid := os.Getpid()
	x := 0
	for i := range 200_000_000 {
		x ^= i
	}
	_ = x
	self, err := CPU()
	if err != nil {
		t.Fatal(err)
	}
	byPid, err := PidCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// /proc/PID/stat has 10 ms ticks; allow a few of them.
	if d := self - byPid; d < -30*time.Millisecond || d > 30*time.Millisecond || byPid == 0 {
		t.Errorf("PidCPU = %s, getrusage says %s", byPid, self)
	}
	r1, err1 := RSS()
	r2, err2 := PidRSS(pid)
	if err1 != nil || err2 != nil || r2 < r1/2 || r2 > 2*r1 {
		t.Errorf("PidRSS = %d (%v), RSS = %d (%v)", r2, err2, r1, err1)
	}
	if _, err := PidCPU(1 << 30); err == nil {
		t.Error("PidCPU of a process that does not exist: no error")
	}
}
