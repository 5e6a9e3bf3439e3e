package tunnel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// pair starts a server and one client called c1, connected.
func pair(t *testing.T) (*pki, *serverNode, *clientNode) {
	t.Helper()
	p := newPKI(t)
	s := startServer(t, p, nil)
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	return p, s, c
}

func TestCallsBothWays(t *testing.T) {
	_, s, c := pair(t)

	r := get(t, c.httpURL+"/server/time")
	if r.status != http.StatusOK {
		t.Fatalf("client->server get_time: %d %s", r.status, r.body)
	}
	if m := r.json(t); m["node"] != "server" || m["time"] == "" {
		t.Errorf("get_time from server: %s", r.body)
	}
	if r.header.Get("X-Event-Return-Code") != "200" || r.header.Get("X-Request-Id") == "" {
		t.Errorf("headers: %v", r.header)
	}
	// A small reply has all arrived when the front end writes it: it goes
	// out with its length, not chunked.
	if r.length != int64(len(r.body)) {
		t.Errorf("Content-Length %d, body of %d bytes", r.length, len(r.body))
	}

	r = get(t, c.httpURL+"/server/cat//hello%20/world")
	if m := r.json(t); r.status != 200 || m["result"] != "hello world" {
		t.Errorf("get_cat: %d %s", r.status, r.body)
	}

	r = get(t, s.httpURL+"/client/c1/time")
	if m := r.json(t); r.status != 200 || m["node"] != "c1" {
		t.Errorf("server->client get_time: %d %s", r.status, r.body)
	}
	r = get(t, s.httpURL+"/client/c1/cat//a/b")
	if m := r.json(t); r.status != 200 || m["result"] != "ab" {
		t.Errorf("server->client get_cat: %d %s", r.status, r.body)
	}

	r = get(t, s.httpURL+"/clients")
	if r.status != 200 || !strings.Contains(r.body, `"name":"c1"`) || !strings.Contains(r.body, `"remote_addr":"127.0.0.1:`) ||
		!strings.Contains(r.body, `"connected_since"`) {
		t.Errorf("/clients: %d %s", r.status, r.body)
	}
}

// TestHandlerSeesEvent checks everything a handler is given: peer name from
// the certificate, remote address, request id, deadline, args, query,
// content type, headers and body; and what it returns: status, content
// type, headers and body.
func TestHandlerSeesEvent(t *testing.T) {
	_, s, c := pair(t)
	var got *handlers.Request
	var gotBody string
	var hasDeadline bool
	s.reg.MustHandle("post_inspect_this", func(ctx context.Context, req *handlers.Request) (any, error) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		got, gotBody = req, string(b)
		_, hasDeadline = ctx.Deadline()
		return &handlers.Reply{Status: http.StatusCreated, ContentType: "text/plain",
			Header: http.Header{"X-Custom": {"yes"}}, Body: strings.NewReader("made")}, nil
	})
	r := do(t, http.MethodPost, c.httpURL+"/server/inspect/this//x%2Fy/z?q=1&q=2&w=%20", strings.NewReader("payload"),
		"Content-Type", "text/csv", "X-Request-Id", "my-req-1", "X-Trace", "t1", "X-Restpipe-Timeout", "7s")
	if r.status != http.StatusCreated || r.body != "made" || r.header.Get("Content-Type") != "text/plain" ||
		r.header.Get("X-Custom") != "yes" || r.header.Get("X-Request-Id") != "my-req-1" || r.header.Get("X-Event-Return-Code") != "201" {
		t.Fatalf("reply: %d %v %q", r.status, r.header, r.body)
	}
	if got.Peer != "c1" || !strings.HasPrefix(got.RemoteAddr, "127.0.0.1:") || got.ID != "my-req-1" ||
		got.Name != "post_inspect_this" || got.Method != "POST" {
		t.Errorf("identity fields: %+v", got)
	}
	if fmt.Sprint(got.Args) != "[x/y z]" || fmt.Sprint(got.Query["q"]) != "[1 2]" || got.Query.Get("w") != " " {
		t.Errorf("args %q query %v", got.Args, got.Query)
	}
	if got.ContentType != "text/csv" || gotBody != "payload" || got.Header.Get("X-Trace") != "t1" {
		t.Errorf("content type %q body %q headers %v", got.ContentType, gotBody, got.Header)
	}
	if !hasDeadline || time.Until(got.Deadline) > 7*time.Second || time.Until(got.Deadline) < 5*time.Second {
		t.Errorf("deadline %v (ctx has one: %v), want about 7s from now", got.Deadline, hasDeadline)
	}
}

func TestErrorTable(t *testing.T) {
	p, s, c := pair(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c.reg.MustHandle("get_fail", func(context.Context, *handlers.Request) (any, error) {
		return nil, errors.New("disk on fire")
	})
	c.reg.MustHandle("get_boom", func(context.Context, *handlers.Request) (any, error) { panic("kaboom") })
	c.reg.MustHandle("get_slow", func(ctx context.Context, _ *handlers.Request) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	c.reg.MustHandle("get_deaf", func(context.Context, *handlers.Request) (any, error) {
		<-release // ignores its context
		return "late", nil
	})
	c.reg.MustHandle("get_teapot", func(context.Context, *handlers.Request) (any, error) {
		return nil, handlers.Errorf(http.StatusTeapot, "teapot", "short and stout")
	})

	small := startClient(t, p, "small", s.tunnelAddr, func(cfg *tunnel.Config) { cfg.MaxBodyBytes = 10 })
	waitConnected(t, small, s)

	for _, tc := range []struct {
		name   string
		url    string
		method string
		body   io.Reader
		hdr    []string
		status int
		code   string
	}{
		{"neither form", c.httpURL + "/nothing/here", "GET", nil, nil, 404, "bad_path"},
		{"client path on client node", c.httpURL + "/client/c1/time", "GET", nil, nil, 404, "bad_path"},
		{"server path on server node", s.httpURL + "/server/time", "GET", nil, nil, 404, "bad_path"},
		{"slash in a noun", s.httpURL + "/client/c1/a%2Fb/time", "GET", nil, nil, 404, "bad_path"},
		{"root", s.httpURL + "/", "GET", nil, nil, 404, "bad_path"},
		{"peer not connected", s.httpURL + "/client/nobody/time", "GET", nil, nil, 503, "peer_unavailable"},
		{"no handler on client", s.httpURL + "/client/c1/nope", "GET", nil, nil, 404, "no_handler"},
		{"no handler on server", c.httpURL + "/server/nope", "GET", nil, nil, 404, "no_handler"},
		{"method picks handler", c.httpURL + "/server/time", "DELETE", nil, nil, 404, "no_handler"},
		{"handler error", s.httpURL + "/client/c1/fail", "GET", nil, nil, 500, "handler_error"},
		{"handler panic", s.httpURL + "/client/c1/boom", "GET", nil, nil, 500, "handler_error"},
		{"handler chooses status", s.httpURL + "/client/c1/teapot", "GET", nil, nil, 418, "teapot"},
		{"deadline, handler stops", s.httpURL + "/client/c1/slow", "GET", nil, []string{"X-Restpipe-Timeout", "100ms"}, 504, "timeout"},
		{"deadline, handler deaf", s.httpURL + "/client/c1/deaf", "GET", nil, []string{"X-Restpipe-Timeout", "0.1"}, 504, "timeout"},
		{"bad timeout header", s.httpURL + "/client/c1/time", "GET", nil, []string{"X-Restpipe-Timeout", "soon"}, 400, "bad_request"},
		{"body over limit", small.httpURL + "/server/echo", "POST", strings.NewReader("01234567890"), nil, 413, "too_large"},
		{"chunked body over limit", small.httpURL + "/server/echo", "POST", io.MultiReader(strings.NewReader("0123456"), strings.NewReader("7890123")), nil, 413, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, tc.url, tc.body, tc.hdr...)
			wantError(t, r, tc.status, tc.code)
			if got := r.header.Get("X-Event-Return-Code"); got != fmt.Sprint(tc.status) {
				t.Errorf("X-Event-Return-Code %q, want %d", got, tc.status)
			}
		})
	}

	// The panic and the deaf handler did not take the node down.
	if r := get(t, s.httpURL+"/client/c1/time"); r.status != 200 {
		t.Errorf("after the failures: %d %s", r.status, r.body)
	}
	// A body at the limit passes.
	if r := do(t, "POST", small.httpURL+"/server/echo", strings.NewReader("0123456789")); r.status != 200 || r.body != "0123456789" {
		t.Errorf("body at the limit: %d %q", r.status, r.body)
	}
	// The handler error's message reaches the caller.
	if r := get(t, s.httpURL+"/client/c1/fail"); !strings.Contains(r.body, "disk on fire") {
		t.Errorf("handler error body %s", r.body)
	}
}

// TestTunnelDropMidEvent: a tunnel that drops while an event is under way
// answers 502 at once, not at the deadline.
func TestTunnelDropMidEvent(t *testing.T) {
	_, s, c := pair(t)
	started := make(chan struct{}, 1)
	c.reg.MustHandle("get_hang", func(ctx context.Context, _ *handlers.Request) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	done := make(chan result, 1)
	go func() { done <- get(t, s.httpURL+"/client/c1/hang", "X-Restpipe-Timeout", "1m") }()
	<-started
	prev, _ := c.Server()
	begin := time.Now()
	if !s.Disconnect("c1") {
		t.Fatal("c1 not connected")
	}
	r := <-done
	wantError(t, r, http.StatusBadGateway, "tunnel_closed")
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("502 took %v", d)
	}
	// The client comes back by itself.
	waitReconnected(t, c, s, prev)
	if r := get(t, s.httpURL+"/client/c1/time"); r.status != 200 {
		t.Errorf("after reconnect: %d %s", r.status, r.body)
	}
}

// TestConcurrentBothWays holds 100 events in flight in each direction at
// once, at the default MaxStreams: every handler waits until all of its
// side have arrived, so one event waiting on another would deadlock (and
// fail at the deadline). Over the peer's MaxStreams, the sender paces
// itself: the first events are answered, and the rest wait for a slot.
func TestConcurrentBothWays(t *testing.T) {
	sLogs, cLogs := newLogCapture(), newLogCapture()
	p := newPKI(t)
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = sLogs.logger() })
	c := startClient(t, p, "c1", s.tunnelAddr, func(cfg *tunnel.Config) { cfg.Logger = cLogs.logger() })
	waitConnected(t, c, s)
	const n = 100
	limit := int32(tunnel.DefaultConfig().MaxStreams)
	// Each side's first k events wait for the k-th: as many as its peer
	// lets it hold at once. A client keeps one of the server's slots for
	// its channel relay.
	barrier := func(reg *handlers.Registry, k int32) {
		var arrived atomic.Int32
		all := make(chan struct{})
		reg.MustHandle("get_barrier", func(ctx context.Context, req *handlers.Request) (any, error) {
			if arrived.Add(1) == k {
				close(all)
			}
			select {
			case <-all:
				return map[string]string{"arg": req.Args[0]}, nil
			case <-ctx.Done():
				return nil, fmt.Errorf("only %d of %d events arrived", arrived.Load(), k)
			}
		})
	}
	barrier(s.reg, limit-1)
	barrier(c.reg, limit)
	defer func() {
		for _, l := range []*logCapture{sLogs, cLogs} {
			if strings.Contains(l.all(), "event refused") {
				t.Errorf("a node refused an honest peer's event:\n%s", l.all())
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	call := func(url, arg string) {
		defer wg.Done()
		resp, err := http.Get(url + "//" + arg)
		if err != nil {
			errs <- err
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"arg":"`+arg+`"`) {
			errs <- fmt.Errorf("%s//%s: %d %s", url, arg, resp.StatusCode, b)
		}
	}
	for i := range n {
		wg.Add(2)
		go call(c.httpURL+"/server/barrier", fmt.Sprint("up", i))
		go call(s.httpURL+"/client/c1/barrier", fmt.Sprint("down", i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSameNameReplacesOldSession: a second connection with a name already
// connected replaces the older one.
func TestSameNameReplacesOldSession(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	id := p.client(t, "twin")
	// The first twin does not come back quickly once replaced.
	a := startClientWith(t, id, s.tunnelAddr, func(cfg *tunnel.Config) { cfg.ReconnectMin, cfg.ReconnectMax = time.Hour, time.Hour })
	waitConnected(t, a, s)
	aAddr := s.Clients()[0].RemoteAddr
	a.reg.MustHandle("get_who", func(context.Context, *handlers.Request) (any, error) { return "a", nil })

	b := startClientWith(t, id, s.tunnelAddr, nil)
	b.reg.MustHandle("get_who", func(context.Context, *handlers.Request) (any, error) { return "b", nil })
	waitConnected(t, b, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, ctx, func() bool {
		cl := s.Clients()
		return len(cl) == 1 && cl[0].RemoteAddr != aAddr
	}, "the second connection to replace the first")
	waitFor(t, ctx, func() bool { _, ok := a.Server(); return !ok }, "the first client to lose its session")
	if r := get(t, s.httpURL+"/client/twin/who"); r.body != "\"b\"\n" {
		t.Errorf("who: %d %q, want the second connection", r.status, r.body)
	}
}

// TestClientStartedFirstAndServerRestart: a client started before its
// server connects once the server is up, and again after a restart.
func TestClientStartedFirstAndServerRestart(t *testing.T) {
	p := newPKI(t)
	addr := fixedPort(t)
	logs := newLogCapture()
	c := startClient(t, p, "early", addr, func(cfg *tunnel.Config) { cfg.Logger = logs.logger() })
	logs.wait(t, "not connected to server", "failures=2") // it keeps retrying

	s1 := startServerAt(t, p, addr, nil)
	waitConnected(t, c, s1)
	if r := get(t, c.httpURL+"/server/time"); r.status != 200 {
		t.Fatalf("first server: %d %s", r.status, r.body)
	}
	prev, _ := c.Server()
	s1.stop()

	s2 := startServerAt(t, p, addr, nil)
	waitReconnected(t, c, s2, prev)
	if r := get(t, c.httpURL+"/server/time"); r.status != 200 {
		t.Fatalf("restarted server: %d %s", r.status, r.body)
	}
}

// TestGracefulShutdown: stopping the server lets an event in flight finish.
func TestGracefulShutdown(t *testing.T) {
	_, s, c := pair(t)
	started, release := make(chan struct{}), make(chan struct{})
	c.reg.MustHandle("get_work", func(context.Context, *handlers.Request) (any, error) {
		close(started)
		<-release
		return "finished", nil
	})
	done := make(chan result, 1)
	go func() { done <- get(t, s.httpURL+"/client/c1/work") }()
	<-started
	stopped := make(chan struct{})
	go func() { s.stop(); close(stopped) }()
	close(release)
	r := <-done
	if r.status != 200 || r.body != "\"finished\"\n" {
		t.Errorf("event in flight during shutdown: %d %q", r.status, r.body)
	}
	<-stopped
	// The tunnel port is closed now.
	if conn, err := net.DialTimeout("tcp", s.tunnelAddr, time.Second); err == nil {
		conn.Close()
		t.Error("tunnel port still accepts after shutdown")
	}
}

// TestKeepAliveAfterUnreadBody: a handler that answers without reading the
// request body must not spoil the caller's kept-alive connection for the
// next request (it once set a read deadline in the past on it).
func TestKeepAliveAfterUnreadBody(t *testing.T) {
	_, s, c := pair(t)
	s.reg.MustHandle("post_ignore", func(context.Context, *handlers.Request) (any, error) { return "ignored", nil })
	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer hc.CloseIdleConnections()
	body := strings.Repeat("x", 200<<10)
	for i := range 30 {
		resp, err := hc.Post(c.httpURL+"/server/ignore", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "\"ignored\"\n" {
			t.Fatalf("POST %d: %d %q", i, resp.StatusCode, b)
		}
		resp, err = hc.Get(c.httpURL + "/server/cat//n/" + fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("{\"result\":\"n%d\"}\n", i); resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("GET after POST %d: %d %q, want %q", i, resp.StatusCode, b, want)
		}
	}
}

// TestIdleSessionWaitsForNoStream checks that once events are over, no
// goroutine waits for the next stream on either node (muxconn's gate): an idle
// session costs yamux's reader and writer only, and the reader waits on a
// small stack (muxconn's idle reader, on Linux).
func TestIdleSessionWaitsForNoStream(t *testing.T) {
	// A reader decides where to wait when it parks: one that parked while
	// the last event's stream was still closing waits where it is until
	// the next frame. Pings every 50 ms bring that frame soon.
	p := newPKI(t)
	pings := func(c *tunnel.Config) { c.KeepAliveInterval = 50 * time.Millisecond }
	s := startServer(t, p, pings)
	c := startClient(t, p, "c1", s.tunnelAddr, pings)
	waitConnected(t, c, s)
	var wg sync.WaitGroup
	for i := range 40 {
		url := c.httpURL + "/server/time"
		if i%2 == 1 {
			url = s.httpURL + "/client/c1/time"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := get(t, url); r.status != http.StatusOK {
				t.Errorf("GET %s: %d %s", url, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var dump []byte
	waitFor(t, ctx, func() bool {
		dump = make([]byte, 1<<20)
		dump = dump[:runtime.Stack(dump, true)]
		return !bytes.Contains(dump, []byte("AcceptStream"))
	}, "no goroutine in AcceptStream")
	// With no stream open, each side's reader waits for the socket near
	// the top of its stack (muxconn's idle reader, Linux only), not inside
	// crypto/tls.
	waitFor(t, ctx, func() bool {
		if runtime.GOOS != "linux" {
			return true
		}
		dump = make([]byte, 1<<20)
		dump = dump[:runtime.Stack(dump, true)]
		return bytes.Count(dump, []byte("(*idleReader).waitReadable")) == 2
	}, "both session readers waiting in idleReader.waitReadable")

	// And the next event still gets through, both ways.
	if r := get(t, c.httpURL+"/server/time"); r.status != http.StatusOK {
		t.Errorf("after idle: client->server: %d %s", r.status, r.body)
	}
	if r := get(t, s.httpURL+"/client/c1/time"); r.status != http.StatusOK {
		t.Errorf("after idle: server->client: %d %s", r.status, r.body)
	}
}
