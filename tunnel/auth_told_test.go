package tunnel_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// authRecorder is an auth service that records what it is sent and
// answers as decide says.
type authRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func newAuthRecorder(t *testing.T, decide func(h http.Header) bool) *authRecorder {
	t.Helper()
	a := &authRecorder{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Header.Clone())
		a.mu.Unlock()
		if decide(r.Header) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(a.Close)
	return a
}

// take returns what the service was sent since the last take.
func (a *authRecorder) take() []http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.seen
	a.seen = nil
	return s
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// TestAuthURLCredentialsAreRestpipes: with user info in the auth URL,
// every request to the service authenticates restpipe with it, whether or
// not the caller sent an Authorization; the caller's goes as
// X-Original-Authorization, which a caller cannot forge. Before, an
// anonymous caller arrived with restpipe's own credentials and a caller's
// token hid them. Without user info the caller's Authorization goes as it
// is. The cache keeps each caller's decision apart.
func TestAuthURLCredentialsAreRestpipes(t *testing.T) {
	svc := basic("svc", "pw")
	for _, tc := range []struct {
		name string
		opts []handlers.AuthOption
		ttl  time.Duration
	}{
		{"no cache", nil, 0},
		{"cache", nil, time.Minute},
		{"cache key", []handlers.AuthOption{handlers.CacheKey("X-Original-Authorization")}, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, s, c := pair(t)
			// The service lets in restpipe's requests for alice only.
			as := newAuthRecorder(t, func(h http.Header) bool {
				return h.Get("Authorization") == svc && h.Get("X-Original-Authorization") == "Bearer alice"
			})
			ext, err := handlers.NewExternalAuth(strings.Replace(as.URL, "http://", "http://svc:pw@", 1), 5*time.Second, tc.ttl, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			s.reg.SetAuth(ext.Auth)
			for _, step := range []struct {
				hdr        []string
				status     int
				wantOrigin []string // X-Original-Authorization the service saw
			}{
				{[]string{"Authorization", "Bearer alice"}, 200, []string{"Bearer alice"}},
				{nil, 403, nil},
				{[]string{"X-Original-Authorization", "Bearer alice"}, 403, nil},
				{[]string{"Authorization", svc}, 403, []string{svc}},
				{[]string{"Authorization", "Bearer mallory"}, 403, []string{"Bearer mallory"}},
				{[]string{"Authorization", "Bearer alice"}, 200, []string{"Bearer alice"}},
			} {
				r := get(t, c.httpURL+"/server/time", step.hdr...)
				if r.status != step.status {
					t.Errorf("%q: %d %s, want %d", step.hdr, r.status, r.body, step.status)
				}
				for _, h := range as.take() {
					if got := h.Values("Authorization"); len(got) != 1 || got[0] != svc {
						t.Errorf("%q: the service got Authorization %q, want restpipe's %q", step.hdr, got, svc)
					}
					if got := h.Values("X-Original-Authorization"); strings.Join(got, ",") != strings.Join(step.wantOrigin, ",") {
						t.Errorf("%q: the service got X-Original-Authorization %q, want %q", step.hdr, got, step.wantOrigin)
					}
				}
			}
		})
	}
	t.Run("no user info", func(t *testing.T) {
		_, s, c := pair(t)
		as := newAuthRecorder(t, func(h http.Header) bool { return h.Get("Authorization") == "Bearer alice" })
		ext, err := handlers.NewExternalAuth(as.URL, 5*time.Second, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.reg.SetAuth(ext.Auth)
		if r := get(t, c.httpURL+"/server/time", "Authorization", "Bearer alice"); r.status != 200 {
			t.Errorf("alice: %d %s", r.status, r.body)
		}
		if r := get(t, c.httpURL+"/server/time"); r.status != 403 {
			t.Errorf("anonymous: %d %s", r.status, r.body)
		}
		for _, h := range as.take() {
			if v := h.Values("X-Original-Authorization"); v != nil {
				t.Errorf("X-Original-Authorization %q sent without user info in the URL", v)
			}
		}
	})
}

// TestAuthSeesTheForwardedPath: a forward route's path is normalised
// (RFC 3986 §6.2.2) on the serving node before the auth service is asked
// and the service is called, so both read the same bytes: /files/%73ecret
// is /files/secret to the auth service too, and cannot pass a rule that
// blocks /files/secret while the service decodes it to /secret.
func TestAuthSeesTheForwardedPath(t *testing.T) {
	p, s, c := pair(t)
	be := newRecordingBackend(t)
	if err := s.reg.Forward("files", be.URL+"/api"); err != nil {
		t.Fatal(err)
	}
	as := newAuthRecorder(t, func(h http.Header) bool {
		return !strings.HasPrefix(h.Get(handlers.HeaderOriginalURI), "/files/secret")
	})
	ext, err := handlers.NewExternalAuth(as.URL, 5*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.reg.SetAuth(ext.Auth)
	evil := newHostilePeer(t, p, s, "evil")
	for _, raw := range []string{"/%73ecret", "/%73%65%63%72%65%74/x", "/secre%74", "/%73ecret/x%2fy"[:10]} {
		if r := rawGet(t, c.httpURL, "/server/files"+raw); r.status != http.StatusForbidden {
			t.Errorf("front end %s: %d %s, want 403", raw, r.status, r.body)
		}
		if status, body := evil.send(t, &events.Request{Method: "GET", Noun: events.Bytes([]string{"files"}), RawPath: []byte(raw)}); status != http.StatusForbidden {
			t.Errorf("hostile peer %s: %d %s, want 403", raw, status, body)
		}
		if seen := be.take(); len(seen) != 0 {
			t.Errorf("%s reached the service as %q", raw, seen[0].uri)
		}
	}
	as.take()
	// Allowed paths reach the service in the form the auth service saw.
	for raw, want := range map[string]string{
		"/a%2dB%7ex%5f%2E1":  "/a-B~x_.1",
		"/caf%c3%a9%20x%3bv": "/caf%C3%A9%20x%3Bv",
		"/plain/dir/":        "/plain/dir/",
		"/100%25":            "/100%25",
	} {
		r := rawGet(t, c.httpURL, "/server/files"+raw)
		seen := be.take()
		asked := as.take()
		if r.status != 200 || len(seen) != 1 || seen[0].uri != "/api"+want {
			t.Errorf("%s: %d %s, seen %v; want the service to see /api%s", raw, r.status, r.body, seen, want)
		}
		if len(asked) != 1 || asked[0].Get(handlers.HeaderOriginalURI) != "/files"+want {
			t.Errorf("%s: the auth service was asked %v, want /files%s", raw, asked, want)
		}
	}
}

// TestAuthToldTheTarget: the auth service is told the handler that runs
// (X-Restpipe-Target), so /time/utc and /time_utc, two URIs for
// get_time_utc, are one decision; a caller's own X-Restpipe-Target is
// dropped.
func TestAuthToldTheTarget(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	s.reg.MustHandle("get_time_utc", func(context.Context, *handlers.Request) (any, error) { return "utc", nil })
	be := newRecordingBackend(t)
	if err := s.reg.Forward("files", be.URL); err != nil {
		t.Fatal(err)
	}
	as := newAuthRecorder(t, func(h http.Header) bool {
		switch h.Get("X-Restpipe-Target") {
		case "get_time", "forward:files":
			return true
		}
		return false // get_time_utc is for nobody
	})
	ext, err := handlers.NewExternalAuth(as.URL, 5*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s.reg.SetAuth(ext.Auth)
	for _, tc := range []struct {
		path   string
		hdr    []string
		status int
		target string
	}{
		{"/server/time", nil, 200, "get_time"},
		{"/server/time/utc", nil, 403, "get_time_utc"},
		{"/server/time_utc", nil, 403, "get_time_utc"},
		{"/server/time_utc", []string{"X-Restpipe-Target", "get_time"}, 403, "get_time_utc"},
		{"/server/time_utc", []string{"X_Restpipe_Target", "get_time"}, 403, "get_time_utc"},
		{"/server/files/x", nil, 200, "forward:files"},
	} {
		r := get(t, c.httpURL+tc.path, tc.hdr...)
		if r.status != tc.status {
			t.Errorf("%s %q: %d %s, want %d", tc.path, tc.hdr, r.status, r.body, tc.status)
		}
		for _, h := range as.take() {
			if got := h.Values("X-Restpipe-Target"); len(got) != 1 || got[0] != tc.target {
				t.Errorf("%s %q: the auth service was told target %q, want %q", tc.path, tc.hdr, got, tc.target)
			}
		}
	}
}

// upgradeGet sends a GET asking for a WebSocket upgrade to target and
// returns the status of the answer.
func upgradeGet(t *testing.T, httpURL, target string) int {
	t.Helper()
	addr := strings.TrimPrefix(httpURL, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: "+addr+
		"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAuthToldTheUpgrade: the auth service is told that an event is a
// WebSocket (X-Original-Upgrade), so that allowing GET /app/socket does
// not allow a WebSocket to it, cached or not.
func TestAuthToldTheUpgrade(t *testing.T) {
	_, s, c := pair(t)
	be := newRecordingBackend(t)
	if err := s.reg.Forward("app", be.URL); err != nil {
		t.Fatal(err)
	}
	as := newAuthRecorder(t, func(h http.Header) bool { return h.Get("X-Original-Upgrade") == "" })
	ext, err := handlers.NewExternalAuth(as.URL, 5*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s.reg.SetAuth(ext.Auth)
	if r := get(t, c.httpURL+"/server/app/socket"); r.status != 200 {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	be.take()
	if got := as.take(); len(got) != 1 || got[0].Get("X-Original-Upgrade") != "" {
		t.Errorf("GET: the auth service got %v", got)
	}
	if status := upgradeGet(t, c.httpURL, "/server/app/socket"); status != http.StatusForbidden {
		t.Errorf("WebSocket: %d, want 403", status)
	}
	if seen := be.take(); len(seen) != 0 {
		t.Errorf("the WebSocket reached the service: %v", seen)
	}
	if got := as.take(); len(got) != 1 || got[0].Get("X-Original-Upgrade") != "websocket" {
		t.Errorf("WebSocket: the auth service got %v, want X-Original-Upgrade: websocket", got)
	}
}

// TestForwardErrorsNameNoAddress: a forward route whose service is down
// or slow tells the caller the route and the request id, not the
// target's address or the dial error; those are in the serving node's log
// under the request id.
func TestForwardErrorsNameNoAddress(t *testing.T) {
	p := newPKI(t)
	ln := listen(t)
	downAddr := ln.Addr().String()
	ln.Close() // nothing listens there now
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	logs := newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) {
		reg := handlers.NewRegistry(handlers.WithLogger(logs.logger()))
		if err := reg.Forward("down", "http://"+downAddr+"/api"); err != nil {
			t.Fatal(err)
		}
		if err := reg.Forward("slow", slow.URL+"/api"); err != nil {
			t.Fatal(err)
		}
		cfg.Dispatcher = reg
	})
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	evil := newHostilePeer(t, p, s, "evil")
	slowAddr := strings.TrimPrefix(slow.URL, "http://")
	for _, tc := range []struct {
		route, addr string
		hdr         []string
		status      int
		code, msg   string
	}{
		{"down", downAddr, []string{"X-Request-Id", "req-down"}, http.StatusBadGateway, "upstream_unavailable",
			"forward down: the service is unavailable (request req-down)"},
		{"slow", slowAddr, []string{"X-Request-Id", "req-slow", "X-Restpipe-Timeout", "200ms"}, http.StatusGatewayTimeout, "timeout",
			"forward slow: the service did not answer before the deadline (request req-slow)"},
	} {
		_, port, _ := net.SplitHostPort(tc.addr)
		// Through the front ends (where the calling node's deadline may
		// end a slow call first) and from a peer that sets the event's
		// deadline itself (whose caller hears the serving node's reply).
		r := get(t, c.httpURL+"/server/"+tc.route+"/x", tc.hdr...)
		wantError(t, r, tc.status, tc.code)
		status, body := sendWithin(t, evil, &events.Request{Id: tc.hdr[1], Method: "GET",
			Noun: events.Bytes([]string{tc.route}), RawPath: []byte("/x")}, 300*time.Millisecond)
		if status != tc.status || !strings.Contains(body, `"error":"`+tc.msg+`"`) {
			t.Errorf("%s: %d %s, want %d and %q", tc.route, status, body, tc.status, tc.msg)
		}
		for _, b := range []string{r.body, body} {
			if strings.Contains(b, port) || strings.Contains(b, "dial") || strings.Contains(b, "/api") {
				t.Errorf("%s: the reply names the target: %s", tc.route, b)
			}
		}
		logs.wait(t, "route="+tc.route, tc.hdr[1], tc.addr)
	}
}
