package muxconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/yamux"
)

// Role is which end of the connection a node is.
type Role int

const (
	// Client dialled the connection: TLS client, yamux.Client (it opens
	// the odd stream ids).
	Client Role = iota
	// Server accepted it: TLS server, yamux.Server (the even ids).
	Server
)

// Acceptor serves the streams the peer opens. Its methods run on the
// acceptor goroutine the gate starts when streams come (Serve, for all
// but the last stream of a busy spell, on a goroutine of its own).
type Acceptor interface {
	// Admit is called before each stream is taken from the session. It
	// may wait (a node holds off a peer that holds too many streams), and
	// returns false once the session is over.
	Admit() bool
	// Take decides about st as soon as it is taken: true to have Serve
	// serve it, false if Take has dealt with it (refused or closed it).
	Take(st *yamux.Stream) bool
	// Serve serves st.
	Serve(st *yamux.Stream)
}

// Conn is one connection's stack, from the TCP connection up to the yamux
// session:
//
//	TCP -> idle reader -> write watch -> record batcher -> tls.Conn -> coalescing conn -> yamux.Session
//
// Make it with Handshake, then Start the session, then Serve it.
type Conn struct {
	role Role
	tc   *tls.Conn
	rb   *recordBatcher
	ww   *writeWatch
	idle *idleReader
	cc   *coalesceConn
	g    *gate
	sess *yamux.Session
	// count, if set, adds up the bytes of the session (CountInto).
	count *Counters
}

// Handshake builds the stack under the tls.Conn on raw, a new TCP
// connection, and runs the TLS handshake as role with cfg until ctx ends.
// Its error is crypto/tls's, for the caller to say what failed; raw is
// left to the caller to close.
func Handshake(ctx context.Context, raw net.Conn, role Role, cfg *tls.Config) (*Conn, error) {
	c := &Conn{role: role, idle: newIdleReader(raw)}
	under := raw
	if c.idle != nil {
		under = c.idle
	}
	c.ww = &writeWatch{Conn: under, raw: raw}
	c.rb = &recordBatcher{Conn: c.ww}
	if role == Server {
		c.tc = tls.Server(c.rb, cfg)
	} else {
		c.tc = tls.Client(c.rb, cfg)
	}
	if err := c.tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// ConnectionState is the TLS connection's state: the peer's certificates.
func (c *Conn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.tc.RemoteAddr() }

// Start makes the yamux session over the connection, with cfg. With
// helloPhase, the peer may open one stream (its hello) until EndHello:
// another ends the session with ErrStreamsBeforeHello. Streams are counted
// from now on, and served once Serve is called.
func (c *Conn) Start(cfg *yamux.Config, helloPhase bool) (*yamux.Session, error) {
	odd := c.role == Client
	c.g = newGate(func(id uint32) bool { return id != 0 && (id%2 == 1) == odd })
	c.g.helloOpen.Store(helloPhase)
	c.cc = &coalesceConn{Conn: c.tc, rb: c.rb, idle: c.idle, gate: c.g, since: time.Now(), count: c.count}
	c.idle.start()
	var sess *yamux.Session
	var err error
	if c.role == Server {
		sess, err = yamux.Server(c.cc, cfg)
	} else {
		sess, err = yamux.Client(c.cc, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("yamux: %w", err)
	}
	c.cc.sess.Store(sess)
	c.g.mu.Lock()
	c.g.sess = sess
	c.g.mu.Unlock()
	c.sess = sess
	return sess, nil
}

// AcceptFirst takes the first stream the peer opens (a hello), before
// Serve, until ctx ends.
func (c *Conn) AcceptFirst(ctx context.Context) (*yamux.Stream, error) {
	st, err := c.sess.AcceptStreamWithContext(ctx)
	if err != nil {
		return nil, err
	}
	c.g.took(st.StreamID())
	return st, nil
}

// EndHello ends the hello phase: from now on the peer may open streams.
func (c *Conn) EndHello() { c.g.helloOpen.Store(false) }

// Violation is the rule the peer broke that ended the session
// (ErrPingFlood, ErrStreamsBeforeHello), or nil.
func (c *Conn) Violation() error {
	if c.g == nil {
		return nil
	}
	if p := c.g.violation.Load(); p != nil {
		return *p
	}
	return nil
}

// PeerGoneAway reports whether the peer has said go-away (yamux's
// GoAway: it is shutting down and takes no new streams). It is set before
// yamux handles the go-away, so that a stream of this node's that yamux
// then refuses (ErrRemoteGoAway) or the peer resets finds it set.
func (c *Conn) PeerGoneAway() bool { return c.g != nil && c.g.goneAway.Load() }

// ReadErr is the first error reading the connection under the session
// returned, as crypto/tls gave it, or nil. A TLS alert from the peer is a
// *net.OpError whose Op is "remote error": with TLS 1.3 a server refuses
// the client's certificate after the client's handshake is done, and its
// alert is what the session's first read gets; the session only says the
// connection ended. It is set before the session hears of the error.
func (c *Conn) ReadErr() error {
	if c.cc == nil {
		return nil
	}
	if p := c.cc.readErr.Load(); p != nil {
		return *p
	}
	return nil
}

// OnOwnClosed has f told of every FIN (rst false) and RST the peer sends
// on a stream this node opened, once yamux has handled it, on the
// session's reader: f must not block.
func (c *Conn) OnOwnClosed(f func(id uint32, rst bool)) { c.g.ownClosed.Store(&f) }

// LastReceived is when the session last received bytes from the peer:
// the end of the last read of the connection that returned any (the
// session's start before the first). A session's reader reads whatever
// arrives as it arrives (assumption 7), so on a link that carries frames
// it stays recent however long a ping's answer waits behind them; only a
// silent link lets it age. Its clock is monotonic (time.Since of it is
// immune to the wall clock being set). Before Start it is the zero Time.
func (c *Conn) LastReceived() time.Time {
	if c.cc == nil {
		return time.Time{}
	}
	return c.cc.lastReceived()
}

// WhenClosed has f called, on a goroutine of its own, once the session
// has ended, whatever the reason; at once if it has.
func (c *Conn) WhenClosed(f func()) { c.cc.whenClosed(f) }

// Serve has a serve the streams the peer opens from now on (those that
// came before included). No goroutine waits for streams while none comes.
func (c *Conn) Serve(a Acceptor) { c.g.serve(a) }

// Close closes the connection: the session, once started.
func (c *Conn) Close() error {
	if c.sess != nil {
		return c.sess.Close()
	}
	return c.tc.Close()
}
