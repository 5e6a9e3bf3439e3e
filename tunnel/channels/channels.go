// Package channels is publish/subscribe on a node's front end:
// subscribers (WebSocket, Server-Sent Events) and publishers (POST,
// WebSocket messages, GRIP's /publish/) of named channels.
//
// A Bus carries messages to every node of the tunnel; a node's Channels
// method (tunnel.Server.Channels, tunnel.Client.Channels) returns its
// Bus, through which a Go program publishes and subscribes as a front-end
// caller does. Handler serves the HTTP side of a Bus. NewLocalBus is a
// Bus whose reach is one process, with no tunnel.
package channels

import (
	"context"

	"github.com/restpipe/restpipe/tunnel/internal/hub"
)

// Message is one message published on a channel: its Channel, its Text
// (a WebSocket subscriber's message, and the "data:" lines of a
// Server-Sent Event), Stream (when set, written as is to Server-Sent
// Events subscribers in place of Text: GRIP's http-stream format), the
// publisher's ID (the "id:" of the event), if any, and To, the kinds of
// subscriber it is for (0: all). With Close set it ends the subscribers
// of those kinds instead (GRIP's "action": "close"). It is shared by
// every subscriber it goes to: it must not be changed once published.
//
// A Subscriber's Next may also return a notice, which the node sends in
// place of a message (Notice reports one): Outage set (to why) when the
// node lost the tunnel, the subscriber staying subscribed; Gap set once
// the subscription is established again, since messages published
// meanwhile did not reach it (none is replayed). Publish refuses a
// notice (ErrNotice). A front end passes notices on as SSE "event:
// outage" and "event: gap", and as WebSocket binary messages (see
// Notice).
type Message = hub.Message

// Kinds is a set of kinds of subscriber: a Message's To.
type Kinds = hub.Kinds

// The kinds of subscriber a Message may be for (Message.To; none set
// means every kind).
const (
	// ToWebSocket: WebSocket subscribers (GRIP's ws-message).
	ToWebSocket = hub.ToWebSocket
	// ToEvents: Server-Sent Events subscribers (GRIP's http-stream).
	ToEvents = hub.ToEvents
)

// Subscriber is one subscriber of a channel on this node, with a bounded
// queue of the messages not yet read: Next returns the next one (waiting
// until its ctx ends), or a notice of an outage or a gap (see Message),
// Done is closed and Err says why (an error wrapping ErrSlow,
// ErrUnavailable, ErrShutdown or ErrClosed) once it was closed or
// dropped, Close removes it. Its Channel field is the channel's name;
// PrevID is the ID of the channel's last message before it joined, for a
// subscriber resuming after a given message.
type Subscriber = hub.Subscriber

// Why a subscriber is dropped; its Err wraps one of these.
var (
	// ErrSlow: the subscriber fell behind and its queue filled up.
	ErrSlow = hub.ErrSlow
	// ErrUnavailable: the node cannot reach the rest of the tunnel (a
	// client not connected to the server, or whose relay was lost).
	ErrUnavailable = hub.ErrUnavailable
	// ErrShutdown: the node is shutting down.
	ErrShutdown = hub.ErrShutdown
	// ErrClosed: the subscriber was closed by its owner.
	ErrClosed = hub.ErrClosed
	// ErrNotice: Publish was given a notice (Outage or Gap set), which
	// only a node sends.
	ErrNotice = hub.ErrNotice
)

// Bus carries channel messages to every node of the tunnel.
type Bus interface {
	// Publish sends m to every subscriber of m.Channel on every node. It
	// returns once m has its place in the channel's order.
	Publish(ctx context.Context, m *Message) error
	// Subscribe adds a subscriber of channel on this node. Every message
	// published anywhere after Subscribe returns reaches it, in order,
	// until it is closed or dropped, except during an outage of the
	// tunnel, which notices bracket (see Message).
	Subscribe(ctx context.Context, channel string) (*Subscriber, error)
}

// NewLocalBus returns a Bus whose reach is this process: what is
// published reaches its own subscribers, each in the order of the Publish
// calls. A subscriber is dropped with ErrSlow once queueLen messages or
// queueBytes bytes (the sum of their Size) wait for it; 0 means the
// default of a node, 256 messages and 1 MiB.
func NewLocalBus(queueLen int, queueBytes int64) Bus {
	return hub.NewHub(hub.Options{QueueLen: queueLen, QueueBytes: queueBytes})
}
