package tunnel

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/certs"
)

// testIdentity is a node identity for configs that never connect.
func testIdentity(t *testing.T) *certs.Identity {
	t.Helper()
	ca, err := certs.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.Issue(certs.IssueRequest{Name: "n1", Usage: certs.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestConfigValidate: every bound Validate holds a Config to, with a
// value just inside it (accepted) and one just outside (refused, with a
// *FieldError that names the field).
func TestConfigValidate(t *testing.T) {
	id := testIdentity(t)
	for _, tc := range []struct {
		name  string
		set   func(*Config)
		field string // "": valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no certificate", func(c *Config) { c.Certificate.Certificate = nil }, "Certificate"},
		{"no CA", func(c *Config) { c.CA = nil }, "CA"},
		{"no dispatcher", func(c *Config) { c.Dispatcher = nil }, "Dispatcher"},
		{"no logger", func(c *Config) { c.Logger = nil }, "Logger"},

		{"handshake timeout 1ns", func(c *Config) { c.HandshakeTimeout = 1 }, ""},
		{"handshake timeout 0", func(c *Config) { c.HandshakeTimeout = 0 }, "HandshakeTimeout"},
		{"keep-alive 1ns", func(c *Config) { c.KeepAliveInterval = 1 }, ""},
		{"keep-alive 0", func(c *Config) { c.KeepAliveInterval = 0 }, "KeepAliveInterval"},
		{"keep-alive negative", func(c *Config) { c.KeepAliveInterval = -time.Second }, "KeepAliveInterval"},
		{"write timeout 1ns", func(c *Config) { c.WriteTimeout = 1 }, ""},
		{"write timeout 0", func(c *Config) { c.WriteTimeout = 0 }, "WriteTimeout"},

		{"window 256KiB", func(c *Config) { c.StreamWindow = 256 << 10 }, ""},
		{"window 256KiB-1", func(c *Config) { c.StreamWindow = 256<<10 - 1 }, "StreamWindow"},
		{"window 64MiB", func(c *Config) { c.StreamWindow = 64 << 20 }, ""},
		{"window 64MiB+1", func(c *Config) { c.StreamWindow = 64<<20 + 1 }, "StreamWindow"},

		{"frame 0", func(c *Config) { c.MaxFrame = 0 }, ""},
		{"frame 1", func(c *Config) { c.MaxFrame = 1 }, "MaxFrame"},
		{"frame 16KiB", func(c *Config) { c.MaxFrame = 16 << 10 }, ""},
		{"frame 16KiB-1", func(c *Config) { c.MaxFrame = 16<<10 - 1 }, "MaxFrame"},
		{"frame 1MiB", func(c *Config) { c.MaxFrame = 1 << 20 }, ""},
		{"frame 1MiB+1", func(c *Config) { c.MaxFrame = 1<<20 + 1 }, "MaxFrame"},
		{"frame negative", func(c *Config) { c.MaxFrame = -1 }, "MaxFrame"},

		{"backlog 1", func(c *Config) { c.AcceptBacklog = 1 }, ""},
		{"backlog 0", func(c *Config) { c.AcceptBacklog = 0 }, "AcceptBacklog"},
		{"backlog 65536", func(c *Config) { c.AcceptBacklog = 65536 }, ""},
		{"backlog MaxInt", func(c *Config) { c.AcceptBacklog = math.MaxInt }, "AcceptBacklog"}, // yamux's make(chan) panicked

		{"streams 1", func(c *Config) { c.MaxStreams = 1 }, ""},
		{"streams 0", func(c *Config) { c.MaxStreams = 0 }, "MaxStreams"},
		{"streams 65536", func(c *Config) { c.MaxStreams = 65536 }, ""},
		{"streams 65537", func(c *Config) { c.MaxStreams = 65537 }, "MaxStreams"},

		{"event header 4KiB", func(c *Config) { c.MaxEventHeader = 4 << 10 }, ""},
		{"event header 4KiB-1", func(c *Config) { c.MaxEventHeader = 4<<10 - 1 }, "MaxEventHeader"},
		{"event header 1MiB", func(c *Config) { c.MaxEventHeader = 1 << 20 }, ""},
		{"event header 1MiB+1", func(c *Config) { c.MaxEventHeader = 1<<20 + 1 }, "MaxEventHeader"},

		{"subscriptions 1", func(c *Config) { c.MaxSubscriptions = 1 }, ""},
		{"subscriptions 0", func(c *Config) { c.MaxSubscriptions = 0 }, "MaxSubscriptions"},
		{"subscriptions 65536", func(c *Config) { c.MaxSubscriptions = 65536 }, ""},
		{"subscriptions 65537", func(c *Config) { c.MaxSubscriptions = 65537 }, "MaxSubscriptions"},

		{"relay queue 1MiB", func(c *Config) { c.RelayQueueBytes = 1 << 20 }, ""},
		{"relay queue 1MiB-1", func(c *Config) { c.RelayQueueBytes = 1<<20 - 1 }, "RelayQueueBytes"},

		{"default timeout 1ns", func(c *Config) { c.DefaultTimeout = 1 }, ""},
		{"default timeout 0", func(c *Config) { c.DefaultTimeout = 0 }, "DefaultTimeout"},
		{"max timeout 1ns", func(c *Config) { c.MaxTimeout = 1 }, ""},
		{"max timeout 0", func(c *Config) { c.MaxTimeout = 0 }, "MaxTimeout"},
		{"body 0 (no limit)", func(c *Config) { c.MaxBodyBytes = 0 }, ""},
		{"body -1", func(c *Config) { c.MaxBodyBytes = -1 }, "MaxBodyBytes"},
		{"body idle 1ns", func(c *Config) { c.BodyIdleTimeout = 1 }, ""},
		{"body idle 0", func(c *Config) { c.BodyIdleTimeout = 0 }, "BodyIdleTimeout"},
		{"header timeout 1ns", func(c *Config) { c.HeaderTimeout = 1 }, ""},
		{"header timeout 0", func(c *Config) { c.HeaderTimeout = 0 }, "HeaderTimeout"},
		{"header bytes 1", func(c *Config) { c.MaxHeaderBytes = 1 }, ""},
		{"header bytes 0", func(c *Config) { c.MaxHeaderBytes = 0 }, "MaxHeaderBytes"},
		{"header bytes 1MiB", func(c *Config) { c.MaxHeaderBytes = 1 << 20 }, ""},
		{"header bytes MaxInt", func(c *Config) { c.MaxHeaderBytes = math.MaxInt }, "MaxHeaderBytes"}, // net/http's limit wrapped
		{"shutdown 1ns", func(c *Config) { c.ShutdownTimeout = 1 }, ""},
		{"shutdown 0", func(c *Config) { c.ShutdownTimeout = 0 }, "ShutdownTimeout"},

		{"channel queue 1", func(c *Config) { c.ChannelQueue = 1 }, ""},
		{"channel queue 0", func(c *Config) { c.ChannelQueue = 0 }, "ChannelQueue"},
		{"channel queue 65536", func(c *Config) { c.ChannelQueue = 65536 }, ""},
		{"channel queue 65537", func(c *Config) { c.ChannelQueue = 65537 }, "ChannelQueue"},
		{"channel message 1", func(c *Config) { c.ChannelMaxMessage = 1 }, ""},
		{"channel message 0", func(c *Config) { c.ChannelMaxMessage = 0 }, "ChannelMaxMessage"},
		{"channel message 256KiB", func(c *Config) { c.ChannelMaxMessage = 256 << 10 }, ""},
		{"channel message 256KiB+1", func(c *Config) { c.ChannelMaxMessage = 256<<10 + 1 }, "ChannelMaxMessage"},
		{"channel queue bytes fit two messages", func(c *Config) { c.ChannelQueueBytes = 2*c.ChannelMaxMessage + 1024 }, ""},
		{"channel queue bytes a byte short", func(c *Config) { c.ChannelQueueBytes = 2*c.ChannelMaxMessage + 1023 }, "ChannelQueueBytes"},

		{"origins", func(c *Config) { c.Origins = []string{"*.example.com", "https://app.example.com"} }, ""},
		{"bad origin", func(c *Config) { c.Origins = []string{"[bad"} }, "Origins"},
		{"hosts", func(c *Config) { c.HTTPHosts = []string{"tunnel.internal", "proxy.internal:8443"} }, ""},
		{"bad host", func(c *Config) { c.HTTPHosts = []string{"http://x"} }, "HTTPHosts"},

		{"reconnect min 1ns", func(c *Config) { c.ReconnectMin = 1 }, ""},
		{"reconnect min 0", func(c *Config) { c.ReconnectMin, c.ReconnectMax = 0, time.Second }, "ReconnectMin"},
		{"reconnect max = min", func(c *Config) { c.ReconnectMax = c.ReconnectMin }, ""},
		{"reconnect max below min", func(c *Config) { c.ReconnectMax = c.ReconnectMin - 1 }, "ReconnectMax"},
		{"stable after 1ns", func(c *Config) { c.StableAfter = 1 }, ""},
		{"stable after 0", func(c *Config) { c.StableAfter = 0 }, "StableAfter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Certificate, c.CA = id.Certificate, id.Pool
			tc.set(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Validate: %v, want a *FieldError about %s", err, tc.field)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "tunnel: Config."+tc.field) || strings.Contains(msg, "\n") {
				t.Errorf("Validate: %q, want one line about Config.%s", msg, tc.field)
			}
		})
	}
}

// TestConfigValidateAll: Validate reports every field it refuses, in
// the order of the fields, each with its rule.
func TestConfigValidateAll(t *testing.T) {
	c := DefaultConfig()
	c.MaxStreams, c.ChannelMaxMessage = 65537, 1<<20
	err := c.Validate()
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		got = append(got, fe.Field)
	}
	// ChannelQueueBytes: 1 MiB is below twice the 1 MiB message.
	want := []string{"Certificate", "CA", "MaxStreams", "ChannelQueueBytes", "ChannelMaxMessage"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("refused %v, want %v", got, want)
	}
	for _, line := range []string{
		"tunnel: Config.Certificate: must be set",
		"tunnel: Config.MaxStreams is 65537: must be from 1 to 65536",
		"tunnel: Config.ChannelMaxMessage is 1048576: must be from 1 to 256KiB",
	} {
		if !strings.Contains(err.Error(), line+"\n") && !strings.HasSuffix(err.Error(), line) {
			t.Errorf("Validate: %q, want a line %q", err, line)
		}
	}
}

// TestDefaultConfigComplete: every default lives in DefaultConfig. It
// leaves zero only the fields whose zero means something (or that the
// caller must set), and NewServer and NewClient fill a zero field with
// exactly DefaultConfig's value.
func TestDefaultConfigComplete(t *testing.T) {
	zeroByDesign := map[string]bool{
		"Certificate": true, "CA": true, // the caller's
		"ServerName": true, "Version": true, "VerifyPeer": true, "ChannelPrefix": true,
		"PublishKey": true, "Origins": true, "HTTPHosts": true,
		"Metrics":      true, // nothing counted
		"MaxFrame":     true, // the role's size
		"MaxBodyBytes": true, // no limit
	}
	d := reflect.ValueOf(DefaultConfig())
	typ := d.Type()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if d.Field(i).IsZero() != zeroByDesign[name] {
			t.Errorf("DefaultConfig().%s is %v: zero is %v, want %v", name, d.Field(i), d.Field(i).IsZero(), zeroByDesign[name])
		}
	}

	id := testIdentity(t)
	filled, err := Config{Certificate: id.Certificate, CA: id.Pool}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults of a Config with only an identity: %v", err)
	}
	f := reflect.ValueOf(filled)
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		switch name {
		case "Certificate", "CA":
			continue
		case "Dispatcher", "Logger": // a new one each time: compare types
			if f.Field(i).Elem().Type() != d.Field(i).Elem().Type() {
				t.Errorf("filled %s is a %v, DefaultConfig's a %v", name, f.Field(i).Elem().Type(), d.Field(i).Elem().Type())
			}
			continue
		}
		if !reflect.DeepEqual(f.Field(i).Interface(), d.Field(i).Interface()) {
			t.Errorf("a zero %s is filled with %v, DefaultConfig has %v", name, f.Field(i), d.Field(i))
		}
	}
}
