package proc

import (
	"testing"
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
}
