package main

import "syscall"

// cpuSeconds is the CPU time, user and kernel, this process has used,
// from GetProcessTimes; notMeasured if it cannot be read.
func cpuSeconds() float64 {
	h, err := syscall.GetCurrentProcess()
	if err != nil {
		return notMeasured
	}
	var created, exited, kernel, user syscall.Filetime
	if err := syscall.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return notMeasured
	}
	// A Filetime counts 100 ns ticks.
	ticks := func(t syscall.Filetime) float64 { return float64(uint64(t.HighDateTime)<<32 | uint64(t.LowDateTime)) }
	return (ticks(kernel) + ticks(user)) / 1e7
}
