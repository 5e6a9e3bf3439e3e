package events_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/restpipe/restpipe/events"
)

// TestReaderShrinkAndAfter: a Reader made small by Shrink, and one from
// NewReaderAfter, read the same messages and bodies as a plain one: what
// was buffered, then what follows on the stream.
func TestReaderShrinkAndAfter(t *testing.T) {
	req := sampleRequest()
	first := encodeFrames(t, func(w *events.Writer) error { return w.WriteMessage(req) })
	first = append(first, encodeBody(t, "", "small")...)
	big := strings.Repeat("x", 100<<10)
	rest := encodeFrames(t, func(w *events.Writer) error { return w.WriteMessage(req) })
	rest = append(rest, encodeBody(t, "", big)...)

	check := func(t *testing.T, r *events.Reader, shrink bool) {
		t.Helper()
		defer r.Release()
		var got events.Request
		if err := r.ReadHeader(&got, events.MaxMessageSize); err != nil {
			t.Fatal(err)
		}
		if shrink && !r.Shrink() {
			t.Fatal("Shrink kept the big buffer for a small event")
		}
		for i, want := range []string{"small", big} {
			if i == 1 {
				got.Reset()
				if err := r.ReadHeader(&got, events.MaxMessageSize); err != nil {
					t.Fatal(err)
				}
			}
			if !proto.Equal(&got, req) {
				t.Fatalf("header %d: %v, want %v", i, &got, req)
			}
			b, err := io.ReadAll(r.Body())
			if err != nil || string(b) != want {
				t.Fatalf("body %d: %d bytes, %v; want %d bytes", i, len(b), err, len(want))
			}
		}
		if err := r.WaitEnd(); err != nil {
			t.Fatal(err)
		}
	}
	// The first event is buffered whole before the rest comes.
	stream := func() io.Reader {
		return io.MultiReader(bytes.NewReader(first), bytes.NewReader(rest))
	}
	t.Run("plain", func(t *testing.T) { check(t, events.NewReader(stream()), false) })
	t.Run("shrink", func(t *testing.T) { check(t, events.NewReader(stream()), true) })
	t.Run("after", func(t *testing.T) {
		s := stream()
		var b [1]byte
		if _, err := io.ReadFull(s, b[:]); err != nil {
			t.Fatal(err)
		}
		check(t, events.NewReaderAfter(b[0], s), true)
	})
}
