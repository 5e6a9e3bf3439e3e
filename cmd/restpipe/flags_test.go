package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
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
		// One parser for every size: 1024-based and 1000-based units, any
		// case, a space allowed before the unit.
		{"1MiB", 1 << 20, ""},
		{"1MB", 1e6, ""},
		{"512KiB", 512 << 10, ""},
		{"500KB", 500e3, ""},
		{"2GB", 2e9, ""},
		{"64B", 64, ""},
		{"1 MiB", 1 << 20, ""},
		{" 3kib ", 3 << 10, ""},
		{"1mb", 1e6, ""},
		{"0", 0, ""},
		{"18446744073709551615B", 1<<64 - 1, ""},
		{"18446744073709551616B", 0, "too large"},
		{"18446744074GB", 0, "too large"},
		{"lots", 0, "KiB, MiB, GiB"},
		{"-1KiB", 0, "KiB, MiB, GiB"},
		{"+1KiB", 0, "KiB, MiB, GiB"},
		{"1.5MiB", 0, "KiB, MiB, GiB"},
		{"1M", 0, "KiB, MiB, GiB"},
		{"1iB", 0, "KiB, MiB, GiB"},
		{"MiB", 0, "KiB, MiB, GiB"},
		{"1MiBMiB", 0, "KiB, MiB, GiB"},
		{"0x10", 0, "KiB, MiB, GiB"},
		{"", 0, "KiB, MiB, GiB"},
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

// sizeRe and sizeUnitsLower are FuzzByteSize's own reading of a size.
var (
	sizeRe         = regexp.MustCompile(`^[ \t]*([0-9]+)[ \t]*([A-Za-z]*)[ \t]*$`)
	sizeUnitsLower = map[string]uint64{"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 1e3, "mb": 1e6, "gb": 1e9}
)

// FuzzByteSize: Set never panics, and what it accepts is exactly the
// number times its unit, without wrapping around.
func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"0", "262144", "256KiB", "4MiB", "1GiB", "20000000000GiB", "18446744073709551615", " 7 KiB", "KiB", "1kib", "1MB", "3 gb", "9B", "1.5MiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b byteSize
		if err := b.Set(s); err != nil {
			return
		}
		m := sizeRe.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("Set(%q) accepted what is no number and unit", s)
		}
		v, err := strconv.ParseUint(m[1], 10, 64)
		unit, known := sizeUnitsLower[strings.ToLower(m[2])]
		if err != nil || !known {
			t.Fatalf("Set(%q) accepted what does not parse: %v, unit %q", s, err, m[2])
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

// TestSizeFlagSources: every size flag reads the same units from the
// command line, the environment and the config file, and a bad size is
// one line that names the flag, variable or key.
func TestSizeFlagSources(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "node.json")
	sizes := []struct {
		flag  string
		value string
		field func(tunnel.Config) int64
		want  int64
	}{
		{"max-body", "1MiB", func(c tunnel.Config) int64 { return c.MaxBodyBytes }, 1 << 20},
		{"window", "2MB", func(c tunnel.Config) int64 { return int64(c.StreamWindow) }, 2e6},
		{"max-frame", "512 KiB", func(c tunnel.Config) int64 { return int64(c.MaxFrame) }, 512 << 10},
		{"channel-max-message", "100kb", func(c tunnel.Config) int64 { return c.ChannelMaxMessage }, 100e3},
	}
	for _, sz := range sizes {
		key := envKey(sz.flag)
		for _, src := range []struct {
			name, config string
			env          map[string]string
			args         []string
			bad          string // what the error for a bad size says
		}{
			{name: "command line", args: []string{"--" + sz.flag, sz.value}, bad: `invalid value "%s" for flag -` + sz.flag + ": want a size"},
			{name: "environment", env: map[string]string{key: sz.value}, bad: key + `="%s": want a size`},
			{name: "config file", config: fmt.Sprintf(`{%q: %q}`, sz.flag, sz.value), bad: fmt.Sprintf("config file %s: %s %q: want a size", cfgFile, sz.flag, "%s")},
		} {
			parse := func(value string) (*serverFlags, error) {
				args := slices.Clone(src.args)
				if len(args) > 0 {
					args[1] = value
				}
				env := map[string]string{}
				for k := range src.env {
					env[k] = value
				}
				config := strings.Replace(src.config, sz.value, value, 1)
				if config == "" {
					config = "{}"
				}
				if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
					t.Fatal(err)
				}
				cli := &cliEnv{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }}
				return parseServerFlags(cli, append([]string{"--config", cfgFile}, args...))
			}
			f, err := parse(sz.value)
			if err != nil {
				t.Errorf("--%s %q from the %s: %v", sz.flag, sz.value, src.name, err)
			} else if got := sz.field(f.tunnelConfig()); got != sz.want {
				t.Errorf("--%s %q from the %s: %d, want %d", sz.flag, sz.value, src.name, got, sz.want)
			}
			_, err = parse("1.5GiB")
			if want := fmt.Sprintf(src.bad, "1.5GiB"); err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("--%s 1.5GiB from the %s: %v, want %q", sz.flag, src.name, err, want)
			}
		}
	}
}
