package channels_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/restpipe/restpipe/tunnel/channels"
)

// FuzzParsePath checks that ParsePath, which reads untrusted request
// paths, never panics and only returns names CheckName accepts.
func FuzzParsePath(f *testing.F) {
	for _, tt := range parsePathTests {
		f.Add(tt.path)
	}
	f.Fuzz(func(t *testing.T, path string) {
		name, err := channels.ParsePath(path)
		if err != nil {
			if !errors.Is(err, channels.ErrBadChannel) {
				t.Fatalf("ParsePath(%q) error %v does not wrap ErrBadChannel", path, err)
			}
			return
		}
		if !strings.HasPrefix(path, channels.PathPrefix) {
			t.Fatalf("ParsePath(%q) = %q: accepted without the prefix", path, name)
		}
		if err := channels.CheckName(name); err != nil {
			t.Fatalf("ParsePath(%q) = %q, which CheckName refuses: %v", path, name, err)
		}
		// What a client escapes comes back as it was.
		again, err := channels.ParsePath(channels.PathPrefix + url.PathEscape(name))
		if err != nil || again != name {
			t.Fatalf("ParsePath of %q escaped = %q, %v; want it back", name, again, err)
		}
	})
}

// FuzzParsePublish checks that ParsePublish, which reads untrusted GRIP
// publish bodies, never panics and returns only messages that can be
// delivered: not empty, within maxMessage, on a valid channel with the
// prefix.
func FuzzParsePublish(f *testing.F) {
	for _, tt := range parsePublishTests {
		f.Add([]byte(tt.body), tt.prefix, tt.max)
	}
	f.Fuzz(func(t *testing.T, body []byte, prefix string, maxMessage int64) {
		msgs, dropped, err := channels.ParsePublish(body, prefix, maxMessage)
		if err != nil {
			if !errors.Is(err, channels.ErrBadPublish) {
				t.Fatalf("error %v does not wrap ErrBadPublish", err)
			}
			if msgs != nil {
				t.Fatalf("%d messages returned with error %v", len(msgs), err)
			}
			return
		}
		if n := itemCount(t, body); len(msgs)+dropped != n {
			t.Fatalf("%d messages and %d dropped from %d items", len(msgs), dropped, n)
		}
		for i, m := range msgs {
			switch {
			case m == nil:
				t.Fatalf("message %d is nil", i)
			case m.Empty():
				t.Fatalf("message %d is empty: %+v", i, m)
			case int64(len(m.Text)) > maxMessage || int64(len(m.Stream)) > maxMessage:
				t.Fatalf("message %d is over maxMessage %d: %d, %d bytes", i, maxMessage, len(m.Text), len(m.Stream))
			case !strings.HasPrefix(m.Channel, prefix):
				t.Fatalf("message %d channel %q lacks the prefix %q", i, m.Channel, prefix)
			case !utf8.ValidString(m.Text) || !utf8.ValidString(m.Stream):
				t.Fatalf("message %d is not UTF-8 text: %+v", i, m)
			case m.To == 0 || m.To&^(channels.ToWebSocket|channels.ToEvents) != 0:
				t.Fatalf("message %d is for kinds %b: a GRIP item names one or both", i, m.To)
			case m.Close && (m.Text != "" || m.Stream != ""):
				t.Fatalf("message %d closes and sends: %+v", i, m)
			case m.CloseCode != 0 && !channels.ValidCloseCode(m.CloseCode), len(m.CloseReason) > 123:
				t.Fatalf("message %d has a close frame nobody may send: %+v", i, m)
			case !m.Close && (m.ForWebSocket() != (m.Text != "") || m.ForEvents() != (m.Stream != "")):
				t.Fatalf("message %d goes to a kind it has nothing for: %+v", i, m)
			}
			if err := channels.CheckName(m.Channel); err != nil {
				t.Fatalf("message %d channel %q: %v", i, m.Channel, err)
			}
		}
	})
}

// itemCount is how many items a publish body that parsed holds.
func itemCount(t *testing.T, body []byte) int {
	t.Helper()
	var req struct{ Items []json.RawMessage }
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("a body ParsePublish took is not JSON: %v", err)
	}
	return len(req.Items)
}
