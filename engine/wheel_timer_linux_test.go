package engine

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The poller's timer is a timerfd, not a runtime timer (the engine's wheel
// sleeps on it); it expires no earlier than asked, a reset replaces the
// arming before it, and stop ends its reading goroutine. (That a reset to
// a later time also cancels an earlier arming is not promised: an expiry
// racing with reset may still come, which the wheel tolerates.)
func TestPollTimer(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	tm := newPollTimer()
	if _, ok := tm.(*pollTimer); !ok {
		t.Fatalf("newPollTimer made a %T, want a timerfd", tm)
	}
	defer tm.stop()
	wait := func(what string) time.Time {
		t.Helper()
		select {
		case at := <-tm.C():
			return at
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no expiry within 10 s", what)
		}
		return time.Time{}
	}

	start := time.Now()
	tm.reset(30 * time.Millisecond)
	if at := wait("reset(30ms)"); at.Sub(start) < 30*time.Millisecond {
		t.Errorf("expired %v after reset(30ms)", at.Sub(start))
	}

	// A long arming replaced by a short one: the short one expires.
	tm.reset(time.Hour)
	start = time.Now()
	tm.reset(20 * time.Millisecond)
	if at := wait("reset(1h) then reset(20ms)"); at.Sub(start) < 20*time.Millisecond {
		t.Errorf("expired %v after reset(20ms)", at.Sub(start))
	}
}
