// Package hub is the fan-out of channel messages on one node: a Hub
// holds the local subscribers of each channel (package channels serves
// them over HTTP) and the remote sinks tunnel attaches (on the server, a
// client's relay), and delivers each message to all of them, in the order
// Deliver is called. Package channels exports Message, Subscriber and the
// errors under its own name; the Hub, its Sinks and Options are for
// package tunnel only.
package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Message is one message published on a channel. It is shared by every
// subscriber it goes to: it must not be changed once published.
type Message struct {
	// Channel is the channel's name.
	Channel string
	// Text is the message for WebSocket subscribers and, as "data:"
	// lines, for Server-Sent Events subscribers.
	Text string
	// Stream, when set, is written as is to Server-Sent Events
	// subscribers in place of Text: GRIP's http-stream format, which its
	// publisher puts in SSE form.
	Stream string
	// ID is the publisher's message id, if any: the "id:" of the SSE event.
	ID string
	// To names the kinds of subscriber the message is for: 0 (a plain
	// publish) is every kind; a GRIP item is for the kinds whose format
	// it has (ws-message: ToWebSocket, http-stream: ToEvents).
	To Kinds
	// Close, when set, makes the message an order to end the channel's
	// subscribers of the kinds To names (GRIP's "action": "close"): a
	// WebSocket subscriber is closed with CloseCode (1000 if 0) and
	// CloseReason, a Server-Sent Events one gets its "event: close".
	Close bool
	// CloseCode is the WebSocket close status of a Close: 1000, or 3000
	// to 4999; 0 is 1000.
	CloseCode int
	// CloseReason is the WebSocket close reason of a Close, at most 123
	// bytes of UTF-8.
	CloseReason string

	// Outage and Gap are set on a notice, which the node sends its own
	// subscribers in place of a message; Publish refuses a message with
	// either set. Outage, when set, says why the node cannot reach the
	// rest of the tunnel: the subscriber stays subscribed, and messages
	// published meanwhile do not reach it.
	Outage string
	// Gap says that messages may have been missed before the next one:
	// the subscription was established again after an outage, or the
	// subscriber came back (an SSE Last-Event-ID) after the last message
	// this node knows of.
	Gap bool
}

// Kinds is a set of kinds of subscriber (Message.To).
type Kinds uint8

// The kinds of subscriber.
const (
	// ToWebSocket: WebSocket subscribers.
	ToWebSocket Kinds = 1 << iota
	// ToEvents: Server-Sent Events (HTTP streaming) subscribers.
	ToEvents
	// AllKinds is every kind there is; a Kinds with other bits is invalid.
	AllKinds = ToWebSocket | ToEvents
)

// ForWebSocket reports whether WebSocket subscribers get m.
func (m *Message) ForWebSocket() bool { return m.To == 0 || m.To&ToWebSocket != 0 }

// ForEvents reports whether Server-Sent Events subscribers get m.
func (m *Message) ForEvents() bool { return m.To == 0 || m.To&ToEvents != 0 }

// Notice reports whether m is a notice (Outage or Gap) rather than a
// published message.
func (m *Message) Notice() bool { return m.Outage != "" || m.Gap }

// Size is what the message counts for in queue limits.
func (m *Message) Size() int64 {
	return int64(len(m.Channel) + len(m.Text) + len(m.Stream) + len(m.ID) + len(m.CloseReason) + 64)
}

// Empty reports whether the message has nothing to deliver (keep-alives
// are empty: they are dropped, not delivered). A Close or a notice is
// never empty.
func (m *Message) Empty() bool {
	return !m.Close && m.Text == "" && m.Stream == "" && !m.Notice()
}

// ErrNotice refuses to publish a notice: only a node sends them.
var ErrNotice = errors.New("a notice (Outage or Gap set) cannot be published")

// Why a subscriber is dropped; its Err wraps one of these.
var (
	// ErrSlow: the subscriber fell behind and its queue filled up.
	ErrSlow = errors.New("subscriber too slow")
	// ErrUnavailable: the node cannot reach the rest of the tunnel (a
	// client not connected to the server, or whose relay was lost).
	ErrUnavailable = errors.New("channels unavailable")
	// ErrShutdown: the node is shutting down.
	ErrShutdown = errors.New("node shutting down")
	// ErrClosed: the subscriber was closed by its owner.
	ErrClosed = errors.New("subscriber closed")
)

// Sink receives a channel's messages on behalf of something other than a
// local subscriber: the relay to a client node, on the server.
type Sink interface {
	// Offer queues m without blocking. False means the sink cannot keep
	// up: the hub detaches it from m's channel and calls Drop.
	Offer(m *Message) bool
	// Drop tells the sink why the hub detached it.
	Drop(err error)
}

// Options bound a Hub's subscriber queues.
type Options struct {
	// QueueLen is how many messages may wait for one subscriber before it
	// is dropped as too slow. Default DefaultQueueLen.
	QueueLen int
	// QueueBytes is how many bytes of messages (see Message.Size) may
	// wait for one subscriber. Default DefaultQueueBytes.
	QueueBytes int64
}

// The defaults of Options, and so of a node's (tunnel.DefaultConfig's
// ChannelQueue and ChannelQueueBytes) and of channels.NewLocalBus.
const (
	DefaultQueueLen   = 256
	DefaultQueueBytes = 1 << 20
)

// sink is what a hub delivers to: a local Subscriber or a remote Sink.
type sink interface {
	offer(m *Message) bool
	drop(err error)
}

// Hub fans the messages of each channel out to its subscribers on this
// node, each in the order Deliver is called. It is safe for concurrent
// use; the Hub is itself a channels.Bus whose reach is this node.
type Hub struct {
	opts Options

	mu      sync.Mutex
	subs    map[string]map[sink]struct{}
	lastID  map[string]string // the ID of each subscribed channel's last message
	remotes map[Sink]*remote
	closed  error // set by CloseAll(ErrShutdown): no new subscribers
	count   int   // subscribers and sinks, over every channel

	stats Stats
}

// Stats count what a Hub did, for a node's metrics.
type Stats struct {
	// Messages is how many messages were delivered (Deliver called);
	// Delivered how many subscribers or sinks took one, Dropped how
	// many could not (their queue full: each was dropped as too slow).
	Messages, Delivered, Dropped atomic.Uint64
}

// Stats are the Hub's counts.
func (h *Hub) Stats() *Stats { return &h.stats }

// Count returns how many local subscribers and remote sinks the Hub has,
// over every channel.
func (h *Hub) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// NewHub returns an empty Hub.
func NewHub(opts Options) *Hub {
	if opts.QueueLen <= 0 {
		opts.QueueLen = DefaultQueueLen
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	return &Hub{opts: opts, subs: map[string]map[sink]struct{}{}, lastID: map[string]string{},
		remotes: map[Sink]*remote{}}
}

// Join adds a local subscriber of channel. release, if not nil, is called
// once when it leaves the hub (closed or dropped).
func (h *Hub) Join(channel string, release func()) (*Subscriber, error) {
	s := &Subscriber{
		Channel:  channel,
		hub:      h,
		q:        make(chan *Message, h.opts.QueueLen),
		maxBytes: h.opts.QueueBytes,
		done:     make(chan struct{}),
		release:  release,
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed != nil {
		return nil, h.closed
	}
	s.prevID, s.prevKnown = h.lastID[channel]
	h.add(channel, s)
	return s, nil
}

// Attach adds a remote sink to channel. Attaching twice does nothing.
func (h *Hub) Attach(channel string, s Sink) { h.AttachThen(channel, s, nil) }

// AttachThen attaches s to channel and calls then (if not nil) before
// any message delivered after it: a relay queues the subscribe's
// acknowledgement there, ahead of the channel's next messages.
func (h *Hub) AttachThen(channel string, s Sink, then func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if then != nil {
		defer then()
	}
	r := h.remotes[s]
	if r == nil {
		r = &remote{s: s, channels: map[string]bool{}}
		h.remotes[s] = r
	}
	if !r.channels[channel] {
		r.channels[channel] = true
		h.add(channel, r)
	}
}

// Detach removes a remote sink from channel.
func (h *Hub) Detach(channel string, s Sink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.remotes[s]; r != nil && r.channels[channel] {
		h.detach(channel, r)
	}
}

// detach removes r from channel, and forgets r once it has no channel.
func (h *Hub) detach(channel string, r *remote) {
	delete(r.channels, channel)
	h.remove(channel, r)
	if len(r.channels) == 0 {
		delete(h.remotes, r.s)
	}
}

// Remotes returns the remote sinks attached to some channel.
func (h *Hub) Remotes() []Sink {
	h.mu.Lock()
	defer h.mu.Unlock()
	sinks := make([]Sink, 0, len(h.remotes))
	for s := range h.remotes {
		sinks = append(sinks, s)
	}
	return sinks
}

// ChannelsOf returns the channels a remote sink is attached to.
func (h *Hub) ChannelsOf(s Sink) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.remotes[s]
	if r == nil {
		return nil
	}
	chs := make([]string, 0, len(r.channels))
	for ch := range r.channels {
		chs = append(chs, ch)
	}
	return chs
}

// DetachAll removes a remote sink from every channel.
func (h *Hub) DetachAll(s Sink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.remotes[s]; r != nil {
		for ch := range r.channels {
			h.remove(ch, r)
		}
		delete(h.remotes, s)
	}
}

func (h *Hub) add(channel string, s sink) {
	set := h.subs[channel]
	if set == nil {
		set = map[sink]struct{}{}
		h.subs[channel] = set
	}
	if _, ok := set[s]; !ok {
		h.count++
	}
	set[s] = struct{}{}
}

// remove deletes s from channel; it reports whether s was there.
func (h *Hub) remove(channel string, s sink) bool {
	set := h.subs[channel]
	if _, ok := set[s]; !ok {
		return false
	}
	delete(set, s)
	h.count--
	if len(set) == 0 {
		delete(h.subs, channel)
		delete(h.lastID, channel) // only subscribed channels are remembered
	}
	return true
}

// Deliver queues m for every subscriber and sink of its channel and
// returns how many took it. Those that cannot keep up are dropped with
// ErrSlow. Messages delivered one after the other reach each subscriber
// in that order.
func (h *Hub) Deliver(m *Message) int {
	var slow []sink
	n := 0
	h.mu.Lock()
	if _, ok := h.subs[m.Channel]; ok {
		h.lastID[m.Channel] = m.ID
	}
	for s := range h.subs[m.Channel] {
		if s.offer(m) {
			n++
		} else {
			slow = append(slow, s)
		}
	}
	for _, s := range slow {
		if r, ok := s.(*remote); ok {
			h.detach(m.Channel, r)
		} else {
			h.remove(m.Channel, s)
		}
	}
	h.mu.Unlock()
	h.stats.Messages.Add(1)
	h.stats.Delivered.Add(uint64(n))
	h.stats.Dropped.Add(uint64(len(slow)))
	for _, s := range slow {
		s.drop(fmt.Errorf("%w: its queue of %d messages or %d bytes is full",
			ErrSlow, h.opts.QueueLen, h.opts.QueueBytes))
	}
	return n
}

// Subscribers returns how many local subscribers and remote sinks
// channel has.
func (h *Hub) Subscribers(channel string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[channel])
}

// CloseAll drops every local subscriber with err (remote sinks stay).
// After CloseAll(ErrShutdown) (or an error wrapping it), Join refuses.
func (h *Hub) CloseAll(err error) {
	var locals []*Subscriber
	h.mu.Lock()
	if errors.Is(err, ErrShutdown) {
		h.closed = err
	}
	for ch, set := range h.subs {
		for s := range set {
			if l, ok := s.(*Subscriber); ok {
				locals = append(locals, l)
				h.remove(ch, l)
			}
		}
	}
	h.mu.Unlock()
	for _, s := range locals {
		s.drop(err)
	}
}

// Publish delivers m on this node: the Hub as a Bus. It refuses a
// notice (ErrNotice).
func (h *Hub) Publish(_ context.Context, m *Message) error {
	if m.Notice() {
		return ErrNotice
	}
	h.Deliver(m)
	return nil
}

// Subscribe joins channel on this node: the Hub as a Bus.
func (h *Hub) Subscribe(_ context.Context, channel string) (*Subscriber, error) {
	return h.Join(channel, nil)
}

// Subscriber is one subscriber of a channel on this node: it receives the
// channel's messages from a bounded queue until it is closed or dropped.
type Subscriber struct {
	// Channel is the channel subscribed to.
	Channel string

	hub      *Hub
	q        chan *Message
	queued   atomic.Int64 // bytes in q
	maxBytes int64
	once     sync.Once
	done     chan struct{}
	err      error // why it ended; set before done is closed
	release  func()

	prevID    string // the ID of the channel's last message before it joined
	prevKnown bool   // whether the hub knew of one
}

// PrevID is the ID of the last message this node delivered on the
// channel before the subscriber joined (empty if that message had none),
// and whether the node knew of one: it remembers the last message of a
// channel only while the channel has subscribers here. A subscriber that
// resumes after the message of ID x may have missed messages unless
// PrevID returns x, true.
func (s *Subscriber) PrevID() (string, bool) { return s.prevID, s.prevKnown }

func (s *Subscriber) offer(m *Message) bool {
	n := m.Size()
	if s.queued.Add(n) > s.maxBytes {
		s.queued.Add(-n)
		return false
	}
	select {
	case s.q <- m:
		return true
	default:
		s.queued.Add(-n)
		return false
	}
}

func (s *Subscriber) drop(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
		if s.release != nil {
			s.release()
		}
	})
}

// Next returns the next message, waiting for it until ctx ends. Once the
// subscriber is closed or dropped, it returns why (an error wrapping
// ErrSlow, ErrUnavailable, ErrShutdown or ErrClosed) and the messages
// still queued are discarded.
func (s *Subscriber) Next(ctx context.Context) (*Message, error) {
	select {
	case <-s.done:
		return nil, s.err
	default:
	}
	select {
	case m := <-s.q:
		s.queued.Add(-m.Size())
		return m, nil
	case <-s.done:
		return nil, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Done is closed once the subscriber is closed or dropped.
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// Err is why the subscriber ended, or nil while it is live.
func (s *Subscriber) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close removes the subscriber from its hub. It may be called more than
// once, and after the subscriber was dropped.
func (s *Subscriber) Close() { End(s, ErrClosed) }

// End removes s from its hub with err as the reason Next and Err give,
// unless it had already ended.
func End(s *Subscriber, err error) {
	s.hub.mu.Lock()
	s.hub.remove(s.Channel, s)
	s.hub.mu.Unlock()
	s.drop(err)
}

// Queue is what s's messages wait in, for a reader that selects on it
// with other events (the HTTP handler's keep-alives); it must call
// Received for each message it takes from it.
func Queue(s *Subscriber) <-chan *Message { return s.q }

// Notify queues the notice m for s alone; false if s's queue is full
// (the caller ends s with ErrSlow, outside any lock its release takes).
func Notify(s *Subscriber, m *Message) bool { return s.offer(m) }

// Received frees m's room in s's queue, once m was taken from Queue(s).
func Received(s *Subscriber, m *Message) { s.queued.Add(-m.Size()) }

// remote adapts a Sink to the hub, remembering its channels.
type remote struct {
	s        Sink
	channels map[string]bool // guarded by the hub's mu
}

func (r *remote) offer(m *Message) bool { return r.s.Offer(m) }
func (r *remote) drop(err error)        { r.s.Drop(err) }
