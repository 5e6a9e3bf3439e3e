package tunnel_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/restpipe/restpipe/tunnel"
	"github.com/restpipe/restpipe/tunnel/channels"
)

// readNotice reads the next WebSocket message, which must be a binary
// notice of type typ.
func readNotice(t *testing.T, ctx context.Context, ws *wsSubscriber, typ string) channels.Notice {
	t.Helper()
	mt, b, err := ws.c.Read(ctx)
	if err != nil {
		t.Fatalf("WebSocket subscriber: %v, want a %s notice", err, typ)
	}
	var n channels.Notice
	if mt != websocket.MessageBinary || json.Unmarshal(b, &n) != nil || n.Type != typ || n.Reason == "" {
		t.Fatalf("WebSocket subscriber got %v %q, want a binary %s notice", mt, b, typ)
	}
	return n
}

// sseNotice reads the next SSE event, which must be the notice typ.
func sseNotice(t *testing.T, sse *sseSubscriber, typ string) channels.Notice {
	t.Helper()
	ev, err := sse.event()
	var n channels.Notice
	if err != nil || ev["event"] != typ || json.Unmarshal([]byte(ev["data"]), &n) != nil || n.Type != typ {
		t.Fatalf("SSE subscriber: %v, %v; want event %s with its JSON", ev, err, typ)
	}
	return n
}

// A client's subscribers outlive an outage of the tunnel (here the
// server restarting): they are told of it, then of the gap once
// subscribed again, and receive what is published afterwards; a
// subscribe during the outage is taken (200) and told at once.
func TestChannelsOutageAcrossServerRestart(t *testing.T) {
	p := newPKI(t)
	addr := fixedPort(t)
	s1 := startServerAt(t, p, addr, nil)
	a := startClient(t, p, "alpha", addr, nil)
	waitConnected(t, a, s1)
	ctx := testCtx(t)
	ws := subscribeWS(t, ctx, a.httpURL, "c")
	sse := subscribeSSE(t, ctx, a.httpURL, "c")
	goSub, err := a.Channels().Subscribe(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, s1.httpURL, "c", "before")
	for _, sub := range []subscriber{ws, sse} {
		if m, err := sub.next(ctx); err != nil || m != "before" {
			t.Fatalf("%s: %q, %v", sub.name(), m, err)
		}
	}
	if m, err := goSub.Next(ctx); err != nil || m.Text != "before" {
		t.Fatalf("Go subscriber: %+v, %v", m, err)
	}
	prev, _ := a.Server()
	s1.stop()

	if n := readNotice(t, ctx, ws, "outage"); !strings.Contains(n.Reason, "relay") {
		t.Errorf("outage notice %q does not say why", n.Reason)
	}
	sseNotice(t, sse, "outage")
	if m, err := goSub.Next(ctx); err != nil || m.Outage == "" || !m.Notice() {
		t.Fatalf("Go subscriber: %+v, %v; want an outage notice", m, err)
	}
	// Subscribed during the outage (or just after the restart): 200,
	// and it is live once the server has it again.
	late := subscribeSSE(t, ctx, a.httpURL, "c")

	s2 := startServerAt(t, p, addr, nil)
	waitReconnected(t, a, s2, prev)
	readNotice(t, ctx, ws, "gap")
	sseNotice(t, sse, "gap")
	if m, err := goSub.Next(ctx); err != nil || !m.Gap {
		t.Fatalf("Go subscriber: %+v, %v; want a gap notice", m, err)
	}
	// late was told of the outage unless it came after the reconnection.
	for {
		ev, err := late.event()
		if err != nil {
			t.Fatal(err)
		}
		if ev["event"] == "" {
			t.Fatalf("late subscriber got %v before its gap", ev)
		}
		if ev["event"] == "gap" {
			break
		}
	}
	publish(t, s2.httpURL, "c", "after")
	for _, sub := range []subscriber{ws, sse, late} {
		if m, err := sub.next(ctx); err != nil || m != "after" {
			t.Fatalf("%s after the restart: %q, %v", sub.name(), m, err)
		}
	}
	if m, err := goSub.Next(ctx); err != nil || m.Text != "after" {
		t.Fatalf("Go subscriber after the restart: %+v, %v", m, err)
	}
}

// A subscriber whose outage outlasts ChannelOutageWait is closed with
// the reason: WebSocket 1013, SSE "event: close". A client never
// connected takes subscribers too, told of the outage at once.
func TestChannelsOutageWaitEnds(t *testing.T) {
	p := newPKI(t)
	lone := startClient(t, p, "lone", listen(t).Addr().String(), func(c *tunnel.Config) {
		c.ChannelOutageWait = 300 * time.Millisecond
	})
	ctx := testCtx(t)
	ws := subscribeWS(t, ctx, lone.httpURL, "c")
	sse := subscribeSSE(t, ctx, lone.httpURL, "c")
	readNotice(t, ctx, ws, "outage")
	sseNotice(t, sse, "outage")
	_, err := ws.next(ctx)
	if websocket.CloseStatus(err) != websocket.StatusTryAgainLater || !strings.Contains(err.Error(), "not back within 300ms") {
		t.Fatalf("WebSocket subscriber: %v, want close 1013 saying the tunnel was not back", err)
	}
	for {
		ev, err := sse.event()
		if err != nil {
			t.Fatal(err)
		}
		if ev["event"] == "close" {
			if !strings.Contains(ev["data"], "not back within 300ms") {
				t.Fatalf("SSE close %q does not say why", ev["data"])
			}
			break
		}
	}
	// A publish still needs the tunnel.
	wantError(t, do(t, "POST", chanURL(lone.httpURL, "c"), strings.NewReader("x")), 503, "peer_unavailable")
}

// ChannelOutageWait must be positive.
func TestChannelOutageWaitValidated(t *testing.T) {
	cfg := tunnel.DefaultConfig()
	cfg.ChannelOutageWait = -time.Second
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ChannelOutageWait") {
		t.Fatalf("Validate: %v, want ChannelOutageWait refused", err)
	}
}
