package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// readMemStatus reads this process's VmRSS and VmHWM from
// /proc/self/status.
func readMemStatus() (memStatus, error) {
	const path = "/proc/self/status"
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
		return memStatus{}, fmt.Errorf("%s: no VmRSS/VmHWM lines", path)
	}
	return m, nil
}
