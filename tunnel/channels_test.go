package tunnel_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/restpipe/restpipe/tunnel"
	"github.com/restpipe/restpipe/tunnel/channels"
	"github.com/restpipe/restpipe/tunnel/faultproxy"
)

// threeNodes runs a server and two clients, all connected.
func threeNodes(t *testing.T, tweak func(*tunnel.Config)) (*serverNode, *clientNode, *clientNode) {
	t.Helper()
	p := newPKI(t)
	s := startServer(t, p, tweak)
	a := startClient(t, p, "alpha", s.tunnelAddr, tweak)
	b := startClient(t, p, "beta", s.tunnelAddr, tweak)
	waitConnected(t, a, s)
	waitConnected(t, b, s)
	return s, a, b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wsURL(httpURL, channel string) string {
	return "ws" + strings.TrimPrefix(httpURL, "http") + channels.PathPrefix + url.PathEscape(channel)
}

func chanURL(httpURL, channel string) string {
	return httpURL + channels.PathPrefix + url.PathEscape(channel)
}

// subscriber is a test subscriber of either kind.
type subscriber interface {
	next(ctx context.Context) (string, error)
	name() string
}

type wsSubscriber struct {
	c    *websocket.Conn
	desc string
}

// subscribeWS opens a WebSocket subscriber; it is live when this returns.
func subscribeWS(t *testing.T, ctx context.Context, httpURL, channel string) *wsSubscriber {
	t.Helper()
	c, resp, err := websocket.Dial(ctx, wsURL(httpURL, channel), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("subscribe to %s on %s: status %d: %v", channel, httpURL, status, err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return &wsSubscriber{c: c, desc: "ws " + httpURL}
}

func (s *wsSubscriber) next(ctx context.Context) (string, error) {
	_, b, err := s.c.Read(ctx)
	return string(b), err
}
func (s *wsSubscriber) name() string { return s.desc }

type sseSubscriber struct {
	br   *bufio.Reader
	desc string
}

// subscribeSSE opens a Server-Sent Events subscriber; it is live when this
// returns.
func subscribeSSE(t *testing.T, ctx context.Context, httpURL, channel string) *sseSubscriber {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, chanURL(httpURL, channel), nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE subscribe: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &sseSubscriber{br: bufio.NewReader(resp.Body), desc: "sse " + httpURL}
}

// event reads the next event's fields (comments skipped).
func (s *sseSubscriber) event() (map[string]string, error) {
	ev := map[string]string{}
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && len(ev) > 0:
			return ev, nil
		case line == "", strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
			// A comment, or the reconnection delay (an EventSource's, not an event).
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			if old, ok := ev[k]; ok && k == "data" {
				v = old + "\n" + v
			}
			ev[k] = v
		}
	}
}

func (s *sseSubscriber) next(context.Context) (string, error) {
	ev, err := s.event()
	if err != nil {
		return "", err
	}
	if ev["event"] != "" {
		return "", fmt.Errorf("event %q: %s", ev["event"], ev["data"])
	}
	return ev["data"], nil
}
func (s *sseSubscriber) name() string { return s.desc }

func publish(t *testing.T, httpURL, channel, text string) {
	t.Helper()
	r := do(t, http.MethodPost, chanURL(httpURL, channel), strings.NewReader(text), "Content-Type", "text/plain")
	if r.status != http.StatusOK {
		t.Fatalf("publish on %s: status %d: %s", httpURL, r.status, r.body)
	}
}

// collect reads n messages from each subscriber.
func collect(t *testing.T, ctx context.Context, subs []subscriber, n int) [][]string {
	t.Helper()
	got := make([][]string, len(subs))
	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				m, err := s.next(ctx)
				if err != nil {
					errs[i] = fmt.Errorf("%s after %d messages: %w", s.name(), len(got[i]), err)
					return
				}
				got[i] = append(got[i], m)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return got
}

// Published on any of three nodes, a message reaches every subscriber
// (WebSocket and SSE) of its channel on every node once, in one order.
func TestChannelsFanOutAcrossThreeNodes(t *testing.T) {
	s, a, b := threeNodes(t, nil)
	ctx := testCtx(t)
	const ch = "news/α β"
	var subs []subscriber
	var wsB *wsSubscriber
	for _, u := range []string{s.httpURL, a.httpURL, b.httpURL} {
		w := subscribeWS(t, ctx, u, ch)
		subs = append(subs, w, subscribeSSE(t, ctx, u, ch))
		wsB = w // the last: on beta
	}
	other := subscribeWS(t, ctx, a.httpURL, "other")

	publish(t, a.httpURL, ch, "from alpha")
	publish(t, s.httpURL, "other", "not for news")
	publish(t, s.httpURL, ch, "from the server")
	if err := wsB.c.Write(ctx, websocket.MessageText, []byte("from beta's subscriber")); err != nil {
		t.Fatal(err)
	}
	// The WebSocket publish has no answer: wait for it before the next.
	if m, err := other.next(ctx); err != nil || m != "not for news" {
		t.Fatalf("other channel: %q, %v", m, err)
	}
	publish(t, b.httpURL, ch, "") // empty: dropped
	got := collect(t, ctx, subs, 3)
	for i, g := range got {
		if !slices.Equal(g, got[0]) {
			t.Errorf("%s got %q, %s got %q: orders differ", subs[i].name(), g, subs[0].name(), got[0])
		}
	}
	sorted := slices.Sorted(slices.Values(got[0]))
	if want := []string{"from alpha", "from beta's subscriber", "from the server"}; !slices.Equal(sorted, want) {
		t.Fatalf("messages %q, want %q", got[0], want)
	}
	// Nothing more came (no duplicate, no empty message): the next
	// message every subscriber gets is the last one published.
	publish(t, s.httpURL, ch, "end")
	for i, g := range collect(t, ctx, subs, 1) {
		if g[0] != "end" {
			t.Errorf("%s: got %q after the three, want \"end\"", subs[i].name(), g[0])
		}
	}
}

// Messages published concurrently on three nodes reach every subscriber
// in the same order, each publisher's in the order it published them.
func TestChannelsOrder(t *testing.T) {
	s, a, b := threeNodes(t, nil)
	ctx := testCtx(t)
	const ch, perNode = "order", 150
	nodes := map[string]string{"server": s.httpURL, "alpha": a.httpURL, "beta": b.httpURL}
	var subs []subscriber
	for _, u := range nodes {
		subs = append(subs, subscribeWS(t, ctx, u, ch), subscribeSSE(t, ctx, u, ch))
	}
	var wg sync.WaitGroup
	for name, u := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perNode {
				// A POST answers once the message has its place: in order.
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, chanURL(u, ch), strings.NewReader(fmt.Sprintf("%s %d", name, i)))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("publish: %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	got := collect(t, ctx, subs, 3*perNode)
	wg.Wait()
	for i, g := range got {
		if !slices.Equal(g, got[0]) {
			t.Fatalf("%s and %s got different orders", subs[i].name(), subs[0].name())
		}
	}
	next := map[string]int{}
	for _, m := range got[0] {
		var name string
		var i int
		if _, err := fmt.Sscanf(m, "%s %d", &name, &i); err != nil {
			t.Fatalf("message %q: %v", m, err)
		}
		if i != next[name] {
			t.Fatalf("from %s: got %d, want %d (out of order, lost or twice)", name, i, next[name])
		}
		next[name]++
	}
}

// A subscriber that stops reading is dropped with a close reason once its
// queue is full; the others on the channel get every message, in order.
func TestChannelsSlowSubscriberDropped(t *testing.T) {
	// The slow subscriber's blocked write must outlast the test's
	// publishing, however loaded the machine, for its close frame to go.
	s, a, _ := threeNodes(t, func(c *tunnel.Config) { c.ChannelQueue = 16; c.WriteTimeout = 50 * time.Second })
	ctx := testCtx(t)
	const ch, n = "firehose", 2000
	slow := subscribeWS(t, ctx, a.httpURL, ch) // never reads until the end
	fast := []subscriber{subscribeWS(t, ctx, a.httpURL, ch), subscribeWS(t, ctx, s.httpURL, ch)}

	payload := strings.Repeat("x", 16<<10)  // 2000 x 16 KiB: more than socket buffers hold
	received := make(chan int, len(fast)*n) // the index of the subscriber
	errc := make(chan error, len(fast))
	for k, f := range fast {
		go func() {
			for i := range n {
				m, err := f.next(ctx)
				if err != nil || m != fmt.Sprintf("%d %s", i, payload) {
					errc <- fmt.Errorf("%s: message %d: %.20q, %v", f.name(), i, m, err)
					return
				}
				received <- k
			}
			errc <- nil
		}()
	}
	// Published with the server's Go API, at most 8 ahead of the slower
	// fast subscriber, so that only the slow one falls behind.
	counts := make([]int, len(fast))
	for i := range n {
		for i-slices.Min(counts) >= 8 {
			select {
			case k := <-received:
				counts[k]++
			case err := <-errc:
				t.Fatal(err)
			}
		}
		m := &channels.Message{Channel: ch, Text: fmt.Sprintf("%d %s", i, payload)}
		if err := s.Channels().Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for range fast {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// The slow one got a prefix of the messages, then the close reason.
	for i := 0; ; i++ {
		m, err := slow.next(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusPolicyViolation || !strings.Contains(err.Error(), "too slow") {
				t.Fatalf("slow subscriber ended after %d messages with %v, want close 1008 \"too slow\"", i, err)
			}
			if i >= n {
				t.Fatalf("slow subscriber got all %d messages", i)
			}
			return
		}
		if m != fmt.Sprintf("%d %s", i, payload) {
			t.Fatalf("slow subscriber: message %d is %.20q", i, m)
		}
	}
}

// GRIP publishing: Pushpin's JSON on one node, with that node's prefix,
// reaches WebSocket subscribers with ws-message and SSE subscribers with
// http-stream (as is) on the other nodes.
func TestChannelsGRIPPublish(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	a := startClient(t, p, "alpha", s.tunnelAddr, func(c *tunnel.Config) { c.ChannelPrefix = "tenant-" })
	waitConnected(t, a, s)
	ctx := testCtx(t)
	ws := subscribeWS(t, ctx, s.httpURL, "tenant-news")
	sse := subscribeSSE(t, ctx, s.httpURL, "tenant-news")

	body := `{"items":[
	  {"channel":"news","id":"m1","formats":{
	    "ws-message":{"content":"hi over WebSocket"},
	    "http-stream":{"content":"event: update\ndata: hi over SSE\n\n"}}},
	  {"channel":"news","formats":{"ws-message":{"content":"second"}}},
	  {"channel":"news","http-stream":{"content":"data: third\n\n"}}]}`
	r := do(t, http.MethodPost, a.httpURL+"/publish/", strings.NewReader(body), "Content-Type", "application/json")
	if r.status != http.StatusOK || r.json(t)["published"] != float64(3) {
		t.Fatalf("publish: %d %s", r.status, r.body)
	}
	// Each format reaches its own kind of subscriber only, across the
	// tunnel too: "second" is for WebSocket, "third" for SSE.
	for _, want := range []string{"hi over WebSocket", "second"} {
		if m, err := ws.next(ctx); err != nil || m != want {
			t.Fatalf("WebSocket got %q, %v; want %q", m, err, want)
		}
	}
	ev, err := sse.event()
	if err != nil || ev["event"] != "update" || ev["data"] != "hi over SSE" {
		t.Fatalf("SSE got %v, %v; want the http-stream content as is", ev, err)
	}
	ev, err = sse.event()
	if err != nil || ev["data"] != "third" {
		t.Fatalf("SSE got %v, %v; want the http-stream-only item", ev, err)
	}

	r = do(t, http.MethodPost, a.httpURL+"/publish/", strings.NewReader(`{"items":[{"channel":"x"}]}`), "Content-Type", "application/json")
	wantError(t, r, http.StatusBadRequest, "bad_request")
}

// TestChannelsGRIPRoutingAndClose publishes GRIP items on one client node
// to subscribers on the other, so that each crosses two relays (PUBLISH
// to the server, MESSAGE to the other client): each format reaches its
// own kind only, a plain POST both, and a close ends its kind's
// subscribers, in order with the messages.
func TestChannelsGRIPRoutingAndClose(t *testing.T) {
	s, a, b := threeNodes(t, nil)
	ctx := testCtx(t)
	ws := subscribeWS(t, ctx, b.httpURL, "news")
	sse := subscribeSSE(t, ctx, b.httpURL, "news")
	onServer := subscribeWS(t, ctx, s.httpURL, "news")
	grip := func(body string) {
		t.Helper()
		r := do(t, http.MethodPost, a.httpURL+"//publish/", strings.NewReader(body))
		if r.status != http.StatusOK {
			t.Fatalf("publish %s: %d %s", body, r.status, r.body)
		}
	}
	grip(`{"items":[{"channel":"news","http-stream":{"content":"data: s1\n\n"}}]}`)
	grip(`{"items":[{"channel":"news","ws-message":{"content":"w1"}}]}`)
	publish(t, a.httpURL, "news", "plain")
	grip(`{"items":[{"channel":"news","http-stream":{"action":"close"}}]}`)
	grip(`{"items":[{"channel":"news","ws-message":{"content":"w2"}}]}`)
	grip(`{"items":[{"channel":"news","ws-message":{"action":"close","code":4001,"reason":"bye"}}]}`)

	for _, want := range []string{"s1", "plain"} {
		if m, err := sse.next(ctx); err != nil || m != want {
			t.Fatalf("SSE got %q, %v; want %q", m, err, want)
		}
	}
	if ev, err := sse.event(); err != nil || ev["event"] != "close" || ev["data"] != "closed by the publisher" {
		t.Fatalf("SSE got %v, %v; want its close event", ev, err)
	}
	for _, sub := range []*wsSubscriber{ws, onServer} {
		for _, want := range []string{"w1", "plain", "w2"} {
			if m, err := sub.next(ctx); err != nil || m != want {
				t.Fatalf("%s got %q, %v; want %q", sub.name(), m, err, want)
			}
		}
		_, err := sub.next(ctx)
		if websocket.CloseStatus(err) != 4001 {
			t.Fatalf("%s: %v, want closed with 4001", sub.name(), err)
		}
	}
}

// Front-end errors of channels, each with its status and JSON body.
func TestChannelsErrors(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, func(c *tunnel.Config) {
		c.ChannelMaxMessage = 1 << 10
		c.Origins = []string{"*.example.com"}
	})
	// A client that never reaches a server: channels are unavailable.
	lone := startClient(t, p, "lone", listen(t).Addr().String(), nil)
	long := strings.Repeat("é", channels.MaxNameLen+1)
	cases := []struct {
		name        string
		method, url string
		body        string
		hdr         []string
		status      int
		code        string
	}{
		{"empty name", "GET", s.httpURL + "/channels/", "", nil, 404, "bad_path"},
		{"name too long", "GET", chanURL(s.httpURL, long), "", nil, 404, "bad_path"},
		{"name not UTF-8", "POST", s.httpURL + "/channels/%FF", "x", nil, 404, "bad_path"},
		{"method", "PUT", chanURL(s.httpURL, "c"), "x", nil, 405, "method_not_allowed"},
		{"body not UTF-8", "POST", chanURL(s.httpURL, "c"), "\xff\xfe", nil, 400, "bad_request"},
		{"body too large", "POST", chanURL(s.httpURL, "c"), strings.Repeat("x", 2<<10), nil, 413, "too_large"},
		{"foreign origin publishes", "POST", chanURL(s.httpURL, "c"), "x", []string{"Origin", "https://evil.test"}, 403, "forbidden"},
		{"foreign origin subscribes", "GET", chanURL(s.httpURL, "c"), "", []string{"Origin", "https://evil.test", "Accept", "text/event-stream"}, 403, "forbidden"},
		{"client not connected: publish", "POST", chanURL(lone.httpURL, "c"), "x", nil, 503, "peer_unavailable"},
		{"publish: not JSON", "POST", s.httpURL + "/publish/", "{", []string{"Content-Type", "application/json"}, 400, "bad_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, tc.url, strings.NewReader(tc.body), tc.hdr...)
			wantError(t, r, tc.status, tc.code)
		})
	}
	t.Run("allowed origin", func(t *testing.T) {
		r := do(t, "POST", chanURL(s.httpURL, "c"), strings.NewReader("x"), "Origin", "https://app.example.com")
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("empty message dropped", func(t *testing.T) {
		r := do(t, "POST", chanURL(s.httpURL, "c"), nil)
		if m := r.json(t); r.status != http.StatusOK || m["published"] != float64(0) || m["dropped"] != float64(1) {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("page", func(t *testing.T) {
		r := get(t, chanURL(s.httpURL, "<b>news</b>"))
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
			!strings.Contains(r.body, "&lt;b&gt;news&lt;/b&gt;") || !strings.Contains(r.body, "new WebSocket(") {
			t.Fatalf("page: %d %s\n%s", r.status, r.header.Get("Content-Type"), r.body)
		}
	})
	t.Run("foreign origin WebSocket", func(t *testing.T) {
		ctx := testCtx(t)
		_, resp, err := websocket.Dial(ctx, wsURL(s.httpURL, "c"), &websocket.DialOptions{
			HTTPHeader: http.Header{"Origin": {"https://evil.test"}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial from a foreign origin: %v, %v", resp, err)
		}
	})
}

// A front end shutting down ends its subscribers at once (going away),
// rather than waiting ShutdownTimeout for them.
func TestChannelsShutdownEndsSubscribers(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, func(c *tunnel.Config) { c.ShutdownTimeout = time.Hour })
	ctx := testCtx(t)
	ws := subscribeWS(t, ctx, s.httpURL, "c")
	sse := subscribeSSE(t, ctx, s.httpURL, "c")
	stopped := make(chan struct{})
	go func() { s.stop(); close(stopped) }()
	if _, err := ws.next(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("WebSocket subscriber: %v, want close 1001", err)
	}
	if ev, err := sse.event(); err != nil || ev["event"] != "close" {
		t.Fatalf("SSE subscriber: %v, %v; want a close event", ev, err)
	}
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("the node did not stop: it waits for its subscribers")
	}
}

// A client node whose relay falls too far behind (a slow link) is dropped
// by the server rather than slowing everyone or growing the server's
// memory: its subscribers are closed with the reason, and the node can
// subscribe again afterwards.
func TestChannelsSlowNodeRelayDropped(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	fp, err := faultproxy.New(s.tunnelAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fp.Close() })
	a := startClient(t, p, "alpha", fp.Addr(), nil)
	waitConnected(t, a, s)
	ctx := testCtx(t)
	ws := subscribeWS(t, ctx, a.httpURL, "c")
	fp.Throttle(1 << 20) // 1 MiB/s, while 24 MiB are published at once
	big := strings.Repeat("x", 60<<10)
	for range 400 {
		if err := s.Channels().Publish(ctx, &channels.Message{Channel: "c", Text: big}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		_, err := ws.next(ctx)
		if err == nil {
			continue
		}
		if websocket.CloseStatus(err) != websocket.StatusTryAgainLater || !strings.Contains(err.Error(), "dropped this node's relay") {
			t.Fatalf("subscriber on the slow node: %v, want close 1013 saying the relay was dropped", err)
		}
		break
	}
	fp.Throttle(0)
	ws = subscribeWS(t, ctx, a.httpURL, "c")
	publish(t, s.httpURL, "c", "after")
	if m, err := ws.next(ctx); err != nil || m != "after" {
		t.Fatalf("subscribing again: %q, %v", m, err)
	}
}

// A program that serves Frontend() with an http.Server of its own ends
// the front end's subscribers at its shutdown with CloseChannels, as
// ServeFrontend does; after it, the node takes no new subscriber.
func TestChannelsOwnHTTPServerCloseChannels(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	ctx := testCtx(t)
	ln := listen(t)
	hs := &http.Server{Handler: s.Frontend()}
	hs.RegisterOnShutdown(s.CloseChannels)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fe := "http://" + ln.Addr().String()
	ws := subscribeWS(t, ctx, fe, "c")
	sse := subscribeSSE(t, ctx, fe, "c")
	publish(t, fe, "c", "before")
	for _, sub := range []interface {
		next(context.Context) (string, error)
		name() string
	}{ws, sse} {
		if m, err := sub.next(ctx); err != nil || m != "before" {
			t.Fatalf("%s: %q, %v", sub.name(), m, err)
		}
	}
	stopped := make(chan error, 1)
	go func() { stopped <- hs.Shutdown(ctx) }()
	if _, err := ws.next(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("WebSocket subscriber: %v, want close 1001", err)
	}
	if ev, err := sse.event(); err != nil || ev["event"] != "close" {
		t.Fatalf("SSE subscriber: %v, %v; want a close event", ev, err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %v (it waited for a subscriber)", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := s.Channels().Subscribe(ctx, "c"); !errors.Is(err, channels.ErrShutdown) {
		t.Fatalf("Subscribe after CloseChannels: %v, want ErrShutdown", err)
	}
}
