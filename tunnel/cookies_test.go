package tunnel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// TestReplyCookies: a cookie a reply sets lands on the front end's
// origin, 127.0.0.1, which every local service shares whatever its port.
// A handler's Set-Cookie is dropped by the node that serves it; a forward
// route's web app keeps its cookies, through the real nodes.
func TestReplyCookies(t *testing.T) {
	_, s, c := pair(t)
	if err := c.reg.Handle("get_cookie", func(context.Context, *handlers.Request) (any, error) {
		return &handlers.Reply{Header: http.Header{"Set-Cookie": {"session=from-handler; Path=/"},
			"set-cookie2": {"old=1"}, "X-Kept": {"yes"}}, Body: strings.NewReader("handler")}, nil
	}); err != nil {
		t.Fatal(err)
	}
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "app", Value: "from-route", Path: "/"})
		_, _ = w.Write([]byte("route"))
	}))
	t.Cleanup(be.Close)
	if err := c.reg.Forward("web", be.URL); err != nil {
		t.Fatal(err)
	}
	r := get(t, s.httpURL+"/client/c1/cookie")
	if r.status != 200 || r.body != "handler" || r.header.Get("X-Kept") != "yes" {
		t.Fatalf("handler: %d %q %v", r.status, r.body, r.header)
	}
	if v := r.header.Values("Set-Cookie"); len(v) != 0 || r.header.Get("Set-Cookie2") != "" {
		t.Errorf("handler's cookies reached the caller: %q %q", v, r.header.Get("Set-Cookie2"))
	}
	r = get(t, s.httpURL+"/client/c1/web/")
	if r.status != 200 || r.body != "route" || r.header.Get("Set-Cookie") != "app=from-route; Path=/" {
		t.Errorf("route: %d %q, Set-Cookie %q, want the service's cookie", r.status, r.body, r.header.Get("Set-Cookie"))
	}
}

// TestHostileReplyCookie: the node that receives a reply cannot tell a
// route's from a handler's, so a hostile peer's Set-Cookie reaches the
// caller (README, Security: keep browsers off a front end whose peers
// you do not trust, or give apps a host of their own with --http-app).
func TestHostileReplyCookie(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = warnLogs(newLogCapture()) })
	h, _ := dialHostile(t, s.tunnelAddr, p.client(t, "mallory"), nil)
	h.answerEvents(func(*events.Request) hostileAnswer {
		return hostileAnswer{reply: &events.Reply{Status: 200,
			Headers: events.HeadersFromHTTP(http.Header{"Set-Cookie": {"_xsrf=mallory; Path=/"}})}, body: "x"}
	})
	waitListed(t, s, "mallory")
	if r := get(t, s.httpURL+"/client/mallory/time"); r.status != 200 || r.header.Get("Set-Cookie") != "_xsrf=mallory; Path=/" {
		t.Errorf("%d, Set-Cookie %q: README Security says a peer's cookie is relayed", r.status, r.header.Get("Set-Cookie"))
	}
}
