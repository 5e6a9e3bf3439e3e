package tunnel

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel/channels"
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
	// name. Required.
	Certificate tls.Certificate
	// CA verifies the peer's certificate. Required.
	CA *x509.CertPool
	// ServerName is the name a client checks the server certificate
	// against. Default: the host of the address the client dials.
	ServerName string
	// Dispatcher answers the peer's events, usually a *handlers.Registry.
	// On the server it also decides which channels a client node may use
	// when it is a ChannelAuthorizer (a *handlers.Registry is). Default:
	// an empty registry, so every event is 404 no_handler.
	Dispatcher Dispatcher
	// Logger receives the node's logs. Default: discard.
	Logger *slog.Logger
	// Version is the software version sent in the hello, for logs.
	Version string
	// VerifyPeer, if set, is asked about the peer's certificate after the
	// TLS handshake has verified it, and again by Server.Reverify and
	// Client.Reverify; an error refuses or drops the peer. Revocation
	// lists plug in here (certs.RevocationFile.Check). It may be called
	// from several goroutines at once.
	//
	// Whatever VerifyPeer says, a session ends when the first of the
	// certificates it rests on expires: this node's, the peer's, or the
	// CA's that verified the peer.
	VerifyPeer func(leaf *x509.Certificate) error

	// HandshakeTimeout bounds TCP connect, the TLS handshake and the hello
	// exchange. Default 10 s.
	HandshakeTimeout time.Duration
	// KeepAliveInterval is how often each side pings the other. A dead
	// peer is detected within KeepAliveInterval + WriteTimeout. Default 15 s.
	KeepAliveInterval time.Duration
	// WriteTimeout bounds one write to the connection, and how long a ping
	// waits for its answer. Default 10 s.
	WriteTimeout time.Duration
	// StreamWindow is the receive window of each stream, in bytes: one
	// stream's throughput is at most StreamWindow / RTT, and a stream
	// whose reader is slow holds at most this much. Default 1 MiB.
	StreamWindow uint32
	// MaxFrame is the largest frame, in bytes, a body is copied onto a
	// stream in: each read of the body goes out as one frame. Bigger
	// frames cost less CPU per byte streamed (256 KiB instead of 64 KiB:
	// about a tenth less, both nodes and the caller together), but yamux
	// keeps a send buffer as big as the biggest frame a session has sent
	// for the session's life. 0, the default, means 256 KiB on a client
	// (one session) and 64 KiB on a server (one session per client).
	// From 16 KiB to 1 MiB.
	MaxFrame int
	// AcceptBacklog bounds the streams opened by the peer and not yet
	// accepted, and those this side opened and the peer has not yet
	// acknowledged. yamux allocates 8 bytes per slot on every session,
	// idle or not. Default 64.
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
	// 1 MiB window (README "What one peer can cost a node"). Streams this node opens to the peer do not count.
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
	// 64 KiB, with its path twice) fits.
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
	// growing. Default 16 MiB.
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
	// Default 64 KiB.
	MaxHeaderBytes int
	// ShutdownTimeout bounds how long events in flight may finish once
	// the node is asked to stop. Default 10 s.
	ShutdownTimeout time.Duration

	// ChannelQueue is how many messages may wait for one channel
	// subscriber of the front end; one that falls further behind is
	// disconnected. Default 256.
	ChannelQueue int
	// ChannelQueueBytes bounds the bytes waiting for one channel
	// subscriber the same way. Default 1 MiB.
	ChannelQueueBytes int64
	// ChannelMaxMessage bounds one channel message, in bytes (413 above).
	// Default 64 KiB, at most 256 KiB.
	ChannelMaxMessage int64
	// ChannelPrefix is put before the channel of every item published
	// with GRIP's POST /publish/ on this node's front end.
	ChannelPrefix string
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
	// not fight over it. Defaults 500 ms and 30 s.
	ReconnectMin, ReconnectMax time.Duration
	// StableAfter is how long a connection must have stayed up for the
	// backoff to start again from ReconnectMin. Default 30 s.
	StableAfter time.Duration
}

// DefaultConfig returns a Config with every default filled in; the caller
// sets Certificate, CA and Dispatcher.
func DefaultConfig() Config {
	return Config{
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
		ChannelQueue:      256,
		ChannelQueueBytes: 1 << 20,
		ChannelMaxMessage: 64 << 10,
	}
}

// withDefaults fills zero fields from DefaultConfig and checks the rest.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.HandshakeTimeout, d.HandshakeTimeout)
	setDur(&c.KeepAliveInterval, d.KeepAliveInterval)
	setDur(&c.WriteTimeout, d.WriteTimeout)
	setDur(&c.DefaultTimeout, d.DefaultTimeout)
	setDur(&c.MaxTimeout, d.MaxTimeout)
	setDur(&c.BodyIdleTimeout, d.BodyIdleTimeout)
	setDur(&c.HeaderTimeout, d.HeaderTimeout)
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = d.MaxHeaderBytes
	}
	setDur(&c.ShutdownTimeout, d.ShutdownTimeout)
	setDur(&c.ReconnectMin, d.ReconnectMin)
	setDur(&c.ReconnectMax, d.ReconnectMax)
	setDur(&c.StableAfter, d.StableAfter)
	if c.StreamWindow == 0 {
		c.StreamWindow = d.StreamWindow
	}
	if c.AcceptBacklog == 0 {
		c.AcceptBacklog = d.AcceptBacklog
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = d.MaxStreams
	}
	if c.MaxEventHeader == 0 {
		c.MaxEventHeader = d.MaxEventHeader
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = d.MaxSubscriptions
	}
	if c.RelayQueueBytes == 0 {
		c.RelayQueueBytes = d.RelayQueueBytes
	}
	if c.ChannelQueue == 0 {
		c.ChannelQueue = d.ChannelQueue
	}
	if c.ChannelQueueBytes == 0 {
		c.ChannelQueueBytes = d.ChannelQueueBytes
	}
	if c.ChannelMaxMessage == 0 {
		c.ChannelMaxMessage = d.ChannelMaxMessage
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Certificate.Leaf == nil {
		c.Certificate.Leaf = c.leaf() // parsed once, not at every session
	}
	if c.Dispatcher == nil {
		c.Dispatcher = handlers.NewRegistry()
	}
	switch {
	case len(c.Certificate.Certificate) == 0:
		return c, errors.New("tunnel: config has no certificate")
	case c.CA == nil:
		return c, errors.New("tunnel: config has no CA")
	case c.ReconnectMax < c.ReconnectMin:
		return c, fmt.Errorf("tunnel: ReconnectMax %v is below ReconnectMin %v", c.ReconnectMax, c.ReconnectMin)
	case c.MaxFrame != 0 && (c.MaxFrame < minFrame || c.MaxFrame > maxFrame):
		return c, fmt.Errorf("tunnel: MaxFrame %d is not 0 or between %d and %d", c.MaxFrame, minFrame, maxFrame)
	case c.MaxBodyBytes < 0:
		return c, fmt.Errorf("tunnel: MaxBodyBytes %d is negative", c.MaxBodyBytes)
	case c.MaxStreams < 0 || c.MaxSubscriptions < 0:
		return c, errors.New("tunnel: MaxStreams and MaxSubscriptions must be positive")
	case c.MaxSubscriptions > 65536:
		return c, fmt.Errorf("tunnel: MaxSubscriptions %d is over 65536", c.MaxSubscriptions)
	case c.MaxStreams > maxAnnouncedStreams:
		// It is announced to the peer, which refuses a hello beyond this.
		return c, fmt.Errorf("tunnel: MaxStreams %d is over %d", c.MaxStreams, maxAnnouncedStreams)
	case c.MaxEventHeader < minEventHeader || c.MaxEventHeader > events.MaxMessageSize:
		return c, fmt.Errorf("tunnel: MaxEventHeader %d is not between %d and %d", c.MaxEventHeader, minEventHeader, events.MaxMessageSize)
	case c.RelayQueueBytes < 4*maxChannelMessage:
		// A relay frame carries a message in two forms: two must fit.
		return c, fmt.Errorf("tunnel: RelayQueueBytes %d is below %d", c.RelayQueueBytes, 4*maxChannelMessage)
	case c.ChannelQueue < 0 || c.ChannelQueueBytes < 0:
		return c, errors.New("tunnel: ChannelQueue and ChannelQueueBytes must be positive")
	case c.ChannelMaxMessage < 0 || c.ChannelMaxMessage > maxChannelMessage:
		return c, fmt.Errorf("tunnel: ChannelMaxMessage %d is not between 1 and %d", c.ChannelMaxMessage, maxChannelMessage)
	case c.ChannelQueueBytes < 2*c.ChannelMaxMessage+1024:
		// A GRIP message holds up to two contents of ChannelMaxMessage: one
		// must fit in an empty queue.
		return c, fmt.Errorf("tunnel: ChannelQueueBytes %d is below twice ChannelMaxMessage (%d) plus 1 KiB",
			c.ChannelQueueBytes, c.ChannelMaxMessage)
	}
	if err := webguard.CheckOrigins(c.Origins); err != nil {
		return c, fmt.Errorf("tunnel: %w", err)
	}
	if err := webguard.CheckHosts(c.HTTPHosts); err != nil {
		return c, fmt.Errorf("tunnel: HTTPHosts: %w", err)
	}
	if err := yamux.VerifyConfig(c.yamux()); err != nil {
		return c, fmt.Errorf("tunnel: %w", err)
	}
	return c, nil
}

// minEventHeader is the smallest Config.MaxEventHeader: what a front end
// with a small request fits in.
const minEventHeader = 4 << 10

// Bounds of Config.MaxFrame.
const (
	minFrame = 16 << 10
	maxFrame = 1 << 20
)

// sendBufs returns the pool of copy buffers of cfg.MaxFrame bytes, or of
// def bytes when it is 0; own is a pool of copyBufSize ones to reuse.
func (c Config) sendBufs(def int, own *sync.Pool) *sync.Pool {
	size := cmp.Or(c.MaxFrame, def)
	switch size {
	case copyBufSize:
		return own
	case streamBufSize:
		return streamBufs
	}
	return newBufPool(size)
}

// maxChannelMessage caps ChannelMaxMessage: a relay frame holds a message
// in two forms and must stay under events.MaxMessageSize.
const maxChannelMessage = 256 << 10

// hubOptions are the subscriber queue bounds of the node's channel hub.
func (c Config) hubOptions() channels.Options {
	return channels.Options{QueueLen: c.ChannelQueue, QueueBytes: c.ChannelQueueBytes}
}

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
	y.ConnectionWriteTimeout = c.WriteTimeout
	y.MaxStreamWindowSize = c.StreamWindow
	y.StreamCloseTimeout = streamCloseTimeout
	// yamux watches every stream it opens for the peer's ACK with a
	// goroutine and a timer of its own, and closes the whole session if
	// none comes in time: a goroutine started per event, to detect what
	// keep-alive already detects (a peer that stopped answering). An
	// event's own deadline bounds its caller's wait.
	y.StreamOpenTimeout = 0
	y.LogOutput = nil
	y.Logger = slog.NewLogLogger(c.Logger.With("part", "yamux").Handler(), slog.LevelWarn)
	return y
}

// nodeName is the Common Name of the node's own certificate.
func (c Config) nodeName() string {
	if leaf := c.leaf(); leaf != nil {
		return leaf.Subject.CommonName
	}
	return ""
}

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
