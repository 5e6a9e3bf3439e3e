package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// memStatus is the memory of one process, from /proc/PID/status.
type memStatus struct {
	RSSKiB int64 // VmRSS: resident now
	HWMKiB int64 // VmHWM: peak resident since the process started
}

// readMemStatus reads VmRSS and VmHWM of process pid ("self" for this one).
func readMemStatus(pid string) (memStatus, error) {
	path := "/proc/" + pid + "/status"
	b, err := os.ReadFile(path)
	if err != nil {
		return memStatus{}, fmt.Errorf("read %s: %w", path, err)
	}
	var m memStatus
	var found int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.RSSKiB
		case "VmHWM":
			dst = &m.HWMKiB
		default:
			continue
		}
		// "  123456 kB"
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return memStatus{}, fmt.Errorf("parse %s in %s: %w", key, path, err)
		}
		*dst = n
		found++
	}
	if found != 2 {
		return memStatus{}, fmt.Errorf("%s: no VmRSS/VmHWM lines (not Linux?)", path)
	}
	return m, nil
}

// cpuSeconds is the CPU time, user and system, this process has used;
// 0 if it cannot be read.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit: a node
// with thousands of tunnel connections needs a descriptor for each. It
// returns the soft limit in force afterwards.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("setrlimit NOFILE to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted, by
// nearest rank; 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// sortDurations sorts d in place and returns it.
func sortDurations(d []time.Duration) []time.Duration {
	slices.Sort(d)
	return d
}

// machine describes the host for the table header.
type machine struct {
	Cores int    `json:"cores"`
	CPU   string `json:"cpu"`
	OS    string `json:"os"`
	Arch  string `json:"arch"`
	Go    string `json:"go"`
}

func describeMachine() machine {
	return machine{
		Cores: runtime.NumCPU(),
		CPU:   cpuModel(),
		OS:    runtime.GOOS,
		Arch:  runtime.GOARCH,
		Go:    runtime.Version(),
	}
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if key, val, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(val)
		}
	}
	return "unknown CPU"
}

// Formatting of figures for the table.

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func fmtKiB(kib float64) string {
	switch {
	case kib >= 10*1024:
		return fmt.Sprintf("%.0f MiB", kib/1024)
	case kib >= 1024:
		return fmt.Sprintf("%.1f MiB", kib/1024)
	default:
		return fmt.Sprintf("%.1f KiB", kib)
	}
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// parseSize reads a byte count: a whole number with an optional suffix
// k/K/KiB, M/MiB, G/GiB (all powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"k", 1 << 10}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("size %q: want a positive whole number of bytes, optionally with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}
