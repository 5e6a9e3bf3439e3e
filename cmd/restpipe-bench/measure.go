package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// notMeasured stands for a figure this OS does not give the bench (see
// memory_*.go and cpu_*.go); the table shows it as "n/a".
const notMeasured = -1

// memStatus is the memory of one process, in KiB; a figure the OS does
// not give is notMeasured.
type memStatus struct {
	RSSKiB int64 // resident now
	HWMKiB int64 // peak resident since the process started
}

// cpuSince is the CPU time this process has used since cpuSeconds gave
// t0; notMeasured if either reading is.
func cpuSince(t0 float64) float64 {
	t1 := cpuSeconds()
	if !measured(t0, t1) {
		return notMeasured
	}
	return t1 - t0
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
