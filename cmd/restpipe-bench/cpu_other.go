//go:build !unix && !windows

package main

// cpuSeconds: the bench has no way to read a process's CPU time on this
// OS.
func cpuSeconds() float64 { return notMeasured }
