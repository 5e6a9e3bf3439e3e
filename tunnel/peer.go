package tunnel

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
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
	cc    *coalesceConn       // under sess
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
	ka       *time.Timer // the next keep-alive ping
	// why is why the session ends, when this node ended it on purpose or
	// the peer said why (see lifecycle.go); the first reason counts.
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
func newPeer(cfg *Config, cc *coalesceConn, sess *yamux.Session, role string, chain []*x509.Certificate, info PeerInfo, bufs, sendBufs *sync.Pool) *peer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &peer{
		role:     role,
		leaf:     chain[0],
		chain:    chain,
		cfg:      cfg,
		log:      cfg.Logger.With("peer", info.Name, "remote", info.RemoteAddr),
		info:     info,
		cc:       cc,
		sess:     sess,
		ctx:      ctx,
		cancel:   cancel,
		bufs:     bufs,
		sendBufs: sendBufs,
		pace:     newPacer(0, false),
	}
	// A client opens the odd stream ids.
	p.own = newOwnStreams(role == "server", func() { p.limits.own.Add(-1) })
	if cc.gate != nil {
		cc.gate.own.Store(p.own)
	}
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
// while none comes (see acceptGate).
func (p *peer) start(onEnd func(reason error)) {
	p.watchExpiry() // before keepAlive may look at it
	// Keep-alive: a timer, not a goroutine per session (yamux's own
	// keep-alive loop costs a 4 KiB stack on every idle session).
	p.ka = time.AfterFunc(time.Duration(math.MaxInt64), p.keepAlive)
	p.ka.Reset(p.cfg.KeepAliveInterval) // after p.ka is set, for keepAlive to see it
	p.cc.whenClosed(func() {
		p.cancel()
		p.ka.Stop()
		p.expiry.Stop()
		onEnd(p.endReason())
	})
	p.cc.gate.open(func() { go p.acceptStreams() })
}

// acceptStreams takes the streams the gate counted until none is left,
// and serves the last one itself: at one event at a time, the goroutine
// the gate starts is the one that serves the event.
func (p *peer) acceptStreams() {
	for {
		if !p.holdOff() {
			return // the session is over
		}
		st, err := p.sess.AcceptStream()
		if err != nil {
			return // the session is over
		}
		last := p.cc.gate.accepted()
		switch {
		case p.overLimit():
			p.refuseStream(st)
		case !p.inflight.add():
			_ = st.Close() // draining: no new events
		case last:
			p.serveStream(st, p.inflight.done)
		default:
			go p.serveStream(st, p.inflight.done)
		}
		if last {
			return
		}
	}
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

// keepAlive pings the peer and schedules the next ping one interval after
// the answer. A ping not answered within WriteTimeout closes the session:
// a dead or half-open link is noticed within KeepAliveInterval +
// WriteTimeout, as with yamux's own keep-alive.
func (p *peer) keepAlive() {
	if p.sess.IsClosed() {
		return
	}
	if p.expired() {
		p.expiry.Reset(0) // the wall clock went forward past the end
	}
	if _, err := p.sess.Ping(); err != nil {
		if !errors.Is(err, yamux.ErrSessionShutdown) && !p.sess.IsClosed() {
			p.setWhy(yamux.ErrKeepAliveTimeout)
			p.log.Warn("keep-alive failed: closing the session", "err", err)
			_ = p.sess.Close()
		}
		return
	}
	p.ka.Reset(p.cfg.KeepAliveInterval)
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

// watchAfter is how long a handler runs before its event's stream is
// watched for the caller giving up (a half-close): a quick handler costs
// no watching goroutine, a slow one is cancelled this much later at most.
const watchAfter = 2 * time.Millisecond

// serveStream serves one event stream: it reads the Request, dispatches
// it and writes the Reply. It calls done once the event is over for its
// caller: when the reply has been written (a handler that ignores its
// deadline may run on after its 504), or when it returns early.
func (p *peer) serveStream(st *yamux.Stream, done func()) {
	// done runs once: when the reply has been written, or else when this
	// returns, whatever way it returns.
	done = sync.OnceFunc(done)
	defer done()
	defer st.Close()
	r := events.NewReader(st)
	_ = st.SetReadDeadline(time.Now().Add(p.cfg.HandshakeTimeout))
	var ev events.Request
	if err := r.ReadHeader(&ev, p.cfg.MaxEventHeader); err != nil {
		r.Release()
		if errors.Is(err, events.ErrTooLarge) {
			// Its sender hears why; the rest of the stream is not read.
			if n, ok := p.limits.tooLarge.allow(time.Now()); ok {
				p.log.Warn("event refused: its header is over the limit", "err", err, "refused", n)
			}
			_ = st.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout))
			_, _ = p.writeReply(st, handlers.ErrorReply(http.StatusRequestHeaderFieldsTooLarge, handlers.CodeTooLarge,
				fmt.Sprintf("%s refused the event: %v", p.cfg.nodeName(), err)))
			return
		}
		p.log.Debug("read event", "err", err)
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	if ev.SessionClose != nil {
		done()
		r.Release()
		p.noticed(ev.SessionClose)
		return
	}
	if ev.ChannelRelay {
		// Long-lived, and not an event in flight that a shutdown waits for.
		done()
		if p.onRelay == nil {
			r.Release()
			p.log.Warn("channel relay refused: only clients open them")
			return
		}
		p.onRelay(p, st, r) // until the relay or the session ends
		return
	}
	start := time.Now()

	// The stream's reader (and its pooled buffer) is shared by this
	// function, the handler's reads of the body and the watcher of the
	// stream's end; the last of them to finish releases it.
	er := &eventReader{r: r, refs: 1}
	defer er.release() // after cancel (deferred below): blocked reads wake first

	// ctx ends when the caller gives up (the sender half-closes), when the
	// session ends, or when this event is over. Either way, it wakes any
	// read or write blocked on the stream.
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	stopWake := context.AfterFunc(ctx, func() { _ = st.SetDeadline(time.Now()) })

	// Once the request body has ended, the stream is watched for its end,
	// from watchAfter on: the caller half-closes it when it gives up.
	body := r.Body()
	watch := &lazyWatch{f: func() {
		if !er.acquire() {
			return
		}
		defer er.release()
		if err := r.WaitEnd(); err != nil && !errors.Is(err, yamux.ErrTimeout) {
			p.log.Debug("event stream", "req", ev.Id, "err", err)
		}
		cancel()
	}}
	var reqBody io.Reader = &endWatcher{er: er, body: body, onEnd: watch.start}
	if body.EndIfEmpty() {
		if _, err := body.Read(nil); err == io.EOF {
			reqBody = http.NoBody // else the handler reads the upload's error
		}
		watch.start()
	}

	query, _ := url.ParseQuery(ev.Query)
	header := http.Header{}
	events.HeadersToHTTP(ev.Headers, header)
	req := &handlers.Request{
		Peer:        p.info.Name,
		RemoteAddr:  p.info.RemoteAddr,
		ID:          ev.Id,
		Method:      ev.Method,
		Noun:        ev.Noun,
		Args:        ev.Args,
		Query:       query,
		Header:      header,
		ContentType: ev.ContentType,
		Body:        reqBody,

		RawQuery:      ev.Query,
		ContentLength: ev.ContentLength,
		Host:          ev.Host,
		CallerAddr:    ev.RemoteAddr,
		RawPath:       ev.RawPath,
		Upgrade:       ev.Upgrade,
	}
	req.Name = handlers.Name(req.Method, req.Noun)
	req = req.WithContext(ctx)
	dctx := ctx
	if ev.TimeoutMs > 0 {
		req.Deadline = start.Add(time.Duration(ev.TimeoutMs) * time.Millisecond)
		var cancelD context.CancelFunc
		dctx, cancelD = context.WithDeadline(ctx, req.Deadline)
		defer cancelD()
	}

	answer := func(rep *handlers.Reply) {
		n, err := p.writeReply(st, rep)
		level := slog.LevelDebug
		if err != nil && ctx.Err() == nil {
			level = slog.LevelWarn
		}
		if p.log.Enabled(ctx, level) { // its arguments cost allocations
			p.log.Log(ctx, level, "event served", "req", ev.Id, "handler", req.Name,
				"status", rep.Status, "code", rep.ErrorCode, "bytes", n,
				"duration", time.Since(start), "err", err)
		}
		// The event is over: wake whatever still waits on the stream (the
		// watcher, a handler that ran past its deadline), here rather than
		// from a goroutine of ctx's, and cancel the handler's context.
		watch.stop()
		if stopWake() {
			_ = st.SetDeadline(time.Now())
		}
		cancel()
		_ = st.Close()
		done()
	}
	if s, ok := p.cfg.Handler.(inlineDispatcher); ok {
		s.Serve(dctx, req, answer)
	} else {
		answer(p.cfg.Handler.Dispatch(dctx, req))
	}
}

// inlineDispatcher is a Dispatcher that runs the handler in the calling
// goroutine and answers from another one only if the deadline passes
// first (*handlers.Registry): no goroutine per event.
type inlineDispatcher interface {
	Serve(ctx context.Context, req *handlers.Request, answer func(*handlers.Reply))
}

// lazyWatch runs f in a goroutine of its own once start has been called
// and watchAfter has passed, unless stop came first.
type lazyWatch struct {
	f       func()
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

func (w *lazyWatch) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.t == nil && !w.stopped {
		w.t = time.AfterFunc(watchAfter, w.f)
	}
}

func (w *lazyWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.t != nil {
		w.t.Stop()
	}
}

// writeReply writes rep and its body on st.
func (p *peer) writeReply(st *yamux.Stream, rep *handlers.Reply) (int64, error) {
	if c, ok := rep.Body.(io.Closer); ok {
		defer c.Close()
	}
	status := rep.Status
	if status == 0 {
		status = http.StatusOK
		rep.Status = status
	}
	ct := rep.ContentType
	if ct == "" && rep.Body != nil && rep.Body != http.NoBody {
		ct = "application/octet-stream"
	}
	w := events.NewWriter(st)
	defer w.Release()
	msg := &events.Reply{
		Status:      int32(status),
		ContentType: ct,
		Headers:     events.HeadersFromHTTP(rep.Header),
		ErrorCode:   rep.ErrorCode,
	}
	if err := w.WriteMessage(msg); err != nil {
		return 0, err
	}
	if rep.Body == nil {
		if err := w.EndBody(""); err != nil {
			return 0, err
		}
		return 0, w.Flush()
	}
	buf := p.sendBufs.Get().(*[]byte)
	defer p.sendBufs.Put(buf)
	n, srcErr, dstErr := w.CopyBody(rep.Body, *buf)
	if dstErr != nil {
		return n, fmt.Errorf("write reply body: %w", dstErr)
	}
	if srcErr != nil {
		return n, fmt.Errorf("reply body ended early: %w", srcErr)
	}
	return n, nil
}

// endWatcher is a served event's request body: it calls onEnd once the
// body has been read to the end, and fails once the event is over and its
// reader released (a handler that outlives its answer may still read).
type endWatcher struct {
	er    *eventReader
	body  *events.BodyReader
	onEnd func()
}

// errEventOver is what a request body read after its event ended returns.
var errEventOver = errors.New("tunnel: request body read after the event ended")

func (e *endWatcher) Read(p []byte) (int, error) {
	if !e.er.acquire() {
		return 0, errEventOver
	}
	defer e.er.release()
	n, err := e.body.Read(p)
	if err != nil {
		e.onEnd()
	}
	return n, err
}

// eventReader counts the users of a served stream's events.Reader, and
// returns its buffer to the pool when the last one is done. Without it
// every event would allocate a new 64 KiB buffer.
type eventReader struct {
	mu   sync.Mutex
	r    *events.Reader // nil once released
	refs int
}

// acquire takes a reference; it fails once the reader is released.
func (e *eventReader) acquire() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.r == nil {
		return false
	}
	e.refs++
	return true
}

// release drops a reference, and the reader with the last one.
func (e *eventReader) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refs--
	if e.refs == 0 && e.r != nil {
		e.r.Release()
		e.r = nil
	}
}

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
