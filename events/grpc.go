package events

import (
	"strconv"
	"time"
)

// GRPCTimeout parses a gRPC call's grpc-timeout header (gRPC over HTTP/2:
// at most 8 ASCII digits and a unit, H M S m u n): the time the caller
// gives the call. ok is false for a malformed value, which the front end
// ignores (its own default applies).
func GRPCTimeout(v string) (d time.Duration, ok bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	digits := v[:len(v)-1]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false // no sign, no space: strconv would take "+1"
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	// 99999999H is over what a Duration holds: that long is forever.
	if n > int64(1<<63-1)/int64(unit) {
		return time.Duration(1<<63 - 1), true
	}
	return time.Duration(n) * unit, true
}

// FormatGRPCTimeout is d as a grpc-timeout value, in milliseconds
// (rounded up, at least 1), or in seconds when that takes over 8 digits.
func FormatGRPCTimeout(d time.Duration) string {
	if ms := ceilDiv(d, time.Millisecond); ms <= 99_999_999 {
		return strconv.FormatInt(max(ms, 1), 10) + "m"
	}
	return strconv.FormatInt(min(ceilDiv(d, time.Second), 99_999_999), 10) + "S"
}

// ceilDiv is d/unit rounded up, without overflow.
func ceilDiv(d, unit time.Duration) int64 {
	n := d / unit
	if d%unit > 0 {
		n++
	}
	return int64(n)
}
