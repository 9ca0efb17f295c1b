package engine

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// newPollTimer returns a wheelTimer on a Linux timerfd, read through the
// runtime's network poller, or nil if the kernel refuses one. The wheel
// sleeps on it and on a runtime timer at once.
//
// Why: with GOMAXPROCS=1 (one core, or a container limited to one CPU) a
// garbage collection shares the only P with the wheel. The idle mark
// worker, which runs whenever nothing else is runnable, gives the P back
// when a goroutine is runnable or the network poller has an event, but it
// does not look at runtime timers (runtime.pollWork): a wheel sleeping on a
// time.Timer waited until the worker was preempted, up to 10 ms. An expiry
// of a timerfd is a poller event, so the worker yields to it. The fractional
// mark worker is not helped: it runs its share of the core whatever waits.
//
// It is also finer: the runtime sleeps for its timers in epoll_pwait,
// whose timeout is in whole milliseconds, so a runtime timer due in 0.3 ms
// fired about 1 ms later, and p50 scrape-start lateness was half the
// wheel's 1 ms tick. A timerfd expires to the nanosecond.
//
// Alone it did worse in steady state: a goroutine the poller readies
// waits at the back of the run queue, and while the P stays busy the
// poller is only looked at by sysmon, every 10 ms or so, where a runtime
// timer is checked at every scheduling point and its goroutine runs next.
// So the wheel sleeps on both (wheel.run), and whichever fires first wakes
// it. At 10,000 targets × 15 s on one core (bench/README.md, Lateness),
// p50 / p99 scrape-start lateness:
//
//	                            runtime timer     timerfd alone    both
//	no collection in the window  0.46 / 1.90 ms   0.13 / 91.8 ms   0.09 / 0.80, 0.08 / 0.73
//	two forced collections       0.46 / 24.0      0.10 / 3.3       0.09 / 1.91
func newPollTimer() wheelTimer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil // the runtime timer alone
	}
	// A non-blocking descriptor: os.NewFile registers it with the poller,
	// so a Read parks the goroutine instead of a thread.
	t := &pollTimer{f: os.NewFile(uintptr(fd), "wheel-timerfd"), fd: fd, c: make(chan time.Time, 1), done: make(chan struct{})}
	go t.read()
	return t
}

// pollTimer is a timerfd and the goroutine that reads its expiries into c.
// The goroutine is owned by the timer: stop closes the descriptor, which
// ends the pending Read, and waits for it to return.
type pollTimer struct {
	f    *os.File
	fd   int
	c    chan time.Time // capacity 1: an expiry not yet received
	done chan struct{}
}

func (t *pollTimer) read() {
	defer close(t.done)
	var b [8]byte // the number of expiries since the last read
	for {
		if _, err := t.f.Read(b[:]); err != nil {
			return // closed by stop
		}
		select {
		case t.c <- time.Now():
		default: // one is pending already
		}
	}
}

func (t *pollTimer) reset(d time.Duration) {
	select {
	case <-t.c: // drop an expiry run did not wait for
	default:
	}
	// A zero it_value disarms a timerfd: at least 1 ns.
	ts := unix.NsecToTimespec(max(int64(d), 1))
	if err := unix.TimerfdSettime(t.fd, 0, &unix.ItimerSpec{Value: ts}, nil); err != nil {
		// Only invalid values or a closed descriptor fail, neither of
		// which run produces: wake run at once rather than never.
		select {
		case t.c <- time.Now():
		default:
		}
	}
}

func (t *pollTimer) C() <-chan time.Time { return t.c }

func (t *pollTimer) stop() {
	t.f.Close()
	<-t.done
}
