//go:build !linux && !darwin && !freebsd

package main

// readMemStatus: this OS gives the bench neither the current nor the
// peak resident memory of a process (Windows would need psapi's
// GetProcessMemoryInfo, which package syscall lacks), so both are
// notMeasured.
func readMemStatus() (memStatus, error) {
	return memStatus{RSSKiB: notMeasured, HWMKiB: notMeasured}, nil
}
