package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/tunnel/channels"
	"github.com/restpipe/restpipe/tunnel/internal/hub"
	"github.com/restpipe/restpipe/tunnel/internal/muxconn"
)

// Client is a node that keeps one mTLS connection to the server: it
// reconnects forever, with jittered exponential backoff, serves the
// server's events and sends events to it.
type Client struct {
	cfg  Config
	log  *slog.Logger
	ycfg *yamux.Config
	bufs *sync.Pool
	send *sync.Pool // copy buffers of Config.MaxFrame (see peer.sendBufs)

	hub *hub.Hub // this node's channel subscribers
	// bytes adds up the sessions' bytes, for Config.Metrics.
	bytes muxconn.Counters

	// relayMu guards chRelay, the channel relay of the current session.
	relayMu sync.Mutex
	chRelay *clientRelay
	// chMu guards chSubs, the channels this node's subscribers hold, which
	// outlive a relay (chansubs.go). It is taken before a relay's mu.
	chMu   sync.Mutex
	chSubs map[string]*chanSub

	mu        sync.Mutex
	cur       *peer
	connected chan struct{} // closed while connected; replaced on disconnect
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	bufs := newBufPool(copyBufSize)
	c := &Client{
		cfg:       cfg,
		log:       cfg.Logger,
		ycfg:      cfg.yamux(),
		bufs:      bufs,
		send:      cfg.sendBufs(streamBufSize, bufs),
		hub:       hub.NewHub(cfg.hubOptions()),
		chSubs:    map[string]*chanSub{},
		connected: make(chan struct{}),
	}
	c.observe()
	return c, nil
}

// Name is the client's own name, from its certificate.
func (c *Client) Name() string { return c.cfg.nodeName() }

// Run keeps the client connected to the server at addr until ctx ends,
// then shuts down gracefully (events in flight get ShutdownTimeout to
// finish). It never gives up on its own: connection failures are logged
// and retried after a jittered, exponentially growing delay between
// ReconnectMin and ReconnectMax, which starts again from ReconnectMin
// after a connection that stayed up StableAfter. It returns nil when ctx
// ends.
func (c *Client) Run(ctx context.Context, addr string) error {
	serverName := c.cfg.ServerName
	if serverName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("server address %q: %w", addr, err)
		}
		serverName = host
	}
	tlsConf := c.cfg.clientTLS(serverName)
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(c.cfg.ReconnectMin),
		backoff.WithMaxInterval(c.cfg.ReconnectMax),
		backoff.WithMaxElapsedTime(0), // never stop retrying
	)
	failures := 0 // since the last connection
	for {
		replaced := false
		p, err := c.connect(ctx, addr, tlsConf)
		if err == nil {
			failures = 0
			reason := c.runSession(ctx, p)
			if ctx.Err() != nil {
				return nil
			}
			if time.Since(p.info.ConnectedSince) >= c.cfg.StableAfter {
				b.Reset()
			}
			replaced = errors.Is(reason, ErrReplaced)
			err = fmt.Errorf("disconnected: %s", disconnectReason(reason))
		} else if ctx.Err() != nil {
			return nil
		} else {
			c.cfg.observeRefused(err)
			err = c.cfg.withOwnExpiry(err)
		}
		failures++
		delay := b.NextBackOff()
		if replaced {
			// Another client holds this identity: let it be rather than
			// take the session back at once (the server reports the two).
			delay = max(delay, c.cfg.ReconnectMax)
		}
		c.log.Warn("not connected to server", "server", addr, "err", err,
			"failures", failures, "retry_in", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// connect dials, runs TLS and the hello exchange.
func (c *Client) connect(ctx context.Context, addr string, tlsConf *tls.Config) (*peer, error) {
	hctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(hctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	mc, err := muxconn.Handshake(hctx, raw, muxconn.Client, tlsConf)
	if err != nil {
		_ = raw.Close()
		if r := refusedByServer(err, c.cfg.leaf(), time.Now()); r != nil {
			err = r
		}
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	cs := mc.ConnectionState()
	certs := cs.PeerCertificates
	if c.cfg.VerifyPeer != nil {
		if err := c.cfg.VerifyPeer(certs[0]); err != nil {
			_ = mc.Close()
			return nil, fmt.Errorf("server %s: %w", addr, err)
		}
	}
	mc.WatchWrites(c.cfg.WriteTimeout)
	c.cfg.countBytes(mc, &c.bytes)
	sess, err := mc.Start(c.ycfg, false)
	if err != nil {
		_ = mc.Close()
		return nil, err
	}
	h, err := clientHello(hctx, sess, &c.cfg)
	if err != nil {
		_ = sess.Close()
		if errors.As(err, new(unanswered)) {
			// A certificate the server refuses is told by a TLS alert,
			// which the session's reader got: the hello only saw the
			// session end.
			rerr := mc.ReadErr()
			if r := refusedByServer(rerr, c.cfg.leaf(), time.Now()); r != nil {
				return nil, fmt.Errorf("server %s: %w", addr, r)
			}
			if errors.Is(rerr, io.EOF) || errors.Is(rerr, syscall.ECONNRESET) {
				// No answer and no alert: the server's log says why
				// (another connection with this certificate still in its
				// hello, say).
				return nil, fmt.Errorf("hello to %s: the server closed the connection without answering it; its log says why (%v: %w)", addr, rerr, err)
			}
		}
		return nil, fmt.Errorf("hello to %s: %w", addr, err)
	}
	info := PeerInfo{
		Name:           certs[0].Subject.CommonName,
		RemoteAddr:     mc.RemoteAddr().String(),
		ConnectedSince: time.Now().UTC(),
		Version:        h.SoftwareVersion,
	}
	p := newPeer(&c.cfg, mc, sess, "server", verifiedChain(cs), info, c.bufs, c.send)
	p.paceTo(h.MaxStreams)
	return p, nil
}

// runSession serves p until its session ends or ctx ends (then it drains
// p gracefully), and returns why it ended.
func (c *Client) runSession(ctx context.Context, p *peer) error {
	c.mu.Lock()
	c.cur = p
	close(c.connected)
	c.mu.Unlock()
	p.log.Info("connected to server", "version", p.info.Version)
	p.observeConnected()

	drained := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(drained)
		sctx, cancel := context.WithTimeout(context.Background(), c.cfg.ShutdownTimeout)
		defer cancel()
		p.shutdown(sctx)
	})
	ended := make(chan error, 1)
	p.start(func(reason error) { ended <- reason })
	go c.resumeChannels() // the subscriptions an outage left waiting
	reason := <-ended
	p.observeDisconnected(reason, false)
	if !stop() {
		<-drained
	}
	p.close()

	c.mu.Lock()
	c.cur = nil
	c.connected = make(chan struct{})
	c.mu.Unlock()
	if ctx.Err() == nil {
		p.log.Warn("disconnected from server", "reason", disconnectReason(reason),
			"connected_for", time.Since(p.info.ConnectedSince).Round(time.Millisecond))
	} else {
		p.log.Info("disconnected from server: shutting down")
	}
	return reason
}

// Reverify asks Config.VerifyPeer again about the server's certificate
// (after a revocation list was reloaded, say) and, if it now refuses it,
// ends the session, telling the server why. The reconnection that follows
// is refused at the handshake, with the reason logged. It reports whether
// it ended the session.
func (c *Client) Reverify() bool {
	p := c.peer()
	if c.cfg.VerifyPeer == nil || p == nil {
		return false
	}
	err := c.cfg.VerifyPeer(p.leaf)
	if err == nil {
		return false
	}
	p.log.Warn("session dropped: the server's certificate is no longer accepted", "err", err)
	go p.endWith(codeRefused, fmt.Errorf("%w: %v", ErrNoLongerAccepted, err))
	return true
}

func (c *Client) peer() *peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// WaitConnected blocks until the client is connected or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	c.mu.Lock()
	ch := c.connected
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Server describes the server while connected.
func (c *Client) Server() (PeerInfo, bool) {
	if p := c.peer(); p != nil {
		return p.info, true
	}
	return PeerInfo{}, false
}

// Call sends req to the server and returns its reply, once its header
// has come: the caller reads and closes Response.Body. Its errors wrap
// this package's Err values (ErrPeerUnavailable, ErrTimeout, ...), which
// the front end maps to its error table.
func (c *Client) Call(ctx context.Context, req *Request) (*Response, error) {
	ev, err := req.event(ctx)
	if err != nil {
		return nil, err
	}
	return c.callEvent(ctx, ev, req.body())
}

// callEvent sends the event ev, with body (nil for none), to the server:
// the front end's Call, which sets fields of the wire header that Request
// does not have.
func (c *Client) callEvent(ctx context.Context, ev *events.Request, body io.Reader) (*Response, error) {
	p := c.peer()
	if p == nil {
		return nil, fmt.Errorf("%w: not connected to the server", ErrPeerUnavailable)
	}
	return p.observedCall(ctx, ev, body)
}

// Channels is the client's channel bus, through the server: what it
// publishes reaches every subscriber of the channel on every node; its
// subscribers receive what is published anywhere. A publish needs the
// client connected (channels.ErrUnavailable otherwise). A subscriber
// outlives an outage of the tunnel: while the client is not connected
// (or not yet), it is told so by a notice (a Message whose Outage says
// why) and receives nothing; once the subscription is established at the
// server again, by a notice whose Gap is set, since what was published
// meanwhile is lost. One whose outage lasts longer than
// Config.ChannelOutageWait is closed, with an error wrapping
// channels.ErrUnavailable.
func (c *Client) Channels() channels.Bus { return clientBus{c} }
