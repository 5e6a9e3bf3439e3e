package channels_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restpipe/restpipe/tunnel/channels"
	"github.com/restpipe/restpipe/tunnel/internal/hub"
)

// testCtx bounds every wait of a test: a test that would hang fails instead.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func msg(channel, text string) *channels.Message {
	return &channels.Message{Channel: channel, Text: text}
}

// join joins channel and counts the calls to its release.
func join(t *testing.T, h *hub.Hub, channel string) (*channels.Subscriber, *atomic.Int32) {
	t.Helper()
	var released atomic.Int32
	s, err := h.Join(channel, func() { released.Add(1) })
	if err != nil {
		t.Fatalf("Join(%q): %v", channel, err)
	}
	t.Cleanup(s.Close)
	return s, &released
}

// next returns the subscriber's next message, failing the test if there is
// none in time.
func next(t *testing.T, ctx context.Context, s *channels.Subscriber) *channels.Message {
	t.Helper()
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next on %q: %v", s.Channel, err)
	}
	return m
}
