package tunnel

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel/internal/hub"
	"github.com/restpipe/restpipe/tunnel/metrics"
	"github.com/restpipe/restpipe/tunnel/webguard"
)

// Dispatcher answers the events a peer sends; *handlers.Registry is one
// (Registry.Serve), and every event a node serves goes through it.
type Dispatcher interface {
	// Serve runs the event req and calls answer exactly once with its
	// reply, which answer writes to the peer; the event's stream stays
	// open until it has. ctx carries the event's deadline. Serve may call
	// answer from another goroutine (when ctx ends before the handler
	// returns, say); it returns once answer has returned.
	Serve(ctx context.Context, req *handlers.Request, answer func(*handlers.Reply))
}

// Config configures a Server or a Client. Start from DefaultConfig.
type Config struct {
	// Certificate is this node's identity; its Common Name is the node's
	// name. Required: DefaultConfig has none.
	Certificate tls.Certificate
	// CA verifies the peer's certificate. Required: DefaultConfig has
	// none.
	CA *x509.CertPool
	// ServerName is the name a client checks the server certificate
	// against. Default: the host of the address the client dials.
	ServerName string
	// Dispatcher answers the peer's events, usually a *handlers.Registry.
	// On the server it also decides which channels a client node may use
	// when it is a ChannelAuthorizer (a *handlers.Registry is). Default:
	// an empty registry, so every event is 404 no_handler.
	Dispatcher Dispatcher
	// Logger receives the node's logs. Default: a logger that discards.
	Logger *slog.Logger
	// Version is the software version sent in the hello, for logs.
	// Default none.
	Version string
	// Metrics, if set, is told what the node does (package metrics).
	// Default none: nothing is counted.
	Metrics *metrics.Metrics
	// VerifyPeer, if set, is asked about the peer's certificate after
	// the TLS handshake has verified it, and again by Server.Reverify and
	// Client.Reverify; an error refuses or drops the peer. Revocation
	// lists plug in here (certs.RevocationFile.Check). It may be called
	// from several goroutines at once. Default none.
	//
	// Whatever VerifyPeer says, a session ends when the first of the
	// certificates it rests on expires: this node's, the peer's, or the
	// CA's that verified the peer.
	VerifyPeer func(leaf *x509.Certificate) error

	// HandshakeTimeout bounds TCP connect, the TLS handshake and the hello
	// exchange. Default 10 s.
	HandshakeTimeout time.Duration
	// KeepAliveInterval is how often each side pings the other. A
	// session ends when nothing at all has been received from the peer
	// for KeepAliveInterval + WriteTimeout (an unanswered ping alone ends
	// nothing): a dead peer is detected within that of its last bytes.
	// Default 15 s.
	KeepAliveInterval time.Duration
	// WriteTimeout bounds how long a write to the connection may go
	// without progress (the peer taking no byte of it): then the session
	// ends. A write that progresses, however slowly, and a frame waiting
	// behind others on a slow link, are not cut. See KeepAliveInterval
	// for the silence that ends a session. Default 10 s.
	WriteTimeout time.Duration
	// StreamWindow is the receive window of each stream, in bytes: one
	// stream's throughput is at most StreamWindow / RTT, and a stream
	// whose reader is slow holds at most this much. Default 1 MiB; from
	// 256 KiB (yamux's least) to 64 MiB.
	StreamWindow uint32
	// MaxFrame is the largest frame, in bytes, a body is copied onto a
	// stream in: each read of the body goes out as one frame. Bigger
	// frames cost less CPU per byte streamed (256 KiB instead of 64 KiB:
	// about a tenth less, both nodes and the caller together), but yamux
	// keeps a send buffer as big as the biggest frame a session has sent
	// for the session's life. 0, the default, means the role's size:
	// 256 KiB on a client (one session) and 64 KiB on a server (one
	// session per client); DefaultConfig cannot know the role. Otherwise
	// from 16 KiB to 1 MiB.
	MaxFrame int
	// AcceptBacklog bounds the streams opened by the peer and not yet
	// accepted, and those this side opened and the peer has not yet
	// acknowledged. yamux allocates 8 bytes per slot on every session,
	// idle or not. Default 64, from 1 to 65536.
	AcceptBacklog int

	// Bounds on what one peer may hold at this node (README "Security"),
	// so that a hostile peer with a valid certificate cannot take the
	// node's memory.

	// MaxStreams bounds the streams the peer holds open on its session:
	// its events in flight at this node, and the streams it has not yet
	// closed. An event beyond it is answered 503 peer_busy at once (and
	// logged, at most once a second); a peer that holds half as many
	// again (refused streams it does not close) is not read from until
	// it closes some. Each stream may hold twice StreamWindow in yamux's
	// receive buffer plus about 768 KiB of buffers and header, so the
	// default, 48, keeps a peer's streams under 132 MiB with the default
	// 1 MiB window (README "What one peer can cost a node"). Streams this
	// node opens to the peer do not count.
	//
	// The node announces it in its hello (at most 65536), and an honest
	// peer paces itself to it: its events wait for a slot, until their
	// deadline, rather than be refused (pacing.go). This node paces its
	// own streams to the peer's announced value the same way.
	MaxStreams int
	// MaxEventHeader bounds the header of an event received from the
	// peer (its path, query and headers as framed on the stream), in
	// bytes; a bigger one is answered 431 too_large, and so is one with
	// more than events.MaxHeaderFields (1024) headers, header values, noun
	// segments and arguments together. The same bounds apply to a reply's
	// header (a reply over them fails the call with 502 tunnel_closed).
	// Default 128 KiB: a front end's largest request (MaxHeaderBytes,
	// 64 KiB, with its path twice) fits. From 4 KiB to 1 MiB.
	MaxEventHeader int
	// MaxSubscriptions bounds the channels one client node may be
	// subscribed to at the server through its relay; a subscribe beyond
	// it is refused. Default 1024, at most 65536.
	MaxSubscriptions int
	// RelayQueueBytes bounds the frames waiting to be written on one
	// channel relay (messages and acknowledgements, each counted with
	// 256 bytes of bookkeeping). A server whose relay to a client falls
	// this far behind drops the relay with the reason (the client's
	// subscribers are closed) rather than slowing the other nodes or
	// growing. Default 16 MiB, at least 1 MiB.
	RelayQueueBytes int64

	// DefaultTimeout is how long the front end waits for an answer when
	// the caller sets no X-Restpipe-Timeout. Default 30 s.
	DefaultTimeout time.Duration
	// MaxTimeout caps X-Restpipe-Timeout. Default 1 h.
	MaxTimeout time.Duration
	// MaxBodyBytes is the largest request body the front end accepts
	// (413 too_large above it); 0 means no limit. Default 0.
	MaxBodyBytes int64
	// BodyIdleTimeout bounds the wait for each piece of a request body
	// from a front-end caller. Default 60 s.
	BodyIdleTimeout time.Duration
	// HeaderTimeout bounds reading a front-end request's headers, so a
	// slow sender (slowloris) cannot hold a connection. Default 10 s.
	HeaderTimeout time.Duration
	// MaxHeaderBytes bounds a front-end request's headers (431 above).
	// Default 64 KiB, from 1 byte to 1 MiB (an event's header is at most
	// that).
	MaxHeaderBytes int
	// ShutdownTimeout bounds how long events in flight may finish once
	// the node is asked to stop. Default 10 s.
	ShutdownTimeout time.Duration

	// ChannelQueue is how many messages may wait for one channel
	// subscriber of the front end; one that falls further behind is
	// disconnected. Default 256, at most 65536 (the queue is allocated
	// whole).
	ChannelQueue int
	// ChannelQueueBytes bounds the bytes waiting for one channel
	// subscriber the same way. Default 1 MiB; at least twice
	// ChannelMaxMessage plus 1 KiB, so that a GRIP message of two
	// contents fits in an empty queue.
	ChannelQueueBytes int64
	// ChannelMaxMessage bounds one channel message, in bytes (413 above).
	// Default 64 KiB, at most 256 KiB.
	ChannelMaxMessage int64
	// ChannelOutageWait is how long a client node keeps its channel
	// subscribers while the tunnel is down: they are told of the outage
	// and, once the subscription is established again, of the gap; one
	// whose outage lasts longer is closed (channels.ErrUnavailable).
	// Default 5 minutes.
	ChannelOutageWait time.Duration
	// ChannelPrefix is put before the channel of every item published
	// with GRIP's POST /publish/ on this node's front end. Default none.
	ChannelPrefix string
	// PublishKey, when set, is the key GRIP's POST /publish/ on this
	// node's front end must show in its Authorization: a JWT signed with
	// it (HS256, with "exp"), "Bearer KEY" or Basic with KEY as the
	// password; anything else is 401 (channels.Handler.PublishKey).
	// Default none: any caller of the front end may publish there.
	PublishKey []byte
	// Origins are the web origins whose pages may call the front end
	// besides its own, on every path: patterns as webguard.New takes them
	// ("*.example.com", "https://app.example.com"). A request from a page
	// of any other origin is refused (403 forbidden). Default none.
	Origins []string
	// HTTPHosts are the Host names the front end answers to besides its
	// own: the address a connection came in on, localhost, 127.0.0.1 and
	// [::1], each with the front end's port. A name without a port
	// ("tunnel.internal") stands for it with the front end's port, one
	// with a port ("proxy.internal:8443") for exactly that. Any other Host
	// is refused (421 misdirected), which defeats DNS rebinding; a front
	// end on a UNIX socket does not check Host. Default none.
	HTTPHosts []string

	// ReconnectMin and ReconnectMax bound the client's jittered
	// exponential backoff between connection attempts. It never gives up.
	// A client whose session the server ended because another connection
	// with the same identity replaced it waits at least ReconnectMax
	// before it tries again, so that two clients sharing one identity do
	// not fight over it. Defaults 500 ms and 30 s; ReconnectMax is not
	// below ReconnectMin.
	ReconnectMin, ReconnectMax time.Duration
	// StableAfter is how long a connection must have stayed up for the
	// backoff to start again from ReconnectMin. Default 30 s.
	StableAfter time.Duration
}

// DefaultConfig returns a Config with every default filled in; the caller
// sets Certificate, CA and Dispatcher. A field DefaultConfig leaves zero
// means what its doc says zero means (MaxFrame: the role's frame size;
// MaxBodyBytes: no limit).
func DefaultConfig() Config {
	return Config{
		Dispatcher:        handlers.NewRegistry(),
		Logger:            slog.New(slog.DiscardHandler),
		HandshakeTimeout:  10 * time.Second,
		KeepAliveInterval: 15 * time.Second,
		WriteTimeout:      10 * time.Second,
		StreamWindow:      1 << 20,
		AcceptBacklog:     64,
		MaxStreams:        48,
		MaxEventHeader:    128 << 10,
		MaxSubscriptions:  1024,
		RelayQueueBytes:   16 << 20,
		DefaultTimeout:    30 * time.Second,
		MaxTimeout:        time.Hour,
		BodyIdleTimeout:   60 * time.Second,
		HeaderTimeout:     10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ShutdownTimeout:   10 * time.Second,
		ReconnectMin:      500 * time.Millisecond,
		ReconnectMax:      30 * time.Second,
		StableAfter:       30 * time.Second,
		ChannelQueue:      hub.DefaultQueueLen,   // 256
		ChannelQueueBytes: hub.DefaultQueueBytes, // 1 MiB
		ChannelMaxMessage: 64 << 10,
		ChannelOutageWait: 5 * time.Minute,
	}
}

// withDefaults is the Config NewServer and NewClient run with: c with
// its zero fields filled in from DefaultConfig, then checked by Validate.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.Dispatcher == nil {
		c.Dispatcher = d.Dispatcher
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	c.HandshakeTimeout = cmp.Or(c.HandshakeTimeout, d.HandshakeTimeout)
	c.KeepAliveInterval = cmp.Or(c.KeepAliveInterval, d.KeepAliveInterval)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, d.WriteTimeout)
	c.StreamWindow = cmp.Or(c.StreamWindow, d.StreamWindow)
	c.AcceptBacklog = cmp.Or(c.AcceptBacklog, d.AcceptBacklog)
	c.MaxStreams = cmp.Or(c.MaxStreams, d.MaxStreams)
	c.MaxEventHeader = cmp.Or(c.MaxEventHeader, d.MaxEventHeader)
	c.MaxSubscriptions = cmp.Or(c.MaxSubscriptions, d.MaxSubscriptions)
	c.RelayQueueBytes = cmp.Or(c.RelayQueueBytes, d.RelayQueueBytes)
	c.DefaultTimeout = cmp.Or(c.DefaultTimeout, d.DefaultTimeout)
	c.MaxTimeout = cmp.Or(c.MaxTimeout, d.MaxTimeout)
	c.BodyIdleTimeout = cmp.Or(c.BodyIdleTimeout, d.BodyIdleTimeout)
	c.HeaderTimeout = cmp.Or(c.HeaderTimeout, d.HeaderTimeout)
	c.MaxHeaderBytes = cmp.Or(c.MaxHeaderBytes, d.MaxHeaderBytes)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, d.ShutdownTimeout)
	c.ChannelQueue = cmp.Or(c.ChannelQueue, d.ChannelQueue)
	c.ChannelQueueBytes = cmp.Or(c.ChannelQueueBytes, d.ChannelQueueBytes)
	c.ChannelMaxMessage = cmp.Or(c.ChannelMaxMessage, d.ChannelMaxMessage)
	c.ChannelOutageWait = cmp.Or(c.ChannelOutageWait, d.ChannelOutageWait)
	c.ReconnectMin = cmp.Or(c.ReconnectMin, d.ReconnectMin)
	c.ReconnectMax = cmp.Or(c.ReconnectMax, d.ReconnectMax)
	c.StableAfter = cmp.Or(c.StableAfter, d.StableAfter)
	if c.Certificate.Leaf == nil {
		c.Certificate.Leaf = c.leaf() // parsed once, not at every session
	}
	return c, c.Validate()
}

// FieldError is how Config.Validate refuses one field's value.
type FieldError struct {
	// Field is the name of the Config field: "MaxStreams".
	Field string
	// Value is the value refused; nil when it is not worth printing (a
	// certificate, a list).
	Value any
	// Rule is what the value must be: "must be from 1 to 65536".
	Rule string
	// Err is why another package refused the value (webguard's reason for
	// an Origins pattern), or nil.
	Err error
}

// Error says which field holds what, and what it must be:
// "tunnel: Config.MaxStreams is 0: must be from 1 to 65536".
func (e *FieldError) Error() string {
	s := "tunnel: Config." + e.Field
	if e.Value != nil {
		s += fmt.Sprintf(" is %v", e.Value)
	}
	if e.Rule != "" {
		s += ": " + e.Rule
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Err.
func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks every field of c as it is, and reports each one it
// refuses as a *FieldError, all of them joined (errors.As finds the
// first, in the order of the fields); nil if c is fit to run. A zero
// field is checked as zero: start from DefaultConfig. NewServer and
// NewClient fill the zero fields from DefaultConfig, then call Validate.
// It checks that:
//
//   - Certificate, CA, Dispatcher and Logger are set;
//   - every timeout and interval is positive, and ReconnectMax is not
//     below ReconnectMin;
//   - StreamWindow is from 256 KiB (yamux's least) to 64 MiB;
//   - MaxFrame is 0 or from 16 KiB to 1 MiB;
//   - AcceptBacklog is from 1 to 65536, MaxHeaderBytes from 1 byte to
//     1 MiB, MaxBodyBytes is not negative;
//   - MaxStreams (announced to the peer, which refuses more) and
//     MaxSubscriptions are from 1 to 65536;
//   - MaxEventHeader is from 4 KiB to events.MaxMessageSize (1 MiB);
//   - RelayQueueBytes is at least 1 MiB (a relay frame holds the largest
//     channel message twice, and two frames must fit);
//   - ChannelQueue is from 1 to 65536 (a subscriber's queue is allocated
//     whole), ChannelMaxMessage from 1 byte to 256 KiB, and
//     ChannelQueueBytes at least twice ChannelMaxMessage plus 1 KiB (a
//     GRIP message of two contents must fit in an empty queue);
//   - Origins and HTTPHosts parse (webguard.CheckOrigins and
//     webguard.CheckHosts);
//   - yamux accepts the session config (yamux.VerifyConfig).
func (c Config) Validate() error {
	var errs []error
	refuse := func(field string, value any, rule string) {
		errs = append(errs, &FieldError{Field: field, Value: value, Rule: rule})
	}
	set := func(field string, ok bool) {
		if !ok {
			refuse(field, nil, "must be set")
		}
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			refuse(field, d, "must be positive")
		}
	}
	inRange := func(field string, v, lo, hi int64, size bool) {
		if v < lo || v > hi {
			refuse(field, v, "must be from "+quantity(lo, size)+" to "+quantity(hi, size))
		}
	}

	set("Certificate", len(c.Certificate.Certificate) > 0)
	set("CA", c.CA != nil)
	set("Dispatcher", c.Dispatcher != nil)
	set("Logger", c.Logger != nil)
	positive("HandshakeTimeout", c.HandshakeTimeout)
	positive("KeepAliveInterval", c.KeepAliveInterval)
	positive("WriteTimeout", c.WriteTimeout)
	inRange("StreamWindow", int64(c.StreamWindow), minStreamWindow, maxStreamWindow, true)
	if c.MaxFrame != 0 && (c.MaxFrame < minFrame || c.MaxFrame > maxFrame) {
		refuse("MaxFrame", c.MaxFrame, "must be 0 or from "+quantity(minFrame, true)+" to "+quantity(maxFrame, true))
	}
	// yamux makes a channel of AcceptBacklog slots for every session,
	// and net/http adds 4 KiB to MaxHeaderBytes: both panic or wrap when
	// near MaxInt.
	inRange("AcceptBacklog", int64(c.AcceptBacklog), 1, maxAcceptBacklog, false)
	inRange("MaxStreams", int64(c.MaxStreams), 1, maxAnnouncedStreams, false)
	inRange("MaxEventHeader", int64(c.MaxEventHeader), minEventHeader, events.MaxMessageSize, true)
	inRange("MaxSubscriptions", int64(c.MaxSubscriptions), 1, maxSubscriptions, false)
	if c.RelayQueueBytes < minRelayQueue {
		refuse("RelayQueueBytes", c.RelayQueueBytes, "must be at least "+quantity(minRelayQueue, true))
	}
	positive("DefaultTimeout", c.DefaultTimeout)
	positive("MaxTimeout", c.MaxTimeout)
	if c.MaxBodyBytes < 0 {
		refuse("MaxBodyBytes", c.MaxBodyBytes, "must not be negative")
	}
	positive("BodyIdleTimeout", c.BodyIdleTimeout)
	positive("HeaderTimeout", c.HeaderTimeout)
	inRange("MaxHeaderBytes", int64(c.MaxHeaderBytes), 1, events.MaxMessageSize, true)
	positive("ShutdownTimeout", c.ShutdownTimeout)
	inRange("ChannelQueue", int64(c.ChannelQueue), 1, maxChannelQueue, false)
	if least := 2*c.ChannelMaxMessage + 1024; c.ChannelQueueBytes < least {
		refuse("ChannelQueueBytes", c.ChannelQueueBytes, "must be at least twice ChannelMaxMessage plus 1KiB ("+quantity(least, true)+")")
	}
	inRange("ChannelMaxMessage", c.ChannelMaxMessage, 1, maxChannelMessage, true)
	positive("ChannelOutageWait", c.ChannelOutageWait)
	if err := webguard.CheckOrigins(c.Origins); err != nil {
		errs = append(errs, &FieldError{Field: "Origins", Err: err})
	}
	if err := webguard.CheckHosts(c.HTTPHosts); err != nil {
		errs = append(errs, &FieldError{Field: "HTTPHosts", Err: err})
	}
	positive("ReconnectMin", c.ReconnectMin)
	if c.ReconnectMax < c.ReconnectMin {
		refuse("ReconnectMax", c.ReconnectMax, fmt.Sprintf("must not be below ReconnectMin (%v)", c.ReconnectMin))
	}
	positive("StableAfter", c.StableAfter)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// The checks above cover yamux's; this one holds if yamux adds some.
	if err := yamux.VerifyConfig(c.yamux()); err != nil {
		return fmt.Errorf("tunnel: the session config: %w", err)
	}
	return nil
}

// quantity writes n as a count or, for a size, as the flags of the CLI
// take it: 16KiB, 1MiB.
func quantity(n int64, size bool) string {
	switch {
	case !size || n == 0:
		return strconv.FormatInt(n, 10)
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}

// Bounds Validate holds a Config to.
const (
	// maxAcceptBacklog bounds AcceptBacklog, as maxAnnouncedStreams
	// bounds MaxStreams.
	maxAcceptBacklog = 65536
	// minEventHeader is the smallest MaxEventHeader: what a front end
	// with a small request fits in.
	minEventHeader = 4 << 10
	// minStreamWindow is yamux's least window; maxStreamWindow bounds
	// what one stream of a peer may hold (twice it, README "What one peer
	// can cost a node").
	minStreamWindow = 256 << 10
	maxStreamWindow = 64 << 20
	// MaxFrame's.
	minFrame = 16 << 10
	maxFrame = 1 << 20
	// maxSubscriptions keeps the memory bound of the README, which is per
	// subscription.
	maxSubscriptions = 65536
	// maxChannelQueue bounds ChannelQueue: a subscriber's queue is
	// allocated whole.
	maxChannelQueue = 65536
	// maxChannelMessage caps ChannelMaxMessage: a relay frame holds a
	// message in two forms and must stay under events.MaxMessageSize.
	maxChannelMessage = 256 << 10
	// minRelayQueue is the least RelayQueueBytes: a relay frame carries
	// a message in two forms, and two must fit.
	minRelayQueue = 4 * maxChannelMessage
)

// hubOptions are the subscriber queue bounds of the node's channel hub.
func (c Config) hubOptions() hub.Options {
	return hub.Options{QueueLen: c.ChannelQueue, QueueBytes: c.ChannelQueueBytes}
}

// queueTimeout is how long a frame may wait in yamux's send queue: far
// longer than any honest queue on a live connection, which the write
// watch ends after WriteTimeout without progress.
const queueTimeout = time.Hour

// streamCloseTimeout is how long yamux waits for the peer's FIN after
// this node closed a stream before it resets the stream.
const streamCloseTimeout = time.Minute

// yamux returns the session config both ends use.
func (c Config) yamux() *yamux.Config {
	y := yamux.DefaultConfig()
	y.AcceptBacklog = c.AcceptBacklog
	// Pings come from peer.keepAlive's timer rather than yamux's loop.
	y.EnableKeepAlive = false
	y.KeepAliveInterval = c.KeepAliveInterval
	// yamux's write timeout runs from when a frame is queued: on a slow
	// busy link, a stream's frame waits behind others' for longer than
	// WriteTimeout with the connection working all along, and its event
	// failed. What bounds a write is the connection's: muxconn's write
	// watch ends the session when a write goes WriteTimeout without
	// progress (Conn.WatchWrites); the queue may wait while it moves.
	y.ConnectionWriteTimeout = queueTimeout
	y.MaxStreamWindowSize = c.StreamWindow
	y.StreamCloseTimeout = streamCloseTimeout
	// yamux watches every stream it opens for the peer's ACK with a
	// goroutine and a timer of its own, and closes the whole session if
	// none comes in time: a goroutine started per event, to detect what
	// keep-alive already detects (a peer that stopped answering). An
	// event's own deadline bounds its caller's wait.
	y.StreamOpenTimeout = 0
	y.LogOutput = nil
	y.Logger = slog.NewLogLogger(quietAlerts{c.Logger.With("part", "yamux").Handler()}, slog.LevelWarn)
	return y
}

// nodeName is the Common Name of the node's own certificate.
func (c Config) nodeName() string {
	if leaf := c.leaf(); leaf != nil {
		return leaf.Subject.CommonName
	}
	return ""
}

// leaf is the node's own certificate, parsed (withDefaults keeps it in
// Certificate.Leaf); nil if there is none.
func (c Config) leaf() *x509.Certificate {
	if c.Certificate.Leaf != nil {
		return c.Certificate.Leaf
	}
	if len(c.Certificate.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.Certificate.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}
