package tunnel_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// rulesServer runs a server whose access rules are specs, with client
// node c1 connected (its own tweak applied).
func rulesServer(t *testing.T, specs []string, clientTweak func(*tunnel.Config)) (*serverNode, *clientNode) {
	t.Helper()
	p := newPKI(t)
	s := startServer(t, p, nil)
	rules, err := handlers.ParseRules(specs)
	if err != nil {
		t.Fatal(err)
	}
	s.reg.SetAuth(rules.Auth)
	c1 := startClient(t, p, "c1", s.tunnelAddr, clientTweak)
	waitConnected(t, c1, s)
	return s, c1
}

// doRefused is do for a request that should be refused at once: it
// fails the test within seconds, rather than hanging, when the request
// is served instead (a subscription stays open).
func doRefused(t *testing.T, method, url string, body io.Reader, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: status %d, then %v: served, not refused", method, url, resp.StatusCode, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(b), length: resp.ContentLength}
}

// wsUpgrade asks for a WebSocket upgrade with a plain HTTP client, so
// that a refusal's status and body can be read as they are.
func wsUpgrade(t *testing.T, httpURL, channel string) result {
	t.Helper()
	return doRefused(t, http.MethodGet, chanURL(httpURL, channel), nil, "Connection", "Upgrade", "Upgrade", "websocket",
		"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
}

// wantForbidden checks a 403 forbidden whose message names the channel.
func wantForbidden(t *testing.T, r result, channel string) {
	t.Helper()
	wantError(t, r, http.StatusForbidden, handlers.CodeForbidden)
	if msg, _ := r.json(t)["error"].(string); !strings.Contains(msg, `"`+channel+`"`) || !strings.Contains(msg, `"c1"`) {
		t.Errorf("message %q should name node c1 and channel %q", msg, channel)
	}
}

// The case: a server with rules for c1 that say nothing of
// tenantB-orders. c1's subscribers and publishers of it are refused
// with 403 forbidden on c1's own front end, in every form (WebSocket
// before the upgrade, SSE, POST, GRIP); tenantA-* works; the server's
// own front end is not checked; nothing c1 tried reached anyone.
func TestChannelRulesOnClientFrontEnd(t *testing.T) {
	s, c1 := rulesServer(t, []string{"c1=get_time,channel:tenantA-*"}, nil)
	ctx := testCtx(t)
	const forbidden = "tenantB-orders"
	// The server's own callers act as the server: not checked.
	watchB := subscribeWS(t, ctx, s.httpURL, forbidden)

	// Allowed: tenantA-*, '/' included.
	for _, ch := range []string{"tenantA-x", "tenantA-eu/orders"} {
		ws := subscribeWS(t, ctx, c1.httpURL, ch)
		sse := subscribeSSE(t, ctx, c1.httpURL, ch)
		publish(t, c1.httpURL, ch, "hello "+ch)
		for _, sub := range []subscriber{ws, sse} {
			if m, err := sub.next(ctx); err != nil || m != "hello "+ch {
				t.Fatalf("%s on %s: %q, %v", sub.name(), ch, m, err)
			}
		}
	}

	t.Run("WebSocket refused before the upgrade", func(t *testing.T) {
		r := wsUpgrade(t, c1.httpURL, forbidden)
		wantForbidden(t, r, forbidden)
		if !strings.Contains(r.body, "subscribe") {
			t.Errorf("message %q should say subscribe", r.body)
		}
		_, resp, err := websocket.Dial(ctx, wsURL(c1.httpURL, forbidden), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("WebSocket dial: %v, %v; want a 403", resp, err)
		}
	})
	t.Run("SSE", func(t *testing.T) {
		wantForbidden(t, doRefused(t, http.MethodGet, chanURL(c1.httpURL, forbidden), nil, "Accept", "text/event-stream"), forbidden)
	})
	t.Run("POST", func(t *testing.T) {
		r := do(t, http.MethodPost, chanURL(c1.httpURL, forbidden), strings.NewReader("stolen"))
		wantForbidden(t, r, forbidden)
		if !strings.Contains(r.body, "publish") {
			t.Errorf("message %q should say publish", r.body)
		}
	})
	t.Run("GRIP names the refused items", func(t *testing.T) {
		ws := subscribeWS(t, ctx, c1.httpURL, "tenantA-x")
		body := `{"items":[
		  {"channel":"tenantA-x","formats":{"ws-message":{"content":"one"}}},
		  {"channel":"tenantB-orders","formats":{"ws-message":{"content":"stolen"}}},
		  {"channel":"tenantA-x","formats":{"ws-message":{"content":"two"}}},
		  {"channel":"tenantB-x","formats":{"ws-message":{"content":"stolen"}}}]}`
		r := do(t, http.MethodPost, c1.httpURL+"/publish/", strings.NewReader(body), "Content-Type", "application/json")
		wantError(t, r, http.StatusForbidden, handlers.CodeForbidden)
		var res struct {
			Published int `json:"published"`
			Refused   []struct {
				Item    int    `json:"item"`
				Channel string `json:"channel"`
				Error   string `json:"error"`
			} `json:"refused"`
		}
		if err := json.Unmarshal([]byte(r.body), &res); err != nil {
			t.Fatal(err)
		}
		if res.Published != 2 || len(res.Refused) != 2 || res.Refused[0].Item != 1 || res.Refused[0].Channel != "tenantB-orders" ||
			res.Refused[1].Item != 3 || !strings.Contains(res.Refused[0].Error, "may not publish") {
			t.Fatalf("GRIP answer %s: want 2 published, items 1 and 3 refused", r.body)
		}
		for _, want := range []string{"one", "two"} {
			if m, err := ws.next(ctx); err != nil || m != want {
				t.Fatalf("allowed items: %q, %v; want %q", m, err, want)
			}
		}
	})

	// Nothing c1 tried reached tenantB-orders: the server's subscriber's
	// first message is the server's own.
	publish(t, s.httpURL, forbidden, "from the server")
	if m, err := watchB.next(ctx); err != nil || m != "from the server" {
		t.Fatalf("server's subscriber of %s got %q, %v first", forbidden, m, err)
	}
	// And the server's own front end subscribes anywhere.
	sse := subscribeSSE(t, ctx, s.httpURL, "anything/else")
	publish(t, s.httpURL, "anything/else", "ok")
	if m, err := sse.next(ctx); err != nil || m != "ok" {
		t.Fatalf("server's own subscriber: %q, %v", m, err)
	}
}

// A WebSocket subscriber allowed to subscribe but not to publish is
// closed with 1008 and the reason when it publishes; what it sent
// reaches nobody.
func TestChannelRulesWebSocketPublish(t *testing.T) {
	s, c1 := rulesServer(t, []string{"c1=subscribe:ro-*"}, nil)
	ctx := testCtx(t)
	onServer := subscribeWS(t, ctx, s.httpURL, "ro-news")
	ws := subscribeWS(t, ctx, c1.httpURL, "ro-news")
	publish(t, s.httpURL, "ro-news", "read me")
	if m, err := ws.next(ctx); err != nil || m != "read me" {
		t.Fatalf("subscriber: %q, %v", m, err)
	}
	if err := ws.c.Write(ctx, websocket.MessageText, []byte("write me")); err != nil {
		t.Fatal(err)
	}
	_, err := ws.next(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation || !strings.Contains(err.Error(), "may not publish") {
		t.Fatalf("after a refused publish: %v, want close 1008 saying so", err)
	}
	wantForbidden(t, do(t, http.MethodPost, chanURL(c1.httpURL, "ro-news"), strings.NewReader("x")), "ro-news")
	if m, err := onServer.next(ctx); err != nil || m != "read me" {
		t.Fatalf("server's subscriber: %q, %v", m, err)
	}
	publish(t, s.httpURL, "ro-news", "next")
	if m, err := onServer.next(ctx); err != nil || m != "next" {
		t.Fatalf("server's subscriber got %q, %v; the refused publish reached it?", m, err)
	}
}

// The external auth service is asked about every subscribe and publish
// of a client node, as X-Original-URI /channels/NAME and
// X-Original-Method SUBSCRIBE or PUBLISH; its 403 and its reason reach
// the client node's caller; an X-Rewrite refuses.
func TestChannelExternalAuth(t *testing.T) {
	type ask struct{ uri, method, peer string }
	asked := make(chan ask, 100)
	svc := newAuthService(t, func(w http.ResponseWriter, r *http.Request) {
		asked <- ask{r.Header.Get("X-Original-URI"), r.Header.Get("X-Original-Method"), r.Header.Get("X-Restpipe-Peer")}
		switch uri := r.Header.Get("X-Original-URI"); {
		case uri == "/channels/rewrite-me":
			w.Header().Set("X-Rewrite", "/time")
			w.WriteHeader(http.StatusNoContent)
		case strings.HasPrefix(uri, "/channels/tenantA-"):
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "tenant A only")
		}
	})
	p := newPKI(t)
	s := startServer(t, p, nil)
	ext, err := handlers.NewExternalAuth(svc, 2*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.reg.SetAuth(ext.Auth)
	c1 := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c1, s)
	ctx := testCtx(t)
	wantAsked := func(want ask) {
		t.Helper()
		select {
		case got := <-asked:
			if got != want {
				t.Fatalf("auth service asked %+v, want %+v", got, want)
			}
		case <-time.After(5 * time.Second): // it was asked before the answer, if at all
			t.Fatalf("auth service not asked %+v", want)
		}
	}

	ws := subscribeWS(t, ctx, c1.httpURL, "tenantA-x y")
	wantAsked(ask{"/channels/tenantA-x%20y", "SUBSCRIBE", "c1"})
	publish(t, c1.httpURL, "tenantA-x y", "hi")
	wantAsked(ask{"/channels/tenantA-x%20y", "PUBLISH", "c1"})
	if m, err := ws.next(ctx); err != nil || m != "hi" {
		t.Fatalf("subscriber: %q, %v", m, err)
	}

	r := doRefused(t, http.MethodGet, chanURL(c1.httpURL, "tenantB-orders"), nil, "Accept", "text/event-stream")
	wantAsked(ask{"/channels/tenantB-orders", "SUBSCRIBE", "c1"})
	wantForbidden(t, r, "tenantB-orders")
	if !strings.Contains(r.body, "tenant A only") {
		t.Errorf("the auth service's reason is not passed on: %s", r.body)
	}
	r = do(t, http.MethodPost, chanURL(c1.httpURL, "tenantB-orders"), strings.NewReader("x"))
	wantAsked(ask{"/channels/tenantB-orders", "PUBLISH", "c1"})
	wantForbidden(t, r, "tenantB-orders")

	r = wsUpgrade(t, c1.httpURL, "rewrite-me")
	wantAsked(ask{"/channels/rewrite-me", "SUBSCRIBE", "c1"})
	wantForbidden(t, r, "rewrite-me")
	if !strings.Contains(r.body, "rewrit") {
		t.Errorf("the refusal should say it is for the rewrite: %s", r.body)
	}

	// The server's own front end is not asked.
	publish(t, s.httpURL, "tenantB-orders", "x")
	select {
	case a := <-asked:
		t.Fatalf("the server's own publish was asked about: %+v", a)
	default:
	}
}

// newAuthService runs an external auth service and returns its URL.
func newAuthService(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/auth"
}

// relayPeer is a hostile client node: a valid certificate, then the
// relay protocol spoken by hand.
type relayPeer struct {
	w *events.Writer
	r *events.Reader
}

func openRelay(t *testing.T, s *serverNode, id string, p *pki) *relayPeer {
	t.Helper()
	sess := rawSession(t, s.tunnelAddr, p.client(t, id))
	hello, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	hw := events.NewWriter(hello)
	if err := hw.WriteMessage(&events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: id}); err != nil {
		t.Fatal(err)
	}
	if err := hw.Flush(); err != nil {
		t.Fatal(err)
	}
	var answer events.Hello
	_ = hello.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := events.NewReader(hello).ReadMessage(&answer); err != nil || answer.Error != "" {
		t.Fatalf("hello: %v %q", err, answer.Error)
	}
	hello.Close()
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetReadDeadline(time.Now().Add(20 * time.Second))
	rp := &relayPeer{w: events.NewWriter(st), r: events.NewReader(st)}
	rp.send(t, &events.Request{Id: "channels", ChannelRelay: true})
	return rp
}

func (rp *relayPeer) send(t *testing.T, msgs ...proto.Message) {
	t.Helper()
	for _, m := range msgs {
		if err := rp.w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := rp.w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func (rp *relayPeer) next(t *testing.T) *events.ChannelFrame {
	t.Helper()
	var f events.ChannelFrame
	if err := rp.r.ReadMessage(&f); err != nil {
		t.Fatalf("read a frame: %v", err)
	}
	return &f
}

// A hostile client node that speaks the relay protocol itself, without
// waiting for answers, is refused every subscribe and publish the rules
// do not allow: its ACKs say 403 forbidden, it receives none of the
// forbidden channel's messages, and its publishes reach nobody.
func TestChannelRulesHostilePeer(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	rules, err := handlers.ParseRules([]string{"c1=channel:tenantA-*"})
	if err != nil {
		t.Fatal(err)
	}
	s.reg.SetAuth(rules.Auth)
	ctx := testCtx(t)
	watchB := subscribeWS(t, ctx, s.httpURL, "tenantB-orders")
	rp := openRelay(t, s, "c1", p)
	sub := events.ChannelFrame_SUBSCRIBE
	pub := events.ChannelFrame_PUBLISH
	rp.send(t,
		&events.ChannelFrame{Kind: sub, Seq: 1, Channel: "tenantB-orders"},
		&events.ChannelFrame{Kind: pub, Seq: 2, Channel: "tenantB-orders", Text: "stolen"},
		&events.ChannelFrame{Kind: sub, Seq: 3, Channel: "tenantA-x"},
		&events.ChannelFrame{Kind: pub, Seq: 4, Channel: "tenantB-orders/../x", Text: "stolen"},
	)
	for _, want := range []struct {
		seq     uint64
		refused bool
	}{{1, true}, {2, true}, {3, false}, {4, true}} {
		f := rp.next(t)
		switch {
		case f.Kind != events.ChannelFrame_ACK || f.Seq != want.seq:
			t.Fatalf("got %v seq %d, want the ACK of %d", f.Kind, f.Seq, want.seq)
		case want.refused && (f.Status != 403 || f.Code != "forbidden" || !strings.Contains(f.Error, "c1")):
			t.Fatalf("ACK %d: status %d code %q error %q; want a 403 forbidden refusal", f.Seq, f.Status, f.Code, f.Error)
		case !want.refused && (f.Error != "" || f.Code != ""):
			t.Fatalf("ACK %d refused %q: it is allowed", f.Seq, f.Error)
		}
	}
	// Published on the server: the forbidden channel first. The hostile
	// peer's first message is tenantA-x's.
	for _, m := range []struct{ ch, text string }{{"tenantB-orders", "secret"}, {"tenantA-x", "public"}} {
		publish(t, s.httpURL, m.ch, m.text)
	}
	if f := rp.next(t); f.Kind != events.ChannelFrame_MESSAGE || f.Channel != "tenantA-x" || f.Text != "public" {
		t.Fatalf("hostile peer got %v %q %q first: the forbidden channel leaked", f.Kind, f.Channel, f.Text)
	}
	// Its publish reached nobody: the server's subscriber's first message
	// is the server's own.
	if m, err := watchB.next(ctx); err != nil || m != "secret" {
		t.Fatalf("server's subscriber got %q, %v first", m, err)
	}
}

// With no rule (an empty --allow), every node uses every channel, as
// before there were channel rules.
func TestChannelNoRulesAllowsAll(t *testing.T) {
	s, c1 := rulesServer(t, nil, nil)
	ctx := testCtx(t)
	ws := subscribeWS(t, ctx, c1.httpURL, "tenantB-orders")
	publish(t, c1.httpURL, "tenantB-orders", "anyone")
	if m, err := ws.next(ctx); err != nil || m != "anyone" {
		t.Fatalf("%q, %v", m, err)
	}
	publish(t, s.httpURL, "tenantB-orders", "server")
	if m, err := ws.next(ctx); err != nil || m != "server" {
		t.Fatalf("%q, %v", m, err)
	}
}

// When the rules change (a reload), Server.RecheckChannels ends the live
// subscriptions they no longer allow: the client node's subscribers are
// closed with the reason, the others stay, and a peer that ignores the
// news receives nothing more of the channel.
func TestChannelRulesRecheck(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	setRules := func(specs ...string) {
		rules, err := handlers.ParseRules(specs)
		if err != nil {
			t.Fatal(err)
		}
		s.reg.SetAuth(rules.Auth)
	}
	setRules("c1=channel:*", "c2=channel:*")
	c1 := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c1, s)
	ctx := testCtx(t)
	wsB := subscribeWS(t, ctx, c1.httpURL, "tenantB-orders")
	sseB := subscribeSSE(t, ctx, c1.httpURL, "tenantB-orders")
	wsA := subscribeWS(t, ctx, c1.httpURL, "tenantA-x")
	rp := openRelay(t, s, "c2", p)
	rp.send(t, &events.ChannelFrame{Kind: events.ChannelFrame_SUBSCRIBE, Seq: 1, Channel: "tenantB-orders"})
	if f := rp.next(t); f.Kind != events.ChannelFrame_ACK || f.Error != "" {
		t.Fatalf("c2's subscribe: %v %q", f.Kind, f.Error)
	}

	setRules("c1=channel:tenantA-*", "c2=channel:tenantA-*")
	if n := s.RecheckChannels(); n != 2 {
		t.Fatalf("RecheckChannels ended %d subscriptions, want 2 (c1's and c2's tenantB-orders)", n)
	}
	_, err := wsB.next(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation || !strings.Contains(err.Error(), "may not subscribe") {
		t.Fatalf("WebSocket subscriber of tenantB-orders: %v, want close 1008 saying why", err)
	}
	if ev, err := sseB.event(); err != nil || ev["event"] != "close" || !strings.Contains(ev["data"], "may not subscribe") {
		t.Fatalf("SSE subscriber of tenantB-orders: %v, %v; want a close event saying why", ev, err)
	}
	if f := rp.next(t); f.Kind != events.ChannelFrame_REFUSED || f.Channel != "tenantB-orders" || f.Code != "forbidden" {
		t.Fatalf("c2 got %v %q %q, want REFUSED forbidden", f.Kind, f.Channel, f.Code)
	}
	publish(t, s.httpURL, "tenantB-orders", "secret")
	publish(t, s.httpURL, "tenantA-x", "still here")
	if m, err := wsA.next(ctx); err != nil || m != "still here" {
		t.Fatalf("tenantA-x subscriber: %q, %v", m, err)
	}
	wantForbidden(t, doRefused(t, http.MethodGet, chanURL(c1.httpURL, "tenantB-orders"), nil, "Accept", "text/event-stream"), "tenantB-orders")
	// c2 ignored the REFUSED: it gets nothing of tenantB-orders.
	rp.send(t, &events.ChannelFrame{Kind: events.ChannelFrame_SUBSCRIBE, Seq: 2, Channel: "tenantA-x"})
	if f := rp.next(t); f.Kind != events.ChannelFrame_ACK || f.Seq != 2 || f.Error != "" {
		t.Fatalf("c2: %v %d %q, want the ACK of its tenantA-x subscribe", f.Kind, f.Seq, f.Error)
	}
	publish(t, s.httpURL, "tenantB-orders", "secret")
	publish(t, s.httpURL, "tenantA-x", "public")
	if f := rp.next(t); f.Kind != events.ChannelFrame_MESSAGE || f.Channel != "tenantA-x" {
		t.Fatalf("c2 got %v %q: the ended subscription still delivers", f.Kind, f.Channel)
	}
}
