package tunnel_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// A browser-facing app behind a forward route, mounted on a listener of
// its own, has an origin of its own: every path of it reaches the route,
// none reaches /clients or another client, and its pages are a foreign
// origin to the main front end.
func TestMountSeparatesAppFromControlAPI(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("app saw " + r.Method + " " + r.URL.EscapedPath() + "?" + r.URL.RawQuery))
	}))
	defer up.Close()
	if err := c.reg.Forward("web", up.URL+"/root"); err != nil {
		t.Fatal(err)
	}
	ran := 0
	c.reg.MustHandle("post_count", func(context.Context, *handlers.Request) (any, error) { ran++; return "ran", nil })

	if err := tunnel.CheckMount("/client/c1/web/"); err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	runUntilStopped(t, func(ctx context.Context) { _ = s.ServeMount(ctx, ln, "/client/c1/web/") })
	appURL := "http://" + ln.Addr().String()

	for path, want := range map[string]string{
		"/":                 "app saw GET /root/?",
		"/index.html?x=1":   "app saw GET /root/index.html?x=1",
		"/clients":          "app saw GET /root/clients?",
		"/client/c1/count":  "app saw GET /root/client/c1/count?",
		"/channels/x":       "app saw GET /root/channels/x?",
		"/a/b%20c":          "app saw GET /root/a/b%20c?",
		"/static/app.js?v2": "app saw GET /root/static/app.js?v2",
	} {
		if r := get(t, appURL+path); r.status != http.StatusOK || r.body != want {
			t.Errorf("GET %s on the app: %d %q, want %q", path, r.status, r.body, want)
		}
	}
	// The route's path checks hold on the app as on the main front end.
	for _, path := range []string{"/a//b", "/%2e%2e/x"} {
		wantError(t, get(t, appURL+path), http.StatusBadRequest, handlers.CodeBadPath)
	}
	// The app's own pages may call it; other pages and names may not.
	if r := do(t, "POST", appURL+"/form", strings.NewReader("x"), "Origin", appURL); r.status != http.StatusOK {
		t.Errorf("own origin on the app: %d %s", r.status, r.body)
	}
	wantError(t, do(t, "POST", appURL+"/form", strings.NewReader("x"), "Origin", s.httpURL), http.StatusForbidden, handlers.CodeForbidden)
	req, _ := http.NewRequest(http.MethodGet, appURL+"/", nil)
	req.Host = "evil.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("rebound app: %v %v, want 421", resp, err)
	} else {
		resp.Body.Close()
	}
	// The app's pages cannot drive the control API on the main front end.
	wantError(t, do(t, "POST", s.httpURL+"/client/c1/count", strings.NewReader("x"), "Origin", appURL), http.StatusForbidden, handlers.CodeForbidden)
	wantError(t, get(t, s.httpURL+"/clients", "Origin", appURL), http.StatusForbidden, handlers.CodeForbidden)
	if ran != 0 {
		t.Errorf("post_count ran %d times for the app's page", ran)
	}

	for _, bad := range []string{"/clients", "/channels/x", "/client/c1", "/client/c1/web//arg", "/nowhere", "/server/a?b",
		"/server/app//", // "/x" on it would be /server/app//x: an argument
		"/server/%ff", "/server/\xff", "/client/%ff/x"} {
		if err := tunnel.CheckMount(bad); err == nil {
			t.Errorf("CheckMount(%q) accepted it", bad)
		}
		ln := listen(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a mount it accepted would return at once, with no error
		if err := s.ServeMount(ctx, ln, bad); err == nil {
			t.Errorf("ServeMount(%q) accepted it", bad)
		}
		if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			t.Errorf("ServeMount(%q) left its listener open", bad)
		}
	}
	for _, good := range []string{"/server/app", "/server/app/v1/", "/client/c2/x"} {
		if err := tunnel.CheckMount(good); err != nil {
			t.Errorf("CheckMount(%q): %v", good, err)
		}
	}
}
