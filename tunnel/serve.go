package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel/internal/muxconn"
)

// Serving the peer's events: a stream the peer opens carries one event
// (or the channel relay, or a notice that the session is closing); it is
// read, dispatched to Config.Dispatcher and answered on the same stream.

// peerStreams is what muxconn hands the streams the peer opens to (its
// Acceptor): it takes them only when streams come, and serves the last
// of a busy spell in place, so that at one event at a time the goroutine
// it starts is the one that serves the event.
type peerStreams struct{ p *peer }

// Admit holds off a peer that holds too many streams (streams.go); false
// once the session is over.
func (a peerStreams) Admit() bool { return a.p.holdOff() }

// Take refuses a stream over MaxStreams, and one that comes while the
// session drains (yamux took it before this node's go-away); it keeps
// the others for Serve.
func (a peerStreams) Take(st *yamux.Stream) bool {
	p := a.p
	switch {
	case p.overLimit():
		p.refuseStream(st)
		return false
	case !p.inflight.add():
		p.refuseDraining(st) // draining: no new events
		return false
	}
	return true
}

// Serve serves a stream Take kept.
func (a peerStreams) Serve(st *yamux.Stream) { a.p.serveStream(st, a.p.inflight.done) }

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
	// A request body read slower than it comes (its handler's reply
	// waits on its caller) holds a window in yamux's buffer, not twice
	// that (recvbuf.go).
	r := events.NewReader(muxconn.NewRecvReader(st, p.cfg.StreamWindow))
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
				fmt.Sprintf("%s refused the event: %v", p.cfg.nodeName(), err)), false)
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
	if _, whole := body.Whole(); whole {
		// The whole request is here: while its handler runs, the event
		// holds a small buffer, not the stream's 64 KiB one.
		r.Shrink()
	}
	// The request's trailer fields fill Trailer once its body has been
	// read to the end, as net/http fills a server Request's: the keys the
	// caller announced are there from the start.
	trailer := events.AnnouncedTrailer(ev.Trailer)
	ew := &endWatcher{er: er, body: body, onEnd: watch.start}
	var reqBody io.Reader = ew
	if body.EndIfEmpty() {
		if _, err := body.Read(nil); err == io.EOF {
			reqBody = http.NoBody // else the handler reads the upload's error
			if t := body.Trailer(); len(t) > 0 {
				if trailer == nil {
					trailer = http.Header{}
				}
				events.TrailersToHTTP(t, trailer)
			}
		}
		watch.start()
	}
	if reqBody != http.NoBody {
		if trailer == nil {
			trailer = http.Header{} // for fields that were not announced
		}
		ew.trailer = trailer
	}

	query, _ := url.ParseQuery(string(ev.Query))
	header := http.Header{}
	events.HeadersToHTTP(ev.Headers, header)
	req := &handlers.Request{
		Peer:        p.info.Name,
		RemoteAddr:  p.info.RemoteAddr,
		ID:          ev.Id,
		Method:      ev.Method,
		Noun:        events.Strings(ev.Noun),
		Args:        events.Strings(ev.Args),
		Query:       query,
		Header:      header,
		ContentType: events.ContentType(ev.ContentType),
		Body:        reqBody,
		Trailer:     trailer,

		RawQuery:      string(ev.Query),
		ContentLength: ev.ContentLength,
		Host:          string(ev.Host),
		CallerAddr:    ev.RemoteAddr,
		RawPath:       string(ev.RawPath),
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

	head := strings.EqualFold(ev.Method, http.MethodHead)
	answer := func(rep *handlers.Reply) {
		n, err := p.writeReply(st, rep, head)
		p.observeIn(req, rep.Status, start)
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
	p.cfg.Dispatcher.Serve(dctx, req, answer)
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

// writeReply writes rep and its body on st; a reply to a HEAD (head)
// without its body, but with the length it would have had.
func (p *peer) writeReply(st *yamux.Stream, rep *handlers.Reply, head bool) (int64, error) {
	status := rep.Status
	if status == 0 {
		status = http.StatusOK
		rep.Status = status
	}
	ct := rep.ContentType
	if ct == "" && bodyAllowed(status) && rep.Body != nil && rep.Body != http.NoBody {
		// No type for a status that has no body (204, 304, 1xx).
		ct = "application/octet-stream"
	}
	if head {
		rep = handlers.HeadReply(rep) // after ct: the type of the body a GET gets
	}
	if c, ok := rep.Body.(io.Closer); ok {
		defer c.Close()
	}
	w := eventWriter(st, rep.Body, p.sendBufs)
	defer w.Release()
	msg := &events.Reply{
		Status:      int32(status),
		ContentType: []byte(ct),
		Headers:     events.HeadersFromHTTP(rep.Header),
		ErrorCode:   rep.ErrorCode,
	}
	msg.ContentLength = replyLength(rep, status, head)
	body := rep.Body
	if !head && bodyAllowed(status) && (rep.Trailer != nil || isTrailerSource(body)) {
		// A reply to HEAD, and one of a status without a body, has no
		// trailer fields: none are announced, none sent.
		msg.Trailer = events.TrailerNames(rep.Trailer)
		body = withTrailer(body, rep.Trailer)
		if rep.Header.Get("Content-Length") == "" {
			// Trailer fields need a chunked reply: a body in memory is
			// not given its length.
			msg.ContentLength = nil
		}
	}
	if err := w.WriteMessage(msg); err != nil {
		return 0, err
	}
	if body == nil {
		if err := w.EndBody(""); err != nil {
			return 0, err
		}
		return 0, w.Flush()
	}
	bufs := copyBufs(body, p.sendBufs)
	buf := bufs.Get().(*[]byte)
	defer bufs.Put(buf)
	n, srcErr, dstErr := w.CopyBody(body, *buf)
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
	// trailer gets the body's trailer fields at its end; nil for none.
	trailer http.Header
	ended   bool // trailer is filled
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
		if err == io.EOF && !e.ended && e.trailer != nil {
			e.ended = true
			events.TrailersToHTTP(e.body.Trailer(), e.trailer)
		}
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

// replyLength is the length of rep's body, for Reply.content_length, if
// it is known: the Content-Length its handler (or a forward route's
// service) set, else the Len of a body in memory. For a reply to HEAD
// (head), already without its body, the length a GET's body would have
// had (HeadReply). nil for a status without a body.
func replyLength(rep *handlers.Reply, status int, head bool) *int64 {
	if !bodyAllowed(status) {
		return nil
	}
	if n := events.Length(rep.Header.Get("Content-Length")); n != nil || head {
		return n
	}
	switch b := rep.Body.(type) {
	case nil:
		n := int64(0)
		return &n
	case interface{ Len() int }:
		if l := b.Len(); l >= 0 {
			n := int64(l)
			return &n
		}
	}
	if rep.Body == http.NoBody {
		n := int64(0)
		return &n
	}
	return nil
}

func isTrailerSource(body io.Reader) bool {
	_, ok := body.(events.TrailerSource)
	return ok
}

// withTrailer is body (an empty one if nil) with the trailer fields
// trailer holds once it has been read to its end (events.TrailerSource):
// a Reply's or a Request's Trailer, filled as net/http's are. A body that
// is a TrailerSource already (a forward route's reply) stays as it is.
func withTrailer(body io.Reader, trailer http.Header) io.Reader {
	if isTrailerSource(body) || trailer == nil {
		return body
	}
	if body == nil {
		body = http.NoBody
	}
	return &trailedBody{r: body, trailer: trailer}
}

// trailedBody is a body that sends trailer fields after its end.
type trailedBody struct {
	r       io.Reader
	trailer http.Header
}

func (b *trailedBody) Read(p []byte) (int, error) { return b.r.Read(p) }

// Trailer implements events.TrailerSource.
func (b *trailedBody) Trailer() []*events.Header { return events.TrailersFromHTTP(b.trailer) }
