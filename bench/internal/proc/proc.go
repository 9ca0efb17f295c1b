// Package proc reads the resource usage of this process and of the host
// from the kernel, for the load harness. Linux only (/proc and getrusage).
package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// CPU returns the CPU time (user + system) this process has used so far,
// across all its threads.
func CPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// RSS returns this process's resident set size in bytes (VmRSS of
// /proc/self/status).
func RSS() (int64, error) { return rss("/proc/self/status") }

func rss(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest) // "123456 kB"
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("%s: unexpected VmRSS line %q", path, line)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: VmRSS: %w", path, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: no VmRSS line", path)
}

// HostCPU returns the host's busy and total CPU time in clock ticks, summed
// over all CPUs (the "cpu" line of /proc/stat; idle and iowait are not
// busy). The ratio of two differences is the host's utilisation between
// two calls, whoever used it.
func HostCPU() (busy, total uint64, err error) {
	v, err := statTimes("cpu")
	if err != nil {
		return 0, 0, err
	}
	if len(v) < 4 {
		return 0, 0, fmt.Errorf("/proc/stat: %d times on the cpu line, want at least 4", len(v))
	}
	for i, t := range v {
		total += t
		if i != idle && i != iowait {
			busy += t
		}
	}
	return busy, total, nil
}

// Steal returns the time the hypervisor has kept core cpu from running
// while it had work (the steal field of its line in /proc/stat), so far;
// cpu < 0 means the sum over all cores. On a shared virtual machine a
// window with much steal measures the host's neighbours as much as the
// scraper: its lateness above all (a stolen core runs nothing, timers
// included), and its CPU per sample (caches refilled after every theft).
// Zero where the kernel does not account steal (bare metal).
func Steal(cpu int) (time.Duration, error) {
	name := "cpu"
	if cpu >= 0 {
		name += strconv.Itoa(cpu)
	}
	v, err := statTimes(name)
	if err != nil || len(v) <= steal {
		return 0, err // a kernel too old to account steal: none
	}
	return time.Duration(v[steal]) * (time.Second / userHZ), nil
}

// Indexes of the times on a cpu line of /proc/stat: user nice system idle
// iowait irq softirq steal (guest and guest_nice follow, already counted in
// user and nice, and statTimes leaves them out).
const (
	idle   = 3
	iowait = 4
	steal  = 7
)

// statTimes returns the times (clock ticks) on the line of /proc/stat named
// name ("cpu" for the sum over all cores, "cpuN" for core N), up to steal.
func statTimes(name string) ([]uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) == 0 || string(f[0]) != name {
			continue
		}
		f = f[1:min(len(f), steal+2)]
		v := make([]uint64, len(f))
		for i, s := range f {
			if v[i], err = strconv.ParseUint(string(s), 10, 64); err != nil {
				return nil, fmt.Errorf("/proc/stat: %s: %w", name, err)
			}
		}
		return v, nil
	}
	return nil, fmt.Errorf("/proc/stat: no line for %s", name)
}
