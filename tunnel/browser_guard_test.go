//go:build linux

package tunnel_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// Pages the user opens in Chromium try to drive a client node's front
// end: a page of another origin (a form POST, a fetch that needs no
// preflight, a WebSocket to a forward route) and a page rebound to the
// front end's address (evil.example resolving to 127.0.0.1). None of
// them runs a handler, reaches the route's service or reads a reply. The
// same page from an origin --origin allows does run the handler, which
// shows that the browser did send what the others were refused.
func TestBrowserCannotDriveFrontend(t *testing.T) {
	needBrowser(t)
	// The attacker's page: blank, with a frame for the form's answer.
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>elsewhere</title><iframe name="sink"></iframe>`)
	}))
	defer page.Close()
	pagePort := page.URL[strings.LastIndexByte(page.URL, ':')+1:]
	allowedPage := "http://localhost:" + pagePort // the same page, from an allowed origin

	p := newPKI(t)
	s := startServer(t, p, nil)
	var mu sync.Mutex
	var marks []string
	s.reg.MustHandle("post_mark", func(_ context.Context, req *handlers.Request) (any, error) {
		b := make([]byte, 64)
		n, _ := req.Body.Read(b)
		mu.Lock()
		marks = append(marks, string(b[:n]))
		mu.Unlock()
		return "marked", nil
	})
	got := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), marks...) }
	var seenMu sync.Mutex // the Origins of the upgrades the route's service saw
	var seenOrigins []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenMu.Lock()
		seenOrigins = append(seenOrigins, r.Header.Get("Origin"))
		seenMu.Unlock()
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		_ = ws.Write(r.Context(), websocket.MessageText, []byte("from the service"))
		_, _, _ = ws.Read(r.Context())
	}))
	defer up.Close()
	if err := s.reg.Forward("app", up.URL); err != nil {
		t.Fatal(err)
	}
	a := startClient(t, p, "alpha", s.tunnelAddr, func(c *tunnel.Config) { c.Origins = []string{"localhost:" + pagePort} })
	waitConnected(t, a, s)
	fePort := a.httpURL[strings.LastIndexByte(a.httpURL, ':')+1:]

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := startBrowser(t, ctx, "--host-resolver-rules=MAP evil.example 127.0.0.1")

	// Each script ends by passing what happened to its callback.
	fetchJS := func(u string) string {
		return fmt.Sprintf(`const done = arguments[arguments.length-1];
fetch(%q, {method: 'POST', mode: 'no-cors', body: 'fetch', headers: {'Content-Type': 'text/plain'}})
  .then(r => done('sent ' + r.type), e => done('error ' + e));`, u)
	}
	formJS := func(u string) string {
		return fmt.Sprintf(`const done = arguments[arguments.length-1];
const f = document.createElement('form');
f.method = 'POST'; f.action = %q; f.target = 'sink'; f.enctype = 'text/plain';
const i = document.createElement('input'); i.name = 'v'; i.value = 'form'; f.appendChild(i);
document.body.appendChild(f);
document.querySelector('iframe').addEventListener('load', () => done('loaded'), {once: true});
f.submit();`, u)
	}
	wsJS := func(u string) string {
		return fmt.Sprintf(`const done = arguments[arguments.length-1];
const ws = new WebSocket(%q);
ws.onmessage = e => { done('message ' + e.data); ws.close(); };
ws.onerror = () => done('error');`, u)
	}
	run := func(t *testing.T, js string) string {
		t.Helper()
		var res string
		if err := b.executeAsync(ctx, js, &res); err != nil {
			t.Fatalf("script: %v", err)
		}
		return res
	}
	mark := a.httpURL + "/server/mark"
	markByName := "http://localhost:" + fePort + "/server/mark" // cross-site from 127.0.0.1
	socket := "ws://127.0.0.1:" + fePort + "/server/app/socket"

	t.Run("foreign page", func(t *testing.T) {
		b.open(t, ctx, page.URL+"/")
		for _, u := range []string{mark, markByName} {
			if res := run(t, fetchJS(u)); res != "sent opaque" {
				t.Errorf("fetch %s: %s", u, res)
			}
			if res := run(t, formJS(u)); res != "loaded" {
				t.Errorf("form POST %s: %s", u, res)
			}
		}
		if res := run(t, wsJS(socket)); res != "error" {
			t.Errorf("WebSocket to the forward route: %s, want an error", res)
		}
		if m := got(); len(m) != 0 {
			t.Errorf("the handler ran for a foreign page: %q", m)
		}
		seenMu.Lock()
		defer seenMu.Unlock()
		if len(seenOrigins) != 0 {
			t.Errorf("the route's service saw WebSockets from %q", seenOrigins)
		}
	})

	t.Run("rebound page", func(t *testing.T) {
		rebound := "http://evil.example:" + fePort
		b.open(t, ctx, rebound+"/clients")
		body := script[string](t, ctx, b, `return document.body.innerText`)
		if !strings.Contains(body, `"misdirected"`) {
			t.Errorf("page at %s shows %q, want the 421 error", rebound, body)
		}
		res := run(t, `const done = arguments[arguments.length-1];
fetch('/server/time').then(r => r.text().then(t => done(r.status + ' ' + t)), e => done('error ' + e));`)
		if !strings.HasPrefix(res, "421 ") || strings.Contains(res, "utc") || strings.Contains(res, "unix") {
			t.Errorf("same-origin fetch from the rebound page read %q, want only the 421 error", res)
		}
		if res := run(t, fetchJS(rebound+"/server/mark")); res != "sent basic" {
			t.Errorf("rebound POST: %s", res)
		}
		if m := got(); len(m) != 0 {
			t.Errorf("the handler ran for a rebound page: %q", m)
		}
	})

	t.Run("allowed page", func(t *testing.T) {
		b.open(t, ctx, allowedPage+"/")
		if res := run(t, fetchJS(mark)); res != "sent opaque" {
			t.Errorf("fetch: %s", res)
		}
		if res := run(t, formJS(mark)); res != "loaded" {
			t.Errorf("form POST: %s", res)
		}
		if res := run(t, wsJS(socket)); res != "message from the service" {
			t.Errorf("WebSocket to the forward route: %s", res)
		}
		if m := got(); len(m) != 2 || m[0] != "fetch" || !strings.HasPrefix(m[1], "v=form") {
			t.Errorf("handler got %q, want the fetch's and the form's bodies", m)
		}
	})
}
