package tunnel_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
	"github.com/restpipe/restpipe/tunnel/channels"
)

// A hostile peer: a client with a valid certificate that speaks the wire
// protocol by hand (TLS, yamux, the framing of events.Writer and Reader)
// and does what restpipe's own client never does.

// hostile is a hand-driven session with the server.
type hostile struct {
	t    testing.TB
	sess *yamux.Session
}

// dialHostile connects with id and sends hello (nil: an honest one); it
// returns the session and the server's answer.
func dialHostile(t testing.TB, addr string, id *certs.Identity, hello *events.Hello) (*hostile, *events.Hello) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: id.Pool, ServerName: "localhost",
		Certificates: []tls.Certificate{id.Certificate},
	})
	if err != nil {
		t.Fatal(err)
	}
	ycfg := yamux.DefaultConfig()
	ycfg.AcceptBacklog = 4096 // it opens more streams than it should
	ycfg.StreamOpenTimeout = 0
	ycfg.EnableKeepAlive = false
	ycfg.LogOutput = io.Discard
	sess, err := yamux.Client(conn, ycfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	if hello == nil {
		hello = &events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: id.Name()}
	}
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	w := events.NewWriter(st)
	defer w.Release()
	if err := w.WriteMessage(hello); err == nil {
		_ = w.Flush()
	}
	var answer events.Hello
	if err := events.NewReader(st).ReadMessage(&answer); err != nil {
		t.Fatalf("read the server's hello: %v", err)
	}
	return &hostile{t: t, sess: sess}, &answer
}

// open opens a stream and writes ev on it (with an empty body unless
// ev.ChannelRelay or a POST), flushed.
func (h *hostile) open(ev *events.Request) (*yamux.Stream, *events.Writer) {
	h.t.Helper()
	st, w, err := h.tryOpen(ev)
	if err != nil {
		h.t.Fatalf("write event: %v", err)
	}
	return st, w
}

// tryOpen is open that returns its error (a stream the server reset).
func (h *hostile) tryOpen(ev *events.Request) (*yamux.Stream, *events.Writer, error) {
	st, err := h.sess.OpenStream()
	if err != nil {
		return nil, nil, err
	}
	w := events.NewWriter(st)
	_ = st.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err = w.WriteMessage(ev)
	if err == nil && !ev.ChannelRelay && ev.Method != "POST" {
		err = w.EndBody("")
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		w.Release()
		st.Close()
		return nil, nil, err
	}
	return st, w, nil
}

// reply reads the reply of st, header and body.
func reply(t testing.TB, st *yamux.Stream) (*events.Reply, string) {
	t.Helper()
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := events.NewReader(st)
	defer r.Release()
	var rep events.Reply
	if err := r.ReadMessage(&rep); err != nil {
		t.Fatalf("read reply: %v", err)
	}
	var body strings.Builder
	if _, err := io.Copy(&body, r.Body()); err != nil {
		t.Fatalf("read reply body: %v", err)
	}
	return &rep, body.String()
}

// heapNow is the test process's live heap after a collection.
func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heapGrowth reports the live heap's growth since base, in MiB.
func heapGrowth(base uint64) float64 {
	now := heapNow()
	if now < base {
		return 0
	}
	return float64(now-base) / (1 << 20)
}

// warnLogs captures a node's log lines from info up (debug would log every
// event, and the capture's own memory would weigh in the measurements).
func warnLogs(c *logCapture) *slog.Logger {
	return slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// honestChannels checks that client c's channels still work through the
// server s: a subscriber on c gets what s publishes.
func honestChannels(t *testing.T, s *serverNode, c *clientNode, channel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := c.Channels().Subscribe(ctx, channel)
	if err != nil {
		t.Fatalf("honest subscribe: %v", err)
	}
	defer sub.Close()
	if err := s.Channels().Publish(ctx, &channels.Message{Channel: channel, Text: "still here"}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	m, err := sub.Next(ctx)
	if err != nil || m.Text != "still here" {
		t.Fatalf("honest subscriber: %v %v", m, err)
	}
	if r := get(t, c.httpURL+"/server/time"); r.status != 200 {
		t.Errorf("honest client's event: %d %s", r.status, r.body)
	}
}

// TestHostileRelayUnread: a client that floods its relay with publishes
// and never reads the acknowledgements has its relay dropped with the
// reason once they reach RelayQueueBytes; the server's heap stays under
// that bound, and another client's channels and events go on.
func TestHostileRelayUnread(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	const queue = 1 << 20
	s := startServer(t, p, func(cfg *tunnel.Config) {
		cfg.Logger = warnLogs(logs)
		cfg.RelayQueueBytes = queue
	})
	honest := startClient(t, p, "honest", s.tunnelAddr, nil)
	waitConnected(t, honest, s)
	honestChannels(t, s, honest, "before")

	frames := 100_000
	if !testing.Short() {
		frames = 1_000_000 // the 27 MB of frames
	}
	base := heapNow()
	h, _ := dialHostile(t, s.tunnelAddr, p.client(t, "mallory"), nil)
	st, w := h.open(&events.Request{Id: "channels", ChannelRelay: true})
	defer w.Release()
	sent := 0
	for ; sent < frames; sent++ {
		_ = st.SetWriteDeadline(time.Now().Add(2 * time.Second))
		err := w.WriteMessage(&events.ChannelFrame{Kind: events.ChannelFrame_PUBLISH, Seq: uint64(sent), Channel: "x", Text: "y"})
		if err == nil && sent%256 == 0 {
			err = w.Flush()
		}
		if err != nil {
			break // the server stopped reading: it dropped the relay
		}
	}
	grew := heapGrowth(base)
	t.Logf("sent %d frames; heap grew %.1f MiB", sent, grew)
	if limit := 4 * float64(queue) / (1 << 20); grew > limit {
		t.Errorf("heap grew %.1f MiB with a relay queue of %d bytes (want under %.0f MiB)", grew, queue, limit)
	}
	logs.wait(t, "channel relay dropped", "peer=mallory", "does not read")
	honestChannels(t, s, honest, "during")
}

// TestHostileSecondRelay: a session has one channel relay at a time.
func TestHostileSecondRelay(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = warnLogs(logs) })
	h, _ := dialHostile(t, s.tunnelAddr, p.client(t, "mallory"), nil)
	first, _ := h.open(&events.Request{Id: "channels", ChannelRelay: true})
	fr := events.NewReader(first)
	defer fr.Release()
	fw := events.NewWriter(first)
	defer fw.Release()
	subscribe := func(seq uint64) {
		t.Helper()
		_ = fw.WriteMessage(&events.ChannelFrame{Kind: events.ChannelFrame_SUBSCRIBE, Seq: seq, Channel: "a"})
		_ = fw.Flush()
		var ack events.ChannelFrame
		_ = first.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := fr.ReadMessage(&ack); err != nil || ack.Kind != events.ChannelFrame_ACK || ack.Seq != seq || ack.Error != "" {
			t.Fatalf("first relay: %v %v", &ack, err)
		}
	}
	subscribe(1) // the first is served
	second, _ := h.open(&events.Request{Id: "channels", ChannelRelay: true})
	logs.wait(t, "channel relay refused", "already open")
	_ = second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("second relay: read %v, want EOF", err)
	}
	subscribe(2) // and still works
}

// TestHostileSubscriptions: subscribes beyond MaxSubscriptions are
// refused in their acknowledgement, and cost the server nothing.
func TestHostileSubscriptions(t *testing.T) {
	p := newPKI(t)
	const max = 100
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.MaxSubscriptions = max })
	honest := startClient(t, p, "honest", s.tunnelAddr, nil)
	waitConnected(t, honest, s)

	n := 20_000
	if !testing.Short() {
		n = 300_000 // the flood
	}
	base := heapNow()
	h, _ := dialHostile(t, s.tunnelAddr, p.client(t, "mallory"), nil)
	st, w := h.open(&events.Request{Id: "channels", ChannelRelay: true})
	defer w.Release()
	refused := make(chan int, 1)
	go func() {
		r := events.NewReader(st)
		defer r.Release()
		bad, accepted := 0, 0
		defer func() {
			if accepted > 0 {
				t.Errorf("%d subscribes beyond the limit of %d accepted", accepted, max)
			}
		}()
		for i := 0; i < n; i++ {
			_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
			var ack events.ChannelFrame
			if err := r.ReadMessage(&ack); err != nil {
				break
			}
			if ack.Error != "" {
				if !strings.Contains(ack.Error, fmt.Sprintf("limit of %d channels", max)) {
					t.Errorf("refusal %q", ack.Error)
				}
				bad++
			} else if ack.Seq > max {
				accepted++
			}
		}
		refused <- bad
	}()
	for i := 1; i <= n; i++ {
		_ = st.SetWriteDeadline(time.Now().Add(10 * time.Second))
		err := w.WriteMessage(&events.ChannelFrame{Kind: events.ChannelFrame_SUBSCRIBE, Seq: uint64(i),
			Channel: fmt.Sprintf("channel-%07d-%s", i, strings.Repeat("x", 64))})
		if err == nil && i%256 == 0 {
			err = w.Flush()
		}
		if err != nil {
			t.Fatalf("subscribe %d: %v", i, err)
		}
	}
	_ = w.Flush()
	if got := <-refused; got != n-max {
		t.Errorf("%d subscribes refused, want %d", got, n-max)
	}
	grew := heapGrowth(base)
	t.Logf("%d subscribes: heap grew %.1f MiB", n, grew)
	if grew > 4 {
		t.Errorf("heap grew %.1f MiB for %d subscriptions allowed (want under 4 MiB)", grew, max)
	}
	honestChannels(t, s, honest, "news")
}

// untilEnd registers get_hang: it answers only once the test ends (or
// its caller goes). It returns how many are running.
func untilEnd(t *testing.T, reg *handlers.Registry) *atomic.Int32 {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var running atomic.Int32
	reg.MustHandle("get_hang", func(ctx context.Context, req *handlers.Request) (any, error) {
		running.Add(1)
		defer running.Add(-1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "done", nil
	})
	return &running
}

// TestHostileStreams: events beyond MaxStreams are answered 503
// peer_busy, logged (once a second at most, however many), and a second
// client keeps working; a client node's caller sees the 503 with its
// JSON code on its own front end.
func TestHostileStreams(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	const max = 4
	s := startServer(t, p, func(cfg *tunnel.Config) {
		cfg.Logger = warnLogs(logs)
		cfg.MaxStreams = max
	})
	hanging := untilEnd(t, s.reg)
	honest := startClient(t, p, "honest", s.tunnelAddr, nil)
	waitConnected(t, honest, s)

	t.Run("hostile peer", func(t *testing.T) {
		h, _ := dialHostile(t, s.tunnelAddr, p.client(t, "mallory"), nil)
		for i := range max {
			h.open(&events.Request{Id: fmt.Sprint("hang", i), Method: "GET", Noun: events.Bytes([]string{"hang"})})
		}
		// The peer closes each refused stream, as an honest one would,
		// so that it is not held off: all of these are answered.
		for i := range 50 {
			st, _ := h.open(&events.Request{Id: fmt.Sprint("more", i), Method: "GET", Noun: events.Bytes([]string{"time"})})
			rep, body := reply(t, st)
			st.Close()
			if rep.Status != http.StatusServiceUnavailable || rep.ErrorCode != handlers.CodePeerBusy ||
				!strings.Contains(body, `"code":"peer_busy"`) {
				t.Fatalf("event beyond the limit: %d %q %s", rep.Status, rep.ErrorCode, body)
			}
		}
		line := logs.wait(t, "event refused", "too many streams", "peer=mallory", fmt.Sprintf("limit=%d", max))
		if n := strings.Count(logs.String(), "event refused"); n > 3 {
			t.Errorf("%d log lines for 50 refusals in well under a second: not rate-limited", n)
		}
		t.Log(line)
		if r := get(t, honest.httpURL+"/server/time"); r.status != 200 {
			t.Errorf("honest client during the attack: %d %s", r.status, r.body)
		}
	})
	t.Run("front end", func(t *testing.T) {
		// The honest client's own callers hold as many events as the
		// server lets it (max, less the slot a client keeps for its
		// channel relay): the next ones wait for a slot, and one whose
		// deadline passes first gets 503 peer_busy from the client
		// node's front end. The server refuses none of them.
		var wg sync.WaitGroup
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer func() { cancel(); wg.Wait() }()
		waitFor(t, ctx, func() bool { return hanging.Load() == 0 }, "mallory's events to end with its session")
		for range max {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequestWithContext(ctx, "GET", honest.httpURL+"/server/hang", nil)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
		}
		waitFor(t, ctx, func() bool { return hanging.Load() == max-1 }, "the events to be in flight")
		r := get(t, honest.httpURL+"/server/time", tunnel.HeaderTimeout, "100ms")
		wantError(t, r, http.StatusServiceUnavailable, handlers.CodePeerBusy)
		if !strings.Contains(r.body, fmt.Sprintf("%d events in flight to server, its limit; waited", max-1)) {
			t.Errorf("error message %q", r.body)
		}
		if strings.Contains(logs.String(), `too many streams in flight" peer=honest`) {
			t.Errorf("the server refused the honest client:\n%s", logs)
		}
	})
}

// TestHostileStreamsHeap: a peer that opens stream after stream of
// never-ending uploads and never reads the replies nor closes a stream
// (to post_echo, whose replies stall; to a handler that does not exist,
// answered at once and then held open with the upload's junk) raises the
// server's heap by no more than the arithmetic of the README (MaxStreams
// x (2 windows + 768 KiB) + the streams held off, MaxStreams/2 +
// AcceptBacklog, at 512 KiB each), and a second client keeps working.
func TestHostileStreamsHeap(t *testing.T) {
	for _, noun := range []string{"echo", "nothere"} {
		t.Run(noun, func(t *testing.T) { hostileStreamsHeap(t, noun) })
	}
}

func hostileStreamsHeap(t *testing.T, noun string) {
	p := newPKI(t)
	logs := newLogCapture()
	d := tunnel.DefaultConfig()
	maxStreams, backlog, window, streams := 4, 8, uint32(256<<10), 200
	if !testing.Short() {
		maxStreams, backlog, window, streams = d.MaxStreams, d.AcceptBacklog, d.StreamWindow, 400
	}
	s := startServer(t, p, func(cfg *tunnel.Config) {
		cfg.Logger = warnLogs(logs)
		cfg.MaxStreams, cfg.AcceptBacklog, cfg.StreamWindow = maxStreams, backlog, window
	})
	honest := startClient(t, p, "honest", s.tunnelAddr, nil)
	waitConnected(t, honest, s)

	const mib = 1 << 20
	bound := float64(maxStreams)*(2*float64(window)+768<<10)/mib +
		float64(maxStreams/2+backlog)*0.5 +
		float64(streams)*4/1024 + // the attacker's own stream structs, in this process
		float64(maxStreams)*float64(256<<10)/mib // and the replies it receives and leaves unread
	base := heapNow()
	h, _ := dialHostile(t, s.tunnelAddr, p.client(t, "mallory"), nil)
	chunk := make([]byte, 64<<10)
	var wg sync.WaitGroup
	reset := 0
	for i := range streams {
		st, w, err := h.tryOpen(&events.Request{Id: fmt.Sprint("echo", i), Method: "POST", Noun: events.Bytes([]string{noun}), ContentLength: -1})
		if err != nil {
			reset++ // past the accept backlog, while held off
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Release()
			// Upload until the server stops reading (never-read replies
			// stall the echo; refused and held-off streams are never read).
			for {
				_ = st.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
				if w.WriteChunk(chunk) != nil || w.Flush() != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	grew := heapGrowth(base)
	t.Logf("%d streams (%d reset), MaxStreams %d, window %d KiB: heap grew %.1f MiB (bound %.1f MiB)",
		streams, reset, maxStreams, window>>10, grew, bound)
	if grew > bound {
		t.Errorf("heap grew %.1f MiB, over the bound of %.1f MiB", grew, bound)
	}
	// Refused (503 peer_busy), or held off if they all came at once.
	logs.wait(t, "peer=mallory", "streams=")
	if r := get(t, honest.httpURL+"/server/time"); r.status != 200 {
		t.Errorf("honest client during the attack: %d %s", r.status, r.body)
	}
	if r := get(t, s.httpURL+"/client/honest/time"); r.status != 200 {
		t.Errorf("event to the honest client during the attack: %d %s", r.status, r.body)
	}
}

// TestHostileHello: a hello whose fields are over their bounds or hold
// control characters is refused with the reason, before anything of it
// is kept or logged.
func TestHostileHello(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = warnLogs(logs) })
	id := p.client(t, "mallory")
	hello := func(version string) *events.Hello {
		return &events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: "mallory", SoftwareVersion: version}
	}
	for _, tc := range []struct {
		name  string
		hello *events.Hello
		want  string
	}{
		{"1 MiB version", hello(strings.Repeat("v", 1<<20-64)), "frame too large (1048527 bytes, the limit is 4096)"},
		{"long version", hello(strings.Repeat("v", 300)), "software version is 300 bytes, the limit is 256"},
		{"control characters", hello("1.0\x1b[2J\n"), "control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, answer := dialHostile(t, s.tunnelAddr, id, tc.hello)
			if !strings.Contains(answer.Error, tc.want) {
				t.Errorf("answer %q, want it to hold %q", answer.Error, tc.want)
			}
			logs.wait(t, "client refused", "mallory", tc.want)
			if len(s.Clients()) != 0 {
				t.Errorf("server lists %v", s.Clients())
			}
		})
	}
	if strings.Contains(logs.String(), strings.Repeat("v", 300)) {
		t.Error("the oversized version reached the log")
	}
	// An honest version is fine.
	_, answer := dialHostile(t, s.tunnelAddr, id, hello("v1.2.3-4-gabcdef-dirty"))
	if answer.Error != "" {
		t.Errorf("honest hello refused: %s", answer.Error)
	}
}

// TestHostileServerHello: a client refuses a server whose hello is over
// the bounds, and says why.
func TestHostileServerHello(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	ln := listen(t)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				tc := tls.Server(conn, p.server.ServerTLSConfig())
				sess, err := yamux.Server(tc, nil)
				if err != nil {
					return
				}
				defer sess.Close()
				st, err := sess.AcceptStream()
				if err != nil {
					return
				}
				var h events.Hello
				_ = events.NewReader(st).ReadMessage(&h)
				w := events.NewWriter(st)
				_ = w.WriteMessage(&events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: "server",
					SoftwareVersion: strings.Repeat("v", 100<<10)})
				_ = w.Flush()
				_, _ = io.Copy(io.Discard, st)
			}()
		}
	}()
	c := startClient(t, p, "c1", ln.Addr().String(), func(cfg *tunnel.Config) { cfg.Logger = warnLogs(logs) })
	logs.wait(t, "not connected to server", "read server hello", "frame too large")
	if _, ok := c.Server(); ok {
		t.Error("client connected to a server whose hello is over the bounds")
	}
}

// TestHostileEventHeader: an event whose header is over MaxEventHeader,
// or holds more than events.MaxHeaderFields values, is answered 431
// too_large without running; an honest caller's largest request still
// goes through.
func TestHostileEventHeader(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	ran := make(chan string, 10)
	s.reg.MustHandle("get_seen", func(_ context.Context, req *handlers.Request) (any, error) {
		ran <- req.ID
		return len(req.Header), nil
	})
	h, _ := dialHostile(t, s.tunnelAddr, p.client(t, "mallory"), nil)
	many := make([]*events.Header, 5000)
	for i := range many {
		many[i] = &events.Header{Name: "X"}
	}
	for _, tc := range []struct {
		name string
		ev   *events.Request
		want string
	}{
		{"200 KiB header", &events.Request{Id: "big", Method: "GET", Noun: events.Bytes([]string{"seen"}),
			Headers: []*events.Header{{Name: "X-Big", Values: events.Bytes([]string{strings.Repeat("a", 200<<10)})}}}, "the limit is 131072"},
		{"5000 headers", &events.Request{Id: "many", Method: "GET", Noun: events.Bytes([]string{"seen"}), Headers: many}, "the limit is 1024"},
		{"5000 arguments", &events.Request{Id: "args", Method: "GET", Noun: events.Bytes([]string{"seen"}), Args: events.Bytes(make([]string, 5000))}, "the limit is 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := h.open(tc.ev)
			rep, body := reply(t, st)
			st.Close()
			if rep.Status != http.StatusRequestHeaderFieldsTooLarge || rep.ErrorCode != handlers.CodeTooLarge {
				t.Errorf("reply %d %q, want 431 too_large", rep.Status, rep.ErrorCode)
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("body %q, want it to hold %q", body, tc.want)
			}
		})
	}
	select {
	case id := <-ran:
		t.Errorf("the handler ran for %s", id)
	default:
	}

	// Through real nodes: a request with 60 KiB of headers (under the
	// front end's 64 KiB) reaches the handler.
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	if r := get(t, c.httpURL+"/server/seen", "X-Big", strings.Repeat("b", 60<<10)); r.status != 200 {
		t.Errorf("60 KiB of headers: %d %s", r.status, r.body)
	}
}

// String is everything logged so far.
func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// TestHostilePingFlood: a peer that floods pings and never reads the
// answers (yamux answers each from a goroutine of its own, which waits up
// to WriteTimeout to send) has its session closed, and costs the server
// no pile of goroutines.
func TestHostilePingFlood(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = warnLogs(logs) })
	honest := startClient(t, p, "honest", s.tunnelAddr, nil)
	waitConnected(t, honest, s)
	id := p.client(t, "mallory")
	conn, err := tls.Dial("tcp", s.tunnelAddr, &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: id.Pool, ServerName: "localhost",
		Certificates: []tls.Certificate{id.Certificate},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// yamux by hand: stream 1 opened with the hello, then pings; nothing is
	// ever read.
	frame := func(typ byte, flags uint16, stream, length uint32) []byte {
		return []byte{0, typ, byte(flags >> 8), byte(flags), byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream),
			byte(length >> 24), byte(length >> 16), byte(length >> 8), byte(length)}
	}
	var hello strings.Builder
	hw := events.NewWriter(&hello)
	_ = hw.WriteMessage(&events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: "mallory"})
	_ = hw.Flush()
	hw.Release()
	msg := append(frame(0, 1, 1, uint32(hello.Len())), hello.String()...)
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, context.Background(), func() bool {
		for _, c := range s.Clients() {
			if c.Name == "mallory" {
				return true
			}
		}
		return false
	}, "mallory to be connected")
	before := runtime.NumGoroutine()
	pings := make([]byte, 0, 12*100_000)
	for i := range 100_000 {
		pings = append(pings, frame(2, 1, 0, uint32(i))...)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write(pings) // fails once the server closes
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(s.Clients()) > 1 && ctx.Err() == nil {
		runtime.Gosched() // until the server drops mallory
	}
	grew := runtime.NumGoroutine() - before
	t.Logf("goroutines: %d more", grew)
	if grew > 1000 {
		t.Errorf("a ping flood left %d more goroutines", grew)
	}
	if len(s.Clients()) > 1 {
		t.Fatalf("the flooding session is still up: %v", s.Clients())
	}
	t.Log(logs.wait(t, "mallory", "ping flood"))
	if r := get(t, honest.httpURL+"/server/time"); r.status != 200 {
		t.Errorf("honest client: %d %s", r.status, r.body)
	}
}

// TestHostileStreamNotItsOwn: a peer speaking yamux by hand that opens a
// stream with an id of the server's own parity (yamux would take it as
// a new stream, and the server opens that id itself) has its session
// ended with the reason; the honest client is still served.
func TestHostileStreamNotItsOwn(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = warnLogs(logs) })
	honest := startClient(t, p, "honest", s.tunnelAddr, nil)
	waitConnected(t, honest, s)
	id := p.client(t, "mallory")
	conn, err := tls.Dial("tcp", s.tunnelAddr, &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: id.Pool, ServerName: "localhost",
		Certificates: []tls.Certificate{id.Certificate},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frame := func(typ byte, flags uint16, stream, length uint32) []byte {
		return []byte{0, typ, byte(flags >> 8), byte(flags), byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream),
			byte(length >> 24), byte(length >> 16), byte(length >> 8), byte(length)}
	}
	var hello strings.Builder
	hw := events.NewWriter(&hello)
	_ = hw.WriteMessage(&events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: "mallory"})
	_ = hw.Flush()
	hw.Release()
	if _, err := conn.Write(append(frame(0, 1, 1, uint32(hello.Len())), hello.String()...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, context.Background(), func() bool { return len(s.Clients()) == 2 }, "mallory to be connected")
	if _, err := conn.Write(frame(1, 1, 2, 0)); err != nil { // SYN on stream 2: the server's
		t.Fatal(err)
	}
	waitFor(t, context.Background(), func() bool { return len(s.Clients()) == 1 }, "mallory to be dropped")
	t.Log(logs.wait(t, "mallory", "an id that is not its own"))
	if r := get(t, honest.httpURL+"/server/time"); r.status != 200 {
		t.Errorf("honest client: %d %s", r.status, r.body)
	}
}
