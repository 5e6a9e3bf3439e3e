package tunnel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
)

// TestMethodCaseIsOneMethod: restpipe names handlers by the lower-cased
// method, so "delete" and "DELETE" run the same handler. An auth service
// that refuses DELETE must therefore never be told "delete" for it: the
// receiving node upper-cases the method before anything sees it, for a
// front-end caller (Go's server takes "delete" as it is) and for a
// hostile peer alike, and a forward route's service gets it upper-cased
// too.
func TestMethodCaseIsOneMethod(t *testing.T) {
	p, s, c := pair(t)
	var mu sync.Mutex
	var told []string
	authSvc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := r.Header.Get(handlers.HeaderOriginalMethod)
		mu.Lock()
		told = append(told, m)
		mu.Unlock()
		if m == http.MethodDelete {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer authSvc.Close()
	for _, reg := range []*handlers.Registry{c.reg, s.reg} {
		ext, err := handlers.NewExternalAuth(authSvc.URL, 5*time.Second, 0)
		if err != nil {
			t.Fatal(err)
		}
		reg.SetAuth(ext.Auth)
		reg.MustHandle("delete_thing", func(_ context.Context, req *handlers.Request) (any, error) {
			return "deleted by " + req.Method, nil
		})
	}
	var methods []string
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		methods = append(methods, r.Method+" "+r.RequestURI)
		mu.Unlock()
	}))
	defer be.Close()
	if err := c.reg.Forward("app", be.URL); err != nil {
		t.Fatal(err)
	}

	host := strings.TrimPrefix(s.httpURL, "http://")
	for _, m := range []string{"DELETE", "delete", "Delete", "dElEtE"} {
		r := rawRequest(t, s.httpURL, m+" /client/c1/thing HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
		if r.status != http.StatusForbidden {
			t.Errorf("%s /client/c1/thing: %d %s, want 403 (the auth service refuses DELETE)", m, r.status, r.body)
		}
		r = rawRequest(t, s.httpURL, m+" /client/c1/app/x HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
		if r.status != http.StatusForbidden {
			t.Errorf("%s /client/c1/app/x: %d %s, want 403", m, r.status, r.body)
		}
	}
	evil := newHostilePeer(t, p, s, "evil")
	for _, m := range []string{"delete", "Delete"} {
		if status, body := evil.send(t, &events.Request{Method: m, Noun: events.Bytes([]string{"thing"})}); status != http.StatusForbidden {
			t.Errorf("hostile peer, %s thing: %d %s, want 403", m, status, body)
		}
	}
	mu.Lock()
	for _, m := range told {
		if m != strings.ToUpper(m) {
			t.Errorf("the auth service was told method %q", m)
		}
	}
	if len(methods) != 0 {
		t.Errorf("the route's service saw %q", methods)
	}
	methods = nil
	mu.Unlock()

	// Another method, in lower case, reaches the route's service upper-cased.
	r := rawRequest(t, s.httpURL, "patch /client/c1/app/y HTTP/1.1\r\nHost: "+host+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	if r.status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(methods) != 1 || methods[0] != "PATCH /y" {
		t.Errorf("the service saw %q, want PATCH /y", methods)
	}
}
