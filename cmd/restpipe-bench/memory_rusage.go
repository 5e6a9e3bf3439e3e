//go:build darwin || freebsd

package main

import (
	"fmt"
	"runtime"
	"syscall"
)

// readMemStatus reads this process's peak resident memory from
// getrusage(2). These systems have no /proc/self/status and getrusage
// gives no current figure, so RSSKiB is notMeasured.
func readMemStatus() (memStatus, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return memStatus{}, fmt.Errorf("getrusage: %w", err)
	}
	peak := int64(ru.Maxrss) // KiB on FreeBSD (as on Linux), bytes on macOS
	if runtime.GOOS == "darwin" {
		peak /= 1024
	}
	return memStatus{RSSKiB: notMeasured, HWMKiB: peak}, nil
}
