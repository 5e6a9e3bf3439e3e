package tunnel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/protobuf/proto"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/tunnel/internal/muxconn"
)

// Request is an event for Server.Call and Client.Call: which handler of
// the peer to run (Method and Noun name it, as handlers.Name does), its
// arguments, and what it reads of the request. The handler sees the
// fields in its handlers.Request.
type Request struct {
	// Method is the HTTP verb; with Noun it names the handler: "GET" and
	// {"time", "utc"} call get_time_utc. Empty means GET; another that is
	// not an HTTP token is refused.
	Method string
	// Noun is the handler's noun, one element per path segment.
	Noun []string
	// Args are the handler's arguments (the segments after "//" of a
	// front-end path), taken as they are: no escaping.
	Args []string
	// Query is the query string the handler sees (its Query, and its
	// RawQuery encoded by url.Values.Encode).
	Query url.Values
	// Header holds request headers for the handler. Hop-by-hop and framing
	// headers (Connection, Content-Length, Transfer-Encoding...) are left
	// out. An event whose header (noun, arguments, query, headers, as
	// framed) is over Config.MaxEventHeader is not sent: Call returns an
	// error wrapping events.ErrTooLarge.
	Header http.Header
	// ContentType is Body's media type.
	ContentType string
	// Body streams the request body while the reply may already come
	// back; nil for none. Call reads it to its end or until the event
	// ends, and does not close it: a Read still blocked a second after the
	// event ended is left to return on its own goroutine, as net/http's
	// Transport leaves it. A Body with a Len() int method (a
	// bytes.Reader, a strings.Reader, a bytes.Buffer) tells the handler
	// its length; another reads as one of unknown length. A Request with
	// a Body is good for one Call.
	Body io.Reader
	// Trailer holds trailer fields to send after Body, as net/http's
	// client Request.Trailer: its keys are announced with the event, its
	// values read once Body has returned io.EOF. The handler finds them
	// in its Request.Trailer. Fields that may not be trailers
	// (events.TrailerAllowed) are dropped; fields over
	// events.MaxTrailerSize end the upload with an error.
	Trailer http.Header
	// Timeout bounds the wait for the reply header and is the handler's
	// deadline. Zero means the deadline of ctx, if it has one; with
	// neither, the event waits as long as ctx lives and the handler has
	// no deadline.
	Timeout time.Duration
	// ID is the request id that both nodes log (X-Request-Id); empty
	// means a new random one.
	ID string
}

// event returns the wire header of r, checked (Server.Call and
// Client.Call): a noun, an HTTP token for a method, a sane timeout.
func (r *Request) event(ctx context.Context) (*events.Request, error) {
	if r == nil {
		return nil, errors.New("call: nil request")
	}
	ev := &events.Request{
		Id:            requestID(r.ID),
		Method:        cmp.Or(r.Method, http.MethodGet),
		Noun:          events.Bytes(r.Noun),
		Args:          events.Bytes(r.Args),
		Query:         []byte(r.Query.Encode()),
		ContentType:   []byte(r.ContentType),
		Headers:       events.HeadersFromHTTP(r.Header),
		ContentLength: bodyLength(r.Body),
		Trailer:       events.TrailerNames(r.Trailer),
	}
	switch d, ok := ctx.Deadline(); {
	case r.Timeout < 0:
		return nil, fmt.Errorf("event %s: negative timeout %v", ev.Id, r.Timeout)
	case r.Timeout > 0:
		ev.TimeoutMs = max(1, r.Timeout.Milliseconds())
	case ok:
		ev.TimeoutMs = max(1, time.Until(d).Milliseconds())
	}
	if len(r.Noun) == 0 {
		return nil, fmt.Errorf("event %s: %w: no noun", ev.Id, events.ErrBadPath)
	}
	if !validMethod(ev.Method) {
		return nil, fmt.Errorf("event %s: method %q is not an HTTP token", ev.Id, ev.Method)
	}
	return ev, nil
}

// body is the body Call sends: Body, with Trailer's fields after it.
func (r *Request) body() io.Reader {
	if r.Trailer == nil || r.Body == nil {
		return r.Body
	}
	return withTrailer(r.Body, r.Trailer)
}

// validMethod reports whether m is an HTTP method as net/http takes
// one: a token (RFC 9110), which a front-end request's method always is.
func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return m != ""
}

// bodyLength is the ContentLength of a Call's body: 0 for none, its Len()
// if it has one, else -1 (unknown), as net/http counts.
func bodyLength(body io.Reader) int64 {
	switch b := body.(type) {
	case nil:
		return 0
	case interface{ Len() int }:
		if n := b.Len(); n >= 0 {
			return int64(n)
		}
		return -1 // a Len() below zero says nothing
	default:
		if body == http.NoBody {
			return 0
		}
		return -1
	}
}

// Response is the peer's answer to an event. Its Body streams the reply;
// the caller must Close it, which ends the event and frees its stream.
type Response struct {
	// Status is the HTTP status the peer answered.
	Status int
	// ContentType of Body.
	ContentType string
	// Header holds the reply headers the handler set; in a reply to
	// HEAD, Content-Length too when the peer knew the length of the body
	// a GET would have had.
	Header http.Header
	// ContentLength is the length of Body, when the handler (or a forward
	// route's service) stated it or its body was in memory; -1 when
	// unknown. In a reply to HEAD, the length a GET's body would have
	// had. It is the peer's word: Body ends where the peer ended it.
	ContentLength int64
	// ErrorCode is set on error replies ("no_handler", ...).
	ErrorCode string
	// Trailer holds the trailer fields the handler sent after the body,
	// as net/http's client Response.Trailer: the names it announced are
	// there, without values, from the start; the values (and fields it
	// did not announce) once Body has returned io.EOF. nil if none were
	// announced and none came.
	Trailer http.Header
	// Body streams the reply body. A body cut short returns an error
	// wrapping ErrTunnelClosed, or an *events.BodyError when the handler's
	// side could not finish it.
	Body io.ReadCloser

	ex *exchange
}

// UploadErr returns the error that ended the request body's upload early,
// if any (for example ErrBodyTooLarge).
func (r *Response) UploadErr() error { return r.ex.uploadErr() }

// inlineBody is the largest in-memory request body sent with its header.
const inlineBody = copyBufSize

// uploadGrace is how long an event that ended waits for a caller still
// sending its body before interrupting the read.
const uploadGrace = time.Second

// bodyAborter is a request body whose blocked Read can be interrupted, so
// that an event that ends does not wait on a slow uploader.
type bodyAborter interface{ abortRead() }

// exchange is one event on the sending side.
type exchange struct {
	p   *peer
	id  string // the event's request id, for the log
	st  *yamux.Stream
	ctx context.Context
	own *ownStream // frees the stream's slot once yamux has freed it

	closeOnce sync.Once // closeStream

	mu       sync.Mutex
	aborted  bool
	upErr    error
	upDone   chan struct{} // closed when the upload goroutine ends; nil if none
	body     io.Reader
	r        *events.Reader // the reply's reader, released by finish
	stopWake func() bool
	once     sync.Once
	done     atomic.Bool // finish ran
	first    [1]byte     // the reply's first byte (call)
}

// call sends ev with body (nil for none) to the peer and waits for the
// reply header: until ctx ends or, if ev.TimeoutMs is set, that long.
func (p *peer) call(ctx context.Context, ev *events.Request, body io.Reader) (*Response, error) {
	// A header the peer would refuse is not sent: the peer answers 431
	// without reading it to its end, and a header over the stream's first
	// window would leave the write waiting for a window that never comes.
	if n := proto.Size(ev); n > p.cfg.MaxEventHeader {
		return nil, fmt.Errorf("event %s: header of %d bytes: %w (MaxEventHeader is %d)", ev.Id, n, events.ErrTooLarge, p.cfg.MaxEventHeader)
	}
	if !p.inflight.add() {
		return nil, fmt.Errorf("%w: %s is shutting down", ErrPeerUnavailable, p.info.Name)
	}
	// A slot of the peer's MaxStreams, waited for until the deadline: the
	// event's own wait counts against it.
	var wait time.Duration
	if ev.TimeoutMs > 0 {
		wait = time.Duration(ev.TimeoutMs) * time.Millisecond
	}
	slot, waited, err := p.take(ctx, p.pace.events, wait)
	if err != nil {
		p.inflight.done()
		return nil, err
	}
	if waited > 0 && ev.TimeoutMs > 0 {
		ev.TimeoutMs = max(1, (wait - waited).Milliseconds())
	}
	st, own, err := p.openOwn(slot)
	if err != nil {
		p.inflight.done()
		if errors.Is(err, yamux.ErrRemoteGoAway) {
			return nil, p.goneAway()
		}
		return nil, fmt.Errorf("%w: open stream to %s: %v", ErrTunnelClosed, p.info.Name, err)
	}
	ex := &exchange{p: p, id: ev.Id, st: st, ctx: ctx, body: body, own: own}
	ex.stopWake = context.AfterFunc(ctx, ex.abort)

	w := eventWriter(st, body, p.bufs)
	if err := w.WriteMessage(ev); err != nil {
		w.Release()
		ex.finish()
		return nil, ex.classifyUnanswered(err)
	}
	if body == nil || body == http.NoBody {
		err = w.EndBody("")
		if err == nil {
			err = w.Flush()
		}
	} else if m, ok := body.(interface{ Len() int }); ok && m.Len() >= 0 && m.Len() <= inlineBody {
		// A small body in memory goes with the header, in one frame, and
		// needs no upload goroutine.
		bufs := copyBufs(body, p.bufs)
		buf := bufs.Get().(*[]byte)
		_, srcErr, dstErr := w.CopyBody(body, *buf)
		bufs.Put(buf)
		err = dstErr
		if err == nil && srcErr != nil {
			ex.upErr = srcErr
		}
	} else {
		err = w.Flush()
		if err == nil {
			ex.upDone = make(chan struct{})
			go ex.upload(w, body) // it releases w
		}
	}
	if ex.upDone == nil {
		w.Release()
	}
	if err != nil {
		ex.finish()
		return nil, ex.classifyUnanswered(err)
	}

	if ev.TimeoutMs > 0 {
		_ = st.SetReadDeadline(time.Now().Add(time.Duration(ev.TimeoutMs) * time.Millisecond))
	}
	// The reply's reader, and its 64 KiB buffer, is taken once the reply
	// begins: a caller waiting on a slow handler holds no buffer. A read
	// that fails fails again, the same way, in ReadHeader.
	// Read through a RecvReader: a reply read slower than it comes
	// holds a window in yamux's buffer, not twice that (recvbuf.go).
	var r *events.Reader
	rr := muxconn.NewRecvReader(st, p.cfg.StreamWindow)
	if n, _ := rr.Read(ex.first[:]); n == 1 {
		r = events.NewReaderAfter(ex.first[0], rr)
	} else {
		r = events.NewReader(rr)
	}
	ex.r = r
	var rep events.Reply
	if err := r.ReadHeader(&rep, p.cfg.MaxEventHeader); err != nil {
		ex.finish()
		return nil, ex.classifyUnanswered(err)
	}
	ex.mu.Lock()
	if !ex.aborted {
		_ = st.SetReadDeadline(time.Time{})
	}
	ex.mu.Unlock()

	header := http.Header{}
	events.HeadersToHTTP(rep.Headers, header)
	length := int64(-1)
	if rep.ContentLength != nil && *rep.ContentLength >= 0 {
		length = *rep.ContentLength
		if strings.EqualFold(ev.Method, http.MethodHead) {
			header.Set("Content-Length", strconv.FormatInt(length, 10))
		}
	}
	resp := &Response{
		Status:        int(rep.Status),
		ContentType:   events.ContentType(rep.ContentType),
		Header:        header,
		ErrorCode:     rep.ErrorCode,
		Trailer:       events.AnnouncedTrailer(rep.Trailer),
		ContentLength: length,
		ex:            ex,
	}
	resp.Body = &replyBody{body: r.Body(), ex: ex, resp: resp}
	return resp, nil
}

// upload streams the request body after the header.
func (ex *exchange) upload(w *events.Writer, body io.Reader) {
	buf := ex.p.sendBufs.Get().(*[]byte)
	_, srcErr, dstErr := w.CopyBody(body, *buf)
	ex.p.sendBufs.Put(buf)
	w.Release()
	ex.mu.Lock()
	ex.upErr = srcErr
	ex.mu.Unlock()
	// Done before aborting: finish must not think the upload still reads.
	close(ex.upDone)
	switch {
	case errors.Is(srcErr, ErrBodyTooLarge):
		ex.abort() // nobody may answer a request that is not allowed
	case errors.Is(dstErr, yamux.ErrConnectionWriteTimeout) && !ex.done.Load():
		// A frame waited in yamux's queue, behind other streams' frames
		// on a slow link, past ConnectionWriteTimeout: Write gave up on
		// it, though it may still go out, so the body cannot go on. Left
		// at that, the peer would wait for the rest of the body and this
		// side for a reply that needs it, both for good: the event ends,
		// and the caller gets an error.
		ex.p.log.Warn("request body not sent: event aborted", "req", ex.id, "err", dstErr)
		ex.abort()
	case dstErr != nil && ex.ctx.Err() == nil:
		ex.p.log.Debug("upload request body", "err", dstErr)
	}
}

func (ex *exchange) uploadErr() error {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.upErr
}

// abort gives up on the event: it half-closes the stream, which tells the
// peer to cancel its handler, and wakes whatever waits on the stream.
func (ex *exchange) abort() {
	ex.mu.Lock()
	ex.aborted = true
	ex.mu.Unlock()
	_ = ex.st.SetDeadline(time.Now())
	ex.closeStream()
}

// closeStream half-closes the stream, once: a second caller returns only
// after the first one's FIN is queued, so that the stream's slot is never
// given back before the peer will see the FIN (pacing.go).
func (ex *exchange) closeStream() { ex.closeOnce.Do(func() { _ = ex.st.Close() }) }

// finish ends the event: it frees the stream and waits for the upload to
// stop. It runs once.
func (ex *exchange) finish() {
	ex.once.Do(func() {
		ex.done.Store(true)
		ex.stopWake()
		ex.closeStream()
		if ex.upDone != nil {
			// The upload stops at its next write to the stream. A caller
			// still sending gets a moment before its read is interrupted:
			// net/http treats an interrupted read as a broken connection,
			// while a body left unread is drained or closed properly.
			_ = ex.st.SetWriteDeadline(time.Now())
			t := time.NewTimer(uploadGrace)
			select {
			case <-ex.upDone:
			case <-t.C:
				// A Body of the embedder's whose Read blocks is left to
				// return when it will, as net/http's Transport leaves it:
				// the upload then stops at its next write, which fails.
				if a, ok := ex.body.(bodyAborter); ok {
					a.abortRead()
					<-ex.upDone
				}
			}
			t.Stop()
		}
		if ex.r != nil {
			ex.r.Release() // the reply body is not read after Close
		}
		ex.own.closed() // the slot, and limits.own, once the peer's FIN is in
		ex.p.inflight.done()
	})
}

// classify maps a stream error to the errors of the error table.
func (ex *exchange) classify(err error) error {
	name := ex.p.info.Name
	if cerr := ex.ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("%w: %s", ErrTimeout, name)
		}
		return fmt.Errorf("event to %s: %w", name, context.Cause(ex.ctx))
	}
	if up := ex.uploadErr(); errors.Is(up, ErrBodyTooLarge) {
		return up
	}
	if errors.Is(err, yamux.ErrTimeout) {
		return fmt.Errorf("%w: %s", ErrTimeout, name)
	}
	return fmt.Errorf("%w: %s: %v", ErrTunnelClosed, name, err)
}

// classifyUnanswered is classify for an event whose reply header has not
// come. A stream the peer resets before answering is one it never took:
// after its go-away yamux refuses new streams so (muxconn's assumption
// 8), and the event is to be tried again later, as when the peer is not
// connected.
func (ex *exchange) classifyUnanswered(err error) error {
	if errors.Is(err, yamux.ErrConnectionReset) && ex.ctx.Err() == nil &&
		!errors.Is(ex.uploadErr(), ErrBodyTooLarge) && ex.p.mc.PeerGoneAway() {
		return ex.p.goneAway()
	}
	return ex.classify(err)
}

// goneAway is the error of an event the peer did not take because it is
// shutting down (its go-away came): 503 peer_unavailable, not sent.
func (p *peer) goneAway() error {
	return fmt.Errorf("%w: %s is shutting down: try again later", ErrPeerUnavailable, p.info.Name)
}

// replyBody is Response.Body.
type replyBody struct {
	body  *events.BodyReader
	ex    *exchange
	resp  *Response // its Trailer gets the body's trailer fields
	ended bool      // they are in
}

// errBodyClosed is what a reply body read after Close returns.
var errBodyClosed = errors.New("tunnel: read from a closed reply body")

func (b *replyBody) Read(p []byte) (int, error) {
	if b.ex.done.Load() {
		return 0, errBodyClosed
	}
	n, err := b.body.Read(p)
	return n, b.mapErr(err)
}

func (b *replyBody) WriteTo(w io.Writer) (int64, error) {
	if b.ex.done.Load() {
		return 0, errBodyClosed
	}
	n, err := b.body.WriteTo(w)
	if err == nil {
		b.fillTrailer() // WriteTo's nil is the body's complete end
	}
	return n, b.mapErr(err)
}

// fillTrailer puts the body's trailer fields in Response.Trailer, once
// the body has ended complete.
func (b *replyBody) fillTrailer() {
	if b.ended {
		return
	}
	b.ended = true
	if t := b.body.Trailer(); len(t) > 0 {
		if b.resp.Trailer == nil {
			b.resp.Trailer = http.Header{}
		}
		events.TrailersToHTTP(t, b.resp.Trailer)
	}
}

func (b *replyBody) mapErr(err error) error {
	var be *events.BodyError
	if err == io.EOF {
		b.fillTrailer()
	}
	switch {
	case err == nil || err == io.EOF || errors.As(err, &be):
		return err
	default:
		return b.ex.classify(err)
	}
}

// Whole reports whether all the rest of the body has arrived, and its
// length (see events.BodyReader.Whole).
func (b *replyBody) Whole() (int64, bool) {
	if b.ex.done.Load() {
		return 0, false
	}
	return b.body.Whole()
}

// Close ends the event.
func (b *replyBody) Close() error {
	b.ex.finish()
	return nil
}
