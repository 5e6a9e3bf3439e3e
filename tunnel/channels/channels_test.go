package channels_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/restpipe/restpipe/tunnel/channels"
)

// NewLocalBus is a Bus on its own: subscribers get what is published in
// order, and one that falls behind its queue is dropped with ErrSlow.
func TestNewLocalBus(t *testing.T) {
	ctx := testCtx(t)
	bus := channels.NewLocalBus(3, 0)
	a, err := bus.Subscribe(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	other, err := bus.Subscribe(ctx, "sport")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := range 3 {
		if err := bus.Publish(ctx, msg("news", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if m := next(t, ctx, a); m.Text != fmt.Sprint(i) || m.Channel != "news" {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	for i := range 4 { // one over the queue of 3
		if err := bus.Publish(ctx, msg("news", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	<-a.Done()
	if _, err := a.Next(ctx); !errors.Is(err, channels.ErrSlow) || !errors.Is(a.Err(), channels.ErrSlow) {
		t.Fatalf("a subscriber over its queue: Next %v, Err %v; want ErrSlow", err, a.Err())
	}
	if other.Err() != nil {
		t.Fatalf("the other channel's subscriber ended: %v", other.Err())
	}
	other.Close()
	if _, err := other.Next(ctx); !errors.Is(err, channels.ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
}
