//go:build !linux

package engine

// newPollTimer is nil where there is no timerfd: the wheel sleeps on its
// runtime timer alone.
func newPollTimer() wheelTimer { return nil }
