package tunnel_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/handlers"
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

// TestFrontendCarriesNonUTF8: HTTP allows octets that are not UTF-8 in
// a path (%FF), a query and a header value (Latin-1 "caf\xe9"), and the
// event carries them as protobuf bytes (ProtocolVersion 2), so they reach
// the handler, a forward route's service and, the other way, the caller
// unchanged. A form lenient decoders read as a character (%C0%AE and the
// five- and six-byte %F8%80%80%80%AE, a '.' to some servers) and a
// look-alike of '.' or '/' are still refused in a forward route's path.
func TestFrontendCarriesNonUTF8(t *testing.T) {
	_, s, c := pair(t)
	if err := c.reg.Handle("get_octets", func(_ context.Context, req *handlers.Request) (any, error) {
		body := strings.Join(req.Noun, "/") + "|" + strings.Join(req.Args, ",") + "|" + req.RawQuery + "|" +
			req.Header.Get("X-Name") + "|" + req.ContentType
		return &handlers.Reply{ContentType: "text/plain; name=caf\xe9",
			Header: http.Header{"X-Reply": {"na\xefve"}}, Body: strings.NewReader(body)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", "attachment; filename=\"caf\xe9\"")
		fmt.Fprintf(w, "saw %s|%s", r.RequestURI, r.Header.Get("X-Name"))
	}))
	t.Cleanup(be.Close)
	if err := c.reg.Forward("files", be.URL+"/api"); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(s.httpURL, "http://")
	for _, tc := range []struct {
		name, target, header string
		status               int
		body, replyHeader    string
	}{
		{"escaped 0xFF in arguments, raw 0xFF in the query, Latin-1 header and content type",
			"/client/c1/octets//%ff/a%FFb/c?q=\xff", "X-Name: caf\xe9\r\nContent-Type: text/x; q=\xe9",
			200, "octets|\xff,a\xffb,c|q=\xff|caf\xe9|text/x; q=\xe9", "X-Reply: na\xefve"},
		{"a forward route: 0xFF in the path and the query, Latin-1 both ways",
			"/client/c1/files/a%FFb?q=%ff\xff", "X-Name: caf\xe9",
			200, "saw /api/a%FFb?q=%ff\xff|caf\xe9", "Content-Disposition: attachment; filename=\"caf\xe9\""},
		{"overlong dots in a route's path", "/client/c1/files/%C0%AE%C0%AE/admin", "", 400, `"code":"bad_path"`, ""},
		{"five-byte overlong dots in a route's path", "/client/c1/files/%F8%80%80%80%AE%F8%80%80%80%AE/admin", "", 400, `"code":"bad_path"`, ""},
		{"six-byte overlong dots in a route's path", "/client/c1/files/%FC%80%80%80%80%AE%FC%80%80%80%80%AE/admin", "", 400, `"code":"bad_path"`, ""},
		{"fullwidth dots in a route's path", "/client/c1/files/%EF%BC%8E%EF%BC%8E/admin", "", 400, `"code":"bad_path"`, ""},
		{"a division slash in a route's path", "/client/c1/files/..%E2%88%95admin", "", 400, `"code":"bad_path"`, ""},
		{"Latin-1 in a route's path", "/client/c1/files/M%FCller", "", 200, "saw /api/M%FCller", ""},
	} {
		msg := "GET " + tc.target + " HTTP/1.1\r\nHost: " + host + "\r\n"
		if tc.header != "" {
			msg += tc.header + "\r\n"
		}
		r := rawRequest(t, s.httpURL, msg+"Connection: close\r\n\r\n")
		if r.status != tc.status || !strings.Contains(r.body, tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, r.status, r.body, tc.status, tc.body)
		}
		if k, v, ok := strings.Cut(tc.replyHeader, ": "); ok && r.header.Get(k) != v {
			t.Errorf("%s: reply %s %q, want %q", tc.name, k, r.header.Get(k), v)
		}
	}
	if r := get(t, s.httpURL+"/client/c1/octets"); r.header.Get("Content-Type") != "text/plain; name=caf\xe9" {
		t.Errorf("Latin-1 content type of a reply: %q", r.header.Get("Content-Type"))
	}
}
