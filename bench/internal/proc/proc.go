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
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice,
	// already counted in user and nice].
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
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
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	want := "cpu"
	if cpu >= 0 {
		want += strconv.Itoa(cpu)
	}
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) == 0 || string(f[0]) != want {
			continue
		}
		// user nice system idle iowait irq softirq steal ...
		if len(f) < 9 {
			return 0, nil // a kernel too old to account steal
		}
		v, err := strconv.ParseUint(string(f[8]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %s: %w", want, err)
		}
		return time.Duration(v) * (time.Second / userHZ), nil
	}
	return 0, fmt.Errorf("/proc/stat: no line for %s", want)
}
