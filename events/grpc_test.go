package events

import (
	"testing"
	"time"
)

func TestGRPCTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1S", time.Second, true},
		{"500m", 500 * time.Millisecond, true},
		{"2H", 2 * time.Hour, true},
		{"3M", 3 * time.Minute, true},
		{"7u", 7 * time.Microsecond, true},
		{"9n", 9, true},
		{"00000010S", 10 * time.Second, true},
		{"99999999H", time.Duration(1<<63 - 1), true},
		{"99999999n", 99999999, true},
		{"", 0, false},
		{"S", 0, false},
		{"1", 0, false},
		{"1s", 0, false},
		{"123456789S", 0, false}, // 9 digits
		{"+1S", 0, false},
		{"-1S", 0, false},
		{" 1S", 0, false},
		{"1.5S", 0, false},
	} {
		got, ok := GRPCTimeout(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("GRPCTimeout(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestFormatGRPCTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "1m"},
		{-time.Second, "1m"},
		{time.Nanosecond, "1m"},
		{1500 * time.Microsecond, "2m"},
		{45 * time.Second, "45000m"},
		{time.Hour, "3600000m"},
		{99_999_999 * time.Millisecond, "99999999m"},
		{100_000_000 * time.Millisecond, "100000S"},
		{time.Duration(1<<63 - 1), "99999999S"},
	} {
		if got := FormatGRPCTimeout(tc.in); got != tc.want {
			t.Errorf("FormatGRPCTimeout(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if d, ok := GRPCTimeout(FormatGRPCTimeout(tc.in)); !ok || (tc.in > 0 && d < tc.in && tc.in < 99_999_999*time.Second) {
			t.Errorf("GRPCTimeout(FormatGRPCTimeout(%v)) = %v, %v", tc.in, d, ok)
		}
	}
}

func FuzzGRPCTimeout(f *testing.F) {
	for _, s := range []string{"1S", "500m", "99999999H", "+1S", "1", "", "00000000n", "1\xffS"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := GRPCTimeout(s)
		if !ok {
			return
		}
		if d < 0 {
			t.Fatalf("GRPCTimeout(%q) = %v: negative", s, d)
		}
		if len(s) > 9 || len(s) < 2 {
			t.Fatalf("GRPCTimeout(%q) accepted a value of %d bytes", s, len(s))
		}
		// What it formats to parses to at least as long (up to the cap).
		if back, ok := GRPCTimeout(FormatGRPCTimeout(d)); !ok || (back < d && back < 99_999_999*time.Second) {
			t.Fatalf("GRPCTimeout(%q) = %v, formatted %q, back %v %v", s, d, FormatGRPCTimeout(d), back, ok)
		}
	})
}
