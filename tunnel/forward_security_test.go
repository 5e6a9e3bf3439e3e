package tunnel_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
)

// recordingBackend is a forward route's service that records, for each
// request, the request-target exactly as it came on the wire and the
// headers.
type recordingBackend struct {
	*httptest.Server
	mu   sync.Mutex
	seen []recorded
}

type recorded struct {
	uri    string
	header http.Header
}

func newRecordingBackend(t *testing.T) *recordingBackend {
	t.Helper()
	b := &recordingBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.seen = append(b.seen, recorded{r.RequestURI, r.Header.Clone()})
		b.mu.Unlock()
		fmt.Fprintf(w, "saw %s", r.RequestURI)
	}))
	t.Cleanup(b.Close)
	return b
}

// take returns what the backend saw since the last take.
func (b *recordingBackend) take() []recorded {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.seen
	b.seen = nil
	return s
}

// rawGet sends target as the request line's target, byte for byte (as
// curl --path-as-is does), with extra header lines, and reads the answer.
func rawGet(t *testing.T, httpURL, target string, headerLines ...string) result {
	t.Helper()
	addr := strings.TrimPrefix(httpURL, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg := "GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	for _, l := range headerLines {
		msg += l + "\r\n"
	}
	if _, err := io.WriteString(conn, msg+"Connection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %q: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(body), length: resp.ContentLength}
}

// escapes are raw paths after a forward route's segment that must not
// leave the target's path, as curl --path-as-is sends them.
var escapes = []string{
	"/../admin/secret.txt", "/a/../../admin", "/%2e%2e/admin", "/%2E%2E/admin", "/%2e./admin",
	"/.%2e/admin", "/%2E./admin", "/.%2E/admin", "/./admin", "/x/.", "/x/..",
	"/..%2fadmin", "/..%2Fadmin", "/..%5cadmin", "/..%5Cadmin", "/..\\admin",
	"//admin", "/x//../admin", "/..;/admin", "/%252e%252e/admin", "/..%252fadmin",
	"/%00", "/a%0d%0aX-Injected:%20yes", "/%EF%BC%8E%EF%BC%8E/admin",
}

// TestForwardPathConfined: no path sent to a forward route, through a
// real front end and tunnel, reaches the service outside the target's
// path, whether the target has a path with a trailing slash, one without,
// or none; each attempt is a bad_path (400 from the serving node, or 404
// from the sending front end, which refuses an encoded '/' in the noun)
// and the service sees nothing.
func TestForwardPathConfined(t *testing.T) {
	_, s, c := pair(t)
	be := newRecordingBackend(t)
	targets := map[string]string{"api": "/api", "slash": "/api/", "root": ""}
	for route, p := range targets {
		if err := c.reg.Forward(route, be.URL+p); err != nil {
			t.Fatal(err)
		}
	}
	for route, p := range targets {
		base := strings.TrimSuffix(p, "/")
		for _, esc := range escapes {
			target := "/client/c1/" + route + esc
			r := rawGet(t, s.httpURL, target)
			if (r.status != http.StatusBadRequest && r.status != http.StatusNotFound) ||
				!strings.Contains(r.body, `"code":"bad_path"`) {
				t.Errorf("%s: %d %s, want 400 bad_path", target, r.status, r.body)
			}
			if seen := be.take(); len(seen) != 0 {
				t.Errorf("%s reached the service as %q", target, seen[0].uri)
			}
		}
		for _, ok := range []string{"/files/a%20b.txt?x=1", "/dir/", "", "/caf%C3%A9;v=1", "/100%25"} {
			target := "/client/c1/" + route + ok
			r := rawGet(t, s.httpURL, target)
			want := base + ok
			if ok == "" {
				want = base + "/"
			}
			seen := be.take()
			if r.status != 200 || len(seen) != 1 || seen[0].uri != want {
				t.Errorf("%s: %d %s, seen %v; want the service to see %s", target, r.status, r.body, seen, want)
			}
		}
	}
}

// hostilePeer is a client node that speaks the wire protocol itself, with
// a valid certificate, to send events no front end would build.
type hostilePeer struct{ sess *yamux.Session }

func newHostilePeer(t *testing.T, p *pki, s *serverNode, name string) *hostilePeer {
	t.Helper()
	sess := rawSession(t, s.tunnelAddr, p.client(t, name))
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := events.NewWriter(st)
	if err := w.WriteMessage(&events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: name}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var h events.Hello
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := events.NewReader(st).ReadMessage(&h); err != nil || h.Error != "" {
		t.Fatalf("hello: %v %q", err, h.Error)
	}
	return &hostilePeer{sess: sess}
}

// send sends ev with an empty body and a 5 s deadline, and returns the
// reply's status and body.
func (h *hostilePeer) send(t *testing.T, ev *events.Request) (int, string) {
	t.Helper()
	if ev.Id == "" {
		ev.Id = "hostile-1"
	}
	return sendWithin(t, h, ev, 5*time.Second)
}

// sendWithin sends ev with an empty body and the deadline d, and returns
// the reply's status and body.
func sendWithin(t *testing.T, h *hostilePeer, ev *events.Request, d time.Duration) (int, string) {
	t.Helper()
	st, err := h.sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	ev.TimeoutMs = d.Milliseconds()
	w := events.NewWriter(st)
	if err := w.WriteMessage(ev); err != nil {
		t.Fatal(err)
	}
	if err := w.EndBody(""); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := events.NewReader(st)
	var rep events.Reply
	if err := r.ReadMessage(&rep); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body())
	return int(rep.Status), string(body)
}

// TestForwardPathConfinedHostilePeer: a peer that writes the event itself
// gets the same refusals from the node that serves the route.
func TestForwardPathConfinedHostilePeer(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	be := newRecordingBackend(t)
	if err := s.reg.Forward("files", be.URL+"/api"); err != nil {
		t.Fatal(err)
	}
	evil := newHostilePeer(t, p, s, "evil")
	for _, raw := range append(escapes, "..", "../admin", "admin", "/a?b", "/a#b", "/a b", "/a\x00") {
		status, body := evil.send(t, &events.Request{Method: "GET", Noun: events.Bytes([]string{"files"}), RawPath: []byte(raw)})
		if status != http.StatusBadRequest || !strings.Contains(body, `"code":"bad_path"`) {
			t.Errorf("raw path %q: %d %s, want 400 bad_path", raw, status, body)
		}
		if seen := be.take(); len(seen) != 0 {
			t.Errorf("raw path %q reached the service as %q", raw, seen[0].uri)
		}
	}
	// A query or method the request line could not carry is refused too.
	for _, ev := range []*events.Request{
		{Method: "GET", Noun: events.Bytes([]string{"files"}), RawPath: []byte("/x"), Query: []byte("a=1 HTTP/1.1\r\nX-Injected: 1")},
		{Method: "GET /x HTTP/1.1\r\n", Noun: events.Bytes([]string{"files"}), RawPath: []byte("/x")},
	} {
		if status, body := evil.send(t, ev); status != http.StatusBadRequest {
			t.Errorf("%q %q: %d %s, want 400", ev.Method, ev.Query, status, body)
		}
	}
	if seen := be.take(); len(seen) != 0 {
		t.Errorf("the service saw %v", seen)
	}
	status, body := evil.send(t, &events.Request{Method: "GET", Noun: events.Bytes([]string{"files"}), RawPath: []byte("/ok/x%20y")})
	if status != 200 || body != "saw /api/ok/x%20y" {
		t.Errorf("honest path: %d %s", status, body)
	}
}

// forged are identity and address headers a caller makes up, in the
// forms a backend (CGI, PHP, WSGI read '_' as '-') may believe.
var forged = []string{
	"X-Restpipe-Peer: admin", "X_Restpipe_Peer: admin", "x-restpipe-peer: admin",
	"X-Restpipe-Identity: root", "X_RESTPIPE_IDENTITY: root",
	"X-Original-URI: /admin", "X-Original-Method: DELETE", "X_Original_URI: /admin", "X-Original-URL: /admin",
	"X-Real-Ip: 6.6.6.6", "X_Real_IP: 6.6.6.6", "X-Forwarded-For: 6.6.6.6", "X_Forwarded_For: 6.6.6.6",
	"X-Forwarded-Host: evil.example", "X-Forwarded-Proto: gopher", "Forwarded: for=6.6.6.6;host=evil.example",
	"X-Client-Ip: 6.6.6.6", "True-Client-Ip: 6.6.6.6",
	// Method overrides: the backend would run DELETE for what was decided as a GET.
	"X-HTTP-Method-Override: DELETE", "X_HTTP_Method_Override: DELETE", "X-HTTP-Method: DELETE",
	"X-Method-Override: DELETE",
}

// checkVouched checks that a request's headers hold only what the serving
// node vouches for: peer, identity (or none), the tunnel's address.
func checkVouched(t *testing.T, what string, h http.Header, peer, identity string) {
	t.Helper()
	for k, vs := range h {
		switch strings.ToLower(strings.ReplaceAll(k, "_", "-")) {
		case "x-restpipe-peer":
			if len(vs) != 1 || vs[0] != peer {
				t.Errorf("%s: %s %q, want %q", what, k, vs, peer)
			}
		case "x-restpipe-identity":
			if identity == "" || len(vs) != 1 || vs[0] != identity {
				t.Errorf("%s: %s %q, want %q", what, k, vs, identity)
			}
		case "x-forwarded-for":
			if len(vs) != 1 || vs[0] != "127.0.0.1" {
				t.Errorf("%s: %s %q, want the tunnel's 127.0.0.1", what, k, vs)
			}
		case "x-forwarded-proto":
			if len(vs) != 1 || vs[0] != "https" {
				t.Errorf("%s: %s %q, want https", what, k, vs)
			}
		default:
			for _, v := range vs {
				if strings.Contains(v, "6.6.6.6") || strings.Contains(v, "evil.example") ||
					strings.Contains(v, "admin") || strings.Contains(v, "root") || v == "DELETE" {
					t.Errorf("%s: forged %s: %q reached it", what, k, v)
				}
			}
		}
	}
	if identity != "" && h.Get("X-Restpipe-Identity") != identity {
		t.Errorf("%s: X-Restpipe-Identity %q, want %q", what, h.Get("X-Restpipe-Identity"), identity)
	}
	if h.Get("X-Restpipe-Peer") != peer {
		t.Errorf("%s: X-Restpipe-Peer %q, want %q", what, h.Get("X-Restpipe-Peer"), peer)
	}
}

// TestForwardIdentityHeaders: forged identity and address headers, from a
// front-end caller or a hostile peer, reach neither a forward route's
// service nor the auth service; the service learns the peer's certificate
// name, the identity the auth decision named, and the tunnel's address.
func TestForwardIdentityHeaders(t *testing.T) {
	p, s, c := pair(t)
	be := newRecordingBackend(t)
	if err := c.reg.Forward("app", be.URL); err != nil {
		t.Fatal(err)
	}
	if err := s.reg.Forward("app", be.URL); err != nil {
		t.Fatal(err)
	}

	// Without auth: a caller of the server's front end reaches c1's route.
	if r := rawGet(t, s.httpURL, "/client/c1/app/x", forged...); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	seen := be.take()
	if len(seen) != 1 {
		t.Fatalf("service saw %d requests", len(seen))
	}
	checkVouched(t, "no auth", seen[0].header, "server", "")

	// With external auth naming an identity: the auth service sees no
	// forged header either, and the service gets the identity.
	var authSaw http.Header
	var mu sync.Mutex
	authSvc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		authSaw = r.Header.Clone()
		mu.Unlock()
		w.Header().Set(handlers.HeaderIdentity, "alice")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer authSvc.Close()
	ext, err := handlers.NewExternalAuth(authSvc.URL, 5*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.reg.SetAuth(ext.Auth)
	if r := rawGet(t, s.httpURL, "/client/c1/app/y", forged...); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if seen = be.take(); len(seen) != 1 {
		t.Fatalf("service saw %d requests", len(seen))
	}
	checkVouched(t, "with auth", seen[0].header, "server", "alice")
	mu.Lock()
	for k, vs := range authSaw {
		want, restpipes := map[string]string{"X-Restpipe-Peer": "server", "X-Original-Uri": "/app/y",
			"X-Original-Method": "GET", "X-Restpipe-Target": "forward:app"}[k]
		switch {
		case restpipes:
			if len(vs) != 1 || vs[0] != want {
				t.Errorf("auth service: %s %q, want %q", k, vs, want)
			}
		default:
			if strings.Contains(strings.ToLower(k), "restpipe") || strings.Contains(strings.ToLower(k), "original") ||
				strings.Contains(strings.ToLower(k), "forward") || strings.Contains(strings.ToLower(k), "real") {
				t.Errorf("auth service: forged %s %q reached it", k, vs)
			}
		}
	}
	mu.Unlock()

	// A hostile peer writes the headers, caller address and Host itself.
	evil := newHostilePeer(t, p, s, "evil")
	var hs []*events.Header
	for _, l := range forged {
		k, v, _ := strings.Cut(l, ": ")
		hs = append(hs, &events.Header{Name: k, Values: events.Bytes([]string{v})})
	}
	status, body := evil.send(t, &events.Request{Method: "GET", Noun: events.Bytes([]string{"app"}), RawPath: []byte("/z"),
		Headers: hs, RemoteAddr: "6.6.6.6:1", Host: []byte("evil.example")})
	if status != 200 {
		t.Fatalf("hostile peer: %d %s", status, body)
	}
	if seen = be.take(); len(seen) != 1 {
		t.Fatalf("service saw %d requests", len(seen))
	}
	checkVouched(t, "hostile peer", seen[0].header, "evil", "")
}

// TestAuthRewriteRulesAskedAgain: an auth service's X-Rewrite to a route
// the rules do not allow the peer is refused; a rewrite to an escaping
// path is refused as bad_path; the service behind never sees either.
func TestAuthRewriteRulesAskedAgain(t *testing.T) {
	_, s, c := pair(t)
	be := newRecordingBackend(t)
	if err := c.reg.Forward("files", be.URL+"/files"); err != nil {
		t.Fatal(err)
	}
	if err := c.reg.Forward("echo", be.URL+"/echo"); err != nil {
		t.Fatal(err)
	}
	authSvc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get(handlers.HeaderOriginalURI) {
		case "/rewriteme":
			w.Header().Set(handlers.HeaderRewrite, "/files/secret.txt")
		case "/escape":
			w.Header().Set(handlers.HeaderRewrite, "/echo/../files/secret.txt")
		case "/time":
			w.Header().Set(handlers.HeaderRewrite, "/echo/ok")
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer authSvc.Close()
	rules, err := handlers.ParseRules([]string{"server=get_time,get_rewriteme,get_escape,forward:echo"})
	if err != nil {
		t.Fatal(err)
	}
	ext, err := handlers.NewExternalAuth(authSvc.URL, 5*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c.reg.SetAuth(c.reg.Access(rules, ext))
	for range 2 { // the second time from the cache
		r := get(t, s.httpURL+"/client/c1/rewriteme")
		wantError(t, r, http.StatusForbidden, "forbidden")
		if !strings.Contains(r.body, "forward:files") {
			t.Errorf("refusal does not name the rewritten target: %s", r.body)
		}
		wantError(t, get(t, s.httpURL+"/client/c1/escape"), http.StatusBadRequest, "bad_path")
		if seen := be.take(); len(seen) != 0 {
			t.Fatalf("the service saw %q", seen[0].uri)
		}
		if r := get(t, s.httpURL+"/client/c1/time"); r.status != 200 || r.body != "saw /echo/ok" {
			t.Errorf("allowed rewrite: %d %s", r.status, r.body)
		}
		be.take()
	}
	var m map[string]any
	if r := get(t, s.httpURL+"/client/c1/files/x"); r.status != 403 || json.Unmarshal([]byte(r.body), &m) != nil {
		t.Errorf("direct call to forward:files: %d %s", r.status, r.body)
	}
}
