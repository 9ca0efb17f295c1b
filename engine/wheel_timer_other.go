//go:build !linux

package engine

// newPollTimer is a runtime timer where there is no timerfd.
func newPollTimer() wheelTimer { return newGoTimer() }
