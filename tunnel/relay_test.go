package tunnel_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestForwardRelaysAsSent: a forward route relays what the caller and the
// service sent, no more: no Accept-Encoding the caller did not send, a
// gzip reply still compressed with its Content-Encoding, the service's
// Content-Length (not chunked) even for a reply still streaming, and a
// 204 with nothing invented.
func TestForwardRelaysAsSent(t *testing.T) {
	_, s, c := pair(t)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = io.WriteString(zw, strings.Repeat("compressed ", 100))
	_ = zw.Close()
	gotAE := make(chan []string, 4)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAE <- r.Header.Values("Accept-Encoding")
		switch r.URL.Path {
		case "/gzip":
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(zipped.Len()))
			_, _ = w.Write(zipped.Bytes())
		case "/slow":
			// Its length is known, its body not all there: the front end
			// cannot measure it, and sends the service's length.
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			<-release
			_, _ = io.WriteString(w, "-last")
		case "/none":
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(up.Close)
	if err := c.reg.Forward("app", up.URL); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(s.httpURL, "http://")
	req := func(path, extra string) string {
		return "GET /client/c1/app" + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "Connection: close\r\n\r\n"
	}

	raw := rawReply(t, s.httpURL, req("/gzip", ""))
	if ae := <-gotAE; len(ae) != 0 {
		t.Errorf("the service got Accept-Encoding %q the caller never sent", ae)
	}
	head, body, _ := strings.Cut(raw, "\r\n\r\n")
	for _, want := range []string{"Content-Encoding: gzip", "Content-Length: " + strconv.Itoa(zipped.Len())} {
		if !strings.Contains(head, want) {
			t.Errorf("gzip reply lacks %q:\n%s", want, head)
		}
	}
	if body != zipped.String() {
		t.Errorf("gzip reply body of %d bytes is not the service's %d compressed bytes", len(body), zipped.Len())
	}

	raw = rawReply(t, s.httpURL, req("/gzip", "Accept-Encoding: br\r\n"))
	if ae := <-gotAE; len(ae) != 1 || ae[0] != "br" {
		t.Errorf("the service got Accept-Encoding %q, want the caller's br", ae)
	}

	go func() {
		<-gotAE
		close(release)
	}()
	raw = rawReply(t, s.httpURL, req("/slow", ""))
	if head, body, _ := strings.Cut(raw, "\r\n\r\n"); !strings.Contains(head, "Content-Length: 10\r\n") || strings.Contains(head, "chunked") || strings.Contains(head, "Trailer") || body != "first-last" {
		t.Errorf("streamed reply of known length:\n%s", raw)
	}

	raw = rawReply(t, s.httpURL, req("/none", ""))
	<-gotAE
	for _, not := range []string{"Content-Type", "Content-Length", "Trailer", "Transfer-Encoding"} {
		if strings.Contains(raw, not) {
			t.Errorf("204 through a route has %s:\n%s", not, raw)
		}
	}
	if !strings.HasPrefix(raw, "HTTP/1.1 204 ") {
		t.Errorf("204 came as\n%s", raw)
	}
}
