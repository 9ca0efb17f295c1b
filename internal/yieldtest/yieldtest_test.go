package yieldtest

import (
	"runtime"
	"testing"
)

// A function that yields n times gives the counter at least n turns; one
// that never yields and ends quickly gives it none.
func TestTurns(t *testing.T) {
	if got := Turns(func() {
		for range 10 {
			runtime.Gosched()
		}
	}); got < 10 {
		t.Errorf("10 yields: %d turns, want at least 10", got)
	}
	x := 0
	if got := Turns(func() {
		for i := range 1000 {
			x += i
		}
	}); got != 0 {
		t.Errorf("no yield: %d turns, want 0", got)
	}
	_ = x
}
