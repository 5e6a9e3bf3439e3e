package webguard_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/restpipe/restpipe/tunnel/webguard"
)

// request is a request that arrived on a connection whose local address
// is local (nil: not through a listener).
func request(local net.Addr, host string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/server/echo", strings.NewReader("x"))
	r.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	if local != nil {
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
	}
	return r
}

func tcp(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestCheck(t *testing.T) {
	lo := tcp("127.0.0.1:8081")
	any4 := tcp("192.168.1.5:8081") // a connection to a front end on 0.0.0.0
	lo80 := tcp("127.0.0.1:80")
	unix := &net.UnixAddr{Name: "/run/restpipe.sock", Net: "unix"}
	policy, err := webguard.New([]string{"tunnel.internal", "Proxy.Internal:8443", "[fd00::1]"},
		[]string{"*.example.com", "https://app.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		local net.Addr
		host  string
		hdr   []string
		want  error // nil, ErrMisdirected or ErrForeign
	}{
		{"loopback IP", lo, "127.0.0.1:8081", nil, nil},
		{"localhost", lo, "localhost:8081", nil, nil},
		{"localhost, upper case", lo, "LocalHost:8081", nil, nil},
		{"IPv6 loopback", lo, "[::1]:8081", nil, nil},
		{"IPv6 loopback, long form", lo, "[0:0:0:0:0:0:0:1]:8081", nil, nil},
		{"the connection's own address", any4, "192.168.1.5:8081", nil, nil},
		{"another address", any4, "192.168.1.6:8081", nil, webguard.ErrMisdirected},
		{"extra name", lo, "tunnel.internal:8081", nil, nil},
		{"extra name with its own port", lo, "proxy.internal:8443", nil, nil},
		{"extra name with its port, front end's port", lo, "proxy.internal:8081", nil, webguard.ErrMisdirected},
		{"extra IPv6 name", lo, "[fd00::1]:8081", nil, nil},
		{"rebound name", lo, "evil.example:8081", nil, webguard.ErrMisdirected},
		{"rebound name, no port", lo, "evil.example", nil, webguard.ErrMisdirected},
		{"localhost, other port", lo, "localhost:8082", nil, webguard.ErrMisdirected},
		{"no port where the port is not 80", lo, "localhost", nil, webguard.ErrMisdirected},
		{"no port on port 80", lo80, "localhost", nil, nil},
		{"port 80 given", lo80, "127.0.0.1:80", nil, nil},
		{"empty port", lo, "localhost:", nil, webguard.ErrMisdirected},
		{"port with a leading zero", lo, "localhost:08081", nil, webguard.ErrMisdirected},
		{"no Host", lo, "", nil, webguard.ErrMisdirected},
		{"suffix trick", lo, "localhost.evil.example:8081", nil, webguard.ErrMisdirected},
		{"IPv6 without brackets", lo, "::1", nil, webguard.ErrMisdirected},
		{"UNIX socket: any Host", unix, "evil.example", nil, nil},
		{"UNIX socket: foreign Origin", unix, "evil.example", []string{"Origin", "http://evil.example"}, webguard.ErrForeign},
		{"UNIX socket: Origin of an extra name", unix, "x", []string{"Origin", "http://tunnel.internal"}, nil},

		{"own Origin", lo, "127.0.0.1:8081", []string{"Origin", "http://127.0.0.1:8081"}, nil},
		{"own Origin, another own name", lo, "127.0.0.1:8081", []string{"Origin", "http://localhost:8081", "Sec-Fetch-Site", "cross-site"}, nil},
		{"own Origin of an extra name", lo, "localhost:8081", []string{"Origin", "http://tunnel.internal:8081"}, nil},
		{"own Origin, port 80", lo80, "localhost", []string{"Origin", "http://localhost"}, nil},
		{"own host, https", lo, "localhost:8081", []string{"Origin", "https://localhost:8081"}, webguard.ErrForeign},
		{"own host, other port", lo, "localhost:8081", []string{"Origin", "http://localhost:3000"}, webguard.ErrForeign},
		{"foreign Origin", lo, "localhost:8081", []string{"Origin", "http://evil.example"}, webguard.ErrForeign},
		{"null Origin", lo, "localhost:8081", []string{"Origin", "null"}, webguard.ErrForeign},
		{"Origin with a path", lo, "localhost:8081", []string{"Origin", "http://localhost:8081/"}, webguard.ErrForeign},
		{"Origin with user info", lo, "localhost:8081", []string{"Origin", "http://u@localhost:8081"}, webguard.ErrForeign},
		{"two Origins", lo, "localhost:8081", []string{"Origin", "http://localhost:8081", "Origin", "http://evil.example"}, webguard.ErrForeign},
		{"rebound, Origin equal to Host", lo, "evil.example:8081", []string{"Origin", "http://evil.example:8081"}, webguard.ErrMisdirected},
		{"allowed host glob", lo, "localhost:8081", []string{"Origin", "https://app.example.com", "Sec-Fetch-Site", "cross-site"}, nil},
		{"allowed host glob, case", lo, "localhost:8081", []string{"Origin", "http://APP.example.com"}, nil},
		{"host glob needs a subdomain", lo, "localhost:8081", []string{"Origin", "https://example.com"}, webguard.ErrForeign},
		{"host glob, suffix trick", lo, "localhost:8081", []string{"Origin", "https://app.example.com.evil.net"}, webguard.ErrForeign},
		{"allowed scheme://host", lo, "localhost:8081", []string{"Origin", "https://app.example.org"}, nil},
		{"scheme://host, other scheme", lo, "localhost:8081", []string{"Origin", "http://app.example.org"}, webguard.ErrForeign},

		{"cross-site without Origin", lo, "localhost:8081", []string{"Sec-Fetch-Site", "cross-site"}, webguard.ErrForeign},
		{"same-site without Origin", lo, "localhost:8081", []string{"Sec-Fetch-Site", "same-site"}, webguard.ErrForeign},
		{"same-site, case", lo, "localhost:8081", []string{"Sec-Fetch-Site", "Same-Site"}, webguard.ErrForeign},
		{"same-origin", lo, "localhost:8081", []string{"Sec-Fetch-Site", "same-origin"}, nil},
		{"typed by the user", lo, "localhost:8081", []string{"Sec-Fetch-Site", "none"}, nil},
		{"no browser headers", lo, "localhost:8081", nil, nil},
		{"not through a listener", nil, "anything", nil, nil},
		{"not through a listener, foreign", nil, "anything", []string{"Origin", "http://localhost:8081"}, webguard.ErrForeign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := policy.Check(request(tt.local, tt.host, tt.hdr...))
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	p := &webguard.Policy{}
	lo := tcp("127.0.0.1:8081")
	if s, c := webguard.Status(p.Check(request(lo, "evil.example:8081"))); s != 421 || c != "misdirected" {
		t.Errorf("rebound: %d %s, want 421 misdirected", s, c)
	}
	if s, c := webguard.Status(p.Check(request(lo, "localhost:8081", "Origin", "null"))); s != 403 || c != "forbidden" {
		t.Errorf("foreign: %d %s, want 403 forbidden", s, c)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, h := range []string{"", ":8080", "a:0", "a:65536", "a:x", "::1", "[::1", "[1.2.3.4]", "a/b", "a b", "u@a", "*.x"} {
		if _, err := webguard.New([]string{h}, nil); err == nil {
			t.Errorf("New(hosts %q) accepted it", h)
		}
		if err := webguard.CheckHosts([]string{h}); err == nil {
			t.Errorf("CheckHosts(%q) accepted it", h)
		}
	}
	if _, err := webguard.New(nil, []string{"ok.example.com", "[bad"}); err == nil || !strings.Contains(err.Error(), `"[bad"`) {
		t.Errorf("New(origins [bad) = %v, want an error naming the pattern", err)
	}
	if err := webguard.CheckOrigins([]string{"*.example.com", "https://app.example.com"}); err != nil {
		t.Errorf("CheckOrigins of valid patterns: %v", err)
	}
}

// The handler behind a policy never runs for a refused request.
func TestHandlerDoesNotRun(t *testing.T) {
	ran := 0
	p, _ := webguard.New(nil, nil)
	srv := httptest.NewServer(p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran++ })))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("x"))
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/json" || ran != 0 {
		t.Fatalf("status %d, type %q, handler ran %d times; want 403 JSON and never", resp.StatusCode, resp.Header.Get("Content-Type"), ran)
	}
	resp, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || ran != 1 {
		t.Fatalf("own request: status %d, ran %d", resp.StatusCode, ran)
	}
}

// FuzzCheck: any Host, Origin and Sec-Fetch-Site; Check never panics, a
// Host it accepts on loopback is one of the own names, and an accepted
// Origin is own or allowed.
func FuzzCheck(f *testing.F) {
	for _, s := range [][3]string{
		{"localhost:8081", "", ""}, {"evil.example:8081", "http://evil.example:8081", ""},
		{"[::1]:8081", "http://[::1]:8081", "same-origin"}, {"127.0.0.1:8081", "null", "cross-site"},
		{"[::ffff:127.0.0.1]:8081", "http://localhost:8081/", "same-site"}, {"a:b:c", "http://%41", "none"},
		{"[fe80::1%25eth0]:8081", "http://app.example.com", ""}, {"LOCALHOST:8081", "HTTP://LOCALHOST:8081", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	p, err := webguard.New([]string{"tunnel.internal"}, []string{"*.example.com"})
	if err != nil {
		f.Fatal(err)
	}
	lo := tcp("127.0.0.1:8081")
	f.Fuzz(func(t *testing.T, host, origin, site string) {
		r := request(lo, host)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if site != "" {
			r.Header.Set("Sec-Fetch-Site", site)
		}
		err := p.Check(r)
		if err != nil && !errors.Is(err, webguard.ErrMisdirected) && !errors.Is(err, webguard.ErrForeign) {
			t.Fatalf("Check = %v: neither sentinel", err)
		}
		if err != nil {
			return
		}
		h := strings.ToLower(host)
		if !strings.HasSuffix(h, ":8081") {
			t.Fatalf("accepted Host %q without the front end's port", host)
		}
		if origin != "" && !strings.HasSuffix(strings.ToLower(origin), ".example.com") &&
			!strings.HasSuffix(strings.ToLower(origin), ":8081") {
			t.Fatalf("accepted Origin %q", origin)
		}
	})
}

// BenchmarkCheck: the cost the check adds to every front-end request.
func BenchmarkCheck(b *testing.B) {
	p, _ := webguard.New([]string{"tunnel.internal"}, []string{"*.example.com"})
	r := request(tcp("127.0.0.1:8081"), "127.0.0.1:8081")
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Check(r); err != nil {
			b.Fatal(err)
		}
	}
}
