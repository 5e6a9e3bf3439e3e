package tunnel_test

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// TestNewEventsDuringDrain: while a server drains (its Serve's context
// ended, an event still in flight), a new event either way is not sent
// and is answered 503 peer_unavailable, to be tried again later, as when
// the peer is not connected: from the client, which has the server's
// go-away, and from the server's own front end. It once got 502
// tunnel_closed from the client. The event in flight still finishes.
func TestNewEventsDuringDrain(t *testing.T) {
	p := newPKI(t)
	reg := handlers.NewRegistry()
	handlers.Builtins(reg, "server")
	started, release := make(chan struct{}), make(chan struct{})
	reg.MustHandle("get_work", func(context.Context, *handlers.Request) (any, error) {
		close(started)
		<-release
		return "finished", nil
	})
	cfg := nodeConfig(t, p.server, reg)
	cfg.ShutdownTimeout = time.Minute // the drain lasts as long as the test
	srv, err := tunnel.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The front end outlives Serve: it is the draining node's own caller.
	front := httptest.NewServer(srv.Frontend())
	t.Cleanup(front.Close)
	serveCtx, drain := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(serveCtx, tln) }()
	t.Cleanup(func() { drain(); <-served })
	s := &serverNode{Server: srv, reg: reg, tunnelAddr: tln.Addr().String(), httpURL: front.URL}
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)

	inFlight := make(chan result, 1)
	go func() { inFlight <- get(t, c.httpURL+"/server/work") }()
	<-started
	drain()

	// The go-away reaches the client when it reaches it: poll until an
	// event is no longer served, and check how it was refused.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var r result
	waitFor(t, ctx, func() bool {
		r = get(t, c.httpURL+"/server/time/utc")
		return r.status != 200
	}, "the client to hear of the drain")
	wantError(t, r, 503, handlers.CodePeerUnavailable)
	if !strings.Contains(r.body, "shutting down") {
		t.Errorf("refusal does not say the server is shutting down: %s", r.body)
	}
	_, err = c.Call(ctx, &tunnel.Request{Noun: []string{"time", "utc"}})
	if !errors.Is(err, tunnel.ErrPeerUnavailable) || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("Call during the drain: %v, want ErrPeerUnavailable saying the server is shutting down", err)
	}

	// From the draining server's own front end.
	r = get(t, s.httpURL+"/client/c1/time/utc")
	wantError(t, r, 503, handlers.CodePeerUnavailable)
	if !strings.Contains(r.body, "shutting down") {
		t.Errorf("refusal does not say the session is shutting down: %s", r.body)
	}
	_, err = srv.Call(ctx, "c1", &tunnel.Request{Noun: []string{"time", "utc"}})
	if !errors.Is(err, tunnel.ErrPeerUnavailable) {
		t.Errorf("Server.Call during the drain: %v, want ErrPeerUnavailable", err)
	}

	close(release)
	if r := <-inFlight; r.status != 200 || r.body != "\"finished\"\n" {
		t.Errorf("event in flight during the drain: %d %q", r.status, r.body)
	}
	<-served
}
