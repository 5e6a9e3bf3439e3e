package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"sync"
)

// Registry maps handler names to funcs and dispatches events to them. It
// is safe for concurrent use; handlers may be added while it serves.
type Registry struct {
	log    *slog.Logger
	mu     sync.RWMutex
	funcs  map[string]Func
	routes map[string]*forwarder
	tr     *http.Transport // http:// and https:// forward routes
	h2c    *http.Transport // h2c:// forward routes

	pre      []PreFunc
	auth     AuthFunc
	postAuth []PostAuthFunc
	post     []PostFunc
}

// Option configures a Registry.
type Option func(*Registry)

// WithLogger sets the logger for handler panics. The default discards.
func WithLogger(l *slog.Logger) Option { return func(r *Registry) { r.log = l } }

// NewRegistry returns an empty Registry.
func NewRegistry(opts ...Option) *Registry {
	r := &Registry{funcs: map[string]Func{}, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Handle registers f under name ("get_time", "post_upload"), replacing any
// earlier func of that name. It returns ErrBadName for a name no path can
// reach, and an error for a nil f.
func (r *Registry) Handle(name string, f Func) error {
	if err := checkName(name); err != nil {
		return err
	}
	if f == nil {
		return fmt.Errorf("handlers: nil func for %q", name)
	}
	r.mu.Lock()
	r.funcs[name] = f
	r.mu.Unlock()
	return nil
}

// MustHandle is Handle for registrations fixed in the program's source:
// it panics on an error.
func (r *Registry) MustHandle(name string, f Func) {
	if err := r.Handle(name, f); err != nil {
		panic(err)
	}
}

// Lookup returns the func registered under name.
func (r *Registry) Lookup(name string) (Func, bool) {
	r.mu.RLock()
	f, ok := r.funcs[name]
	r.mu.RUnlock()
	return f, ok
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	names := make([]string, 0, len(r.funcs))
	for n := range r.funcs {
		names = append(names, n)
	}
	r.mu.RUnlock()
	sort.Strings(names)
	return names
}

// Serve runs the handler req names and calls answer exactly once with
// its reply. It never fails: a missing handler, an error, a panic or a
// passed deadline each become the error reply of the error table. ctx
// carries the deadline; req.Context() should be ctx without it. It is
// the one way an event is dispatched: a node serves every event of its
// peer through it (tunnel.Dispatcher). A handler's reply goes without
// its Set-Cookie headers; a forward route's keeps them
// (withoutHandlerCookies).
//
// The handler runs in the calling goroutine, so an event costs no
// goroutine of its own. A handler that ignores its context does not hold
// the caller: when ctx ends before the handler returns, answer gets the
// error reply (504 at the deadline) at once, from another goroutine,
// while the handler runs on and its reply is closed unread. Serve returns
// once the handler has returned and answer has returned.
func (r *Registry) Serve(ctx context.Context, req *Request, answer func(*Reply)) {
	answer = r.withoutHandlerCookies(req, answer)
	c := r.chain()
	r.prepare(req)
	rep := r.before(ctx, c, req)
	var f Func
	if rep == nil {
		rep, f = r.lookup(ctx, req)
	}
	if rep != nil {
		answer(r.after(ctx, c, req, rep))
		return
	}
	var once sync.Once
	answered := make(chan struct{})
	give := func(rep *Reply) {
		once.Do(func() {
			defer close(answered)
			answer(r.after(ctx, c, req, rep))
		})
	}
	stop := context.AfterFunc(ctx, func() { give(ctxReply(ctx.Err())) })
	rep = r.call(ctx, f, req)
	if stop() {
		give(rep)
		return
	}
	// ctx ended first: its reply went out (or is going out); this one is
	// nobody's.
	closeBody(rep)
	<-answered
}

// forgeableTrailer is a request body that strips the forgeable fields
// from its request's Trailer once the body has ended, and with them its
// values.
type forgeableTrailer struct {
	r       io.Reader
	trailer http.Header
}

func (b *forgeableTrailer) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		stripForgeable(b.trailer)
	}
	return n, err
}

// prepare readies an event for the chain: forgeable headers (and trailer
// fields) stripped
// (see forgeable), its method upper-cased, its handler name and route set.
// A HEAD's handler name is handlerName's whatever the caller set: the
// handler that will run, which the access rules are asked about.
//
// Handler names take the method in lower case, so "delete" and "DELETE"
// run the same handler: hooks, the auth service and a route's service
// see that one method in its usual spelling, never a case that a check
// for "DELETE" would miss.
func (r *Registry) prepare(req *Request) {
	stripForgeable(req.Header)
	if req.Trailer != nil {
		// And from the trailer fields: some services read them as
		// headers. Their values come at the body's end.
		stripForgeable(req.Trailer)
		if req.Body != nil && req.Body != http.NoBody {
			if _, done := req.Body.(*forgeableTrailer); !done {
				req.Body = &forgeableTrailer{r: req.Body, trailer: req.Trailer}
			}
		}
	}
	req.Method = upperASCII(req.Method)
	req.vouched = ""
	if req.Name == "" || req.Method == http.MethodHead {
		req.Name = r.handlerName(req.Method, req.Noun)
	}
	r.setRoute(req)
}

// upperASCII upper-cases the ASCII letters of s, without allocating when
// there are none to change.
func upperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'a' <= b[j] && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// lookup returns the reply of a forward route, a missing handler or an
// ended ctx; or else the handler to call.
func (r *Registry) lookup(ctx context.Context, req *Request) (*Reply, Func) {
	if fw := r.route(req.Noun); fw != nil {
		return fw.serve(ctx, req), nil
	}
	f, ok := r.Lookup(req.Name)
	if !ok {
		return ErrorReply(http.StatusNotFound, CodeNoHandler,
			fmt.Sprintf("no handler %s on this node", req.Name)), nil
	}
	if err := ctx.Err(); err != nil {
		return ctxReply(err), nil
	}
	return nil, f
}

// resolve sets req.Name and req.Route again after a hook changed the
// noun (from what it was, noun).
func (r *Registry) resolve(req *Request, noun []string) {
	if slices.Equal(noun, req.Noun) {
		return
	}
	req.Name = r.handlerName(req.Method, req.Noun)
	r.setRoute(req)
}

// handlerName is the handler an event of method and noun runs: Name's,
// but a HEAD with no head_ handler of its own runs the GET one, as
// net/http serves HEAD (its reply goes out without the body: HeadReply).
func (r *Registry) handlerName(method string, noun []string) string {
	name := Name(method, noun)
	if method != http.MethodHead {
		return name
	}
	if _, ok := r.Lookup(name); !ok {
		if get := Name(http.MethodGet, noun); r.hasFunc(get) {
			return get
		}
	}
	return name
}

func (r *Registry) hasFunc(name string) bool {
	_, ok := r.Lookup(name)
	return ok
}

// HeadReply makes rep the answer to a HEAD: its body closed and gone,
// and the body's length, when known, in its Content-Length header: the
// one the header already has (a forward route's service answered HEAD
// with it) or the body's Len (a GET handler's reply in memory). A HEAD
// reply has no body for the caller's side to measure.
func HeadReply(rep *Reply) *Reply {
	if rep.Body == nil || rep.Body == http.NoBody {
		return rep
	}
	if b, ok := rep.Body.(interface{ Len() int }); ok && rep.Header.Get("Content-Length") == "" {
		if rep.Header == nil {
			rep.Header = http.Header{}
		}
		rep.Header.Set("Content-Length", strconv.Itoa(b.Len()))
	}
	closeBody(rep)
	rep.Body = nil
	return rep
}

// setRoute sets req.Route: the forward route its first noun segment names.
func (r *Registry) setRoute(req *Request) {
	req.Route = ""
	if len(req.Noun) > 0 {
		r.mu.RLock()
		if _, ok := r.routes[req.Noun[0]]; ok {
			req.Route = req.Noun[0]
		}
		r.mu.RUnlock()
	}
}

func ctxReply(err error) *Reply {
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrorReply(http.StatusGatewayTimeout, CodeTimeout, "handler did not answer before the deadline")
	}
	// The caller went away; nobody reads this reply.
	return ErrorReply(499, CodeTunnelClosed, "caller went away")
}

// call runs f and turns its result into a Reply, recovering a panic.
func (r *Registry) call(ctx context.Context, f Func, req *Request) (rep *Reply) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("handler panicked", "handler", req.Name, "req", req.ID,
				"peer", req.Peer, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			rep = ErrorReply(http.StatusInternalServerError, CodeHandlerError,
				fmt.Sprintf("handler %s panicked: %v", req.Name, p))
		}
	}()
	v, err := f(ctx, req)
	if err != nil {
		closeBody(ToReply(v))
		var he *Error
		switch {
		case errors.As(err, &he):
			status := he.Status
			if status == 0 {
				status = http.StatusInternalServerError
			}
			code := he.Code
			if code == "" {
				code = CodeHandlerError
			}
			return ErrorReply(status, code, he.Msg)
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			return ctxReply(ctx.Err())
		default:
			return ErrorReply(http.StatusInternalServerError, CodeHandlerError, err.Error())
		}
	}
	return ToReply(v)
}

// ToReply turns a handler's return value into a Reply: a *Reply or Reply
// as it is, []byte and io.Reader as an application/octet-stream body, and
// anything else as JSON.
func ToReply(v any) *Reply {
	switch x := v.(type) {
	case *Reply:
		if x == nil {
			return JSONReply(http.StatusOK, nil)
		}
		return x
	case Reply:
		return &x
	case []byte:
		return &Reply{Status: http.StatusOK, ContentType: "application/octet-stream", Body: bytes.NewReader(x)}
	case io.Reader:
		return &Reply{Status: http.StatusOK, ContentType: "application/octet-stream", Body: x}
	default:
		return JSONReply(http.StatusOK, v)
	}
}

// JSONReply encodes v as a JSON reply with the given status. A value that
// cannot be encoded gives a 500 handler_error.
func JSONReply(status int, v any) *Reply {
	b, err := json.Marshal(v)
	if err != nil {
		return ErrorReply(http.StatusInternalServerError, CodeHandlerError,
			fmt.Sprintf("encode reply as JSON: %v", err))
	}
	b = append(b, '\n')
	return &Reply{Status: status, ContentType: "application/json", Body: bytes.NewReader(b)}
}

// ErrorBody is the JSON body of every error reply.
type ErrorBody struct {
	// Error says what went wrong, in words.
	Error string `json:"error"`
	// Code is the row of the error table ("no_handler").
	Code string `json:"code"`
}

// ErrorReply returns the error reply {"error": msg, "code": code}.
func ErrorReply(status int, code, msg string) *Reply {
	b, _ := json.Marshal(ErrorBody{Error: msg, Code: code})
	b = append(b, '\n')
	return &Reply{Status: status, ContentType: "application/json", Body: bytes.NewReader(b), ErrorCode: code}
}

// WriteError answers an HTTP request with the error body
// {"error": msg, "code": code}, the form of every front-end error.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, ErrorBody{Error: msg, Code: code})
}

// WriteJSON answers an HTTP request with status and v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func closeBody(rep *Reply) {
	if rep == nil {
		return
	}
	if c, ok := rep.Body.(io.Closer); ok {
		_ = c.Close()
	}
}
