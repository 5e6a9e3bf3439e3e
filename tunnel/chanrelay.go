package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/protobuf/proto"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel/channels"
	"github.com/restpipe/restpipe/tunnel/internal/hub"
)

// The channel relay: at most one stream per session, opened by the client
// the first time one of its front end's callers subscribes or publishes,
// carrying events.ChannelFrame messages both ways until the session ends.
// The server is the one place where a channel's messages get their order:
// a client's publish goes to the server, which delivers it to its own
// subscribers and to the relays of the clients that subscribed to the
// channel, all under one lock (hub.Hub.Deliver), and acknowledges it.

// frameOverhead is what a queued frame costs besides its encoded size
// (the message struct, its slot in the queue), counted in a queue's bytes:
// a flood of small acknowledgements is bounded by its memory, not by its
// few bytes on the wire.
const frameOverhead = 256

// frameQueue holds the frames waiting for a relay's writer, up to limit
// bytes (Config.RelayQueueBytes).
type frameQueue struct {
	limit  int64
	mu     sync.Mutex
	frames []queuedFrame
	bytes  int64
	closed bool
	last   *events.ChannelFrame // written after the rest, once closed
	wake   chan struct{}        // one token: frames or close to look at
}

// queuedFrame is a frame with its size, counted in the queue's bytes.
type queuedFrame struct {
	f *events.ChannelFrame
	n int64
}

func newFrameQueue(limit int64) *frameQueue {
	return &frameQueue{limit: limit, wake: make(chan struct{}, 1)}
}

// push queues f. Unless force is set (a client's own control frames), it
// refuses a frame that would put the queue over its limit. It returns
// false once the queue is closed.
func (q *frameQueue) push(f *events.ChannelFrame, force bool) bool {
	n := int64(proto.Size(f)) + frameOverhead
	q.mu.Lock()
	if q.closed || !force && q.bytes+n > q.limit {
		q.mu.Unlock()
		return false
	}
	q.frames = append(q.frames, queuedFrame{f, n})
	q.bytes += n
	q.mu.Unlock()
	q.signal()
	return true
}

// close stops the queue: what is queued is discarded, and last (if not
// nil) is the writer's final frame. Only the first close counts.
func (q *frameQueue) close(last *events.ChannelFrame) {
	q.mu.Lock()
	if !q.closed {
		q.closed, q.last, q.frames, q.bytes = true, last, nil, 0
	}
	q.mu.Unlock()
	q.signal()
}

// sent tells the queue that qf, taken from it, was written.
func (q *frameQueue) sent(qf queuedFrame) {
	q.mu.Lock()
	q.bytes -= qf.n
	q.mu.Unlock()
}

func (q *frameQueue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

func (q *frameQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take waits for frames and returns them all; after close, it returns the
// last frame (if any) and done. The frames count against the queue's
// bound until sent is called for each.
func (q *frameQueue) take() (frames []queuedFrame, done bool) {
	for {
		q.mu.Lock()
		if q.closed {
			last := q.last
			q.last = nil
			q.mu.Unlock()
			if last != nil {
				return []queuedFrame{{f: last}}, true
			}
			return nil, true
		}
		if len(q.frames) > 0 {
			// q.bytes still counts them until the writer calls sent.
			frames, q.frames = q.frames, nil
			q.mu.Unlock()
			return frames, false
		}
		q.mu.Unlock()
		<-q.wake
	}
}

// writeFrames writes what q holds onto st until q is closed or a write
// fails. Each frame must go out within timeout (a relay that makes
// progress is never cut, however long its backlog); once q is closed,
// the backlog is abandoned for the last frame. The caller half-closes
// st: the server only once it takes a new relay, since the client opens
// one as soon as this one's FIN has freed its slot (pacing.go).
func writeFrames(st *yamux.Stream, q *frameQueue, timeout time.Duration) error {
	w := events.NewWriter(st)
	defer w.Release()
	for {
		frames, done := q.take()
		for _, qf := range frames {
			if !done && q.isClosed() {
				break
			}
			_ = st.SetWriteDeadline(time.Now().Add(timeout))
			if err := w.WriteMessage(qf.f); err != nil {
				return err
			}
			q.sent(qf)
		}
		if len(frames) > 0 {
			_ = st.SetWriteDeadline(time.Now().Add(timeout))
			if err := w.Flush(); err != nil {
				return fmt.Errorf("write channel frames: %w", err)
			}
		}
		if done {
			return nil
		}
	}
}

// frameMessage is the message a PUBLISH or MESSAGE frame carries. Its
// kinds and close code are as sent: checkFrameMessage says whether they
// are valid.
func frameMessage(f *events.ChannelFrame) *channels.Message {
	return &channels.Message{Channel: f.Channel, Text: f.Text, Stream: f.Stream, ID: f.Id,
		To: channels.Kinds(min(f.Formats, 0xff)), Close: f.Close, CloseCode: int(min(f.CloseCode, 1<<16)), CloseReason: f.CloseReason}
}

// messageFrame is the frame of m. What checkFrameMessage would refuse
// (a Go program's Message may hold anything) is left out rather than
// sent: unknown kinds, a close code nobody may send, a close reason over
// a close frame, a close's text.
func messageFrame(kind events.ChannelFrame_Kind, seq uint64, m *channels.Message) *events.ChannelFrame {
	f := &events.ChannelFrame{Kind: kind, Seq: seq, Channel: m.Channel, Text: m.Text, Stream: m.Stream, Id: m.ID,
		Formats: uint32(m.To & (channels.ToWebSocket | channels.ToEvents))}
	if m.Close {
		f.Close, f.Text, f.Stream = true, "", ""
		if channels.ValidCloseCode(m.CloseCode) {
			f.CloseCode = uint32(m.CloseCode)
		}
		if len(m.CloseReason) <= 123 {
			f.CloseReason = m.CloseReason
		}
	}
	return f
}

// checkFrameMessage checks the kinds and the close of a message a peer
// sent in f: a subscriber must never be handed a close frame nobody may
// send, nor a kind that does not exist.
func checkFrameMessage(f *events.ChannelFrame) error {
	switch {
	case f.Formats&^uint32(channels.ToWebSocket|channels.ToEvents) != 0:
		return fmt.Errorf("formats %#x: only bits 1 (WebSocket) and 2 (Server-Sent Events) exist", f.Formats)
	case f.CloseCode != 0 && (f.CloseCode > 4999 || !channels.ValidCloseCode(int(f.CloseCode))):
		return fmt.Errorf("close code %d is not one a server may send", f.CloseCode)
	case len(f.CloseReason) > 123:
		return fmt.Errorf("close reason of %d bytes: a close frame holds 123", len(f.CloseReason))
	case f.Close && (f.Text != "" || f.Stream != ""):
		return errors.New("a close carries no message")
	}
	return nil
}

// ChannelAuthorizer decides, on the server, whether a client node may
// subscribe or publish to a channel: the server asks it about every
// SUBSCRIBE and PUBLISH a client sends on its relay (req.Method
// handlers.ChannelSubscribe or handlers.ChannelPublish, req.Channel, and
// req.Peer the client's certificate name). nil allows; an error refuses,
// and a *handlers.Error's Status and Code are what the client's front end
// answers with (403 forbidden otherwise). *handlers.Registry is one: its
// Auth hook decides. When Config.Dispatcher is not one, every client may use
// every channel. The server's own front end and Server.Channels are never
// asked: their callers act as the server.
type ChannelAuthorizer interface {
	// AuthorizeChannel allows (nil) or refuses req, a client node's
	// subscribe or publish.
	AuthorizeChannel(ctx context.Context, req *handlers.Request) error
}

// serverRelay is the server's end of a client's relay: a hub.Sink
// attached to the server's hub for each channel the client subscribed to.
type serverRelay struct {
	p      *peer
	hub    *hub.Hub
	st     *yamux.Stream
	q      *frameQueue
	maxMsg int64
	authz  ChannelAuthorizer // nil: every channel allowed
	once   sync.Once         // Drop's
	// decide is held while a subscribe is decided and applied, so that a
	// recheck sees every subscription the rules allowed. It guards subs.
	decide sync.Mutex

	// subs are the channels the client subscribed to, at most maxSubs.
	subs    map[string]struct{}
	maxSubs int
}

// authorize asks r.authz whether the client may op (subscribe or
// publish) on channel. It fills a refused ACK in, and reports whether
// the frame may be applied.
func (r *serverRelay) authorize(ack *events.ChannelFrame, op, channel string) bool {
	if r.authz == nil {
		return true
	}
	req := &handlers.Request{Peer: r.p.info.Name, RemoteAddr: r.p.info.RemoteAddr,
		ID: requestID(""), Method: op, Channel: channel}
	err := r.authz.AuthorizeChannel(r.p.ctx, req)
	if err == nil {
		return true
	}
	ack.Error, ack.Status, ack.Code = err.Error(), http.StatusForbidden, handlers.CodeForbidden
	var he *handlers.Error
	if errors.As(err, &he) && he.Status >= 400 && he.Status <= 599 && he.Code != "" {
		ack.Status, ack.Code = int32(he.Status), he.Code
	}
	r.p.log.Debug("channel request refused", "op", op, "channel", channel, "req", req.ID, "reason", ack.Error)
	return false
}

// Offer queues m for the client; false once the relay is over its bound.
func (r *serverRelay) Offer(m *channels.Message) bool {
	return r.q.push(messageFrame(events.ChannelFrame_MESSAGE, 0, m), false)
}

// Drop ends the relay: the client is told why and closes its subscribers,
// and nothing more it sends on the relay is read.
func (r *serverRelay) Drop(err error) {
	r.once.Do(func() {
		r.p.log.Warn("channel relay dropped", "err", err)
		r.q.close(&events.ChannelFrame{Kind: events.ChannelFrame_CLOSE, Error: err.Error()})
		_ = r.st.SetReadDeadline(time.Now()) // the reader stops
	})
}

// RecheckChannels asks the access rules again about every client node's
// live channel subscriptions (a subscribe is otherwise asked once, when it
// is made), and ends those they no longer allow: the client node's
// subscribers of that channel are closed with the reason (WebSocket 1008,
// SSE "event: close"). Call it after changing the rules (SetAuth on the
// Config.Dispatcher), as a reload does. It returns how many it ended.
func (s *Server) RecheckChannels() int {
	ended := 0
	for _, sink := range s.hub.Remotes() {
		if r, ok := sink.(*serverRelay); ok {
			ended += r.recheck()
		}
	}
	return ended
}

// recheck asks r.authz again about r's subscriptions and ends those it
// refuses now.
func (r *serverRelay) recheck() int {
	if r.authz == nil {
		return 0
	}
	r.decide.Lock()
	defer r.decide.Unlock()
	ended := 0
	for _, ch := range r.hub.ChannelsOf(r) {
		f := &events.ChannelFrame{Kind: events.ChannelFrame_REFUSED, Channel: ch}
		if r.authorize(f, handlers.ChannelSubscribe, ch) {
			continue
		}
		delete(r.subs, ch)
		r.hub.Detach(ch, r)
		r.q.push(f, true)
		r.p.log.Info("channel subscription ended: the access rules no longer allow it", "channel", ch, "reason", f.Error)
		ended++
	}
	return ended
}

// errRelayBusy refuses a second relay on a session.
var errRelayBusy = errors.New("a channel relay is already open on this session")

// serveRelay serves a client's relay stream until it or the session ends.
// A session has at most one relay at a time.
func (s *Server) serveRelay(p *peer, st *yamux.Stream, rd *events.Reader) {
	if !p.relayOpen.CompareAndSwap(false, true) {
		rd.Release()
		p.log.Warn("channel relay refused", "err", errRelayBusy)
		return
	}
	r := &serverRelay{p: p, hub: s.hub, st: st, q: newFrameQueue(s.cfg.RelayQueueBytes),
		maxMsg: s.cfg.ChannelMaxMessage, subs: map[string]struct{}{}, maxSubs: s.cfg.MaxSubscriptions}
	r.authz, _ = s.cfg.Dispatcher.(ChannelAuthorizer)
	p.log.Debug("channel relay opened")
	wrote := make(chan error, 1)
	go func() {
		err := writeFrames(st, r.q, s.cfg.WriteTimeout)
		if err != nil {
			// A client that does not read its relay is dropped, not
			// buffered for.
			r.Drop(fmt.Errorf("the client does not read its channel relay: %w", err))
		}
		wrote <- err
	}()
	err := r.read(rd)
	s.hub.DetachAll(r)
	r.q.close(nil)
	if werr := <-wrote; err == nil {
		err = werr
	}
	rd.Release()
	p.relayOpen.Store(false)
	_ = st.Close() // after relayOpen: the client's next relay is taken
	p.log.Debug("channel relay closed", "err", err)
}

// answer queues ack; a client whose relay is over its bound (it does not
// read its acknowledgements) has its relay dropped.
func (r *serverRelay) answer(ack *events.ChannelFrame) error {
	if r.q.push(ack, false) {
		return nil
	}
	err := fmt.Errorf("the client's channel relay is over %d bytes behind: it does not read it", r.q.limit)
	r.Drop(err)
	return err
}

// read applies the client's frames until the stream ends.
func (r *serverRelay) read(rd *events.Reader) error {
	for {
		var f events.ChannelFrame
		if err := rd.ReadMessage(&f); err != nil {
			return err
		}
		switch f.Kind {
		case events.ChannelFrame_SUBSCRIBE:
			ack := &events.ChannelFrame{Kind: events.ChannelFrame_ACK, Seq: f.Seq}
			r.decide.Lock()
			_, again := r.subs[f.Channel]
			if err := channels.CheckName(f.Channel); err != nil {
				ack.Error = err.Error()
			} else if !again && len(r.subs) >= r.maxSubs {
				ack.Error = fmt.Sprintf("over the server's limit of %d channels subscribed per node", r.maxSubs)
			} else if r.authorize(ack, handlers.ChannelSubscribe, f.Channel) {
				r.subs[f.Channel] = struct{}{}
				// The ACK goes ahead of the channel's next message: a
				// client that subscribes again after an outage tells its
				// subscribers of the gap before that message.
				var err error
				r.hub.AttachThen(f.Channel, r, func() { err = r.answer(ack) })
				r.decide.Unlock()
				if err != nil {
					return err
				}
				continue
			}
			r.decide.Unlock()
			if err := r.answer(ack); err != nil {
				return err
			}
		case events.ChannelFrame_UNSUBSCRIBE:
			r.decide.Lock()
			delete(r.subs, f.Channel)
			r.hub.Detach(f.Channel, r)
			r.decide.Unlock()
		case events.ChannelFrame_PUBLISH:
			ack := &events.ChannelFrame{Kind: events.ChannelFrame_ACK, Seq: f.Seq}
			m := frameMessage(&f)
			switch err := channels.CheckName(f.Channel); {
			case err != nil:
				ack.Error = err.Error()
			case int64(len(m.Text)) > r.maxMsg || int64(len(m.Stream)) > r.maxMsg:
				ack.Error = fmt.Sprintf("message over the server's limit of %d bytes", r.maxMsg)
			case checkFrameMessage(&f) != nil:
				ack.Error = checkFrameMessage(&f).Error()
			case !r.authorize(ack, handlers.ChannelPublish, f.Channel):
			case !m.Empty():
				r.hub.Deliver(m)
			}
			if err := r.answer(ack); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected channel frame %v", f.Kind)
		}
	}
}

// clientRelay is the client's end of its relay to the server. The
// channels its node's subscribers hold are the Client's (chansubs.go):
// they outlive a relay.
type clientRelay struct {
	c   *Client
	p   *peer
	st  *yamux.Stream
	own *ownStream // holds the relay's slot at the server (pacing.go)
	q   *frameQueue

	mu   sync.Mutex
	dead error // why the relay ended; nil while it is up
	seq  uint64
	acks map[uint64]func(err error)
}

// relay returns the client's relay to the server, opening it if needed.
func (c *Client) relay() (*clientRelay, error) {
	c.relayMu.Lock()
	defer c.relayMu.Unlock()
	p := c.peer()
	if p == nil {
		return nil, fmt.Errorf("%w: not connected to the server", channels.ErrUnavailable)
	}
	if r := c.chRelay; r != nil && r.p == p {
		return r, nil
	}
	// The relay's slot at the server: free unless the last relay's stream
	// is still being closed.
	ctx, cancel := context.WithTimeout(p.ctx, c.cfg.WriteTimeout)
	slot, _, err := p.take(ctx, p.pace.relay, 0)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: open channel relay: %v", channels.ErrUnavailable, err)
	}
	st, own, err := p.openOwn(slot) // counted until the relay fails
	if err != nil {
		return nil, fmt.Errorf("%w: open channel relay: %v", channels.ErrUnavailable, err)
	}
	w := events.NewWriter(st)
	_ = st.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	err = w.WriteMessage(&events.Request{Id: "channels", ChannelRelay: true})
	if err == nil {
		err = w.Flush()
	}
	w.Release()
	if err != nil {
		_ = st.Close()
		own.closed()
		return nil, fmt.Errorf("%w: open channel relay: %v", channels.ErrUnavailable, err)
	}
	r := &clientRelay{c: c, p: p, st: st, own: own, q: newFrameQueue(c.cfg.RelayQueueBytes),
		acks: map[uint64]func(error){}}
	c.chRelay = r
	go func() {
		err := writeFrames(st, r.q, c.cfg.WriteTimeout)
		_ = st.Close()
		if err != nil {
			r.fail(fmt.Errorf("%w: relay to the server lost: %v", channels.ErrUnavailable, err), true)
		}
	}()
	go r.read()
	p.log.Debug("channel relay opened")
	return r, nil
}

// read applies the server's frames until the relay ends.
func (r *clientRelay) read() {
	rd := events.NewReader(r.st)
	defer rd.Release()
	for {
		var f events.ChannelFrame
		if err := rd.ReadMessage(&f); err != nil {
			r.fail(fmt.Errorf("%w: relay to the server lost: %v", channels.ErrUnavailable, err), true)
			return
		}
		switch f.Kind {
		case events.ChannelFrame_MESSAGE:
			if err := checkFrameMessage(&f); err != nil {
				r.fail(fmt.Errorf("%w: the server sent a bad channel message: %v", channels.ErrUnavailable, err), false)
				return
			}
			r.c.hub.Deliver(frameMessage(&f))
		case events.ChannelFrame_ACK:
			r.mu.Lock()
			done := r.acks[f.Seq]
			delete(r.acks, f.Seq)
			r.mu.Unlock()
			if done != nil {
				done(ackError(&f))
			}
		case events.ChannelFrame_REFUSED:
			r.refused(f.Channel, ackError(&f))
		case events.ChannelFrame_CLOSE:
			// Dropped on purpose (this node fell too far behind): its
			// subscribers are closed, not kept, as a slow one is.
			r.fail(fmt.Errorf("%w: the server dropped this node's relay: %s", channels.ErrUnavailable, f.Error), false)
			return
		default:
			r.fail(fmt.Errorf("%w: unexpected channel frame %v from the server", channels.ErrUnavailable, f.Kind), false)
			return
		}
	}
}

// ackError is the server's answer in an ACK: nil, or why it refused. A
// refusal of its access rules is a *handlers.Error with the status and
// code the front end answers with.
func ackError(f *events.ChannelFrame) error {
	if f.Error == "" {
		return nil
	}
	if f.Code == "" {
		return fmt.Errorf("server: %s", f.Error)
	}
	status, code := int(f.Status), f.Code
	if status < 400 || status > 599 {
		status = http.StatusForbidden
	}
	if len(code) > 32 || strings.IndexFunc(code, func(r rune) bool { return (r < 'a' || r > 'z') && r != '_' }) >= 0 {
		code = handlers.CodeForbidden
	}
	return &handlers.Error{Status: status, Code: code, Msg: "refused by the server: " + f.Error}
}

// send queues f with a new seq and calls done with the server's answer
// (nil for success). It refuses PUBLISH frames over the queue's bound.
func (r *clientRelay) send(f *events.ChannelFrame, done func(err error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead != nil {
		return r.dead
	}
	r.seq++
	f.Seq = r.seq
	if !r.q.push(f, f.Kind != events.ChannelFrame_PUBLISH) {
		return fmt.Errorf("%w: the relay to the server is over %d bytes behind", channels.ErrUnavailable, r.q.limit)
	}
	if done != nil {
		r.acks[f.Seq] = done
	}
	return nil
}

// clientBus is a client's channels.Bus: through its relay to the server.
type clientBus struct{ c *Client }

func (b clientBus) Publish(ctx context.Context, m *channels.Message) error {
	if m.Notice() {
		return channels.ErrNotice
	}
	r, err := b.c.relay()
	if err != nil {
		return err
	}
	answer := make(chan error, 1)
	err = r.send(messageFrame(events.ChannelFrame_PUBLISH, 0, m), func(err error) { answer <- err })
	if err != nil {
		return err
	}
	select {
	case err := <-answer:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer from the server (the message may still be published): %w", ctx.Err())
	}
}

var _ channels.Bus = clientBus{}
