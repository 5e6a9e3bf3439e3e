package handlers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/restpipe/restpipe/events"
)

// Forward makes route a forward route: every event whose first noun
// segment is route ("/client/c1/files/a/b" for route "files") is forwarded,
// before any handler lookup, as a real HTTP request to the service at
// target, with the rest of the path ("/a/b") appended to target's path.
// Method, query, headers and body are passed on, streamed; the service's
// status, headers and streamed body come back. WebSocket and other
// upgrades work, but for h2c and TLS (400 bad_request: see
// upgradesToHTTP). A service that is down answers 502
// upstream_unavailable; one that does not answer before the deadline, 504
// timeout.
//
// The service only ever sees paths under target's path: a path with a
// "." or ".." segment, an empty one, an encoded '/' or '\', a control
// byte or a double encoding is refused with 400 bad_path (see
// checkForwardPath), here on the node that serves the route. A path that
// passes is normalised (forwardPath) before the auth service is asked
// about it and the service is sent it: both read the same bytes.
//
// A service that is down or slow is told to the caller by the route's
// name and the request id only; its address and the error are logged.
//
// A target "h2c://host:port/path" is a service that speaks HTTP/2 over
// cleartext with prior knowledge only (a gRPC server): it is reached as
// http://host:port/path, over HTTP/2 without TLS.
//
// Of the headers, hop-by-hop ones and the forgeable ones (see
// stripForgeable) are removed; the service gets, set by this node:
//
//	X-Restpipe-Peer      the calling node's certificate name
//	X-Restpipe-Identity  the identity the Auth hook named, if it named one
//	X-Forwarded-For      the calling node's tunnel address (IP), as this node sees it
//	X-Forwarded-Proto    "https": the event came over the mTLS tunnel
//
// and no X-Forwarded-Host, Forwarded or X-Real-Ip: the caller's address
// and the Host it used are the calling node's claims.
func (r *Registry) Forward(route, target string) error {
	u, err := ParseForwardTarget(target)
	if err != nil {
		return fmt.Errorf("forward route %q: %w", route, err)
	}
	if route == "" || strings.ContainsAny(route, "/ \t") {
		return fmt.Errorf("forward route %q: want a single noun segment, like files", route)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.routes == nil {
		r.routes = map[string]*forwarder{}
	}
	tr := r.transport()
	if u.Scheme == schemeH2C {
		tr = r.h2cTransport()
	}
	r.routes[route] = newForwarder(route, u, r.log, tr)
	return nil
}

// ParseForwardTarget checks a forward route's target: an absolute http,
// https or h2c URL with a host and no query.
//
// Errors name the target without its password (RedactURL): they end up
// in logs.
func ParseForwardTarget(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	switch {
	case err != nil:
		// A *url.Error repeats the URL: only what it says of it is kept.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("target %q: %w", RedactURL(target), err)
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != schemeH2C:
		return nil, fmt.Errorf("target %q: want an http://, https:// or h2c:// URL", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("target %q: no host", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, fmt.Errorf("target %q: no query, fragment or user info allowed", u.Redacted())
	}
	return u, nil
}

// Routes returns the forward routes and their targets.
func (r *Registry) Routes() map[string]string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]string, len(r.routes))
	for name, f := range r.routes {
		out[name] = f.target.String()
	}
	return out
}

func (r *Registry) route(noun []string) *forwarder {
	if len(noun) == 0 {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.routes[noun[0]]
}

// schemeH2C is the scheme of a forward target that speaks HTTP/2 over
// cleartext (prior knowledge), such as a gRPC server.
const schemeH2C = "h2c"

// transport is shared by the registry's http:// and https:// forward
// routes. Local services are reached directly: proxy settings from the
// environment do not apply.
func (r *Registry) transport() *http.Transport {
	if r.tr == nil {
		r.tr = newTransport()
		// HTTP/1.1 for http://; https:// as the service's TLS offers.
	}
	return r.tr
}

// h2cTransport is shared by the registry's h2c:// routes: HTTP/2 over
// cleartext with prior knowledge, and nothing else, so a service that
// speaks only HTTP/1.1 fails (502) rather than being spoken to another way.
func (r *Registry) h2cTransport() *http.Transport {
	if r.h2c == nil {
		r.h2c = newTransport()
		p := &http.Protocols{}
		p.SetUnencryptedHTTP2(true)
		r.h2c.Protocols = p
	}
	return r.h2c
}

// newTransport is a forward routes' transport.
func newTransport() *http.Transport {
	return &http.Transport{
		DialContext: (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// What the caller sent goes to the service as it is: no
		// Accept-Encoding: gzip the caller never sent, and a gzip
		// reply reaches the caller still compressed, with its
		// Content-Encoding and Content-Length.
		DisableCompression:    true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// errHeaderTimeout ends a forwarded request whose service did not answer
// before the deadline.
var errHeaderTimeout = errors.New("the service did not answer before the deadline")

// forwarder forwards events to one local HTTP service.
type forwarder struct {
	route  string
	target *url.URL // as configured: h2c://... for an h2c route
	dest   *url.URL // what requests go to: target, an h2c one as http://
	log    *slog.Logger
	proxy  *httputil.ReverseProxy
}

func newForwarder(route string, target *url.URL, log *slog.Logger, tr http.RoundTripper) *forwarder {
	dest := target
	if target.Scheme == schemeH2C {
		d := *target
		d.Scheme = "http" // its transport speaks HTTP/2 only
		dest = &d
	}
	f := &forwarder{route: route, target: target, dest: dest, log: log}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// pr.In.URL is already the service's (forwardURL); the proxy
			// has removed the X-Forwarded-* headers of pr.In.
			pr.Out.Host = target.Host
			if host, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
				pr.Out.Header.Set("X-Forwarded-For", host)
			}
			pr.Out.Header.Set("X-Forwarded-Proto", "https")
			if tc, ok := pr.In.Context().Value(trailerCopyKey{}).(*trailerCopy); ok {
				// The proxy sends a copy of pr.In: its Trailer is the one
				// the caller's fields must reach.
				tc.to = pr.Out.Trailer
			}
		},
		Transport:     tr,
		FlushInterval: -1, // every write reaches the caller at once
		// Its own lines (a body that broke off, said again with the
		// request id above) are details.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			// What the caller is told names neither the target nor the
			// error (an address, a dial error): the peer is not to learn
			// this node's network. They are logged under the request id.
			rw := w.(*replyWriter)
			id := rw.req.ID
			switch {
			case errors.Is(context.Cause(req.Context()), errHeaderTimeout):
				f.timedOut(id)
				rw.fail(http.StatusGatewayTimeout, CodeTimeout, timeoutMsg(route, id))
			case req.Context().Err() != nil:
				rw.fail(499, CodeTunnelClosed, "caller went away")
			case rw.started():
				// The body broke after the status went out: end it with
				// an error, and the caller's front end aborts its reply.
				log.Warn("forward route: the service's reply broke off", "req", id, "route", route, "target", target.String(), "err", err)
				rw.abort(fmt.Errorf("forward %s: the service's reply broke off (request %s)", route, id))
			default:
				log.Warn("forward route: service unavailable", "req", id, "route", route, "target", target.String(), "err", err)
				rw.fail(http.StatusBadGateway, CodeUpstreamUnavailable,
					fmt.Sprintf("forward %s: the service is unavailable (request %s)", route, id))
			}
		},
	}
	return f
}

// serve forwards req and returns the service's reply as soon as its status
// and headers are in; its body streams on. ctx carries the deadline for
// that answer; the forwarded request itself lives as long as req.Context().
func (f *forwarder) serve(ctx context.Context, req *Request) *Reply {
	path, err := forwardPath(req.RawPath)
	if err != nil {
		return ErrorReply(http.StatusBadRequest, CodeBadPath, fmt.Sprintf("forward %s: %v", f.route, err))
	}
	in, err := f.inbound(req, path)
	if err != nil {
		return ErrorReply(http.StatusBadRequest, CodeBadRequest, err.Error())
	}
	rctx, cancel := context.WithCancelCause(req.Context())
	rw := newReplyWriter(req)
	if d, ok := ctx.Deadline(); ok {
		t := time.AfterFunc(time.Until(d), func() {
			if !rw.started() { // a reply under way streams on
				cancel(errHeaderTimeout)
			}
		})
		defer t.Stop()
	}
	// ReverseProxy aborts a reply whose body breaks off (the service died,
	// or sent less than its Content-Length) only when the request comes
	// from an http.Server; without this it ends the body as if complete.
	sctx := context.WithValue(rctx, http.ServerContextKey, proxyServer)
	if tc, ok := in.Body.(*trailerCopy); ok {
		sctx = context.WithValue(sctx, trailerCopyKey{}, tc)
	}
	in = in.WithContext(sctx)
	go func() {
		defer cancel(nil)
		defer rw.finish()
		defer func() {
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				rw.abort(fmt.Errorf("forward %s: %v", f.route, p))
			} else if p != nil && req.Context().Err() != nil {
				// The caller went away mid-reply: ReverseProxy stopped
				// copying; the service did nothing wrong.
				f.log.Debug("forward route: the caller went away mid-reply", "req", req.ID, "route", f.route)
				rw.abort(fmt.Errorf("forward %s: the caller went away (request %s)", f.route, req.ID))
			} else if p != nil {
				// The body broke off: the caller's front end aborts its reply.
				f.log.Warn("forward route: the service's reply broke off", "req", req.ID, "route", f.route, "target", f.target.String())
				rw.abort(fmt.Errorf("forward %s: the service's reply broke off (request %s)", f.route, req.ID))
			}
		}()
		f.proxy.ServeHTTP(rw, in)
	}()
	select {
	case rep := <-rw.ready:
		return rep
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cancel(errHeaderTimeout) // the proxy's ErrorHandler logs it
			return ErrorReply(http.StatusGatewayTimeout, CodeTimeout, timeoutMsg(f.route, req.ID))
		}
		cancel(ctx.Err())
		return ErrorReply(499, CodeTunnelClosed, "caller went away")
	}
}

// proxyServer marks a forwarded request as served (http.ServerContextKey),
// for ReverseProxy's sake only: nothing reads its fields.
var proxyServer = &http.Server{}

// timedOut logs a service that did not answer in time, with its target.
func (f *forwarder) timedOut(id string) {
	f.log.Warn("forward route: the service did not answer before the deadline", "req", id, "route", f.route, "target", f.target.String())
}

// timeoutMsg is what the caller is told of a timeout: not the target.
func timeoutMsg(route, id string) string {
	return fmt.Sprintf("forward %s: %s (request %s)", route, errHeaderTimeout, id)
}

// inbound rebuilds the caller's HTTP request from the event, addressed
// to the service at path, req.RawPath as forwardPath made it.
func (f *forwarder) inbound(req *Request, path string) (*http.Request, error) {
	if err := checkForwardQuery(req.RawQuery); err != nil {
		return nil, fmt.Errorf("forward %s: %w", f.route, err)
	}
	if !isToken(req.Method) {
		return nil, fmt.Errorf("forward %s: bad method %q", f.route, req.Method)
	}
	if upgradesToHTTP(req.Upgrade) {
		return nil, fmt.Errorf("forward %s: an upgrade to %q is not forwarded (the service would read requests for any path over it)", f.route, req.Upgrade)
	}
	u := forwardURL(f.dest, path, req.RawQuery)
	in := &http.Request{
		Method:        req.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        req.Header.Clone(),
		Body:          io.NopCloser(req.Body),
		ContentLength: req.ContentLength,
		Host:          req.Host,
		RemoteAddr:    req.RemoteAddr, // the tunnel's: CallerAddr is the peer's claim
		RequestURI:    u.RequestURI(),
	}
	if in.Header == nil {
		in.Header = http.Header{}
	}
	stripForgeable(in.Header) // again: a Pre or Auth hook may have added some
	in.Header.Set(HeaderPeer, req.Peer)
	if req.vouched != "" {
		in.Header.Set(HeaderIdentity, req.vouched)
	}
	if req.ContentType != "" {
		in.Header.Set("Content-Type", req.ContentType)
	}
	if d, ok := events.GRPCTimeout(in.Header.Get("Grpc-Timeout")); ok && !req.Deadline.IsZero() {
		// What is left of the event's deadline, if that is less than the
		// caller's: the time the event took to get here is spent.
		in.Header.Set("Grpc-Timeout", events.FormatGRPCTimeout(min(d, time.Until(req.Deadline))))
	}
	if in.ContentLength == 0 || req.Body == http.NoBody || req.Upgrade != "" {
		// An upgrade's body is the connection after the 101: it goes
		// through Hijack, not through the request.
		in.Body, in.ContentLength = http.NoBody, 0
	}
	if req.Upgrade != "" {
		in.Header.Set("Connection", "Upgrade")
		in.Header.Set("Upgrade", req.Upgrade)
	}
	if req.Trailer != nil && in.Body != http.NoBody {
		// The caller's trailer fields follow the body, as trailer fields:
		// the names it announced go with the request (Trailer), the values
		// once the body is read. A body with trailer fields to send is
		// chunked: it has no length on HTTP/1.1.
		in.Trailer = http.Header{}
		for k := range req.Trailer {
			if !forgeable(k) {
				in.Trailer[k] = nil
			}
		}
		if len(in.Trailer) > 0 {
			in.ContentLength = -1
		}
		in.Body = &trailerCopy{r: req.Body, from: req.Trailer}
	}
	return in, nil
}

// trailerCopyKey is the context key of a forwarded request's trailerCopy.
type trailerCopyKey struct{}

// trailerCopy is a forwarded request's body: at its end, it copies the
// caller's trailer fields (from, the event's) to the request the proxy
// sends (to), but those anyone could forge (a service may read trailer
// fields as headers).
type trailerCopy struct {
	r    io.Reader
	from http.Header
	to   http.Header // set by the proxy's Rewrite
	done bool
}

func (t *trailerCopy) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err == io.EOF && !t.done && t.to != nil {
		t.done = true
		for k, vs := range t.from {
			if len(vs) > 0 && !forgeable(k) {
				t.to[k] = vs
			}
		}
	}
	return n, err
}

func (t *trailerCopy) Close() error { return nil }

// upgradesToHTTP reports whether an Upgrade value asks for a protocol
// that carries HTTP requests of its own: h2c (HTTP/2 over cleartext), or
// TLS (RFC 2817, which CUPS still speaks), with HTTP inside. A service
// that switches would then read requests, with whatever path the caller
// puts in them, straight from the forwarded connection, outside every check
// of the route ("h2c smuggling"). Other upgrades (WebSocket) carry no
// requests and are forwarded.
func upgradesToHTTP(up string) bool {
	for _, tok := range strings.Split(up, ",") {
		tok = strings.ToLower(strings.TrimSpace(tok))
		if tok == "h2c" || strings.HasPrefix(tok, "h2c/") || strings.HasPrefix(tok, "http/") ||
			tok == "tls" || strings.HasPrefix(tok, "tls/") {
			return true
		}
	}
	return false
}

// isToken reports whether m is an HTTP token, as a request line's
// method and a header's name must be.
func isToken(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// replyWriter is the http.ResponseWriter the reverse proxy writes to: its
// status and headers become the Reply, its writes the Reply's streamed
// body. Hijack, for upgrades, hands the proxy the event's two bodies as a
// connection.
type replyWriter struct {
	req    *Request
	header http.Header
	ready  chan *Reply // gets the reply once
	pr     *io.PipeReader
	pw     *io.PipeWriter

	mu   sync.Mutex
	sent bool

	// announced are the trailer fields the service announced, set by
	// send; trailer are those it sent, set by finish before the body's
	// end (read by forwardBody after it).
	announced http.Header
	trailer   http.Header
}

func newReplyWriter(req *Request) *replyWriter {
	pr, pw := io.Pipe()
	return &replyWriter{req: req, header: http.Header{}, ready: make(chan *Reply, 1), pr: pr, pw: pw}
}

func (w *replyWriter) Header() http.Header { return w.header }

func (w *replyWriter) WriteHeader(status int) {
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		return // 1xx informational: not passed on
	}
	w.send(&Reply{Status: status, ContentType: w.header.Get("Content-Type"), Header: w.header.Clone(),
		Body: &forwardBody{PipeReader: w.pr, w: w}})
}

func (w *replyWriter) send(rep *Reply) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return false
	}
	w.sent = true
	// The service's announced trailer fields (the proxy names them in
	// Trailer): their names go with the reply; their values, which the
	// proxy sets on these keys after the body, are read by finish.
	for _, v := range rep.Header.Values("Trailer") {
		for _, k := range strings.Split(v, ",") {
			if k = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)); k != "" {
				if w.announced == nil {
					w.announced = http.Header{}
				}
				w.announced[k] = nil
				delete(w.header, k)
			}
		}
	}
	rep.Trailer = w.announced
	// Content-Length stays: the serving node sends it as the reply's
	// length (for a HEAD, the length the service gave), and the caller's
	// front end sends it on instead of chunking the body.
	rep.Header.Del("Content-Type")
	w.ready <- rep
	return true
}

func (w *replyWriter) started() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent
}

func (w *replyWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}

// Flush is a no-op: each Write reaches the tunnel at once.
func (w *replyWriter) Flush() {}

// fail answers with an error reply if nothing was sent yet.
func (w *replyWriter) fail(status int, code, msg string) {
	rep := ErrorReply(status, code, msg)
	if rep.Header == nil {
		rep.Header = http.Header{}
	}
	if !w.send(rep) {
		w.abort(errors.New(msg))
	}
}

// abort ends the streamed body with err: the reply's stream ends with it
// in its trailer, and the caller's front end aborts its reply.
func (w *replyWriter) abort(err error) {
	w.pw.CloseWithError(err)
}

// finish ends the body once the proxy is done; a reply never started is a
// 502.
func (w *replyWriter) finish() {
	if !w.started() {
		w.fail(http.StatusBadGateway, CodeUpstreamUnavailable, "the service sent no reply")
	}
	// The service's trailer fields: on the keys it announced, or with
	// http.TrailerPrefix for those it did not (as ReverseProxy sets them).
	for k, vs := range w.header {
		name, prefixed := strings.CutPrefix(k, http.TrailerPrefix)
		if _, ok := w.announced[k]; (ok || prefixed) && len(vs) > 0 {
			if w.trailer == nil {
				w.trailer = http.Header{}
			}
			w.trailer[textproto.CanonicalMIMEHeaderKey(name)] = vs
		}
	}
	_ = w.pw.Close() // after trailer: forwardBody reads it at the end
}

// forwardBody is the body of a forwarded reply, with the service's
// trailer fields once it has ended.
type forwardBody struct {
	*io.PipeReader
	w *replyWriter
}

// Trailer implements events.TrailerSource: the service's trailer fields,
// read once the body has returned io.EOF, so after finish set them.
func (b *forwardBody) Trailer() []*events.Header { return events.TrailersFromHTTP(b.w.trailer) }

// Hijack hands the proxy the event's two bodies as a connection: what it
// reads is what the caller sends after the 101, what it writes (the 101
// response first) goes back to the caller.
func (w *replyWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.req.Upgrade == "" {
		return nil, nil, errors.New("hijack: the caller asked for no upgrade")
	}
	if !w.send(&Reply{Status: http.StatusSwitchingProtocols, Header: http.Header{}, Body: w.pr}) {
		return nil, nil, errors.New("hijack: reply already started")
	}
	c := &eventConn{r: w.req.Body, w: w.pw}
	return c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)), nil
}

// eventConn is an upgraded event seen as a net.Conn.
type eventConn struct {
	r io.Reader
	w *io.PipeWriter
}

func (c *eventConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *eventConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *eventConn) Close() error                     { return c.w.Close() }
func (c *eventConn) LocalAddr() net.Addr              { return eventAddr{} }
func (c *eventConn) RemoteAddr() net.Addr             { return eventAddr{} }
func (c *eventConn) SetDeadline(time.Time) error      { return nil }
func (c *eventConn) SetReadDeadline(time.Time) error  { return nil }
func (c *eventConn) SetWriteDeadline(time.Time) error { return nil }

type eventAddr struct{}

func (eventAddr) Network() string { return "restpipe" }
func (eventAddr) String() string  { return "restpipe-event" }
