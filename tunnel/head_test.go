package tunnel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restpipe/restpipe/handlers"
)

// endlessBody is a reply body that never ends; Close is recorded.
type endlessBody struct{ closed chan struct{} }

func (endlessBody) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func (b endlessBody) Close() error { close(b.closed); return nil }

// head sends HEAD url with a client that gives up after 10 s.
func head(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Head(url)
	if err != nil {
		t.Fatalf("HEAD %s: %v", url, err)
	}
	resp.Body.Close()
	return resp
}

// TestHeadRunsGetHandler: HEAD runs the GET handler, as net/http serves
// HEAD: the same status and headers, the length of the body a GET gets,
// no body; a head_ handler wins; a streamed body is not waited for.
func TestHeadRunsGetHandler(t *testing.T) {
	_, s, c := pair(t)
	var method atomic.Value
	c.reg.MustHandle("get_doc", func(_ context.Context, req *handlers.Request) (any, error) {
		method.Store(req.Method)
		return handlers.Reply{Status: 203, ContentType: "text/plain", Header: http.Header{"X-Doc": {"1"}},
			Body: strings.NewReader("twelve bytes")}, nil
	})
	c.reg.MustHandle("get_both", func(context.Context, *handlers.Request) (any, error) { return "get", nil })
	c.reg.MustHandle("head_both", func(context.Context, *handlers.Request) (any, error) {
		return handlers.Reply{Header: http.Header{"X-Which": {"head_both"}}}, nil
	})
	closed := make(chan struct{})
	c.reg.MustHandle("get_endless", func(context.Context, *handlers.Request) (any, error) {
		return handlers.Reply{ContentType: "text/plain", Body: endlessBody{closed}}, nil
	})

	g := get(t, s.httpURL+"/client/c1/doc")
	h := head(t, s.httpURL+"/client/c1/doc")
	if g.status != 203 || g.body != "twelve bytes" {
		t.Fatalf("GET: %d %q", g.status, g.body)
	}
	if h.StatusCode != 203 || h.ContentLength != 12 || h.Header.Get("X-Doc") != "1" ||
		h.Header.Get("Content-Type") != "text/plain" || method.Load() != "HEAD" {
		t.Errorf("HEAD: %d, length %d, %v; the handler saw %v", h.StatusCode, h.ContentLength, h.Header, method.Load())
	}

	if h := head(t, s.httpURL+"/client/c1/both"); h.Header.Get("X-Which") != "head_both" {
		t.Errorf("HEAD with a head_ handler: %v", h.Header)
	}

	// The serving node drops the body at once: the caller is not kept
	// waiting for a body that never ends, and the handler's is closed.
	if h := head(t, s.httpURL+"/client/c1/endless"); h.StatusCode != 200 || h.ContentLength != -1 {
		t.Errorf("HEAD of an endless body: %d, length %d", h.StatusCode, h.ContentLength)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Error("the endless body was not closed")
	}

	// No handler either way: the error reply (naming head_missing),
	// told by its length.
	want := strings.Replace(get(t, s.httpURL+"/client/c1/missing").body, "get_missing", "head_missing", 1)
	h = head(t, s.httpURL+"/client/c1/missing")
	if h.StatusCode != 404 || h.ContentLength != int64(len(want)) {
		t.Errorf("HEAD of no handler: %d, length %d (want %d)", h.StatusCode, h.ContentLength, len(want))
	}
}

// TestHeadForwardRoute: through a forward route a HEAD reaches the
// service as HEAD, and its Content-Length comes back.
func TestHeadForwardRoute(t *testing.T) {
	_, s, c := pair(t)
	var method atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method.Store(r.Method)
		w.Header().Set("Content-Length", strconv.Itoa(12345))
		w.Header().Set("X-Up", "1")
		w.Header().Set("Content-Type", "application/pdf")
		if r.Method != http.MethodHead {
			_, _ = w.Write(make([]byte, 12345))
		}
	}))
	t.Cleanup(up.Close)
	if err := c.reg.Forward("files", up.URL); err != nil {
		t.Fatal(err)
	}
	h := head(t, s.httpURL+"/client/c1/files/report.pdf")
	if h.StatusCode != 200 || h.ContentLength != 12345 || h.Header.Get("X-Up") != "1" ||
		h.Header.Get("Content-Type") != "application/pdf" || method.Load() != "HEAD" {
		t.Errorf("HEAD: %d, length %d, %v; the service saw %v", h.StatusCode, h.ContentLength, h.Header, method.Load())
	}
	if g := get(t, s.httpURL+"/client/c1/files/report.pdf"); g.status != 200 || len(g.body) != 12345 {
		t.Errorf("GET: %d, %d bytes", g.status, len(g.body))
	}
}
