package tunnel_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// guarded is a server and a client c1 whose every kind of front-end path
// counts what reaches it: c1's handler post_count and get_count, c1's
// forward route "app" (and its WebSocket), the server's post_count, and
// a channel subscriber on the server.
type guarded struct {
	s          *serverNode
	c          *clientNode
	calls      atomic.Int64 // handler runs on either node
	backend    atomic.Int64 // requests the forward route's service saw
	serverPort string
	clientPort string
}

func startGuarded(t *testing.T, tweak func(*tunnel.Config)) *guarded {
	t.Helper()
	g := &guarded{}
	p := newPKI(t)
	g.s = startServer(t, p, tweak)
	g.c = startClient(t, p, "c1", g.s.tunnelAddr, tweak)
	waitConnected(t, g.c, g.s)
	count := func(context.Context, *handlers.Request) (any, error) { g.calls.Add(1); return "counted", nil }
	for _, reg := range []*handlers.Registry{g.s.reg, g.c.reg} {
		reg.MustHandle("post_count", count)
		reg.MustHandle("get_count", count)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.backend.Add(1)
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
			if err != nil {
				return
			}
			defer ws.CloseNow()
			_ = ws.Write(r.Context(), websocket.MessageText, []byte("hello from the backend"))
			_, _, _ = ws.Read(r.Context())
			return
		}
		fmt.Fprint(w, "from the backend")
	}))
	t.Cleanup(up.Close)
	if err := g.c.reg.Forward("app", up.URL); err != nil {
		t.Fatal(err)
	}
	g.serverPort = g.s.httpURL[strings.LastIndexByte(g.s.httpURL, ':')+1:]
	g.clientPort = g.c.httpURL[strings.LastIndexByte(g.c.httpURL, ':')+1:]
	return g
}

// target is one kind of front-end path.
type target struct {
	name   string
	method string
	url    func(g *guarded) string
	body   string
	hdr    []string
}

func guardedTargets() []target {
	return []target{
		{"RPC to a client", "POST", func(g *guarded) string { return g.s.httpURL + "/client/c1/count" }, "x", nil},
		{"RPC to the server", "POST", func(g *guarded) string { return g.c.httpURL + "/server/count" }, "x", nil},
		{"RPC GET", "GET", func(g *guarded) string { return g.s.httpURL + "/client/c1/count" }, "", nil},
		{"clients", "GET", func(g *guarded) string { return g.s.httpURL + "/clients" }, "", nil},
		{"forward route", "POST", func(g *guarded) string { return g.s.httpURL + "/client/c1/app/x" }, "x", nil},
		{"channel publish", "POST", func(g *guarded) string { return chanURL(g.s.httpURL, "guarded") }, "x", nil},
		{"GRIP publish", "POST", func(g *guarded) string { return g.s.httpURL + "/publish/" },
			`{"items":[{"channel":"guarded","formats":{"ws-message":{"content":"x"}}}]}`, []string{"Content-Type", "application/json"}},
		{"bad path", "GET", func(g *guarded) string { return g.s.httpURL + "/nowhere" }, "", nil},
	}
}

// send makes the request of tt with Host host ("" keeps the URL's) and
// the extra headers hdr.
func (tt target) send(t *testing.T, g *guarded, host string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(tt.method, tt.url(g), strings.NewReader(tt.body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	all := append(append([]string{}, tt.hdr...), hdr...)
	for i := 0; i+1 < len(all); i += 2 {
		req.Header.Set(all[i], all[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", tt.method, req.URL, err)
	}
	defer resp.Body.Close()
	return result{status: resp.StatusCode, header: resp.Header, body: readAll(t, resp), length: resp.ContentLength}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// nothingRan fails the test if any handler, the forward route's service
// or a channel subscriber on the server got anything.
func (g *guarded) nothingRan(t *testing.T, ctx context.Context, sub *wsSubscriber) {
	t.Helper()
	if n := g.calls.Load(); n != 0 {
		t.Errorf("a handler ran %d times", n)
	}
	if n := g.backend.Load(); n != 0 {
		t.Errorf("the forward route's service saw %d requests", n)
	}
	publish(t, g.s.httpURL, "guarded", "probe")
	if m, err := sub.next(ctx); err != nil || m != "probe" {
		t.Errorf("the channel's subscriber got %q, %v first: a refused request published", m, err)
	}
}

// A page rebound to the front end (evil.example resolving to 127.0.0.1)
// sends its own name as Host: every path answers 421 misdirected and
// runs nothing.
func TestFrontendRefusesForeignHost(t *testing.T) {
	g := startGuarded(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := subscribeWS(t, ctx, g.s.httpURL, "guarded")
	for _, tt := range guardedTargets() {
		port := g.serverPort
		if strings.HasPrefix(tt.url(g), g.c.httpURL) {
			port = g.clientPort
		}
		for _, host := range []string{"evil.example:" + port, "evil.example", "localhost:1", "127.0.0.2:" + port} {
			t.Run(tt.name+"/"+host, func(t *testing.T) {
				wantError(t, tt.send(t, g, host), http.StatusMisdirectedRequest, handlers.CodeMisdirected)
			})
		}
	}
	t.Run("WebSocket to a forward route", func(t *testing.T) {
		_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.s.httpURL, "http")+"/client/c1/app/socket",
			&websocket.DialOptions{Host: "evil.example:" + g.serverPort})
		if err == nil || resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("dial with a foreign Host: %v, %v; want 421", resp, err)
		}
	})
	t.Run("channel subscribe", func(t *testing.T) {
		_, resp, err := websocket.Dial(ctx, wsURL(g.s.httpURL, "guarded"), &websocket.DialOptions{Host: "evil.example:" + g.serverPort})
		if err == nil || resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("subscribe with a foreign Host: %v, %v; want 421", resp, err)
		}
	})
	g.nothingRan(t, ctx, sub)
}

// The front end's own names are answered, and Config.HTTPHosts adds more.
func TestFrontendOwnHostNames(t *testing.T) {
	g := startGuarded(t, func(c *tunnel.Config) { c.HTTPHosts = []string{"tunnel.internal", "proxy.internal:8443"} })
	for _, host := range []string{"127.0.0.1:" + g.serverPort, "localhost:" + g.serverPort, "LOCALHOST:" + g.serverPort,
		"[::1]:" + g.serverPort, "tunnel.internal:" + g.serverPort, "proxy.internal:8443"} {
		t.Run(host, func(t *testing.T) {
			r := target{"clients", "GET", func(g *guarded) string { return g.s.httpURL + "/clients" }, "", nil}.send(t, g, host)
			if r.status != http.StatusOK || !strings.Contains(r.body, `"c1"`) {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			r = target{"RPC", "POST", func(g *guarded) string { return g.s.httpURL + "/client/c1/count" }, "x", nil}.send(t, g, host,
				"Origin", "http://"+host, "Sec-Fetch-Site", "same-origin")
			if r.status != http.StatusOK {
				t.Fatalf("own origin: status %d: %s", r.status, r.body)
			}
		})
	}
	for _, host := range []string{"proxy.internal:" + g.serverPort, "tunnel.internal:8443"} {
		r := target{"clients", "GET", func(g *guarded) string { return g.s.httpURL + "/clients" }, "", nil}.send(t, g, host)
		wantError(t, r, http.StatusMisdirectedRequest, handlers.CodeMisdirected)
	}
}

// A page of another origin (a form POST, a no-cors fetch, a link or an
// image) is refused with 403 forbidden on every path, before anything
// runs.
func TestFrontendRefusesForeignOrigin(t *testing.T) {
	g := startGuarded(t, func(c *tunnel.Config) { c.Origins = []string{"https://app.example.com"} })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := subscribeWS(t, ctx, g.s.httpURL, "guarded")
	foreign := [][]string{
		{"Origin", "http://evil.example"},
		{"Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"},
		{"Origin", "null"},
		{"Origin", "http://localhost:1", "Sec-Fetch-Site", "same-site"}, // another port: same site, other origin
		{"Origin", "http://app.example.com"},                            // allowed only with https
		{"Sec-Fetch-Site", "cross-site"},                                // a link or an image: no Origin
		{"Sec-Fetch-Site", "same-site"},
	}
	for _, tt := range guardedTargets() {
		for _, hdr := range foreign {
			t.Run(tt.name+"/"+strings.Join(hdr, " "), func(t *testing.T) {
				wantError(t, tt.send(t, g, "", hdr...), http.StatusForbidden, handlers.CodeForbidden)
			})
		}
	}
	t.Run("WebSocket subscribe", func(t *testing.T) {
		_, resp, err := websocket.Dial(ctx, wsURL(g.s.httpURL, "guarded"),
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("subscribe from a foreign page: %v, %v; want 403", resp, err)
		}
	})
	g.nothingRan(t, ctx, sub)

	// The same requests from the front end's own pages, from an origin
	// --origin allows, and from programs run.
	allowed := [][]string{
		nil,
		{"Origin", g.s.httpURL, "Sec-Fetch-Site", "same-origin"},
		{"Origin", "https://app.example.com", "Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "none"},
	}
	for _, hdr := range allowed {
		r := target{"RPC", "POST", func(g *guarded) string { return g.s.httpURL + "/client/c1/count" }, "x", nil}.send(t, g, "", hdr...)
		if r.status != http.StatusOK {
			t.Errorf("%q: status %d: %s", hdr, r.status, r.body)
		}
	}
	if n := g.calls.Load(); n != int64(len(allowed)) {
		t.Errorf("handler ran %d times, want %d", n, len(allowed))
	}
	r := target{"forward route", "POST", func(g *guarded) string { return g.s.httpURL + "/client/c1/app/x" }, "x", nil}.send(t, g, "",
		"Origin", "https://app.example.com")
	if r.status != http.StatusOK || r.body != "from the backend" || g.backend.Load() != 1 {
		t.Errorf("allowed origin through the route: %d %q, backend saw %d", r.status, r.body, g.backend.Load())
	}
}

// A WebSocket through a forward route from a page of another origin is
// refused by the front end: the service behind the route never sees it.
func TestFrontendRefusesForeignWebSocket(t *testing.T) {
	g := startGuarded(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(g.s.httpURL, "http") + "/client/c1/app/socket"
	for _, origin := range []string{"http://evil.example", "null", "http://localhost:1"} {
		_, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("Origin %s: %v, %v; want 403", origin, resp, err)
		}
	}
	if n := g.backend.Load(); n != 0 {
		t.Fatalf("the service saw %d upgrades from foreign pages", n)
	}
	// The front end's own page may.
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {g.s.httpURL}}})
	if err != nil {
		t.Fatalf("own origin: %v", err)
	}
	defer c.CloseNow()
	if _, m, err := c.Read(ctx); err != nil || string(m) != "hello from the backend" {
		t.Fatalf("read %q, %v", m, err)
	}
}

// A front end on a UNIX socket does not check Host (no browser reaches
// it), but still refuses foreign origins.
func TestFrontendUnixSocketExemptFromHost(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	reg := handlers.NewRegistry()
	handlers.Builtins(reg, "u1")
	cfg := nodeConfig(t, p.client(t, "u1"), reg)
	c, err := tunnel.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "fe.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	runUntilStopped(t, func(ctx context.Context) { _ = c.Run(ctx, s.tunnelAddr) },
		func(ctx context.Context) { _ = c.ServeFrontend(ctx, ln) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	call := func(hdr ...string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://evil.example:8081/server/time", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, readAll(t, resp)
	}
	if status, body := call(); status != http.StatusOK {
		t.Fatalf("any Host on a UNIX socket: %d %s, want 200", status, body)
	}
	if status, body := call("Origin", "http://evil.example:8081"); status != http.StatusForbidden || !strings.Contains(body, `"forbidden"`) {
		t.Fatalf("foreign Origin on a UNIX socket: %d %s, want 403 forbidden", status, body)
	}
}
