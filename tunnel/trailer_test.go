package tunnel_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// trailerService echoes the request's trailer fields back as its reply's,
// prefixed "Echo-", and answers with trailer fields of its own: one it
// announced (X-Checksum), one it did not (X-Late).
func trailerService(t *testing.T, seen chan<- http.Header) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got := r.Trailer.Clone()
		if seen != nil {
			seen <- got
		}
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "streamed ")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "reply")
		w.Header().Set("X-Checksum", "sha256=abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		// Neither may pass: one is no trailer field, the other only a
		// front end sends.
		w.Header().Set(http.TrailerPrefix+"Set-Cookie", "a=1")
		w.Header().Set(http.TrailerPrefix+"X-Restpipe-Error", "faked")
		for k, vs := range got {
			w.Header()[http.TrailerPrefix+"Echo-"+k] = vs
		}
	}))
	t.Cleanup(up.Close)
	return up
}

// TestForwardTrailersBothWays: a chunked upload's trailer fields reach the
// route's service as trailer fields, and the service's trailer fields
// reach the caller as trailer fields of its chunked reply, announced ones
// and others; fields that may not be trailers, forgeable ones and
// X-Restpipe-Error do not cross.
func TestForwardTrailersBothWays(t *testing.T) {
	_, s, c := pair(t)
	seen := make(chan http.Header, 1)
	if err := c.reg.Forward("tr", trailerService(t, seen).URL); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, s.httpURL+"/client/c1/tr/x", pr)
	req.Trailer = http.Header{"X-Upload-Sum": nil, "X-Restpipe-Peer": nil, "Authorization": nil}
	go func() {
		_, _ = io.WriteString(pw, "the upload")
		req.Trailer.Set("X-Upload-Sum", "42")
		req.Trailer.Set("X-Restpipe-Peer", "forged")
		req.Trailer.Set("Authorization", "Bearer x")
		pw.Close()
	}()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// net/http takes the announcement (Trailer) out of the headers.
	if _, ok := resp.Trailer["X-Checksum"]; !ok || len(resp.Trailer) != 1 {
		t.Errorf("announced trailer fields %v, want X-Checksum", resp.Trailer)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "streamed reply" {
		t.Fatalf("body %q, %v", body, err)
	}
	got := <-seen
	if got.Get("X-Upload-Sum") != "42" || got.Get("X-Restpipe-Peer") != "" || got.Get("Authorization") != "" {
		t.Errorf("the service got request trailer fields %v, want X-Upload-Sum: 42 alone", got)
	}
	for k, want := range map[string]string{"X-Checksum": "sha256=abc", "X-Late": "late", "Echo-X-Upload-Sum": "42"} {
		if g := resp.Trailer.Get(k); g != want {
			t.Errorf("reply trailer %s: %q, want %q (all: %v)", k, g, want, resp.Trailer)
		}
	}
	for _, k := range []string{"Set-Cookie", "X-Restpipe-Error"} {
		if g := resp.Trailer.Get(k); g != "" {
			t.Errorf("reply trailer %s: %q passed", k, g)
		}
	}
	if resp.ContentLength != -1 || len(resp.TransferEncoding) == 0 {
		t.Errorf("reply length %d, transfer encoding %v: want chunked", resp.ContentLength, resp.TransferEncoding)
	}
}

// TestForwardTrailerRaw reads the reply's framing as it is on the wire:
// the trailer field after the last chunk; and an HTTP/1.0 caller gets the
// whole body, with neither a Trailer announcement nor chunks.
func TestForwardTrailerRaw(t *testing.T) {
	_, s, c := pair(t)
	if err := c.reg.Forward("tr", trailerService(t, nil).URL); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		proto string
		want  []string
		not   []string
	}{
		{"HTTP/1.1", []string{"Transfer-Encoding: chunked", "Trailer: X-Checksum", "\r\n0\r\n", "X-Checksum: sha256=abc\r\n", "X-Late: late\r\n"}, nil},
		{"HTTP/1.0", []string{"streamed reply"}, []string{"Trailer", "chunked", "X-Checksum", "X-Late"}},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			raw := rawReply(t, s.httpURL, "GET /client/c1/tr/x "+tc.proto+"\r\nHost: "+strings.TrimPrefix(s.httpURL, "http://")+"\r\nConnection: close\r\n\r\n")
			for _, w := range tc.want {
				if !strings.Contains(raw, w) {
					t.Errorf("reply lacks %q:\n%s", w, raw)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(raw, n) {
					t.Errorf("reply has %q:\n%s", n, raw)
				}
			}
		})
	}
}

// rawReply sends req as it is to the front end at url and returns all
// of the reply.
func rawReply(t *testing.T, url, req string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHandlerTrailers: a Go handler reads a caller's trailer fields after
// the body and sends its own; Call sends and receives them too. Not on a
// HEAD, nor on a 204.
func TestHandlerTrailers(t *testing.T) {
	_, s, c := pair(t)
	c.reg.MustHandle("post_sum", func(ctx context.Context, req *handlers.Request) (any, error) {
		b, _ := io.ReadAll(req.Body)
		return &handlers.Reply{
			ContentType: "text/plain",
			Body:        strings.NewReader(string(b)),
			Trailer:     http.Header{"X-Got": {req.Trailer.Get("X-Sum")}},
		}, nil
	})
	c.reg.MustHandle("get_empty", func(ctx context.Context, req *handlers.Request) (any, error) {
		return &handlers.Reply{Status: http.StatusNoContent, Trailer: http.Header{"X-Never": {"1"}}}, nil
	})

	resp, err := s.Call(context.Background(), "c1", &tunnel.Request{
		Method:  http.MethodPost,
		Noun:    []string{"sum"},
		Body:    strings.NewReader("abc"),
		Trailer: http.Header{"X-Sum": {"6"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Trailer.Get("X-Got") != "" {
		t.Errorf("trailer value before the body's end: %v", resp.Trailer)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "abc" || resp.Trailer.Get("X-Got") != "6" {
		t.Errorf("Call: body %q, %v, trailer %v", b, err, resp.Trailer)
	}

	// Through the front end: a body read whole still sends its fields.
	raw := rawReply(t, s.httpURL, "POST /client/c1/sum HTTP/1.1\r\nHost: "+strings.TrimPrefix(s.httpURL, "http://")+
		"\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 7\r\n\r\n")
	if !strings.Contains(raw, "Trailer: X-Got\r\n") || !strings.Contains(raw, "\r\n0\r\nX-Got: 7\r\n") {
		t.Errorf("chunked upload with a trailer: reply\n%s", raw)
	}
	for _, method := range []string{"HEAD", "GET"} {
		raw := rawReply(t, s.httpURL, method+" /client/c1/empty HTTP/1.1\r\nHost: "+strings.TrimPrefix(s.httpURL, "http://")+"\r\nConnection: close\r\n\r\n")
		if strings.Contains(raw, "Trailer") || strings.Contains(raw, "X-Never") {
			t.Errorf("%s of a 204: trailer fields in\n%s", method, raw)
		}
	}
}

// TestTrailerTooLarge: trailer fields over the bounds are an error the
// caller sees: 413 too_large from the front end for a trailer section
// longer than net/http takes (4 KiB), and over events.MaxTrailerSize an
// upload that ends with an error, which its handler answers.
func TestTrailerTooLarge(t *testing.T) {
	_, s, c := pair(t)
	if err := c.reg.Forward("tr", trailerService(t, nil).URL); err != nil {
		t.Fatal(err)
	}
	c.reg.MustHandle("post_sum", func(ctx context.Context, req *handlers.Request) (any, error) {
		b, err := io.ReadAll(req.Body)
		return string(b), err
	})
	host := strings.TrimPrefix(s.httpURL, "http://")
	// 4096 bytes of trailer section, all that net/http reads of one,
	// without its end: nothing is left unread on the connection for its
	// close to reset.
	r := rawRequest(t, s.httpURL, "POST /client/c1/tr/x HTTP/1.1\r\nHost: "+host+"\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"3\r\nabc\r\n0\r\nX-Big: "+strings.Repeat("v", 4096-len("X-Big: ")))
	wantError(t, r, http.StatusRequestEntityTooLarge, handlers.CodeTooLarge)
	if !strings.Contains(r.body, "trailer") {
		t.Errorf("413 does not say why: %s", r.body)
	}

	// A service's trailer section that net/http will not read breaks its
	// reply: the caller's is aborted, not ended as complete.
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set(http.TrailerPrefix+"X-Big", strings.Repeat("v", 5000))
	}))
	t.Cleanup(big.Close)
	if err := c.reg.Forward("big", big.URL); err != nil {
		t.Fatal(err)
	}
	got, err := http.Get(s.httpURL + "/client/c1/big")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(got.Body)
	got.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) || got.Trailer.Get("X-Big") != "" {
		t.Errorf("service's 5 KB trailer: %d %q, %v, trailer of %d bytes", got.StatusCode, b, err, len(got.Trailer.Get("X-Big")))
	}

	resp, err := s.Call(context.Background(), "c1", &tunnel.Request{Method: http.MethodPost, Noun: []string{"sum"},
		Body: strings.NewReader("abc"), Trailer: http.Header{"X-Big": {strings.Repeat("v", 70<<10)}}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Status != http.StatusInternalServerError || !strings.Contains(string(b), "trailer fields") ||
		!errors.Is(resp.UploadErr(), events.ErrTrailerTooLarge) {
		t.Errorf("Call with 70 KiB of trailer: %d %s, upload: %v", resp.Status, b, resp.UploadErr())
	}
}

// TestTrailerReadAhead: a front end with a body limit reads a chunked
// upload ahead; one that arrives whole with its trailer fields still
// sends them, announced, and the route's service gets a chunked body
// with them.
func TestTrailerReadAhead(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.MaxBodyBytes = 1 << 20 })
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	seen := make(chan http.Header, 1)
	if err := c.reg.Forward("tr", trailerService(t, seen).URL); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(s.httpURL, "http://")
	for _, announce := range []string{"Trailer: X-Sum\r\n", ""} {
		raw := rawReply(t, s.httpURL, "POST /client/c1/tr/x HTTP/1.1\r\nHost: "+host+"\r\nTransfer-Encoding: chunked\r\n"+announce+
			"Connection: close\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 9\r\n\r\n")
		if got := <-seen; got.Get("X-Sum") != "9" {
			t.Errorf("announced %q: the service got trailer fields %v", announce, got)
		}
		if !strings.Contains(raw, "\r\n0\r\n") || !strings.Contains(raw, "Echo-X-Sum: 9\r\n") {
			t.Errorf("announced %q: reply\n%s", announce, raw)
		}
	}
}
