package tunnel

import (
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/events"
)

// FuzzCheckHello: a hello field checkHello accepts is short, UTF-8 and
// printable (it is kept and logged as is).
func FuzzCheckHello(f *testing.F) {
	f.Add("c1", "v1.2.3-4-gabcdef-dirty")
	f.Add("c1", strings.Repeat("v", 300))
	f.Add("c1\n", "1.0\x1b[2J")
	f.Add("", "\xff")
	f.Fuzz(func(t *testing.T, name, version string) {
		if checkHello(&events.Hello{NodeName: name, SoftwareVersion: version}) != nil {
			return
		}
		for _, v := range []string{name, version} {
			if len(v) > maxHelloField || !utf8.ValidString(v) || strings.IndexFunc(v, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
				t.Fatalf("accepted %q", v)
			}
		}
	})
}

// TestLogLimiter: one line a second at most, with the count of those
// held back.
func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		at   time.Duration
		n    int
		pass bool
	}{
		{0, 1, true},
		{10 * time.Millisecond, 0, false},
		{900 * time.Millisecond, 0, false},
		{time.Second, 3, true},
		{1500 * time.Millisecond, 0, false},
		{5 * time.Second, 2, true},
	} {
		n, ok := l.allow(t0.Add(tc.at))
		if n != tc.n || ok != tc.pass {
			t.Errorf("at %v: allow = %d, %v; want %d, %v", tc.at, n, ok, tc.n, tc.pass)
		}
	}
}

// TestConfigBounds: the bounds of a hostile peer have their defaults and
// are checked.
func TestConfigBounds(t *testing.T) {
	d := DefaultConfig()
	if d.MaxStreams != 48 || d.MaxEventHeader != 128<<10 || d.MaxSubscriptions != 1024 || d.RelayQueueBytes != 16<<20 {
		t.Errorf("defaults %d %d %d %d", d.MaxStreams, d.MaxEventHeader, d.MaxSubscriptions, d.RelayQueueBytes)
	}
	ca, err := certs.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.Issue(certs.IssueRequest{Name: "n1", Usage: certs.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"negative streams", func(c *Config) { c.MaxStreams = -1 }, "MaxStreams"},
		{"tiny event header", func(c *Config) { c.MaxEventHeader = 100 }, "MaxEventHeader"},
		{"huge event header", func(c *Config) { c.MaxEventHeader = 2 << 20 }, "MaxEventHeader"},
		{"tiny relay queue", func(c *Config) { c.RelayQueueBytes = 1000 }, "RelayQueueBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Certificate, c.CA = id.Certificate, id.Pool
			tc.set(&c)
			if _, err := c.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("withDefaults: %v, want an error about %s", err, tc.want)
			}
		})
	}
}
