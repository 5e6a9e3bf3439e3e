package events_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/restpipe/restpipe/events"
)

// encodeMsg frames m as one message.
func encodeMsg(t testing.TB, m proto.Message) []byte {
	t.Helper()
	var b bytes.Buffer
	w := events.NewWriter(&b)
	defer w.Release()
	if err := w.WriteMessage(m); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestReadHeaderBounds: ReadHeader refuses a header over its size or
// over MaxHeaderFields repeated elements, reads what is under both as
// ReadMessage does, and leaves the stream after the message.
func TestReadHeaderBounds(t *testing.T) {
	headers := func(n int) []*events.Header {
		hs := make([]*events.Header, n)
		for i := range hs {
			hs[i] = &events.Header{Name: "X"}
		}
		return hs
	}
	big := strings.Repeat("a", 100<<10) // over the Reader's buffer: read apart
	for _, tc := range []struct {
		name string
		m    proto.Message
		max  int
		ok   bool
	}{
		{"small request", &events.Request{Id: "r", Method: "GET", Noun: events.Bytes([]string{"time"})}, 1 << 10, true},
		{"request at the field limit", &events.Request{Headers: headers(events.MaxHeaderFields)}, 64 << 10, true},
		{"request over the field limit", &events.Request{Headers: headers(events.MaxHeaderFields + 1)}, 64 << 10, false},
		{"values count", &events.Request{Headers: []*events.Header{{Name: "X", Values: events.Bytes(make([]string, events.MaxHeaderFields))}}}, 64 << 10, false},
		{"arguments count", &events.Request{Args: events.Bytes(make([]string, events.MaxHeaderFields+1))}, 64 << 10, false},
		{"request over the size", &events.Request{Query: []byte(big)}, 64 << 10, false},
		{"big request under the size", &events.Request{Query: []byte(big)}, 128 << 10, true},
		{"reply headers count", &events.Reply{Headers: headers(events.MaxHeaderFields + 1)}, 64 << 10, false},
		{"reply", &events.Reply{Status: 200, Headers: headers(10)}, 1 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := append(encodeMsg(t, tc.m), encodeMsg(t, &events.Trailer{Error: "next"})...)
			r := events.NewReader(bytes.NewReader(data))
			defer r.Release()
			got := tc.m.ProtoReflect().New().Interface()
			err := r.ReadHeader(got, tc.max)
			if !tc.ok {
				if !errors.Is(err, events.ErrTooLarge) {
					t.Fatalf("ReadHeader: %v, want ErrTooLarge", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tc.m) {
				t.Errorf("read %v, want %v", got, tc.m)
			}
			var next events.Trailer
			if err := r.ReadMessage(&next); err != nil || next.Error != "next" {
				t.Errorf("the message after it: %v, %v", &next, err)
			}
		})
	}
}

func FuzzReadHeader(f *testing.F) {
	f.Add(encodeMsg(f, &events.Request{Id: "r", Method: "GET", Noun: events.Bytes([]string{"a", "b"}), Args: events.Bytes([]string{"x"}),
		Headers: []*events.Header{{Name: "A", Values: events.Bytes([]string{"1", "2"})}}}))
	f.Add(encodeMsg(f, &events.Reply{Status: 200, Headers: []*events.Header{{Name: "B"}}}))
	f.Add([]byte{0x05, 0x3a, 0x03, 0x12, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []proto.Message{&events.Request{}, &events.Reply{}} {
			r := events.NewReader(bytes.NewReader(data))
			err := r.ReadHeader(m, 8<<10)
			r.Release()
			if err != nil {
				continue
			}
			// What it accepts is within both bounds, and what ReadMessage
			// reads too.
			if n := proto.Size(m); n > 8<<10 {
				t.Fatalf("accepted a header of %d bytes", n)
			}
			fields := 0
			switch h := m.(type) {
			case *events.Request:
				fields = len(h.Noun) + len(h.Args) + len(h.Headers)
				for _, x := range h.Headers {
					fields += len(x.Values)
				}
			case *events.Reply:
				fields = len(h.Headers)
				for _, x := range h.Headers {
					fields += len(x.Values)
				}
			}
			if fields > events.MaxHeaderFields {
				t.Fatalf("accepted %d repeated fields", fields)
			}
			m2 := m.ProtoReflect().New().Interface()
			if err := events.NewReader(bytes.NewReader(data)).ReadMessage(m2); err != nil || !proto.Equal(m, m2) {
				t.Fatalf("ReadMessage reads %v, %v; ReadHeader read %v", m2, err, m)
			}
		}
	})
}

// TestTrailerBound: a trailer over MaxTrailerSize is refused, and
// EndBody cuts a long reason to fit.
func TestTrailerBound(t *testing.T) {
	var b bytes.Buffer
	w := events.NewWriter(&b)
	defer w.Release()
	long := strings.Repeat("e", 10<<10)
	if err := w.EndBody(long); err != nil {
		t.Fatal(err)
	}
	_ = w.Flush()
	_, err := io.ReadAll(events.NewReader(&b).Body())
	var be *events.BodyError
	if !errors.As(err, &be) || len(be.Msg) > events.MaxTrailerSize || !strings.HasPrefix(long, be.Msg) {
		t.Errorf("long reason read as %v", err)
	}

	// A hand-made trailer of 100 KiB.
	raw := append([]byte{0}, encodeMsg(t, &events.Trailer{Error: strings.Repeat("e", 100<<10)})...)
	_, err = io.ReadAll(events.NewReader(bytes.NewReader(raw)).Body())
	if !errors.Is(err, events.ErrTooLarge) {
		t.Errorf("100 KiB trailer read as %v, want ErrTooLarge", err)
	}
}
