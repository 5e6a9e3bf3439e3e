package tunnel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// pki is a test CA with its server identity.
type pki struct {
	ca     *certs.CA
	server *certs.Identity
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca, err := certs.NewCA("test CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue(certs.IssueRequest{Name: "server", Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return &pki{ca: ca, server: srv}
}

func (p *pki) client(t testing.TB, name string) *certs.Identity {
	t.Helper()
	id, err := p.ca.Issue(certs.IssueRequest{Name: name, Usage: certs.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testLogger logs to the test when RESTPIPE_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("RESTPIPE_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func nodeConfig(t testing.TB, id *certs.Identity, reg *handlers.Registry) tunnel.Config {
	cfg := tunnel.DefaultConfig()
	cfg.Certificate = id.Certificate
	cfg.CA = id.Pool
	cfg.Dispatcher = reg
	cfg.Logger = testLogger(t)
	cfg.ReconnectMin = 10 * time.Millisecond
	cfg.ReconnectMax = 100 * time.Millisecond
	return cfg
}

// serverNode is a running server with its front end.
type serverNode struct {
	*tunnel.Server
	reg        *handlers.Registry
	tunnelAddr string
	httpURL    string
	stop       func()
}

// startServer runs a server on 127.0.0.1 with kernel-chosen ports. The
// returned stop shuts it down and waits; it also runs at cleanup.
func startServer(t testing.TB, p *pki, tweak func(*tunnel.Config)) *serverNode {
	t.Helper()
	return startServerAt(t, p, "127.0.0.1:0", tweak)
}

// startServerAt is startServer with the tunnel on addr.
func startServerAt(t testing.TB, p *pki, addr string, tweak func(*tunnel.Config)) *serverNode {
	t.Helper()
	reg := handlers.NewRegistry()
	handlers.Builtins(reg, "server")
	cfg := nodeConfig(t, p.server, reg)
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := tunnel.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hln := listen(t)
	stop := runUntilStopped(t, func(ctx context.Context) { _ = srv.Serve(ctx, tln) },
		func(ctx context.Context) { _ = srv.ServeFrontend(ctx, hln) })
	return &serverNode{Server: srv, reg: reg, tunnelAddr: tln.Addr().String(),
		httpURL: "http://" + hln.Addr().String(), stop: stop}
}

// clientNode is a running client with its front end.
type clientNode struct {
	*tunnel.Client
	reg     *handlers.Registry
	httpURL string
	stop    func()
}

func startClient(t testing.TB, p *pki, name, serverAddr string, tweak func(*tunnel.Config)) *clientNode {
	t.Helper()
	return startClientWith(t, p.client(t, name), serverAddr, tweak)
}

func startClientWith(t testing.TB, id *certs.Identity, serverAddr string, tweak func(*tunnel.Config)) *clientNode {
	t.Helper()
	reg := handlers.NewRegistry()
	handlers.Builtins(reg, id.Name())
	cfg := nodeConfig(t, id, reg)
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := tunnel.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hln := listen(t)
	stop := runUntilStopped(t, func(ctx context.Context) { _ = c.Run(ctx, serverAddr) },
		func(ctx context.Context) { _ = c.ServeFrontend(ctx, hln) })
	return &clientNode{Client: c, reg: reg, httpURL: "http://" + hln.Addr().String(), stop: stop}
}

// runUntilStopped runs each fn in its own goroutine until the returned
// stop (also run at cleanup) cancels them and waits for them to return.
func runUntilStopped(t testing.TB, fns ...func(context.Context)) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() { defer wg.Done(); fn(ctx) }()
	}
	stop := sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(stop)
	return stop
}

// waitConnected waits until c is connected and the server lists it.
func waitConnected(t testing.TB, c *clientNode, s *serverNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatalf("client %s did not connect: %v", c.Name(), err)
	}
	waitFor(t, ctx, func() bool {
		for _, ci := range s.Clients() {
			if ci.Name == c.Name() {
				return true
			}
		}
		return false
	}, "server to list client "+c.Name())
}

// waitReconnected waits until c has a session newer than prev (what
// c.Server() said before the drop) and the server lists it.
func waitReconnected(t testing.TB, c *clientNode, s *serverNode, prev tunnel.PeerInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, ctx, func() bool {
		info, ok := c.Server()
		return ok && info.ConnectedSince.After(prev.ConnectedSince)
	}, "client "+c.Name()+" to reconnect")
	waitConnected(t, c, s)
}

// waitFor polls cond until it holds or ctx ends: for state that has no
// event to wait on (a peer registry seen from outside).
func waitFor(t testing.TB, ctx context.Context, cond func() bool, what string) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// fixedPort returns a free loopback address below the kernel's ephemeral
// range, for a server that must come back on the same port: a port from
// that range may be taken by an outgoing socket while the server is down.
func fixedPort(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// result is an HTTP answer read whole.
type result struct {
	status int
	header http.Header
	body   string
	length int64 // Content-Length: -1 for a chunked reply
}

func (r result) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func do(t testing.TB, method, url string, body io.Reader, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(b), length: resp.ContentLength}
}

func get(t testing.TB, url string, hdr ...string) result {
	t.Helper()
	return do(t, http.MethodGet, url, nil, hdr...)
}

// wantError checks an error reply of the error table.
func wantError(t testing.TB, r result, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	m := r.json(t)
	if m["code"] != code {
		t.Errorf("code %v, want %q; body %s", m["code"], code, r.body)
	}
	if msg, _ := m["error"].(string); msg == "" {
		t.Errorf("error message empty; body %s", r.body)
	}
}
