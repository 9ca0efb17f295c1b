package engine

import "time"

// wheelTimer is what the wheel's run sleeps on between slots: a one-shot
// timer whose channel receives when it expires. reset(d) replaces any
// earlier arming. A receive may come early (an expiry of an earlier arming
// that raced with reset): run tolerates it, since it reads the clock again
// and sleeps again if nothing is due. stop releases the timer; it must be
// the last call.
type wheelTimer interface {
	reset(d time.Duration)
	C() <-chan time.Time
	stop()
}

// goTimer is a wheelTimer on a runtime timer: what the wheel's tests use,
// since testing/synctest fakes runtime timers (and not file descriptors),
// and the fallback where the poller's timer is not available.
type goTimer struct{ t *time.Timer }

func newGoTimer() wheelTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return goTimer{t}
}

// Since Go 1.23, Reset discards a value the timer may have sent before, so
// the timer needs no draining.
func (g goTimer) reset(d time.Duration) { g.t.Reset(d) }
func (g goTimer) C() <-chan time.Time   { return g.t.C }
func (g goTimer) stop()                 { g.t.Stop() }
