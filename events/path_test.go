package events_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/restpipe/restpipe/events"
)

var parsePathTests = []struct {
	in   string
	want events.Path
}{
	{"/server/time", events.Path{Target: events.TargetServer, Noun: []string{"time"}}},
	{"/server/time/utc", events.Path{Target: events.TargetServer, Noun: []string{"time", "utc"}, Rest: "/utc"}},
	{"/server/time/", events.Path{Target: events.TargetServer, Noun: []string{"time"}, Rest: "/"}},
	{"/server/cat//hello%20/world", events.Path{
		Target: events.TargetServer, Noun: []string{"cat"},
		Args: []string{"hello ", "world"}, Rest: "//hello%20/world",
	}},
	// %2F is split on before unescaping, so it stays inside its argument.
	{"/server/cat//a%2Fb", events.Path{
		Target: events.TargetServer, Noun: []string{"cat"}, Args: []string{"a/b"}, Rest: "//a%2Fb",
	}},
	{"/server/cat//", events.Path{Target: events.TargetServer, Noun: []string{"cat"}, Args: []string{""}, Rest: "//"}},
	{"/server/cat///b", events.Path{Target: events.TargetServer, Noun: []string{"cat"}, Args: []string{"", "b"}, Rest: "///b"}},
	// Arguments are not cleaned: ".." is an argument like any other.
	{"/server/a//b/../", events.Path{
		Target: events.TargetServer, Noun: []string{"a"}, Args: []string{"b", "..", ""}, Rest: "//b/../",
	}},
	{"/server/a/b/c//", events.Path{
		Target: events.TargetServer, Noun: []string{"a", "b", "c"}, Args: []string{""}, Rest: "/b/c//",
	}},
	{"/server/a%20b/c", events.Path{Target: events.TargetServer, Noun: []string{"a b", "c"}, Rest: "/c"}},
	{"/server/files/a//b", events.Path{
		Target: events.TargetServer, Noun: []string{"files", "a"}, Args: []string{"b"}, Rest: "/a//b",
	}},
	{"/client/c1/time", events.Path{Target: events.TargetClient, Peer: "c1", Noun: []string{"time"}}},
	{"/client/c1/cat//a/b", events.Path{
		Target: events.TargetClient, Peer: "c1", Noun: []string{"cat"}, Args: []string{"a", "b"}, Rest: "//a/b",
	}},
	{"/client/c1/files/x%20y", events.Path{
		Target: events.TargetClient, Peer: "c1", Noun: []string{"files", "x y"}, Rest: "/x%20y",
	}},
	{"/client/web%20one/time", events.Path{Target: events.TargetClient, Peer: "web one", Noun: []string{"time"}}},
	{"/clients", events.Path{Target: events.TargetClients}},
	{"/clients/", events.Path{Target: events.TargetClients}},
}

var parsePathErrors = []string{
	"",
	"/",
	"/server",
	"/server/",
	"/server//x",  // empty first noun segment
	"/server///x", // no noun before the arguments
	"/client",
	"/client/",
	"/client/c1",
	"/client/c1/",
	"/client//time",
	"/client/a%2Fb/time", // slash in the client name
	"/client/%zz/time",
	"/clients/x",
	"/other/x",
	"server/time",
	"/server/a%2Fb", // slash in a noun segment
	"/server/%zz",   // bad escape
	"/server/a//%zz",
	"/server/a/%",
	"/server/a//b/%2",
}

func TestParsePath(t *testing.T) {
	for _, tt := range parsePathTests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := events.ParsePath(tt.in)
			if err != nil {
				t.Fatalf("ParsePath(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePath(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParsePathErrors(t *testing.T) {
	for _, in := range parsePathErrors {
		t.Run(in, func(t *testing.T) {
			got, err := events.ParsePath(in)
			if !errors.Is(err, events.ErrBadPath) {
				t.Fatalf("ParsePath(%q) = %#v, %v; want an error wrapping ErrBadPath", in, got, err)
			}
			if !reflect.DeepEqual(got, events.Path{}) {
				t.Errorf("ParsePath(%q) returned %#v with its error; want the zero Path", in, got)
			}
		})
	}
}

func BenchmarkParsePath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.ParsePath("/client/c1/files/report%202024//a%2Fb/c"); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, tt := range parsePathTests {
		f.Add(tt.in)
	}
	for _, in := range parsePathErrors {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := events.ParsePath(in)
		if err != nil {
			if !errors.Is(err, events.ErrBadPath) {
				t.Fatalf("ParsePath(%q): error %v does not wrap ErrBadPath", in, err)
			}
			return
		}
		switch p.Target {
		case events.TargetClients:
			if p.Peer != "" || p.Noun != nil || p.Args != nil {
				t.Fatalf("ParsePath(%q) = %#v: /clients with a peer, noun or args", in, p)
			}
			return
		case events.TargetServer:
			if p.Peer != "" {
				t.Fatalf("ParsePath(%q) = %#v: server path with a peer", in, p)
			}
		case events.TargetClient:
			if p.Peer == "" {
				t.Fatalf("ParsePath(%q) = %#v: client path without a peer", in, p)
			}
		default:
			t.Fatalf("ParsePath(%q) = %#v: invalid target", in, p)
		}
		if len(p.Noun) == 0 {
			t.Fatalf("ParsePath(%q) = %#v: empty noun", in, p)
		}
		for _, n := range p.Noun {
			if n == "" || strings.Contains(n, "/") {
				t.Fatalf("ParsePath(%q) = %#v: bad noun segment %q", in, p, n)
			}
		}
		if !strings.HasSuffix(in, p.Rest) {
			t.Fatalf("ParsePath(%q) = %#v: Rest is not the end of the path", in, p)
		}
	})
}
