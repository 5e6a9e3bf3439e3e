package main

import (
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/restpipe/restpipe/tunnel"
)

func TestByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr string
	}{
		{"262144", 262144, ""},
		{"256KiB", 256 << 10, ""},
		{"4MiB", 4 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"17179869183GiB", 17179869183 << 30, ""}, // the largest that fits
		{"17179869184GiB", 0, "too large"},        // 2^64: wrapped to 0 before
		{"20000000000GiB", 0, "too large"},
		{"18446744073709551615", 1<<64 - 1, ""},
		{"18446744073709551616", 0, "too large"},
		{"99999999999999999999999MiB", 0, "too large"},
		{"lots", 0, "KiB, MiB or GiB"},
		{"-1KiB", 0, "KiB, MiB or GiB"},
		{"", 0, "KiB, MiB or GiB"},
	}
	for _, tt := range tests {
		var b byteSize
		err := b.Set(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Set(%q) = %v (%d), want an error saying %q", tt.in, err, uint64(b), tt.wantErr)
		case tt.wantErr == "" && (err != nil || uint64(b) != tt.want):
			t.Errorf("Set(%q) = %d, %v; want %d", tt.in, uint64(b), err, tt.want)
		}
	}
}

// FuzzByteSize: Set never panics, and what it accepts is exactly the
// number times its unit, without wrapping around.
func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"0", "262144", "256KiB", "4MiB", "1GiB", "20000000000GiB", "18446744073709551615", " 7 KiB", "KiB", "1kib"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b byteSize
		if err := b.Set(s); err != nil {
			return
		}
		num, unit := s, uint64(1)
		for suffix, mult := range map[string]uint64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
			if n, ok := strings.CutSuffix(s, suffix); ok {
				num, unit = n, mult
			}
		}
		v, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
		if err != nil {
			t.Fatalf("Set(%q) accepted what does not parse: %v", s, err)
		}
		if uint64(b)/unit != v || uint64(b)%unit != 0 {
			t.Fatalf("Set(%q) = %d, not %d x %d", s, uint64(b), v, unit)
		}
		var again byteSize
		if err := again.Set(b.String()); err != nil || again != b {
			t.Fatalf("String %q of Set(%q) does not parse back: %d, %v", b.String(), s, uint64(again), err)
		}
	})
}

// TestConfigFlags: the node flags that set tunnel.Config fields take
// their defaults from tunnel.DefaultConfig, each names a flag that
// exists, and a size too big for its field is refused, not wrapped.
func TestConfigFlags(t *testing.T) {
	env := &cliEnv{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	fs := newNodeFlagSet(env, "node", "", "")
	var n nodeFlags
	n.register(fs, "127.0.0.1:0")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	got, want := reflect.ValueOf(n.tunnelConfig()), reflect.ValueOf(tunnel.DefaultConfig())
	for field, name := range configFlags {
		if fs.Lookup(name) == nil {
			t.Errorf("Config.%s: no flag --%s", field, name)
			continue
		}
		if g, w := got.FieldByName(field).Interface(), want.FieldByName(field).Interface(); !reflect.DeepEqual(g, w) {
			t.Errorf("--%s defaults to %v, tunnel.DefaultConfig().%s is %v", name, g, field, w)
		}
	}
	for _, tc := range []struct{ flag, value string }{
		{"window", "4194560KiB"},    // 4 GiB + 256 KiB: 256 KiB in a uint32
		{"max-frame", "4194320KiB"}, // 4 GiB + 16 KiB: 16 KiB in an int32
	} {
		var n nodeFlags
		fs := newNodeFlagSet(env, "node", "", "")
		n.register(fs, "127.0.0.1:0")
		if err := fs.Parse([]string{"--" + tc.flag, tc.value}); err != nil {
			t.Fatal(err)
		}
		err := n.flagError(n.tunnelConfig().Validate())
		if want := "--" + tc.flag + " " + tc.value + ": --" + tc.flag + " must be"; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("--%s %s: %v, want %q...", tc.flag, tc.value, err, want)
		}
	}
}
