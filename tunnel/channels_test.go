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
		case line == "", strings.HasPrefix(line, ":"):
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
