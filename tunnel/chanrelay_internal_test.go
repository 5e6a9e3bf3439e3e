package tunnel

import (
	"strings"
	"testing"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/tunnel/channels"
)

// TestCheckFrameMessage checks what a node accepts of a peer's message
// kinds and close: a hostile peer must not make the front end send a
// close frame nobody may send, or a kind that does not exist.
func TestCheckFrameMessage(t *testing.T) {
	tests := []struct {
		name string
		f    *events.ChannelFrame
		ok   bool
	}{
		{"plain", &events.ChannelFrame{Text: "x"}, true},
		{"WebSocket only", &events.ChannelFrame{Text: "x", Formats: 1}, true},
		{"SSE only", &events.ChannelFrame{Stream: "data: x\n\n", Formats: 2}, true},
		{"both", &events.ChannelFrame{Text: "x", Stream: "data: x\n\n", Formats: 3}, true},
		{"unknown kind", &events.ChannelFrame{Text: "x", Formats: 4}, false},
		{"close", &events.ChannelFrame{Close: true, Formats: 3, CloseCode: 4000, CloseReason: "bye"}, true},
		{"close code 1005", &events.ChannelFrame{Close: true, CloseCode: 1005}, false},
		{"close code over 4999", &events.ChannelFrame{Close: true, CloseCode: 70000}, false},
		{"close reason over 123 bytes", &events.ChannelFrame{Close: true, CloseReason: strings.Repeat("r", 124)}, false},
		{"close with a message", &events.ChannelFrame{Close: true, Text: "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkFrameMessage(tt.f)
			if (err == nil) != tt.ok {
				t.Fatalf("checkFrameMessage = %v, want ok %v", err, tt.ok)
			}
			if err == nil {
				back := messageFrame(events.ChannelFrame_MESSAGE, 0, frameMessage(tt.f))
				if back.Formats != tt.f.Formats || back.Close != tt.f.Close || back.CloseCode != tt.f.CloseCode || back.CloseReason != tt.f.CloseReason {
					t.Fatalf("frame -> message -> frame = %v, want %v", back, tt.f)
				}
			}
		})
	}
}

// TestMessageFrameSanitized: what a Go program publishes never becomes a
// frame its peer refuses (which would end the relay).
func TestMessageFrameSanitized(t *testing.T) {
	for _, m := range []*channels.Message{
		{Channel: "a", Text: "x", To: 0xff},
		{Channel: "a", Close: true, CloseCode: 1005, Text: "x", Stream: "y"},
		{Channel: "a", Close: true, CloseCode: -1, CloseReason: strings.Repeat("r", 200)},
		{Channel: "a", Text: "x", CloseCode: 99999, CloseReason: strings.Repeat("r", 200)},
	} {
		if err := checkFrameMessage(messageFrame(events.ChannelFrame_PUBLISH, 1, m)); err != nil {
			t.Errorf("the frame of %+v is refused: %v", m, err)
		}
	}
}
