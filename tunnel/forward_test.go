package tunnel_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/restpipe/restpipe/handlers"
)

// seen is what the upstream test service received.
type seen struct {
	Method, Path, Query, Body, Host string
	ContentLength                   int64
	Header                          http.Header
}

func inspectService(t *testing.T) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Up", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(b), r.Host, r.ContentLength, r.Header})
	}))
	t.Cleanup(up.Close)
	return up
}

func TestForwardRoute(t *testing.T) {
	_, s, c := pair(t)
	up := inspectService(t)
	if err := c.reg.Forward("files", up.URL+"/base"); err != nil {
		t.Fatal(err)
	}
	// A handler of the same name loses to the route.
	c.reg.MustHandle("get_files", func(context.Context, *handlers.Request) (any, error) { return "handler", nil })
	if r := get(t, s.httpURL+"/client/c1/files"); r.status != 201 || !strings.Contains(r.body, `"Path":"/base/"`) {
		t.Errorf("route did not win over get_files: %d %s", r.status, r.body)
	}

	req, _ := http.NewRequest(http.MethodPost, s.httpURL+"/client/c1/files/a%20b/c?y=2&x=1", strings.NewReader("the body"))
	req.Header.Set("X-Custom", "kept")
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "dropped")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got seen
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Up") != "1" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("reply %d %v", resp.StatusCode, resp.Header)
	}
	for _, c := range []struct{ what, got, want string }{
		{"method", got.Method, "POST"},
		{"path", got.Path, "/base/a%20b/c"},
		{"query", got.Query, "y=2&x=1"},
		{"body", got.Body, "the body"},
		{"content length", fmt.Sprint(got.ContentLength), "8"},
		{"content type", got.Header.Get("Content-Type"), "text/plain"},
		{"custom header", got.Header.Get("X-Custom"), "kept"},
		{"header named in Connection", got.Header.Get("X-Hop"), ""},
		// Only what the serving node vouches for (forward_security_test.go).
		{"X-Forwarded-For", got.Header.Get("X-Forwarded-For"), "127.0.0.1"},
		{"X-Forwarded-Host", got.Header.Get("X-Forwarded-Host"), ""},
		{"X-Forwarded-Proto", got.Header.Get("X-Forwarded-Proto"), "https"},
		{"X-Restpipe-Peer", got.Header.Get("X-Restpipe-Peer"), "server"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
		}
	}

	// The other way: a route on the server, called from the client.
	if err := s.reg.Forward("api", up.URL); err != nil {
		t.Fatal(err)
	}
	r := get(t, c.httpURL+"/server/api/v1/items/odd?q=a%20b")
	if m := r.json(t); r.status != 201 || m["Path"] != "/v1/items/odd" || m["Query"] != "q=a%20b" || m["Method"] != "GET" {
		t.Errorf("client->server route: %d %s", r.status, r.body)
	}
}

func TestForwardStreamsReply(t *testing.T) {
	_, s, c := pair(t)
	next := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			if i < 3 {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
		}
	}))
	defer up.Close()
	if err := c.reg.Forward("sse", up.URL); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.httpURL + "/client/c1/sse/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := 1; i <= 3; i++ {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		_, _ = br.ReadString('\n')
		if i < 3 {
			next <- struct{}{} // the service sends the next only now
		}
	}
}

func TestForwardErrors(t *testing.T) {
	_, s, c := pair(t)
	ln := listen(t)
	downURL := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	if err := c.reg.Forward("down", downURL); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	if err := c.reg.Forward("slow", slow.URL); err != nil {
		t.Fatal(err)
	}
	wantError(t, get(t, s.httpURL+"/client/c1/down/x"), http.StatusBadGateway, "upstream_unavailable")
	wantError(t, get(t, s.httpURL+"/client/c1/slow/x", "X-Restpipe-Timeout", "200ms"), http.StatusGatewayTimeout, "timeout")

	for _, bad := range []string{"", "ftp://x", "http://", "/relative", "http://h/p?q=1", "::", "h2c://", "h2c://h/p?q=1", "h2://h"} {
		if err := c.reg.Forward("bad", bad); err == nil {
			t.Errorf("Forward accepted target %q", bad)
		}
	}
	if err := c.reg.Forward("a/b", "http://127.0.0.1:1"); err == nil {
		t.Error("Forward accepted a route with a slash")
	}
}

// TestForwardWebSocket: a WebSocket client on the server side talks to a
// WebSocket server on the firewalled client, through the tunnel.
func TestForwardWebSocket(t *testing.T) {
	_, s, c := pair(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			typ, msg, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			if err := ws.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	defer up.Close()
	if err := c.reg.Forward("ws", up.URL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(s.httpURL, "http") + "/client/c1/ws/echo"
	conn, resp, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", wsURL, err, resp)
	}
	defer conn.CloseNow()
	for i := range 20 {
		msg := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*1000))
		if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo: "+msg {
			t.Fatalf("got %.40q, want %.40q", got, "echo: "+msg)
		}
	}
	if err := conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Errorf("close: %v", err)
	}
	// The tunnel still serves events afterwards.
	if r := get(t, s.httpURL+"/client/c1/time"); r.status != 200 {
		t.Errorf("after the WebSocket: %d", r.status)
	}
}
