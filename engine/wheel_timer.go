package engine

import "time"

// wheelTimer is the second timer the wheel's run sleeps on between slots,
// beside its runtime timer (newPollTimer's): a one-shot timer whose
// channel receives when it expires. reset(d) replaces any
// earlier arming. A receive may come early (an expiry of an earlier arming
// that raced with reset): run tolerates it, since it reads the clock again
// and sleeps again if nothing is due. stop releases the timer; it must be
// the last call.
type wheelTimer interface {
	reset(d time.Duration)
	C() <-chan time.Time
	stop()
}
