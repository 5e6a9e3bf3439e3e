package events_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/restpipe/restpipe/events"
)

// headerMap turns event headers into a map, so that tests do not depend
// on their order.
func headerMap(t *testing.T, hs []*events.Header) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	for _, h := range hs {
		if _, dup := m[h.Name]; dup {
			t.Errorf("header %q appears twice", h.Name)
		}
		m[h.Name] = events.Strings(h.Values)
	}
	return m
}

func TestHeadersFromHTTP(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want map[string][]string
	}{
		{"empty", http.Header{}, map[string][]string{}},
		{
			"end-to-end headers kept with all values",
			http.Header{
				"Accept":       {"text/plain", "application/json"},
				"X-Request-Id": {"r1"},
				"Cookie":       {"a=1", "b=2"},
			},
			map[string][]string{
				"Accept":       {"text/plain", "application/json"},
				"X-Request-Id": {"r1"},
				"Cookie":       {"a=1", "b=2"},
			},
		},
		{
			"hop-by-hop dropped",
			http.Header{
				"Connection":          {"keep-alive"},
				"Keep-Alive":          {"timeout=5"},
				"Transfer-Encoding":   {"chunked"},
				"Upgrade":             {"websocket"},
				"Te":                  {"gzip"},
				"Trailer":             {"X-Checksum"},
				"Proxy-Connection":    {"keep-alive"},
				"Proxy-Authenticate":  {"Basic"},
				"Proxy-Authorization": {"Basic Zm9vOmJhcg=="},
				"X-Keep":              {"yes"},
			},
			map[string][]string{"X-Keep": {"yes"}},
		},
		{
			"framing dropped",
			http.Header{
				"Content-Length": {"12"},
				"Content-Type":   {"text/plain"},
				"Host":           {"example.com"},
				"Accept":         {"*/*"},
			},
			map[string][]string{"Accept": {"*/*"}},
		},
		{
			"headers named in Connection dropped",
			http.Header{
				"Connection": {"X-Foo, x-bar", " close ,"},
				"X-Foo":      {"1"},
				"X-Bar":      {"2"},
				"Close":      {"3"},
				"X-Baz":      {"4"},
			},
			map[string][]string{"X-Baz": {"4"}},
		},
		{
			// A gRPC service wants to hear that its caller takes trailers.
			"TE trailers kept, alone",
			http.Header{"Te": {"gzip, trailers;q=1"}, "Connection": {"TE"}},
			map[string][]string{"Te": {"trailers"}},
		},
		{
			"non-canonical keys canonicalised",
			http.Header{"x-lower": {"v"}},
			map[string][]string{"X-Lower": {"v"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := headerMap(t, events.HeadersFromHTTP(tt.in))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("HeadersFromHTTP(%v)\n got %v\nwant %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestHeadersToHTTP(t *testing.T) {
	in := []*events.Header{
		{Name: "x-custom", Values: events.Bytes([]string{"a", "b"})},
		{Name: "X-Tab", Values: events.Bytes([]string{"a\tb"})},
		{Name: "X-Mixed", Values: events.Bytes([]string{"good", "bad\r\nX-Injected: 1", "bad\n", "bad\r", "bad\x00", "bad\x7f", "also good"})},
		{Name: "", Values: events.Bytes([]string{"empty name"})},
		{Name: "X Space", Values: events.Bytes([]string{"v"})},
		{Name: "X-Colon:", Values: events.Bytes([]string{"v"})},
		{Name: "X-Colon: evil", Values: events.Bytes([]string{"v"})},
		{Name: "X-Newline\r\n", Values: events.Bytes([]string{"v"})},
		{Name: "X-Nul\x00", Values: events.Bytes([]string{"v"})},
		{Name: "X-Ünicode", Values: events.Bytes([]string{"v"})},
		{Name: "Connection", Values: events.Bytes([]string{"close"})},
		{Name: "Transfer-Encoding", Values: events.Bytes([]string{"chunked"})},
		{Name: "Content-Length", Values: events.Bytes([]string{"999"})},
		{Name: "Content-Type", Values: events.Bytes([]string{"text/html"})},
		{Name: "Host", Values: events.Bytes([]string{"evil"})},
		{Name: "X-Empty", Values: events.Bytes(nil)},
	}
	got := http.Header{"X-Custom": {"first"}}
	events.HeadersToHTTP(in, got)
	want := http.Header{
		"X-Custom": {"first", "a", "b"}, // added to what was there
		"X-Tab":    {"a\tb"},
		"X-Mixed":  {"good", "also good"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("HeadersToHTTP\n got %q\nwant %q", got, want)
	}
}

// A header that survives HeadersFromHTTP comes back the same through
// HeadersToHTTP.
func TestHeadersRoundTrip(t *testing.T) {
	in := http.Header{
		"Accept":        {"text/plain", "application/json"},
		"Authorization": {"Bearer x"},
		"X-Request-Id":  {"r1"},
		"Connection":    {"close"},
	}
	got := http.Header{}
	events.HeadersToHTTP(events.HeadersFromHTTP(in), got)
	delete(in, "Connection")
	if !reflect.DeepEqual(got, in) {
		t.Errorf("round trip\n got %q\nwant %q", got, in)
	}
}

// TestLength: a reply's length crosses only when it is a length.
func TestLength(t *testing.T) {
	for _, tc := range []struct {
		cl   string
		n    int64
		want bool
	}{{"12", 12, true}, {"0", 0, true}, {"007", 7, true}, {"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"1 2", 0, false}, {" 12", 0, false}, {"0x10", 0, false}, {"99999999999999999999", 0, false}} {
		got := events.Length(tc.cl)
		if (got != nil) != tc.want || (got != nil && *got != tc.n) {
			t.Errorf("Length(%q) = %v, want %d %v", tc.cl, got, tc.n, tc.want)
		}
	}
}
