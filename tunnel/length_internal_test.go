package tunnel

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/restpipe/restpipe/handlers"
)

// TestReplyLength: which replies state their length (Reply.content_length),
// so that the caller's front end sends Content-Length, not chunks.
func TestReplyLength(t *testing.T) {
	stream := func() io.Reader { return io.MultiReader(strings.NewReader("x")) }
	for _, tc := range []struct {
		name   string
		rep    *handlers.Reply
		status int
		head   bool
		want   int64 // -1: none
	}{
		{"stated", &handlers.Reply{Header: http.Header{"Content-Length": {"10"}}, Body: stream()}, 200, false, 10},
		{"in memory", &handlers.Reply{Header: http.Header{}, Body: strings.NewReader("four")}, 200, false, 4},
		{"no body", &handlers.Reply{Header: http.Header{}}, 200, false, 0},
		{"NoBody", &handlers.Reply{Header: http.Header{}, Body: http.NoBody}, 200, false, 0},
		{"streamed", &handlers.Reply{Header: http.Header{}, Body: stream()}, 200, false, -1},
		{"not a length", &handlers.Reply{Header: http.Header{"Content-Length": {"1, 1"}}, Body: stream()}, 200, false, -1},
		{"204", &handlers.Reply{Header: http.Header{"Content-Length": {"0"}}}, http.StatusNoContent, false, -1},
		{"304", &handlers.Reply{Header: http.Header{"Content-Length": {"99"}}}, http.StatusNotModified, false, -1},
		{"101", &handlers.Reply{Header: http.Header{}, Body: stream()}, http.StatusSwitchingProtocols, false, -1},
		{"HEAD, stated", &handlers.Reply{Header: http.Header{"Content-Length": {"12"}}}, 200, true, 12},
		{"HEAD, unknown", &handlers.Reply{Header: http.Header{}}, 200, true, -1},
	} {
		got := replyLength(tc.rep, tc.status, tc.head)
		if (got == nil) != (tc.want < 0) || (got != nil && *got != tc.want) {
			g := int64(-1)
			if got != nil {
				g = *got
			}
			t.Errorf("%s: length %d, want %d", tc.name, g, tc.want)
		}
	}
}
