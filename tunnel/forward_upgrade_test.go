package tunnel_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/restpipe/restpipe/events"
)

// laxH2CService is a forward route's service that switches to "h2c" as
// lax HTTP/2 servers do (without asking for HTTP2-Settings) and then
// reads the next request from the switched connection itself: it records
// the request-target of every request it parses, before and after the
// switch. (It reads the second request in HTTP/1 form to stay small; a
// real one would read HTTP/2 frames, with a :path of the caller's choice.)
type laxH2CService struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func newLaxH2CService(t *testing.T) *laxH2CService {
	t.Helper()
	ln := listen(t)
	s := &laxH2CService{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *laxH2CService) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	s.record(req.RequestURI)
	if !strings.EqualFold(req.Header.Get("Upgrade"), "h2c") {
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		return
	}
	_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	next, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	s.record(next.RequestURI)
	_, _ = io.WriteString(conn, "served "+next.RequestURI+"\n")
}

func (s *laxH2CService) record(uri string) {
	s.mu.Lock()
	s.seen = append(s.seen, uri)
	s.mu.Unlock()
}

func (s *laxH2CService) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := s.seen
	s.seen = nil
	return seen
}

// TestForwardRefusesH2CUpgrade: a caller that asks a forward route to
// switch to h2c would, once the service switched, speak HTTP/2 to it
// directly over the forwarded connection, with any path (h2c smuggling):
// the path checks would no longer apply. The serving node refuses such an
// upgrade, in any spelling, from a front end and from a hostile peer,
// and the service never sees the request.
func TestForwardRefusesH2CUpgrade(t *testing.T) {
	p, s, c := pair(t)
	svc := newLaxH2CService(t)
	if err := c.reg.Forward("app", "http://"+svc.addr+"/public"); err != nil {
		t.Fatal(err)
	}
	if err := s.reg.Forward("app", "http://"+svc.addr+"/public"); err != nil {
		t.Fatal(err)
	}
	for _, up := range []string{"h2c", "H2C", "websocket, h2c", " h2c ", "h2c, websocket", "TLS/1.2", "HTTP/2.0"} {
		addr := strings.TrimPrefix(s.httpURL, "http://")
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.WriteString(conn, "GET /client/c1/app/x HTTP/1.1\r\nHost: "+addr+
			"\r\nConnection: Upgrade\r\nUpgrade: "+up+"\r\n\r\n"+
			"GET /admin/secret HTTP/1.1\r\nHost: x\r\n\r\n")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("Upgrade %q: %v", up, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"code":"bad_request"`) {
			t.Errorf("Upgrade %q: %d %s, want 400 bad_request", up, resp.StatusCode, body)
		}
		if seen := svc.take(); len(seen) != 0 {
			t.Errorf("Upgrade %q: the service saw %q", up, seen)
		}
	}

	// A hostile peer that writes the event itself is refused by the node
	// that serves the route.
	evil := newHostilePeer(t, p, s, "evil")
	status, body := evil.send(t, &events.Request{Method: "GET", Noun: events.Bytes([]string{"app"}), RawPath: []byte("/x"), Upgrade: "h2c"})
	if status != http.StatusBadRequest || !strings.Contains(body, `"code":"bad_request"`) {
		t.Errorf("hostile peer, Upgrade h2c: %d %s, want 400 bad_request", status, body)
	}
	if seen := svc.take(); len(seen) != 0 {
		t.Errorf("hostile peer: the service saw %q", seen)
	}

	// Without an upgrade the route still works.
	if r := get(t, s.httpURL+"/client/c1/app/x"); r.status != http.StatusOK || r.body != "ok" {
		t.Errorf("plain GET: %d %s", r.status, r.body)
	}
	if seen := svc.take(); len(seen) != 1 || seen[0] != "/public/x" {
		t.Errorf("plain GET: the service saw %q", seen)
	}
}
