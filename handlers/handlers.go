// Package handlers holds the handler funcs a node serves to its peer: a
// Registry that names them ("get_time"), dispatches an event to one, and
// turns what it returns into a reply; plus the built-in handlers.
//
// A handler is a Func. It gets the event's context and Request and returns
// either a *Reply (status, content type, headers, a streamed body) or any
// other Go value, which is sent as JSON with status 200, or an error:
//
//	reg := handlers.NewRegistry()
//	reg.Handle("get_hello", func(ctx context.Context, req *handlers.Request) (any, error) {
//		return map[string]string{"hello": req.Peer}, nil
//	})
package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Request is an event as its handler sees it.
type Request struct {
	// Peer is the name of the calling node, from its certificate.
	Peer string
	// RemoteAddr is the tunnel address of the calling node.
	RemoteAddr string
	// ID is the request id; it travels end to end.
	ID string
	// Method is the HTTP method of the call, upper case ("GET").
	Method string
	// Name is the handler name ("get_time").
	Name string
	// Noun holds the noun segments ("time", "utc").
	Noun []string
	// Args holds the arguments given after the double slash.
	Args []string
	// Query holds the query parameters.
	Query url.Values
	// RawQuery is the query string as the caller sent it, without '?'.
	RawQuery string
	// Header holds the caller's end-to-end headers, but those anyone could
	// forge (X-Restpipe-*, X-Forwarded-*, Forwarded, X-Real-Ip,
	// X-Original-*, and look-alikes with '_'): the receiving node strips
	// them before any hook runs.
	Header http.Header
	// ContentType is the content type of Body, if any.
	ContentType string
	// Body streams the request body. It is never nil.
	Body io.Reader
	// Trailer holds the trailer fields the caller sent after the body (a
	// chunked upload's, an HTTP/2 request's), as net/http's server
	// Request.Trailer: the names the caller announced are there, without
	// values, from the start; the values (and fields it did not announce)
	// once Body has returned io.EOF. Fields that may not be trailers
	// (events.TrailerAllowed) are left out. nil for a request without a
	// body.
	Trailer http.Header
	// Deadline is when the caller stops waiting for the answer; zero if
	// there is none. The handler's context carries it too.
	Deadline time.Time
	// ContentLength is the length of Body, -1 if unknown.
	ContentLength int64
	// Host is the Host the caller addressed on its node's front end.
	Host string
	// CallerAddr is the address of the HTTP caller on the sending node.
	CallerAddr string
	// RawPath is the escaped path after the first noun segment, arguments
	// included ("/a//b"): what a forward route passes on (after its path
	// checks). A peer writes it beside Noun and Args, and nothing makes
	// the two agree: a handler that serves what a path names must use
	// Noun and Args, or check RawPath itself.
	RawPath string
	// Upgrade is the protocol the caller asks to switch to ("websocket"),
	// if any.
	Upgrade string
	// Route is the forward route the event goes to, if any ("files").
	Route string
	// Identity is who the Auth hook settled the caller is; the peer name
	// unless it said otherwise.
	Identity string
	// Channel is set only in a channel request (see AuthorizeChannel):
	// the channel a node asks to subscribe (Method "SUBSCRIBE") or
	// publish (Method "PUBLISH") to.
	Channel string

	ctx     context.Context
	vouched string // the identity an Auth hook named, if any
}

// Context returns the event's context without the answer deadline: it
// ends when the caller goes away or the tunnel closes. Use it for work
// that outlives the answer, such as producing a long streamed body.
func (r *Request) Context() context.Context {
	if r.ctx == nil {
		return context.Background()
	}
	return r.ctx
}

// WithContext returns a shallow copy of r whose Context is ctx.
func (r *Request) WithContext(ctx context.Context) *Request {
	r2 := *r
	r2.ctx = ctx
	return &r2
}

// Reply is a handler's answer.
type Reply struct {
	// Status is the HTTP status; 0 means 200.
	Status int
	// ContentType of Body; empty means application/octet-stream when there
	// is a body.
	ContentType string
	// Header holds extra reply headers.
	Header http.Header
	// Body is streamed to the caller and closed afterwards if it is an
	// io.Closer. nil means an empty body.
	Body io.Reader
	// Trailer holds trailer fields to send after Body, as net/http's
	// client Request.Trailer: its keys are announced to the caller
	// (Trailer) when the reply goes out, and its values are read once
	// Body has returned io.EOF, so a streaming Body may set them (on the
	// keys it announced) before it ends. A caller gets them where HTTP
	// can carry them: in a chunked HTTP/1.1 reply, not to an HTTP/1.0
	// caller nor in a reply with a Content-Length, nor in a reply to HEAD
	// or of a status without a body (204, 304). Fields that may not be
	// trailers (events.TrailerAllowed) are dropped.
	Trailer http.Header
	// ErrorCode is set on error replies ("no_handler", "handler_error", ...).
	ErrorCode string
}

// Func handles one event. See the package documentation for what it may
// return.
type Func func(ctx context.Context, req *Request) (any, error)

// Error is an error a handler returns to choose the status and code the
// caller sees. Any other error is a 500 "handler_error".
type Error struct {
	// Status is the HTTP status; 0 means 500.
	Status int
	// Code is the error body's code; empty means "handler_error".
	Code string
	// Msg is the error body's message.
	Msg string
}

// Error returns Msg.
func (e *Error) Error() string { return e.Msg }

// Errorf returns an *Error with the given status and code.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Error codes of the error table (DESIGN.md), as they appear in error
// bodies and Reply.ErrorCode.
const (
	// CodeBadPath: the path matches neither form (404), or holds what the
	// node will not carry: a segment that is not UTF-8, a forward path
	// that leaves its target (400).
	CodeBadPath = "bad_path"
	// CodePeerUnavailable: the peer is not connected (503).
	CodePeerUnavailable = "peer_unavailable"
	// CodeNoHandler: the peer has no handler of that name (404).
	CodeNoHandler = "no_handler"
	// CodeHandlerError: the handler failed or panicked (500).
	CodeHandlerError = "handler_error"
	// CodeTimeout: the deadline passed before the answer (504).
	CodeTimeout = "timeout"
	// CodeTunnelClosed: the tunnel dropped during the event (502).
	CodeTunnelClosed = "tunnel_closed"
	// CodeTooLarge: a body or header over its limit (413, 431).
	CodeTooLarge = "too_large"
	// CodeBadRequest: a request the front end cannot carry (400).
	CodeBadRequest = "bad_request"
	// CodeBodyTimeout: the caller stopped sending its request body (408).
	CodeBodyTimeout = "body_timeout"
	// CodeUpstreamUnavailable: a forward route's service is down (502).
	CodeUpstreamUnavailable = "upstream_unavailable"
	// CodeMisdirected: the request's Host is not a name of the front end
	// (421), as with DNS rebinding.
	CodeMisdirected = "misdirected"
	// CodePeerBusy: the peer has too many events in flight from this
	// node already (503; tunnel.Config.MaxStreams).
	CodePeerBusy = "peer_busy"
)

// Name derives a handler name from an HTTP method and noun segments:
// lower-case method, '_', the segments joined by '_'. ("GET", ["time",
// "utc"]) is "get_time_utc".
func Name(method string, noun []string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, n := range noun {
		b.WriteByte('_')
		b.WriteString(n)
	}
	return b.String()
}

// ErrBadName reports a handler name Handle refuses.
var ErrBadName = errors.New("handlers: bad handler name")

// checkName accepts names of the form "<method>_<noun>", where method is
// letters and the whole is printable without spaces or slashes.
func checkName(name string) error {
	method, noun, ok := strings.Cut(name, "_")
	if !ok || method == "" || noun == "" {
		return fmt.Errorf("%w %q: want <method>_<noun>, like get_time", ErrBadName, name)
	}
	for _, c := range method {
		if c < 'a' || c > 'z' {
			return fmt.Errorf("%w %q: the method part must be lower-case letters", ErrBadName, name)
		}
	}
	for _, c := range name {
		if c <= ' ' || c == '/' || c == 0x7f {
			return fmt.Errorf("%w %q: no spaces, slashes or control characters", ErrBadName, name)
		}
	}
	return nil
}
