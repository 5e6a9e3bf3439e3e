package tunnel

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/tunnel/internal/muxconn"
)

// PeerInfo describes a connected peer.
type PeerInfo struct {
	// Name is the peer's certificate Common Name.
	Name string `json:"name"`
	// RemoteAddr is the address its connection comes from.
	RemoteAddr string `json:"remote_addr"`
	// ConnectedSince is when its session was established.
	ConnectedSince time.Time `json:"connected_since"`
	// Version is the software version it announced.
	Version string `json:"version,omitempty"`
}

// peer is one live session with the node at the other end.
type peer struct {
	cfg   *Config
	log   *slog.Logger
	info  PeerInfo
	role  string              // what the peer is to this node: "client" or "server"
	leaf  *x509.Certificate   // the peer's certificate
	chain []*x509.Certificate // the peer's verified chain, leaf first
	mc    *muxconn.Conn       // under sess
	sess  *yamux.Session

	// ctx ends when the session ends; it parents every event's context.
	ctx      context.Context
	cancel   context.CancelFunc
	inflight inflight
	limits   streamLimits // of the streams the peer holds (streams.go)
	// pace keeps this node's streams within the peer's announced
	// MaxStreams; own tracks them until yamux frees them (pacing.go).
	pace *pacer
	own  *ownStreams
	bufs *sync.Pool // copy buffers, copyBufSize
	// sendBufs holds the buffers that copy a body onto a stream, a frame
	// per read (events.Writer.CopyBody): Config.MaxFrame big, as yamux
	// keeps a send buffer as big as the biggest frame for the session's
	// life.
	sendBufs *sync.Pool
	ka       *time.Timer // the next keep-alive ping, or silence check
	kaMu     sync.Mutex  // orders keepAlive's firings' use of ka and pings
	pings    int         // keep-alive pings waiting for their answer
	// why is why the session ends, when this node ended it on purpose or
	// the peer said why (see sessionend.go); the first reason counts.
	why atomic.Pointer[error]
	// expiry ends the session when expires, the first of its
	// certificates to expire, does (see watchExpiry).
	expiry  *time.Timer
	expires expiring
	// replaced is the address of the session this one replaced, if any
	// (on a server).
	replaced string
	// relayOpen is set while the peer's channel relay is served.
	relayOpen atomic.Bool
	// onRelay serves the peer's channel relay stream (set on a server).
	onRelay func(p *peer, st *yamux.Stream, r *events.Reader)
}

// newPeer makes the peer of a session; role is what the peer is ("client"
// or "server"), chain its verified certificate chain, leaf first.
func newPeer(cfg *Config, mc *muxconn.Conn, sess *yamux.Session, role string, chain []*x509.Certificate, info PeerInfo, bufs, sendBufs *sync.Pool) *peer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &peer{
		role:     role,
		leaf:     chain[0],
		chain:    chain,
		cfg:      cfg,
		log:      cfg.Logger.With("peer", info.Name, "remote", info.RemoteAddr),
		info:     info,
		mc:       mc,
		sess:     sess,
		ctx:      ctx,
		cancel:   cancel,
		bufs:     bufs,
		sendBufs: sendBufs,
		pace:     newPacer(0, false),
	}
	// A client opens the odd stream ids.
	p.own = newOwnStreams(role == "server", func() { p.limits.own.Add(-1) })
	mc.OnOwnClosed(p.own.peerClosed)
	return p
}

// paceTo paces this node's streams to the MaxStreams the peer announced
// in its hello (0: none, an older node); it runs before the peer starts.
func (p *peer) paceTo(announced uint32) {
	p.pace = newPacer(int(announced), p.role == "server")
}

// start serves the peer's streams from now on and keeps the session
// alive. Once the session has ended, whatever the reason, onEnd is called
// (on a goroutine of its own) with why. No goroutine waits for streams
// while none comes (see muxconn.Conn.Serve).
func (p *peer) start(onEnd func(reason error)) {
	p.watchExpiry() // before keepAlive may look at it
	// Keep-alive: a timer, not a goroutine per session (yamux's own
	// keep-alive loop costs a 4 KiB stack on every idle session).
	p.ka = time.AfterFunc(time.Duration(math.MaxInt64), p.keepAlive)
	p.ka.Reset(p.cfg.KeepAliveInterval) // after p.ka is set, for keepAlive to see it
	p.mc.WhenClosed(func() {
		p.cancel()
		p.ka.Stop()
		p.expiry.Stop()
		onEnd(p.endReason())
	})
	p.mc.Serve(peerStreams{p})
}

// endReason says why the session, which has ended, ended. It closes the
// streams the peer opened that were not accepted.
func (p *peer) endReason() error {
	for {
		st, err := p.sess.AcceptStream()
		if err != nil {
			if why := p.why.Load(); why != nil {
				return *why
			}
			return err
		}
		_ = st.Close()
	}
}

// keepAlive pings the peer, and ends the session once nothing at all has
// been received from it for KeepAliveInterval + WriteTimeout (silence,
// below). A ping that goes unanswered does not end it by itself: on a slow
// link its answer may wait behind the frames of streams in flight (up to
// a window each) for longer than WriteTimeout, and those frames arriving
// are as good a sign of life as the answer. A dead or half-open link, over
// which nothing arrives, is noticed within KeepAliveInterval +
// WriteTimeout of the last bytes received.
//
// A ping goes out every interval whether the last one was answered or
// not: the pings are what the peer hears from this node when this node
// has nothing else to send (a caller downloading sends only a window
// update per half window read, which on a slow link comes less often than
// the peer's limit), so waiting for an answer stuck behind the peer's
// queued frames left the peer without a sign of life, and it ended a
// healthy session (TestKeepAliveDownloadOnly). At most maxPings wait at
// once (each holds a goroutine until its answer, or yamux's hour); past
// that the firing only checks the silence.
//
// It runs on p.ka, a timer: each firing sets the next one before it
// pings, for the next interval or the moment the silence would reach its
// limit, whichever is sooner.
func (p *peer) keepAlive() {
	if p.sess.IsClosed() {
		return
	}
	if p.expired() {
		p.expiry.Reset(0) // the wall clock went forward past the end
	}
	p.kaMu.Lock()
	left := p.silenceLeft()
	if left <= 0 {
		p.kaMu.Unlock()
		p.silent()
		return
	}
	p.ka.Reset(min(p.cfg.KeepAliveInterval, left))
	if p.pings >= maxPings {
		p.kaMu.Unlock()
		return
	}
	p.pings++
	p.kaMu.Unlock()

	rtt, err := p.sess.Ping()
	p.observeRTT(rtt, err)

	p.kaMu.Lock()
	p.pings--
	p.kaMu.Unlock()
	if errors.Is(err, yamux.ErrSessionShutdown) || p.sess.IsClosed() {
		return
	}
	if err != nil {
		p.log.Debug("keep-alive ping unanswered", "err", err,
			"last_received", time.Since(p.mc.LastReceived()).Round(time.Millisecond))
	}
}

// maxPings bounds the keep-alive pings waiting for their answer on one
// session: a queue of replies 16 intervals deep (four minutes at the
// default interval) before this node stops adding pings to it.
const maxPings = 16

// silenceLeft is how long the peer may stay silent from now before the
// session is taken for dead: KeepAliveInterval + WriteTimeout after the
// last bytes received from it.
func (p *peer) silenceLeft() time.Duration {
	return p.cfg.KeepAliveInterval + p.cfg.WriteTimeout - time.Since(p.mc.LastReceived())
}

// silent ends the session whose peer has been silent too long.
func (p *peer) silent() {
	if p.sess.IsClosed() {
		return
	}
	p.setWhy(yamux.ErrKeepAliveTimeout)
	p.log.Warn("keep-alive: nothing received from the peer: closing the session",
		"silent_for", time.Since(p.mc.LastReceived()).Round(time.Millisecond),
		"limit", p.cfg.KeepAliveInterval+p.cfg.WriteTimeout)
	_ = p.sess.Close()
}

// shutdown stops the peer from opening new streams, lets events in
// flight finish until ctx ends, then closes the session.
func (p *peer) shutdown(ctx context.Context) {
	_ = p.sess.GoAway()
	select {
	case <-p.inflight.drain():
	case <-ctx.Done():
		p.log.Warn("closing with events still in flight", "events", p.inflight.count())
	}
	_ = p.sess.Close()
}

// close ends the session at once.
func (p *peer) close() { _ = p.sess.Close() }

// inflight counts events under way on a session, and tells when the last
// one ends once the session drains. (A sync.WaitGroup may not be added to
// while it is waited on.)
type inflight struct {
	mu       sync.Mutex
	n        int
	draining bool
	idle     chan struct{} // made when draining starts, closed at n == 0
}

func (f *inflight) add() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.draining {
		return false
	}
	f.n++
	return true
}

func (f *inflight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.draining {
		close(f.idle)
	}
}

func (f *inflight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// drain refuses new events from now on and returns a channel closed once
// none is left.
func (f *inflight) drain() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.draining {
		f.draining = true
		f.idle = make(chan struct{})
		if f.n == 0 {
			close(f.idle)
		}
	}
	return f.idle
}
