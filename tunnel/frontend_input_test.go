package tunnel_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest sends msg as it is on a new connection to the front end at
// httpURL and reads the answer.
func rawRequest(t *testing.T, httpURL, msg string) result {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(httpURL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", msg, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(body), length: resp.ContentLength}
}

// TestFrontendRefusesNonUTF8: an event carries its path, query and
// headers as protobuf strings, which must be UTF-8. A request whose path
// decodes to other bytes (%C0%AE, the overlong '.' of path attacks, or a
// raw 0xFF), or whose query or a header holds them, is answered 400 by the
// caller's front end, with the JSON error, not 502 "tunnel closed"; it
// reaches neither the peer nor a forward route's service, and the session
// stays up.
func TestFrontendRefusesNonUTF8(t *testing.T) {
	_, s, c := pair(t)
	be := newRecordingBackend(t)
	if err := c.reg.Forward("files", be.URL+"/api"); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(s.httpURL, "http://")
	for _, tc := range []struct {
		name, target, header, code string
	}{
		{"overlong dots in a route's path", "/client/c1/files/%C0%AE%C0%AE/admin", "", "bad_path"},
		{"escaped 0xFF in a noun", "/client/c1/time/%ff", "", "bad_path"},
		{"escaped 0xFF in an argument", "/client/c1/cat//%ff", "", "bad_path"},
		{"raw 0xFF in the path", "/client/c1/files/\xff", "", "bad_path"},
		{"raw 0xFF in the query", "/client/c1/time?q=\xff", "", "bad_request"},
		{"Latin-1 header value", "/client/c1/time", "X-Name: caf\xe9", "bad_request"},
	} {
		msg := "GET " + tc.target + " HTTP/1.1\r\nHost: " + host + "\r\n"
		if tc.header != "" {
			msg += tc.header + "\r\n"
		}
		r := rawRequest(t, s.httpURL, msg+"Connection: close\r\n\r\n")
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, `"code":"`+tc.code+`"`) {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, r.status, strings.TrimSpace(r.body), tc.code)
		}
		if seen := be.take(); len(seen) != 0 {
			t.Errorf("%s reached the service as %q", tc.name, seen[0].uri)
		}
	}
	if r := get(t, s.httpURL+"/client/c1/files/caf%C3%A9"); r.status != 200 || r.body != "saw /api/caf%C3%A9" {
		t.Errorf("UTF-8 path: %d %s", r.status, r.body)
	}
}
