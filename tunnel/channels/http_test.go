package channels_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel/channels"
	"github.com/restpipe/restpipe/tunnel/internal/hub"
	"github.com/restpipe/restpipe/tunnel/webguard"
)

// testServer is a Handler on a loopback listener, with the Hub it
// publishes to.
type testServer struct {
	*httptest.Server
	hub *hub.Hub
}

// newServer serves h, whose Bus is a new Hub with opts.
func newServer(t *testing.T, h *channels.Handler, opts hub.Options) *testServer {
	t.Helper()
	b := hub.NewHub(opts)
	h.Bus = b
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, hub: b}
}

// newGuardedServer serves h behind the webguard policy of origins, as a
// node's front end does.
func newGuardedServer(t *testing.T, h *channels.Handler, origins []string) *testServer {
	t.Helper()
	b := hub.NewHub(hub.Options{})
	h.Bus = b
	policy, err := webguard.New(nil, origins)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(policy.Handler(h))
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, hub: b}
}

// chanPath is the escaped path of channel.
func chanPath(channel string) string { return channels.PathPrefix + url.PathEscape(channel) }

// do sends a request and returns the response with its body read.
func do(t *testing.T, ctx context.Context, method, u string, hdr http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return resp, b
}

// publish POSTs text to channel and checks that it was published.
func (s *testServer) publish(t *testing.T, ctx context.Context, channel, text string) {
	t.Helper()
	resp, body := do(t, ctx, http.MethodPost, s.URL+chanPath(channel), nil, text)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish to %q: %s %s", channel, resp.Status, body)
	}
}

// grip POSTs a GRIP publish body and checks that it was accepted.
func (s *testServer) grip(t *testing.T, ctx context.Context, body string) {
	t.Helper()
	resp, b := do(t, ctx, http.MethodPost, s.URL+channels.PublishPath,
		http.Header{"Content-Type": {"application/json"}}, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GRIP publish: %s %s", resp.Status, b)
	}
}

// checkJSON checks that body is the JSON object want, exactly.
func checkJSON(t *testing.T, resp *http.Response, body []byte, want map[string]any) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body = %s, want %v", body, want)
	}
}

// checkError checks an error answer: its status and JSON code.
func checkError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %s (%s), want %d", resp.Status, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e handlers.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if e.Code != code || e.Error == "" {
		t.Errorf("error body = %s, want code %q and a message", body, code)
	}
}

// dialWS subscribes to channel over WebSocket.
func dialWS(t *testing.T, ctx context.Context, s *testServer, channel string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(ctx, s.URL+chanPath(channel), nil)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("WebSocket dial %q: %v: %s %s", channel, err, resp.Status, b)
		}
		t.Fatalf("WebSocket dial %q: %v", channel, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// readText reads the next WebSocket message, which must be text.
func readText(t *testing.T, ctx context.Context, c *websocket.Conn) string {
	t.Helper()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("WebSocket read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("WebSocket message type %v, want text", typ)
	}
	return string(b)
}

// readClose reads until the server closes and returns its close frame.
func readClose(t *testing.T, ctx context.Context, c *websocket.Conn) websocket.CloseError {
	t.Helper()
	_, b, err := c.Read(ctx)
	if err == nil {
		t.Fatalf("got message %.40q, want the connection closed", b)
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("WebSocket read: %v, want a close frame", err)
	}
	return ce
}

// sseStream is a Server-Sent Events subscription.
type sseStream struct {
	resp *http.Response
	r    *bufio.Reader
}

// subscribeSSE subscribes to channel with Server-Sent Events, returning
// once the server says it is subscribed.
func subscribeSSE(t *testing.T, ctx context.Context, s *testServer, channel string) *sseStream {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+chanPath(channel), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("SSE subscribe: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("SSE subscribe: %s %s", resp.Status, b)
	}
	st := &sseStream{resp: resp, r: bufio.NewReader(resp.Body)}
	if ev := st.event(t); ev != "retry: 2000\n: subscribed\n\n" {
		t.Fatalf("first SSE event %q, want the subscribed comment", ev)
	}
	return st
}

// event reads one event: the lines up to and including a blank one.
func (s *sseStream) event(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			t.Fatalf("SSE read after %q: %v", b.String(), err)
		}
		if line == "\n" {
			return b.String()
		}
	}
}

func TestPostPublish(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t, &channels.Handler{MaxMessage: 16}, hub.Options{})
	sub, _ := join(t, srv.hub, "news")

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		want   map[string]any // the JSON answer, for a 200
		code   string         // the error code, otherwise
		allow  string
		got    string // what the subscriber gets; "" for nothing
	}{
		{
			name: "published", method: "POST", path: chanPath("news"), body: "hello",
			status: 200, want: map[string]any{"channel": "news", "published": 1.0}, got: "hello",
		},
		{
			name: "exactly MaxMessage", method: "POST", path: chanPath("news"), body: "0123456789abcdef",
			status: 200, want: map[string]any{"channel": "news", "published": 1.0}, got: "0123456789abcdef",
		},
		{
			name: "multi-line and multibyte", method: "POST", path: chanPath("news"), body: "é\r\n€",
			status: 200, want: map[string]any{"channel": "news", "published": 1.0}, got: "é\r\n€",
		},
		{
			name: "empty body dropped", method: "POST", path: chanPath("news"), body: "",
			status: 200, want: map[string]any{"channel": "news", "published": 0.0, "dropped": 1.0, "note": "empty message dropped"},
		},
		{
			name: "escaped channel name", method: "POST", path: "/channels/caf%C3%A9", body: "x",
			status: 200, want: map[string]any{"channel": "café", "published": 1.0},
		},
		{name: "invalid UTF-8", method: "POST", path: chanPath("news"), body: "a\xffb", status: 400, code: handlers.CodeBadRequest},
		{name: "over MaxMessage", method: "POST", path: chanPath("news"), body: "0123456789abcdefg", status: 413, code: handlers.CodeTooLarge},
		{name: "PUT", method: "PUT", path: chanPath("news"), body: "x", status: 405, code: handlers.CodeMethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "DELETE", method: "DELETE", path: chanPath("news"), status: 405, code: handlers.CodeMethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "empty name", method: "POST", path: "/channels/", body: "x", status: 404, code: handlers.CodeBadPath},
		{name: "no name", method: "POST", path: "/channels", body: "x", status: 404, code: handlers.CodeBadPath},
		{name: "invalid UTF-8 name", method: "POST", path: "/channels/%FF", body: "x", status: 404, code: handlers.CodeBadPath},
		{name: "name too long", method: "GET", path: chanPath(strings.Repeat("é", 257)), status: 404, code: handlers.CodeBadPath},
		{name: "bad path before bad method", method: "PUT", path: "/channels/%FF", status: 404, code: handlers.CodeBadPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, ctx, tt.method, srv.URL+tt.path, nil, tt.body)
			checkAnswer(t, resp, body, tt.status, tt.want, tt.code, tt.allow)
			if tt.got != "" {
				if m := next(t, ctx, sub); m.Text != tt.got {
					t.Errorf("subscriber got %q, want %q", m.Text, tt.got)
				}
			}
		})
	}
	// Nothing else reached the subscriber: the next thing it gets is this.
	srv.publish(t, ctx, "news", "last")
	if m := next(t, ctx, sub); m.Text != "last" {
		t.Fatalf("subscriber got %q, want last: a refused publish went through", m.Text)
	}
}

func TestPage(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t, &channels.Handler{}, hub.Options{})
	const name = `<script>alert("x")</script>`
	resp, body := do(t, ctx, http.MethodGet, srv.URL+chanPath(name), nil, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %s, want 200", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q, want text/html; charset=utf-8", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control = %q, want no-cache", cc)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q, want default-src 'self'", csp)
	}
	page := string(body)
	if strings.Contains(page, "<script>alert") {
		t.Errorf("page contains the channel name unescaped:\n%s", page)
	}
	escaped := "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"
	if n := strings.Count(page, escaped); n != 2 {
		t.Errorf("page contains the escaped name %q %d times, want 2 (title and heading):\n%s", escaped, n, page)
	}
	if !strings.Contains(page, "new WebSocket(") {
		t.Errorf("page has no WebSocket client:\n%s", page)
	}
	// The page is not a subscriber.
	if n := srv.hub.Subscribers(name); n != 0 {
		t.Errorf("Subscribers = %d after serving the page, want 0", n)
	}
}

func TestHead(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t, &channels.Handler{}, hub.Options{})
	tests := []struct {
		name   string
		path   string
		accept string
		status int
		ctype  string
	}{
		{"page", chanPath("news"), "", 200, "text/html; charset=utf-8"},
		{"event stream", chanPath("news"), "text/event-stream", 200, "text/event-stream"},
		{"bad path", "/channels/", "", 404, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.accept != "" {
				hdr.Set("Accept", tt.accept)
			}
			resp, body := do(t, ctx, http.MethodHead, srv.URL+tt.path, hdr, "")
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %s, want %d", resp.Status, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", ct, tt.ctype)
			}
			if len(body) != 0 {
				t.Errorf("HEAD answered a body: %q", body)
			}
			// The handler has returned: a HEAD subscriber is gone.
			if n := srv.hub.Subscribers("news"); n != 0 {
				t.Errorf("Subscribers = %d after HEAD, want 0", n)
			}
		})
	}
}

func TestServerSentEvents(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t, &channels.Handler{}, hub.Options{})
	sse := subscribeSSE(t, ctx, srv, "news")
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := sse.resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	ws := dialWS(t, ctx, srv, "news")

	tests := []struct {
		name    string
		publish func()
		event   string // what the SSE subscriber gets
		text    string // what the WebSocket subscriber gets
	}{
		{
			name:    "one line",
			publish: func() { srv.publish(t, ctx, "news", "hello") },
			event:   "data: hello\n\n",
			text:    "hello",
		},
		{
			name:    "several lines, any line ending",
			publish: func() { srv.publish(t, ctx, "news", "one\ntwo\r\nthree\rfour") },
			event:   "data: one\ndata: two\ndata: three\ndata: four\n\n",
			text:    "one\ntwo\r\nthree\rfour",
		},
		{
			name:    "trailing newline is an empty data line",
			publish: func() { srv.publish(t, ctx, "news", "end\n") },
			event:   "data: end\ndata: \n\n",
			text:    "end\n",
		},
		{
			name:    "with an id (from Go)",
			publish: func() { srv.hub.Deliver(&channels.Message{Channel: "news", ID: "7", Text: "seven"}) },
			event:   "id: 7\ndata: seven\n\n",
			text:    "seven",
		},
		{
			name:    "id with a line break kept on one line",
			publish: func() { srv.hub.Deliver(&channels.Message{Channel: "news", ID: "a\nb", Text: "x"}) },
			event:   "id: a b\ndata: x\n\n",
			text:    "x",
		},
		{
			name: "stream written as is",
			publish: func() {
				srv.grip(t, ctx, `{"items":[{"channel":"news","id":"8","formats":{
					"ws-message":{"content":"tick"},
					"http-stream":{"content":"event: tick\ndata: 1\n\n"}}}]}`)
			},
			event: "event: tick\ndata: 1\n\n",
			text:  "tick",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.publish()
			if got := sse.event(t); got != tt.event {
				t.Errorf("SSE event = %q, want %q", got, tt.event)
			}
			if got := readText(t, ctx, ws); got != tt.text {
				t.Errorf("WebSocket message = %q, want %q", got, tt.text)
			}
		})
	}
}

func TestEventStreamAccept(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t, &channels.Handler{}, hub.Options{})
	tests := []struct {
		name   string
		accept []string
		ctype  string
	}{
		{"event stream", []string{"text/event-stream"}, "text/event-stream"},
		{"in a list with parameters", []string{"text/html, text/event-stream;q=0.9"}, "text/event-stream"},
		{"in a second header", []string{"text/html", "text/event-stream"}, "text/event-stream"},
		{"browser", []string{"text/html,*/*"}, "text/html; charset=utf-8"},
		{"no Accept", nil, "text/html; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, srv.URL+chanPath("news"), nil)
			req.Header["Accept"] = tt.accept
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); ct != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", ct, tt.ctype)
			}
		})
	}
}

// A subscriber the hub drops is told why: a close event or frame.
func TestSubscribersToldWhyDropped(t *testing.T) {
	tests := []struct {
		err  error
		code websocket.StatusCode
	}{
		{channels.ErrUnavailable, websocket.StatusTryAgainLater},
		{channels.ErrShutdown, websocket.StatusGoingAway},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			ctx := testCtx(t)
			srv := newServer(t, &channels.Handler{}, hub.Options{})
			sse := subscribeSSE(t, ctx, srv, "news")
			ws := dialWS(t, ctx, srv, "news")
			srv.hub.CloseAll(tt.err)
			if got, want := sse.event(t), "event: close\ndata: "+tt.err.Error()+"\n\n"; got != want {
				t.Errorf("SSE event = %q, want %q", got, want)
			}
			if _, err := sse.r.ReadByte(); err != io.EOF {
				t.Errorf("SSE stream after the close event: %v, want EOF", err)
			}
			ce := readClose(t, ctx, ws)
			if ce.Code != tt.code || ce.Reason != tt.err.Error() {
				t.Errorf("WebSocket closed with %d %q, want %d %q", ce.Code, ce.Reason, tt.code, tt.err.Error())
			}
		})
	}
}

func TestWebSocketPublish(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t, &channels.Handler{MaxMessage: 64}, hub.Options{})
	a := dialWS(t, ctx, srv, "chat")
	b := dialWS(t, ctx, srv, "chat")
	other := dialWS(t, ctx, srv, "other")

	if err := a.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*websocket.Conn{"publisher": a, "other subscriber": b} {
		if got := readText(t, ctx, c); got != "hello" {
			t.Errorf("%s got %q, want hello", name, got)
		}
	}
	// An empty message is a keep-alive: dropped. A binary message of UTF-8
	// is published as text. A message of exactly MaxMessage goes through.
	full := strings.Repeat("é", 32)
	for _, m := range []struct {
		typ  websocket.MessageType
		data string
	}{
		{websocket.MessageText, ""},
		{websocket.MessageBinary, "binary"},
		{websocket.MessageText, full},
	} {
		if err := b.Write(ctx, m.typ, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]*websocket.Conn{"publisher": b, "other subscriber": a} {
		for _, want := range []string{"binary", full} {
			if got := readText(t, ctx, c); got != want {
				t.Errorf("%s got %q, want %q", name, got, want)
			}
		}
	}
	// The other channel got nothing: its first message is its own.
	srv.publish(t, ctx, "other", "mine")
	if got := readText(t, ctx, other); got != "mine" {
		t.Errorf("other channel got %q, want mine", got)
	}
}

func TestWebSocketBadMessage(t *testing.T) {
	tests := []struct {
		name string
		typ  websocket.MessageType
		data string
		code websocket.StatusCode
	}{
		{"invalid UTF-8 text", websocket.MessageText, "a\xffb", websocket.StatusInvalidFramePayloadData},
		{"invalid UTF-8 binary", websocket.MessageBinary, "\xc3", websocket.StatusInvalidFramePayloadData},
		{"over MaxMessage", websocket.MessageText, strings.Repeat("x", 65), websocket.StatusMessageTooBig},
		{"far over MaxMessage", websocket.MessageBinary, strings.Repeat("x", 1<<20), websocket.StatusMessageTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			srv := newServer(t, &channels.Handler{MaxMessage: 64}, hub.Options{})
			listener, _ := join(t, srv.hub, "chat")
			c := dialWS(t, ctx, srv, "chat")
			// A big write may fail once the server has closed.
			_ = c.Write(ctx, tt.typ, []byte(tt.data))
			if ce := readClose(t, ctx, c); ce.Code != tt.code {
				t.Errorf("closed with %d %q, want %d", ce.Code, ce.Reason, tt.code)
			}
			// Nothing was published.
			srv.hub.Deliver(msg("chat", "probe"))
			if m := next(t, ctx, listener); m.Text != "probe" {
				t.Errorf("a subscriber got %q: the bad message was published", m.Text)
			}
		})
	}
}

func TestOrigins(t *testing.T) {
	const sameHost = "same host" // stands for the server's own origin
	tests := []struct {
		name    string
		origins []string
		origin  string
		allowed bool
	}{
		{"no Origin", nil, "", true},
		{"same host", nil, sameHost, true},
		{"foreign", nil, "https://evil.example", false},
		{"another port of the same host", nil, "http://127.0.0.1:1", false},
		{"opaque", nil, "null", false},
		{"not a URL", nil, "::", false},
		{"wildcard host", []string{"*.example.com"}, "https://app.example.com", true},
		{"wildcard host, other scheme", []string{"*.example.com"}, "http://app.example.com", true},
		{"wildcard host, case", []string{"*.example.com"}, "https://App.Example.COM", true},
		{"wildcard needs a subdomain", []string{"*.example.com"}, "https://example.com", false},
		{"wildcard suffix trick", []string{"*.example.com"}, "https://app.example.com.evil.net", false},
		{"scheme and host", []string{"https://app.example.com"}, "https://app.example.com", true},
		{"scheme and host, case", []string{"HTTPS://APP.example.com"}, "https://app.EXAMPLE.com", true},
		{"scheme differs", []string{"https://app.example.com"}, "http://app.example.com", false},
		{"host differs", []string{"https://app.example.com"}, "https://api.example.com", false},
		{"second pattern", []string{"https://app.example.com", "*.example.org"}, "https://www.example.org", true},
	}
	type kind struct {
		name string
		try  func(t *testing.T, ctx context.Context, srv *testServer, hdr http.Header) (*http.Response, []byte)
	}
	kinds := []kind{
		{"WebSocket", func(t *testing.T, ctx context.Context, srv *testServer, hdr http.Header) (*http.Response, []byte) {
			c, resp, err := websocket.Dial(ctx, srv.URL+chanPath("news"), &websocket.DialOptions{HTTPHeader: hdr})
			if err == nil {
				c.CloseNow()
			}
			if resp == nil {
				t.Fatalf("WebSocket dial: %v", err)
			}
			if resp.Body == nil { // upgraded
				return resp, nil
			}
			b, _ := io.ReadAll(resp.Body)
			return resp, b
		}},
		{"SSE", func(t *testing.T, ctx context.Context, srv *testServer, hdr http.Header) (*http.Response, []byte) {
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			hdr.Set("Accept", "text/event-stream")
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, srv.URL+chanPath("news"), nil)
			req.Header = hdr
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return resp, nil // an endless stream: not read
			}
			b, _ := io.ReadAll(resp.Body)
			return resp, b
		}},
		{"POST", func(t *testing.T, ctx context.Context, srv *testServer, hdr http.Header) (*http.Response, []byte) {
			return do(t, ctx, http.MethodPost, srv.URL+chanPath("news"), hdr, "x")
		}},
		{"GRIP publish", func(t *testing.T, ctx context.Context, srv *testServer, hdr http.Header) (*http.Response, []byte) {
			hdr.Set("Content-Type", "application/json")
			return do(t, ctx, http.MethodPost, srv.URL+channels.PublishPath, hdr,
				`{"items":[{"channel":"news","formats":{"ws-message":{"content":"x"}}}]}`)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			srv := newGuardedServer(t, &channels.Handler{}, tt.origins)
			for _, k := range kinds {
				t.Run(k.name, func(t *testing.T) {
					hdr := http.Header{}
					switch tt.origin {
					case "":
					case sameHost:
						hdr.Set("Origin", srv.URL)
					default:
						hdr.Set("Origin", tt.origin)
					}
					resp, body := k.try(t, ctx, srv, hdr)
					if !tt.allowed {
						checkError(t, resp, body, http.StatusForbidden, handlers.CodeForbidden)
						return
					}
					want := http.StatusOK
					if k.name == "WebSocket" {
						want = http.StatusSwitchingProtocols
					}
					if resp.StatusCode != want {
						t.Errorf("status = %s (%s), want %d", resp.Status, body, want)
					}
				})
			}
		})
	}
}

// A WebSocket subscriber that stops reading is dropped once its queue
// fills, and told why, while the others get every message in order.
func TestSlowWebSocketSubscriber(t *testing.T) {
	ctx := testCtx(t)
	const size = 256 << 10
	srv := newServer(t,
		&channels.Handler{MaxMessage: size, WriteTimeout: time.Minute},
		hub.Options{QueueLen: 4, QueueBytes: 64 << 20})
	fast := dialWS(t, ctx, srv, "big")
	fast.SetReadLimit(size)
	slow := dialWS(t, ctx, srv, "big") // does not read until dropped
	slow.SetReadLimit(size)
	text := func(i int) string { return fmt.Sprintf("%06d", i) + strings.Repeat(".", size-6) }

	// Publish until the slow subscriber's TCP buffers and then its queue
	// are full; the fast one gets each message before the next is sent.
	dropped := -1
	for i := 0; dropped < 0; i++ {
		if ctx.Err() != nil {
			t.Fatalf("after %d messages the slow subscriber is still there", i)
		}
		srv.publish(t, ctx, "big", text(i))
		if got := readText(t, ctx, fast); got[:6] != text(i)[:6] {
			t.Fatalf("fast subscriber got message %s, want %d", got[:6], i)
		}
		if srv.hub.Subscribers("big") == 1 {
			dropped = i
		}
	}
	t.Logf("slow subscriber dropped at message %d", dropped)
	for i := dropped + 1; i < dropped+4; i++ {
		srv.publish(t, ctx, "big", text(i))
		if got := readText(t, ctx, fast); got[:6] != text(i)[:6] {
			t.Fatalf("fast subscriber got message %s, want %d", got[:6], i)
		}
	}

	// The slow one gets what was sent before it fell behind, in order,
	// then a close frame saying why.
	for i := 0; ; i++ {
		_, b, err := slow.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("slow subscriber read after %d messages: %v, want a close frame", i, err)
			}
			if ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "too slow") {
				t.Fatalf("slow subscriber closed with %d %q, want %d and too slow", ce.Code, ce.Reason, websocket.StatusPolicyViolation)
			}
			if i > dropped {
				t.Fatalf("slow subscriber got %d messages, but was dropped at message %d", i, dropped)
			}
			break
		}
		if string(b[:6]) != text(i)[:6] {
			t.Fatalf("slow subscriber got message %s, want %d", b[:6], i)
		}
	}
}

func TestGRIPPublish(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t, &channels.Handler{Prefix: "app:", MaxMessage: 64}, hub.Options{})
	news, _ := join(t, srv.hub, "app:news")
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	good := `{"items":[
		{"channel":"news","formats":{"ws-message":{"content":"one"}}},
		{"channel":"news","formats":{"ws-message":{"content":""}}},
		{"channel":"news","formats":{"ws-message":{"content":"two"}}}]}`
	goodAnswer := map[string]any{"published": 2.0, "dropped": 1.0, "note": "items with an empty content dropped"}

	tests := []struct {
		name   string
		method string
		path   string
		hdr    http.Header
		body   string
		status int
		want   map[string]any
		code   string
		allow  string
		got    []string
	}{
		{name: "published", method: "POST", path: "/publish/", hdr: jsonCT, body: good,
			status: 200, want: goodAnswer, got: []string{"one", "two"}},
		{name: "without the trailing slash", method: "POST", path: "/publish", hdr: jsonCT, body: good,
			status: 200, want: goodAnswer, got: []string{"one", "two"}},
		{name: "no Content-Type", method: "POST", path: "/publish/", body: good,
			status: 200, want: goodAnswer, got: []string{"one", "two"}},
		{name: "JSON with charset", method: "POST", path: "/publish/", body: good,
			hdr:    http.Header{"Content-Type": {"application/json; charset=utf-8"}},
			status: 200, want: goodAnswer, got: []string{"one", "two"}},
		{name: "nothing to publish", method: "POST", path: "/publish/", hdr: jsonCT, body: `{"items":[]}`,
			status: 200, want: map[string]any{"published": 0.0}},
		{name: "a control URI with a trailing slash", method: "POST", path: "//publish/", hdr: jsonCT, body: good,
			status: 200, want: goodAnswer, got: []string{"one", "two"}},
		{name: "GET", method: "GET", path: "/publish/", status: 405, code: handlers.CodeMethodNotAllowed, allow: "POST"},
		{name: "PUT", method: "PUT", path: "/publish/", hdr: jsonCT, body: good, status: 405, code: handlers.CodeMethodNotAllowed, allow: "POST"},
		{name: "GET //publish/", method: "GET", path: "//publish/", status: 405, code: handlers.CodeMethodNotAllowed, allow: "POST"},
		{name: "text/plain read as JSON", method: "POST", path: "/publish/", body: good,
			hdr: http.Header{"Content-Type": {"text/plain"}}, status: 200, want: goodAnswer, got: []string{"one", "two"}},
		{name: "curl's form Content-Type read as JSON", method: "POST", path: "/publish/", body: good,
			hdr: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, status: 200, want: goodAnswer, got: []string{"one", "two"}},
		{name: "a form body", method: "POST", path: "/publish/", body: "channel=news&content=hi",
			hdr: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, status: 400, code: handlers.CodeBadRequest},
		{name: "bad JSON", method: "POST", path: "/publish/", hdr: jsonCT, body: `{"items":`, status: 400, code: handlers.CodeBadRequest},
		{name: "unsupported format", method: "POST", path: "/publish/", hdr: jsonCT,
			body:   `{"items":[{"channel":"news","formats":{"http-response":{"body":"x"}}}]}`,
			status: 400, code: handlers.CodeBadRequest},
		{name: "item over MaxMessage", method: "POST", path: "/publish/", hdr: jsonCT,
			body:   `{"items":[{"channel":"news","formats":{"ws-message":{"content":"` + strings.Repeat("x", 65) + `"}}}]}`,
			status: 400, code: handlers.CodeBadRequest},
		{name: "body over its limit", method: "POST", path: "/publish/", hdr: jsonCT,
			body:   `{"items":[` + strings.Repeat(" ", 16*64+64<<10) + `]}`,
			status: 413, code: handlers.CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, ctx, tt.method, srv.URL+tt.path, tt.hdr, tt.body)
			checkAnswer(t, resp, body, tt.status, tt.want, tt.code, tt.allow)
			for _, want := range tt.got {
				if m := next(t, ctx, news); m.Text != want || m.Channel != "app:news" {
					t.Errorf("subscriber got %q on %q, want %q on app:news", m.Text, m.Channel, want)
				}
			}
		})
	}
	srv.hub.Deliver(msg("app:news", "last"))
	if m := next(t, ctx, news); m.Text != "last" {
		t.Fatalf("subscriber got %q, want last: a refused publish went through", m.Text)
	}
}

// failingBus refuses every publish and subscription with err.
type failingBus struct{ err error }

func (b failingBus) Publish(context.Context, *channels.Message) error { return b.err }
func (b failingBus) Subscribe(context.Context, string) (*channels.Subscriber, error) {
	return nil, b.err
}

func TestBusErrors(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("relay: %w", channels.ErrUnavailable), 503, handlers.CodePeerUnavailable},
		{channels.ErrShutdown, 503, handlers.CodePeerUnavailable},
		{context.DeadlineExceeded, 504, handlers.CodeTimeout},
		{errors.New("tunnel broke"), 502, handlers.CodeTunnelClosed},
		// Refused by the server's access rules: what it said.
		{&handlers.Error{Status: 403, Code: handlers.CodeForbidden, Msg: "refused: no rule"}, 403, handlers.CodeForbidden},
		{fmt.Errorf("wrapped: %w", &handlers.Error{Status: 503, Code: handlers.CodeAuthUnavailable, Msg: "no answer"}), 503, handlers.CodeAuthUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			ctx := testCtx(t)
			srv := httptest.NewServer(&channels.Handler{Bus: failingBus{tt.err}})
			t.Cleanup(srv.Close)
			u := srv.URL + chanPath("news")
			resp, body := do(t, ctx, http.MethodPost, u, nil, "x")
			checkError(t, resp, body, tt.status, tt.code)
			resp, body = do(t, ctx, http.MethodPost, srv.URL+channels.PublishPath, nil,
				`{"items":[{"channel":"news","formats":{"ws-message":{"content":"x"}}}]}`)
			checkError(t, resp, body, tt.status, tt.code)
			resp, body = do(t, ctx, http.MethodGet, u, http.Header{"Accept": {"text/event-stream"}}, "")
			checkError(t, resp, body, tt.status, tt.code)
			_, resp, err := websocket.Dial(ctx, u, nil)
			if err == nil || resp == nil {
				t.Fatalf("WebSocket dial = %v, %v; want refused", resp, err)
			}
			body, _ = io.ReadAll(resp.Body)
			checkError(t, resp, body, tt.status, tt.code)
		})
	}
}

func TestIs(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/channels/news", true},
		{"/channels/", true},
		{"/channels", true},
		{"/publish/", true},
		{"/publish", true},
		{"//publish/", true}, // a GRIP control URI with a trailing slash
		{"//publish", false},
		{"//channels/news", false},
		{"///publish/", false},
		{"/publishers", false},
		{"/channelsx", false},
		{"/", false},
		{"/api/channels/x", false},
	}
	for _, tt := range tests {
		if got := channels.Is(tt.path); got != tt.want {
			t.Errorf("Is(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// TestWebSocketBadMessageWhileReceiving: a subscriber that sends a message
// that is not UTF-8 while it is receiving is told so with 1007, as an idle
// one is (the writer, busy, used to lose the race and drop the connection
// without a close frame).
func TestWebSocketBadMessageWhileReceiving(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t, &channels.Handler{}, hub.Options{})
	for round := range 20 {
		c := dialWS(t, ctx, srv, "busy")
		read, errc := make(chan struct{}, 1), make(chan error, 1)
		go func() {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					errc <- err
					return
				}
				read <- struct{}{}
			}
		}()
		stop := make(chan struct{})
		go func() { // keep the server writing: each message once the last was read
			for {
				srv.hub.Deliver(msg("busy", "tick"))
				select {
				case <-read:
				case <-stop:
					return
				}
			}
		}()
		_ = c.Write(ctx, websocket.MessageText, []byte("\xff"))
		err := <-errc
		close(stop)
		if ce := (websocket.CloseError{}); !errors.As(err, &ce) || ce.Code != websocket.StatusInvalidFramePayloadData {
			t.Fatalf("round %d: connection ended with %v, want close status 1007", round, err)
		}
	}
}

// checkAnswer checks a table case's answer: the JSON want if set, else an
// error of status and code; and its Allow header.
func checkAnswer(t *testing.T, resp *http.Response, body []byte, status int, want map[string]any, code, allow string) {
	t.Helper()
	if want != nil {
		if resp.StatusCode != status {
			t.Fatalf("status = %s (%s), want %d", resp.Status, body, status)
		}
		checkJSON(t, resp, body, want)
	} else {
		checkError(t, resp, body, status, code)
	}
	if got := resp.Header.Get("Allow"); got != allow {
		t.Errorf("Allow = %q, want %q", got, allow)
	}
}

// choosyBus refuses channels starting with "no-" (as the server's access
// rules would) and is unavailable for "down"; the rest goes to its hub.
type choosyBus struct{ *hub.Hub }

func (b choosyBus) Publish(ctx context.Context, m *channels.Message) error {
	switch {
	case strings.HasPrefix(m.Channel, "no-"):
		return &handlers.Error{Status: 403, Code: handlers.CodeForbidden, Msg: "refused: " + m.Channel}
	case m.Channel == "down":
		return channels.ErrUnavailable
	}
	return b.Hub.Publish(ctx, m)
}

// A GRIP publish goes on past refused items and names them; an error that
// is not a refusal stops it, saying what was done before.
func TestGRIPRefusedItems(t *testing.T) {
	ctx := testCtx(t)
	srv := httptest.NewServer(&channels.Handler{Bus: choosyBus{hub.NewHub(hub.Options{})}})
	t.Cleanup(srv.Close)
	item := func(ch string) string {
		return `{"channel":"` + ch + `","formats":{"ws-message":{"content":"x"}}}`
	}
	resp, body := do(t, ctx, http.MethodPost, srv.URL+channels.PublishPath, nil,
		`{"items":[`+item("ok")+`,`+item("no-1")+`,{"channel":"empty","formats":{"ws-message":{"content":""}}},`+item("no-2")+`,`+item("ok")+`]}`)
	checkError(t, resp, body, 403, handlers.CodeForbidden)
	var res struct {
		Published int `json:"published"`
		Refused   []struct {
			Item    int    `json:"item"`
			Channel string `json:"channel"`
		} `json:"refused"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Published != 2 || len(res.Refused) != 2 || res.Refused[0].Item != 1 || res.Refused[0].Channel != "no-1" ||
		res.Refused[1].Item != 3 || res.Refused[1].Channel != "no-2" {
		t.Fatalf("answer %s: want 2 published, items 1 (no-1) and 3 (no-2) refused", body)
	}
	resp, body = do(t, ctx, http.MethodPost, srv.URL+channels.PublishPath, nil,
		`{"items":[`+item("ok")+`,`+item("no-1")+`,`+item("down")+`,`+item("ok")+`]}`)
	checkError(t, resp, body, 503, handlers.CodePeerUnavailable)
	if !strings.Contains(string(body), "1 were published and 1 refused") {
		t.Fatalf("answer %s: should say what was done before", body)
	}
}

// TestGRIPFormatRouting checks that each GRIP format reaches its own kind
// of subscriber only, as in Pushpin, while a plain POST reaches both.
func TestGRIPFormatRouting(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t, &channels.Handler{}, hub.Options{})
	sse := subscribeSSE(t, ctx, srv, "news")
	ws := dialWS(t, ctx, srv, "news")
	srv.grip(t, ctx, `{"items":[{"channel":"news","http-stream":{"content":"data: stream only\n\n"}}]}`)
	srv.grip(t, ctx, `{"items":[{"channel":"news","ws-message":{"content":"ws only"}}]}`)
	srv.grip(t, ctx, `{"items":[{"channel":"news","formats":{"ws-message":{"content":"both, ws"},
		"http-stream":{"content":"data: both, stream\n\n"}}}]}`)
	srv.publish(t, ctx, "news", "plain")
	for _, want := range []string{"data: stream only\n\n", "data: both, stream\n\n", "data: plain\n\n"} {
		if got := sse.event(t); got != want {
			t.Errorf("SSE event = %q, want %q", got, want)
		}
	}
	for _, want := range []string{"ws only", "both, ws", "plain"} {
		if got := readText(t, ctx, ws); got != want {
			t.Errorf("WebSocket message = %q, want %q", got, want)
		}
	}
}

// TestGRIPClose checks that an "action": "close" format ends the
// channel's subscribers of its kind, after what was published before it,
// and leaves the other kind and other channels alone.
func TestGRIPClose(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t, &channels.Handler{}, hub.Options{})
	sse := subscribeSSE(t, ctx, srv, "news")
	ws := dialWS(t, ctx, srv, "news")
	other := dialWS(t, ctx, srv, "sport")
	srv.publish(t, ctx, "news", "before")
	srv.grip(t, ctx, `{"items":[{"channel":"news","http-stream":{"action":"close"}}]}`)
	if got, want := sse.event(t), "data: before\n\n"; got != want {
		t.Errorf("SSE event = %q, want %q", got, want)
	}
	if got, want := sse.event(t), "event: close\ndata: closed by the publisher\n\n"; got != want {
		t.Errorf("SSE event = %q, want %q", got, want)
	}
	if _, err := sse.r.ReadByte(); err != io.EOF {
		t.Errorf("SSE stream after the close event: %v, want EOF", err)
	}
	srv.publish(t, ctx, "news", "after")
	for _, want := range []string{"before", "after"} {
		if got := readText(t, ctx, ws); got != want {
			t.Errorf("WebSocket message = %q, want %q (an http-stream close must not end it)", got, want)
		}
	}
	srv.grip(t, ctx, `{"items":[{"channel":"news","ws-message":{"action":"close","code":4000,"reason":"done"}}]}`)
	if ce := readClose(t, ctx, ws); ce.Code != 4000 || ce.Reason != "done" {
		t.Errorf("WebSocket closed with %d %q, want 4000 done", ce.Code, ce.Reason)
	}
	srv.publish(t, ctx, "sport", "still here")
	if got := readText(t, ctx, other); got != "still here" {
		t.Errorf("other channel's subscriber got %q", got)
	}
	// A close without a code is 1000 with the reason.
	ws2 := dialWS(t, ctx, srv, "news")
	srv.grip(t, ctx, `{"items":[{"channel":"news","ws-message":{"action":"close"}}]}`)
	if ce := readClose(t, ctx, ws2); ce.Code != websocket.StatusNormalClosure || ce.Reason != "closed by the publisher" {
		t.Errorf("WebSocket closed with %d %q, want 1000 closed by the publisher", ce.Code, ce.Reason)
	}
}

// An SSE subscriber that comes back with a Last-Event-ID (an EventSource
// reconnecting) starts with a gap unless that ID is the channel's last
// message this node knows of; nothing is replayed.
func TestLastEventIDGap(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t, &channels.Handler{}, hub.Options{})
	resume := func(t *testing.T, channel, id string) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+chanPath(channel), nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Last-Event-ID", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		st := &sseStream{resp: resp, r: bufio.NewReader(resp.Body)}
		if ev := st.event(t); ev != "retry: 2000\n: subscribed\n\n" {
			t.Fatalf("first SSE event %q", ev)
		}
		if err := srv.hub.Publish(ctx, &channels.Message{Channel: channel, Text: "next"}); err != nil {
			t.Fatal(err)
		}
		return st.event(t)
	}
	keep := subscribeSSE(t, ctx, srv, "news") // keeps the channel's last ID known
	if err := srv.hub.Publish(ctx, &channels.Message{Channel: "news", Text: "x", ID: "m1"}); err != nil {
		t.Fatal(err)
	}
	if ev := keep.event(t); ev != "id: m1\ndata: x\n\n" {
		t.Fatalf("keeper got %q", ev)
	}
	if ev := resume(t, "news", "m1"); ev != "data: next\n\n" {
		t.Errorf("resumed after the last message: %q, want the next message and no gap", ev)
	}
	for _, tc := range []struct{ name, channel, id string }{
		{"older id", "news", "m0"},
		{"channel unknown here", "quiet", "m1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := resume(t, tc.channel, tc.id)
			if !strings.HasPrefix(ev, "event: gap\ndata: {\"type\":\"gap\",\"reason\":") || !strings.Contains(ev, tc.id) {
				t.Errorf("resumed after %q: %q, want a gap naming it", tc.id, ev)
			}
		})
	}
}

// A notice cannot be published: only a node sends them.
func TestNoticeNotPublished(t *testing.T) {
	bus := channels.NewLocalBus(0, 0)
	for _, m := range []*channels.Message{{Channel: "c", Gap: true}, {Channel: "c", Outage: "x"}} {
		if err := bus.Publish(context.Background(), m); !errors.Is(err, channels.ErrNotice) {
			t.Errorf("Publish(%+v): %v, want ErrNotice", m, err)
		}
	}
}
