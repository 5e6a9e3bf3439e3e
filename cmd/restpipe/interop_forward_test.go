//go:build unix

package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// forwardBackend is the service behind the route of the interop cases of
// issue 15, points 2 and 8: what it was sent, and replies of each kind.
func forwardBackend(t *testing.T, zipped []byte) *httptest.Server {
	t.Helper()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/trailer":
			w.Header().Set("Trailer", "X-Checksum")
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "streamed ")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "reply")
			w.Header().Set("X-Checksum", "sha256=abc")
		case "/upload":
			b, _ := io.ReadAll(r.Body)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"body": string(b), "trailer": r.Trailer, "te": r.TransferEncoding, "length": r.ContentLength})
		case "/none":
			w.WriteHeader(http.StatusNoContent)
		case "/gzip":
			ae := r.Header.Values("Accept-Encoding")
			w.Header().Set("X-Saw-Accept-Encoding", strconv.Quote(strings.Join(ae, ",")))
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(len(zipped)))
			_, _ = w.Write(zipped)
		case "/big":
			// Far more than the front end can hold: it streams, with the
			// service's length.
			w.Header().Set("Content-Length", strconv.Itoa(1<<20))
			_, _ = w.Write(bytes.Repeat([]byte("b"), 1<<20))
		}
	}))
	t.Cleanup(be.Close)
	return be
}

// TestInteropForwardFidelity (issue 15, points 2 and 8): through the real
// nodes, a forward route relays what was sent and no more, as curl and
// Python's http.client see it: the service's trailer after the last
// chunk, none to an HTTP/1.0 caller, nothing invented on a 204, no
// Accept-Encoding the caller never sent and a gzip reply still
// compressed, the service's Content-Length, and a chunked upload's
// trailer reaching the service.
func TestInteropForwardFidelity(t *testing.T) {
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	_, _ = io.WriteString(zw, strings.Repeat("compressed text ", 200))
	_ = zw.Close()
	zipped := zbuf.Bytes()
	be := forwardBackend(t, zipped)
	p := interopPair(t, nil, []string{"--forward", "app=" + be.URL})
	app := p.srvURL + "/client/c1/app"

	t.Run("curl --raw sees the trailer", func(t *testing.T) {
		r := curlRun(t, "--raw", "--include", app+"/trailer").ok(t)
		for _, want := range []string{"Transfer-Encoding: chunked\r\n", "Trailer: X-Checksum\r\n", "\r\n0\r\nX-Checksum: sha256=abc\r\n\r\n"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("reply lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("HTTP/1.0 gets the whole body, no Trailer", func(t *testing.T) {
		r := curlRun(t, "-0", "--raw", "--include", app+"/trailer").ok(t)
		head, body, _ := strings.Cut(r.stdout, "\r\n\r\n")
		if strings.Contains(head, "Trailer") || strings.Contains(head, "chunked") || strings.Contains(body, "X-Checksum") || body != "streamed reply" {
			t.Errorf("HTTP/1.0 reply:\n%s", r.stdout)
		}
	})
	t.Run("204 with nothing invented", func(t *testing.T) {
		r := curlRun(t, "--include", app+"/none").ok(t)
		if !strings.HasPrefix(r.stdout, "HTTP/1.1 204 ") {
			t.Errorf("reply:\n%s", r.stdout)
		}
		for _, not := range []string{"Trailer", "Content-Type", "Content-Length", "Transfer-Encoding"} {
			if strings.Contains(r.stdout, not) {
				t.Errorf("204 has %s:\n%s", not, r.stdout)
			}
		}
	})
	t.Run("no Accept-Encoding added, gzip kept", func(t *testing.T) {
		// curl without --compressed sends no Accept-Encoding, and writes
		// the body as it comes.
		r := curlRun(t, "--include", app+"/gzip").ok(t)
		head, body, _ := strings.Cut(r.stdout, "\r\n\r\n")
		for _, want := range []string{"X-Saw-Accept-Encoding: \"\"", "Content-Encoding: gzip", "Content-Length: " + strconv.Itoa(len(zipped))} {
			if !strings.Contains(head, want) {
				t.Errorf("gzip reply lacks %q:\n%s", want, head)
			}
		}
		if body != string(zipped) {
			t.Errorf("body of %d bytes, not the service's %d compressed bytes", len(body), len(zipped))
		}
		// One the caller sent goes as sent.
		r = curlRun(t, "--include", "--compressed", app+"/gzip").ok(t)
		if !strings.Contains(r.stdout, "X-Saw-Accept-Encoding: \"deflate, gzip") || !strings.Contains(r.stdout, "compressed text compressed text") {
			t.Errorf("curl --compressed:\n%.400s", r.stdout)
		}
	})
	t.Run("Content-Length relayed", func(t *testing.T) {
		r := curlRun(t, "--include", "--output", "/dev/null", "--dump-header", "-", app+"/big").ok(t)
		if !strings.Contains(r.stdout, "Content-Length: 1048576\r\n") || strings.Contains(r.stdout, "chunked") {
			t.Errorf("reply of 1 MiB:\n%s", r.stdout)
		}
		// HEAD: the length its GET would have, no body, no Trailer.
		r = curlRun(t, "--head", app+"/big").ok(t)
		if !strings.Contains(r.stdout, "Content-Length: 1048576\r\n") || strings.Contains(r.stdout, "chunked") || !strings.HasSuffix(r.stdout, "\r\n\r\n") {
			t.Errorf("HEAD of 1 MiB:\n%s", r.stdout)
		}
		r = curlRun(t, "--head", app+"/trailer").ok(t)
		if strings.Contains(r.stdout, "Trailer") {
			t.Errorf("HEAD announces a trailer:\n%s", r.stdout)
		}
	})
	t.Run("Python chunked upload with a trailer", func(t *testing.T) {
		// http.client sends no trailer fields itself: the chunks are
		// written by hand, as programs that send trailers do.
		r := pythonRun(t, `
import sys, http.client, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
c.putrequest("POST", u.path)
c.putheader("Transfer-Encoding", "chunked")
c.putheader("Trailer", "X-Checksum")
c.endheaders()
c.send(b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: sha256=py\r\n\r\n")
r = c.getresponse()
print(r.status, r.read().decode())
`, app+"/upload").ok(t)
		status, js, _ := strings.Cut(strings.TrimSpace(r.stdout), " ")
		var got struct {
			Body    string
			Trailer http.Header
			TE      []string
			Length  int64
		}
		if err := json.Unmarshal([]byte(js), &got); status != "200" || err != nil {
			t.Fatalf("%s %s: %v", status, js, err)
		}
		if got.Body != "hello world" || got.Trailer.Get("X-Checksum") != "sha256=py" || len(got.TE) != 1 || got.TE[0] != "chunked" || got.Length != -1 {
			t.Errorf("the service got %+v", got)
		}
	})
}
