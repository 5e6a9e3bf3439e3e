package tunnel_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
)

// TestAuthToldWhatTheRouteForwards: the auth service is asked about the
// path a forward route will send its service, even when a hostile peer
// writes an event whose noun says more than its raw path: with noun
// files/public and an empty raw path, the route forwards the target's
// root, and the auth service must be asked about /files, not
// /files/public.
func TestAuthToldWhatTheRouteForwards(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	be := newRecordingBackend(t)
	if err := s.reg.Forward("files", be.URL+"/api"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []string
	authSvc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uri := r.Header.Get(handlers.HeaderOriginalURI)
		mu.Lock()
		asked = append(asked, uri)
		mu.Unlock()
		if uri == "/files/public" || uri == "/files/public/x" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusForbidden) // the listing of /api/ is private
	}))
	defer authSvc.Close()
	ext, err := handlers.NewExternalAuth(authSvc.URL, 5*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.reg.SetAuth(ext.Auth)

	evil := newHostilePeer(t, p, s, "evil")
	for _, ev := range []*events.Request{
		{Method: "GET", Noun: events.Bytes([]string{"files", "public"})},
		{Method: "GET", Noun: events.Bytes([]string{"files", "public"}), Args: events.Bytes([]string{"x"})},
		{Method: "GET", Noun: events.Bytes([]string{"files", "public", "x"}), RawPath: []byte("/")},
	} {
		status, body := evil.send(t, ev)
		if status != http.StatusForbidden {
			t.Errorf("noun %q raw %q: %d %s, want 403", ev.Noun, ev.RawPath, status, body)
		}
		if seen := be.take(); len(seen) != 0 {
			t.Errorf("noun %q raw %q reached the service as %q", ev.Noun, ev.RawPath, seen[0].uri)
		}
	}
	// The honest form is allowed, and asked about as it is forwarded.
	status, body := evil.send(t, &events.Request{Method: "GET", Noun: events.Bytes([]string{"files", "public", "x"}), RawPath: []byte("/public/x")})
	if status != http.StatusOK || body != "saw /api/public/x" {
		t.Errorf("honest event: %d %s", status, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/files", "/files", "/files/", "/files/public/x"}; len(asked) != len(want) {
		t.Errorf("the auth service was asked about %q, want %q", asked, want)
	} else {
		for i := range want {
			if asked[i] != want[i] {
				t.Errorf("the auth service was asked about %q, want %q", asked, want)
				break
			}
		}
	}
}
