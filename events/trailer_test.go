package events_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/restpipe/restpipe/events"
)

func TestTrailerAllowed(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"X-Checksum", true},
		{"grpc-status", true},
		{"Grpc-Message", true},
		{"Server-Timing", true},
		{"Digest", true},
		// Framing, routing, authentication, content format (RFC 9110
		// section 6.5.1), and hop-by-hop fields.
		{"Content-Length", false},
		{"content-length", false},
		{"Transfer-Encoding", false},
		{"Host", false},
		{"Authorization", false},
		{"WWW-Authenticate", false},
		{"Proxy-Authorization", false},
		{"Content-Type", false},
		{"Content-Encoding", false},
		{"Content-Range", false},
		{"Cache-Control", false},
		{"Set-Cookie", false},
		{"Trailer", false},
		{"TE", false},
		{"Connection", false},
		{"Keep-Alive", false},
		{"Upgrade", false},
		// Not a token.
		{"", false},
		{"X Space", false},
		{"X-Colon:", false},
		{"X-Nl\r\n", false},
	} {
		if got := events.TrailerAllowed(tc.name); got != tc.want {
			t.Errorf("TrailerAllowed(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestTrailersFromHTTP(t *testing.T) {
	in := http.Header{
		"X-Checksum":     {"abc"},
		"grpc-status":    {"0"},
		"Content-Length": {"12"},
		"Host":           {"evil"},
		"X-Announced":    nil, // announced, never sent
	}
	got := map[string][]string{}
	for _, h := range events.TrailersFromHTTP(in) {
		got[h.Name] = events.Strings(h.Values)
	}
	want := map[string][]string{"X-Checksum": {"abc"}, "Grpc-Status": {"0"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TrailersFromHTTP: %v, want %v", got, want)
	}
	if hs := events.TrailersFromHTTP(nil); hs != nil {
		t.Errorf("no fields: %v", hs)
	}
	if names := events.TrailerNames(in); !reflect.DeepEqual(names, []string{"Grpc-Status", "X-Announced", "X-Checksum"}) {
		t.Errorf("TrailerNames: %v", names)
	}
	ann := events.AnnouncedTrailer([]string{"x-a", "Content-Length", "X-B"})
	if !reflect.DeepEqual(ann, http.Header{"X-A": nil, "X-B": nil}) {
		t.Errorf("AnnouncedTrailer: %v", ann)
	}
}

func TestTrailersToHTTP(t *testing.T) {
	in := []*events.Header{
		{Name: "x-sum", Values: events.Bytes([]string{"1", "bad\r\nX-Injected: 1", "2"})},
		{Name: "Content-Length", Values: events.Bytes([]string{"999"})},
		{Name: "Transfer-Encoding", Values: events.Bytes([]string{"chunked"})},
		{Name: "X-Colon: evil", Values: events.Bytes([]string{"v"})},
		{Name: "Set-Cookie", Values: events.Bytes([]string{"a=1"})},
		{Name: "X-Latin", Values: [][]byte{[]byte("caf\xe9")}},
	}
	got := http.Header{}
	events.TrailersToHTTP(in, got)
	want := http.Header{"X-Sum": {"1", "2"}, "X-Latin": {"caf\xe9"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TrailersToHTTP: %q, want %q", got, want)
	}
}

// TestBodyTrailer: a body's trailer fields cross with it, through Read
// and through WriteTo; a body whose end has none, or an error, has none.
func TestBodyTrailer(t *testing.T) {
	fields := []*events.Header{{Name: "Grpc-Status", Values: events.Bytes([]string{"0"})}, {Name: "X-Sum", Values: events.Bytes([]string{"a", "b"})}}
	for _, tc := range []struct {
		name string
		src  io.Reader
		want []*events.Header
	}{
		{"in memory", &trailed{Reader: strings.NewReader("body"), t: fields}, fields},
		{"streamed", &trailedStream{r: io.MultiReader(strings.NewReader("bo"), strings.NewReader("dy")), t: fields}, fields},
		{"no fields", &trailed{Reader: strings.NewReader("body")}, nil},
		{"not a source", strings.NewReader("body"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := encodeFrames(t, func(w *events.Writer) error {
				_, srcErr, dstErr := w.CopyBody(tc.src, make([]byte, 32<<10))
				return errors.Join(srcErr, dstErr)
			})
			for _, viaWriteTo := range []bool{false, true} {
				b := events.NewReader(bytes.NewReader(enc)).Body()
				if b.Trailer() != nil {
					t.Errorf("trailer before the end: %v", b.Trailer())
				}
				var out bytes.Buffer
				var err error
				if viaWriteTo {
					_, err = b.WriteTo(&out)
				} else {
					_, err = io.Copy(&out, struct{ io.Reader }{b})
				}
				if err != nil || out.String() != "body" {
					t.Fatalf("body %q, %v", out.String(), err)
				}
				if got := b.Trailer(); !sameHeaders(got, tc.want) {
					t.Errorf("WriteTo %v: trailer %v, want %v", viaWriteTo, got, tc.want)
				}
				if _, whole := b.Whole(); !whole {
					t.Errorf("a body read to its end is whole")
				}
			}
		})
	}
	// An error ends the body without fields.
	b := events.NewReader(bytes.NewReader(encodeBody(t, "broke", "x"))).Body()
	if _, err := io.ReadAll(b); err == nil || b.Trailer() != nil {
		t.Errorf("error body: %v, trailer %v", err, b.Trailer())
	}
}

// TestTrailerTooLarge: fields over MaxTrailerSize are not sent; the body
// ends with an error instead, which both sides see.
func TestTrailerTooLarge(t *testing.T) {
	big := []*events.Header{{Name: "X-Big", Values: [][]byte{bytes.Repeat([]byte("v"), events.MaxTrailerSize)}}}
	var srcErr error
	enc := encodeFrames(t, func(w *events.Writer) error {
		var dstErr error
		_, srcErr, dstErr = w.CopyBody(&trailed{Reader: strings.NewReader("body"), t: big}, make([]byte, 1024))
		return dstErr
	})
	if !errors.Is(srcErr, events.ErrTrailerTooLarge) || !errors.Is(srcErr, events.ErrTooLarge) {
		t.Errorf("CopyBody: %v, want ErrTrailerTooLarge", srcErr)
	}
	_, err := io.ReadAll(events.NewReader(bytes.NewReader(enc)).Body())
	var be *events.BodyError
	if !errors.As(err, &be) || !strings.Contains(be.Msg, "trailer fields") {
		t.Errorf("reader: %v, want a BodyError about the trailer fields", err)
	}
	// Just under the limit crosses.
	fit := []*events.Header{{Name: "X-Big", Values: [][]byte{bytes.Repeat([]byte("v"), events.MaxTrailerSize-32)}}}
	if n := events.TrailerSize(fit); n > events.MaxTrailerSize {
		t.Fatalf("test field of %d bytes", n)
	}
	enc = encodeFrames(t, func(w *events.Writer) error {
		_, err := w.EndBodyTrailer(fit)
		return err
	})
	b := events.NewReader(bytes.NewReader(enc)).Body()
	if _, err := io.ReadAll(b); err != nil || !sameHeaders(b.Trailer(), fit) {
		t.Errorf("fields of %d bytes: %v", events.TrailerSize(fit), err)
	}
	// A hand-made Trailer with too many fields is refused.
	many := &events.Trailer{}
	for i := 0; i <= events.MaxHeaderFields; i++ {
		many.Headers = append(many.Headers, &events.Header{Name: "X"})
	}
	raw := append([]byte{0}, encodeMsg(t, many)...)
	if _, err := io.ReadAll(events.NewReader(bytes.NewReader(raw)).Body()); !errors.Is(err, events.ErrTooLarge) {
		t.Errorf("%d fields: %v, want ErrTooLarge", len(many.Headers), err)
	}
}

// FuzzBodyTrailer: whatever a peer sends as a body's end, the reader
// neither panics nor hands out fields over the bounds, and what it hands
// out as fields of a complete body survives TrailersToHTTP as valid HTTP.
func FuzzBodyTrailer(f *testing.F) {
	f.Add(append([]byte{0}, encodeMsg(f, &events.Trailer{Headers: []*events.Header{{Name: "X-A", Values: events.Bytes([]string{"1"})}}})...))
	f.Add(append([]byte{0}, encodeMsg(f, &events.Trailer{Error: "e", Headers: []*events.Header{{Name: "X-A"}}})...))
	f.Add(append([]byte{0}, encodeMsg(f, &events.Trailer{Headers: []*events.Header{{Name: "Content-Length", Values: [][]byte{[]byte("1\r\nX: y")}}}})...))
	f.Add([]byte{0, 0})
	f.Add([]byte{0, 3, 0x12, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := events.NewReader(bytes.NewReader(data))
		defer r.Release()
		b := r.Body()
		_, err := io.Copy(io.Discard, b)
		hs := b.Trailer()
		if err != nil && hs != nil {
			t.Fatalf("fields %v with error %v", hs, err)
		}
		if events.TrailerSize(hs) > events.MaxTrailerSize {
			t.Fatalf("fields of %d bytes", events.TrailerSize(hs))
		}
		h := http.Header{}
		events.TrailersToHTTP(hs, h)
		for k, vs := range h {
			if !events.TrailerAllowed(k) {
				t.Fatalf("field %q passed", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("value %q passed", v)
				}
			}
		}
	})
}

// trailed is an in-memory body with trailer fields.
type trailed struct {
	*strings.Reader
	t []*events.Header
}

func (b *trailed) Trailer() []*events.Header { return b.t }

// trailedStream is a body of unknown length with trailer fields.
type trailedStream struct {
	r io.Reader
	t []*events.Header
}

func (b *trailedStream) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *trailedStream) Trailer() []*events.Header  { return b.t }

func sameHeaders(a, b []*events.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !reflect.DeepEqual(a[i].Values, b[i].Values) {
			return false
		}
	}
	return true
}
