package tunnel

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel/channels"
	"github.com/restpipe/restpipe/tunnel/webguard"
)

// Headers the front end reads and writes.
const (
	// HeaderRequestID carries the request id; a caller may set its own.
	HeaderRequestID = "X-Request-Id"
	// HeaderTimeout sets how long to wait for the answer: a Go duration
	// ("2s", "500ms") or a number of seconds ("2.5").
	HeaderTimeout = "X-Restpipe-Timeout"
	// HeaderReturnCode repeats the status, for callers written against
	// RestPipe.
	HeaderReturnCode = "X-Event-Return-Code"
	// HeaderError is no longer sent. It was the trailer of a reply whose
	// body ended early, after a last chunk that made the reply look
	// complete to every client that ignores trailers (curl, Go, Python).
	// A reply cut short is now aborted instead: its chunked encoding is
	// never terminated (HTTP/1.1) or its stream is reset (HTTP/2), which
	// every client reports as an error; the front end logs why, with the
	// request id. A reply that has not started answers with the JSON error
	// of the error table.
	//
	// Deprecated: kept so that programs naming it still compile.
	HeaderError = "X-Restpipe-Error"
)

// frontend is a node's local HTTP front end. It does not use
// http.ServeMux, which would clean the "//" of argument paths.
type frontend struct {
	cfg     *Config
	log     *slog.Logger
	target  events.Target
	call    func(ctx context.Context, peer string, ev *events.Request, body io.Reader) (*Response, error)
	clients func() []PeerInfo // nil on a client node
	// channels serves /channels/ and /publish/; its subscribers are the
	// node's, ended by CloseChannels.
	channels *channels.Handler
	// guard refuses, before anything else, a Host that is not the front
	// end's and a request from a page of another origin.
	guard *webguard.Policy
}

// newGuard is the front end's Host and Origin policy.
func newGuard(cfg *Config) *webguard.Policy {
	g, err := webguard.New(cfg.HTTPHosts, cfg.Origins)
	if err != nil {
		// Config.Validate checked both lists: not reached. The empty
		// policy is the strictest.
		return &webguard.Policy{}
	}
	return g
}

// newChannelsHandler serves the front end's /channels/ and /publish/ on
// bus, with cfg's bounds.
func newChannelsHandler(cfg *Config, log *slog.Logger, bus channels.Bus) *channels.Handler {
	return &channels.Handler{
		Bus:          bus,
		Prefix:       cfg.ChannelPrefix,
		PublishKey:   cfg.PublishKey,
		MaxMessage:   cfg.ChannelMaxMessage,
		WriteTimeout: cfg.WriteTimeout,
		KeepAlive:    cfg.KeepAliveInterval,
		Logger:       log.With("part", "channels"),
	}
}

// Frontend returns the server node's front end: "/client/<name>/<noun>"
// calls client <name>, "GET /clients" lists the connected clients.
//
// Every front end refuses, before anything else, a Host that is not one
// of its names (421) and a request from a page of another web origin
// (403): see package webguard, Config.HTTPHosts and Config.Origins. Its
// names come from the local address of each connection, so the checks
// hold whichever http.Server serves it.
//
// ServeFrontend serves it on a listener. A program that serves it with
// an http.Server of its own must end its channel subscribers when that
// server shuts down: srv.RegisterOnShutdown(s.CloseChannels).
func (s *Server) Frontend() http.Handler {
	return &frontend{cfg: &s.cfg, log: s.log, target: events.TargetClient, call: s.callEvent, clients: s.Clients,
		channels: newChannelsHandler(&s.cfg, s.log, s.hub), guard: newGuard(&s.cfg)}
}

// Frontend returns the client node's front end: "/server/<noun>" calls
// the server. Served with an http.Server other than ServeFrontend's, it
// needs srv.RegisterOnShutdown(c.CloseChannels), as Server.Frontend does.
func (c *Client) Frontend() http.Handler {
	call := func(ctx context.Context, _ string, ev *events.Request, body io.Reader) (*Response, error) {
		return c.callEvent(ctx, ev, body)
	}
	return &frontend{cfg: &c.cfg, log: c.log, target: events.TargetServer, call: call,
		channels: newChannelsHandler(&c.cfg, c.log, c.Channels()), guard: newGuard(&c.cfg)}
}

func (f *frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := requestID(r.Header.Get(HeaderRequestID))
	w.Header().Set(HeaderRequestID, id)
	status, code := f.serve(w, r, id)
	if f.log.Enabled(r.Context(), slog.LevelDebug) { // its arguments cost allocations
		f.log.Debug("front end", "req", id, "method", r.Method, "path", r.URL.EscapedPath(),
			"status", status, "code", code, "duration", time.Since(start))
	}
	if code == codeCutShort || code == codeGoneMidBody || code == codeNotReading {
		// What arrived has been flushed; net/http now closes the
		// connection without the last chunk (HTTP/1.1) or resets the
		// stream (HTTP/2), so the caller sees an error, never a short
		// success. net/http does not log this panic.
		panic(http.ErrAbortHandler)
	}
}

// Codes of a reply whose body broke off after its status went out: the
// front end aborts it (ServeHTTP).
const (
	codeCutShort    = "body_cut_short"
	codeGoneMidBody = "caller_gone_mid_body"
	codeNotReading  = "caller_not_reading"
)

// serve answers one front-end request and returns the status and error
// code it answered, for the log.
func (f *frontend) serve(w http.ResponseWriter, r *http.Request, id string) (int, string) {
	// Before any dispatch: every path (RPC, /clients, channels, forward
	// routes and their WebSocket upgrades) is refused to a rebound or
	// foreign page alike.
	if err := f.guard.Check(r); err != nil {
		status, code := webguard.Status(err)
		f.log.Info("front end: browser request refused", "req", id, "method", r.Method,
			"path", r.URL.EscapedPath(), "host", r.Host, "origin", r.Header.Get("Origin"),
			"fetch_site", r.Header.Get("Sec-Fetch-Site"), "status", status, "err", err)
		return writeError(w, status, code, err.Error())
	}
	if channels.Is(r.URL.EscapedPath()) {
		f.channels.ServeHTTP(w, r)
		return 0, "channels"
	}
	if isGRPC(r) {
		// A gRPC client reads a status, not an HTTP error: every error
		// from here on goes out as one.
		gw := &grpcErrors{ResponseWriter: w}
		defer gw.finish()
		w = gw
	}
	path, err := events.ParsePath(r.URL.EscapedPath())
	if err == nil && path.Target != f.target && !(path.Target == events.TargetClients && f.clients != nil) {
		err = fmt.Errorf("%w: %s", events.ErrBadPath, f.pathHint())
	}
	if err != nil {
		return writeError(w, http.StatusNotFound, handlers.CodeBadPath, err.Error())
	}
	if path.Target == events.TargetClients {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			return writeError(w, http.StatusMethodNotAllowed, handlers.CodeMethodNotAllowed, "/clients takes GET (and HEAD), not "+r.Method)
		}
		handlers.WriteJSON(w, http.StatusOK, map[string]any{"clients": f.clients()})
		return http.StatusOK, ""
	}
	timeout, err := f.timeout(r.Header.Get(HeaderTimeout))
	if err != nil {
		return writeError(w, http.StatusBadRequest, handlers.CodeBadRequest, err.Error())
	}
	if d, ok := events.GRPCTimeout(r.Header.Get("Grpc-Timeout")); ok && r.Header.Get(HeaderTimeout) == "" {
		// A gRPC call's own deadline is the event's, within MaxTimeout.
		timeout = min(max(d, time.Millisecond), f.cfg.MaxTimeout)
	}
	if max := f.cfg.MaxBodyBytes; max > 0 && r.ContentLength > max {
		return writeError(w, http.StatusRequestEntityTooLarge, handlers.CodeTooLarge,
			fmt.Sprintf("request body of %d bytes is over the limit of %d", r.ContentLength, max))
	}

	ev := &events.Request{
		Id:          id,
		Method:      r.Method,
		Noun:        events.Bytes(path.Noun),
		Args:        events.Bytes(path.Args),
		Query:       []byte(r.URL.RawQuery),
		ContentType: []byte(r.Header.Get("Content-Type")),
		Headers:     events.HeadersFromHTTP(r.Header),
		TimeoutMs:   timeout.Milliseconds(),
		RawPath:     []byte(path.Rest),
		RemoteAddr:  r.RemoteAddr,
		Host:        []byte(r.Host),
		// Go reports a body of unknown length as -1 and none as 0.
		ContentLength: r.ContentLength,
		// The names the caller announced (Trailer); the fields follow
		// the body.
		Trailer: events.TrailerNames(r.Trailer),
	}
	if up := upgradeType(r.Header); up != "" {
		if !utf8.ValidString(up) {
			// The one caller string that travels as a protobuf string.
			return writeError(w, http.StatusBadRequest, handlers.CodeBadRequest, fmt.Sprintf("Upgrade %q is not UTF-8", up))
		}
		ev.Upgrade = up
		return f.serveUpgrade(w, r, path.Peer, ev)
	}
	var body io.Reader
	var fb *frontBody
	if r.Body != nil && r.Body != http.NoBody {
		// The reply may stream back while the request body still arrives
		// (post_echo); without this, net/http would discard the unread
		// request body when the reply starts.
		_ = http.NewResponseController(w).EnableFullDuplex()
		fb = newFrontBody(w, r, f.cfg.MaxBodyBytes, f.cfg.BodyIdleTimeout)
		body = fb
		if r.ContentLength > 0 && r.ContentLength <= smallBody {
			// A small body is read first and sent with the event's header.
			head := make([]byte, r.ContentLength)
			n, err := io.ReadFull(fb, head)
			if err != nil {
				return f.writeBodyError(w, fb, fmt.Errorf("request body after %d of %d bytes: %w", n, r.ContentLength, err))
			}
			body = &wholeBody{Reader: bytes.NewReader(head), fb: fb}
		} else if max := f.cfg.MaxBodyBytes; max > 0 && r.ContentLength < 0 && !isGRPC(r) {
			// A body of unknown length is read ahead up to the limit (64 KiB
			// at most), so that one over a small limit is refused before
			// any handler can answer it. Not a gRPC call's: its client
			// may wait for an answer before it sends more (a bidi stream);
			// frontBody still bounds it, as it streams.
			head := make([]byte, min(max+1, 64<<10))
			n, err := io.ReadFull(fb, head)
			switch {
			case errors.Is(err, ErrBodyTooLarge) || int64(n) > max:
				fb.closeIfUnread(w)
				return writeError(w, http.StatusRequestEntityTooLarge, handlers.CodeTooLarge,
					fmt.Sprintf("request body over the limit of %d bytes", max))
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				body, ev.ContentLength = &wholeBody{Reader: bytes.NewReader(head[:n]), fb: fb}, int64(n) // all of it
				if len(r.Trailer) > 0 {
					// Its trailer fields are in too: they are announced,
					// whether the caller did or not, and the body stays
					// chunked for a route's service to get them.
					ev.ContentLength, ev.Trailer = -1, events.TrailerNames(r.Trailer)
				}
			case err != nil:
				return f.writeBodyError(w, fb, err)
			default:
				body = &prefixedBody{r: io.MultiReader(bytes.NewReader(head), fb), fb: fb}
			}
		}
	}
	resp, err := f.call(r.Context(), path.Peer, ev, body)
	if err == nil {
		up := resp.UploadErr()
		if errors.Is(up, ErrBodyTooLarge) || (fb != nil && fb.stalled.Load()) {
			// The reply answers a request that never arrived whole.
			resp.Body.Close()
			err = cmp.Or(up, errors.New("request body stalled"))
		}
	}
	if fb != nil {
		fb.closeIfUnread(w)
	}
	if err != nil && fb != nil {
		return f.writeBodyError(w, fb, err)
	}
	if err != nil {
		return f.writeCallError(w, r, err)
	}
	return f.writeReply(w, r, id, resp)
}

// writeReply writes resp to the caller, streaming its body.
func (f *frontend) writeReply(w http.ResponseWriter, r *http.Request, id string, resp *Response) (int, string) {
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	if resp.ContentType != "" {
		h.Set("Content-Type", resp.ContentType)
	}
	h.Set(HeaderRequestID, id)
	h.Set(HeaderReturnCode, strconv.Itoa(resp.Status))
	if r.Method == http.MethodHead {
		// The peer sent no body, and its length in Content-Length if it
		// knew it (Response.Header): the headers are the reply.
		w.WriteHeader(resp.Status)
		return resp.Status, resp.ErrorCode
	}
	// A reply that has all arrived (most small ones) goes out with its
	// length, whole, before its event ends; one still streaming goes out
	// with the length its handler or service stated, or else chunked, and
	// is aborted if it breaks off (ServeHTTP).
	whole, ok := resp.Body.(interface{ Whole() (int64, bool) })
	n, isWhole := int64(0), false
	if ok && bodyAllowed(resp.Status) {
		n, isWhole = whole.Whole()
	}
	length := int64(-1)
	switch {
	case !bodyAllowed(resp.Status):
	case isWhole:
		length = n // what arrived, whatever the peer stated
	case resp.ContentLength >= 0:
		length = resp.ContentLength
	}
	if length >= 0 {
		h.Set("Content-Length", strconv.FormatInt(length, 10))
	}
	// Trailer fields go where HTTP can carry them: after a chunked body,
	// which an HTTP/1.0 caller does not take and an HTTP/1.1 reply with
	// its length (or no body at all: HEAD above, 204, 304) does not have;
	// HTTP/2 frames them apart from the body, length or not.
	trailers := bodyAllowed(resp.Status) && (r.ProtoMajor >= 2 || (length < 0 && r.ProtoAtLeast(1, 1)))
	if names := relayedTrailer(resp.Trailer); trailers && len(names) > 0 {
		h.Set("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(resp.Status)
	rc := http.NewResponseController(w)
	wd := &writeDeadline{rc: rc, idle: f.cfg.BodyIdleTimeout}
	if isWhole {
		_, err := io.Copy(deadlineWriter{w, wd}, resp.Body)
		if err == nil && n > 0 {
			// Not an empty one: unflushed, HTTP/2 sends its headers with
			// the stream's end, in one HEADERS frame, as a gRPC
			// "trailers-only" reply (grpc-status in the headers) must be.
			err = wd.around(rc.Flush)
		}
		if wd.timedOut(err) {
			f.logNotReading(id, resp.Status)
			return resp.Status, codeNotReading
		}
		return resp.Status, resp.ErrorCode
	}
	fw := newFlushWriter(w, rc, wd, func() {
		f.log.Debug("the caller is slow: its reply goes out as it comes, through small buffers", "req", id)
	})
	_, err := io.Copy(fw, resp.Body)
	fw.release()
	if err != nil {
		// Aborted either way (ServeHTTP): a cancelled request need not
		// mean that nobody reads the reply.
		if wd.timedOut(err) {
			f.logNotReading(id, resp.Status)
			return resp.Status, codeNotReading
		}
		if r.Context().Err() != nil {
			return 499, codeGoneMidBody
		}
		f.log.Warn("reply cut short: aborted", "req", id, "status", resp.Status, "err", err)
		return resp.Status, codeCutShort
	}
	if trailers {
		// net/http sends a field of this prefix as a trailer field,
		// announced or not.
		for _, k := range relayedTrailer(resp.Trailer) {
			if vs := resp.Trailer[k]; len(vs) > 0 {
				h[http.TrailerPrefix+k] = vs
			}
		}
	}
	return resp.Status, resp.ErrorCode
}

// relayedTrailer returns the names of the trailer fields of a reply that
// reach its caller, sorted: all but X-Restpipe-Error, which only a front
// end sends (an older one's sign of a reply cut short), so a service
// cannot fake it.
func relayedTrailer(t http.Header) []string {
	if len(t) == 0 {
		return nil
	}
	names := make([]string, 0, len(t))
	for k := range t {
		if k != HeaderError {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

func (f *frontend) logNotReading(id string, status int) {
	f.log.Warn("reply aborted: the caller stopped reading", "req", id, "status", status,
		"for", f.cfg.BodyIdleTimeout)
}

// writeDeadline bounds each write of a reply to the caller: a caller that
// reads nothing for idle (Config.BodyIdleTimeout) fails the write, and the
// event ends (a half-duplex caller that sends its whole body before
// reading, against a handler that streams it back, would otherwise hang
// both forever). The deadline is set only while a write is under way, so
// a slow but progressing reader, or a stream idle because its handler
// sends nothing, is never cut.
type writeDeadline struct {
	rc    *http.ResponseController
	idle  time.Duration
	fired bool
}

// around runs write under the deadline.
func (d *writeDeadline) around(write func() error) error {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.idle))
	err := write()
	_ = d.rc.SetWriteDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		d.fired = true
	}
	return err
}

// timedOut reports whether err comes from a write that ran out of time
// (the error net/http returns afterwards may be another one).
func (d *writeDeadline) timedOut(err error) bool {
	return err != nil && (d.fired || errors.Is(err, os.ErrDeadlineExceeded))
}

// deadlineWriter is w with each write under d.
type deadlineWriter struct {
	w io.Writer
	d *writeDeadline
}

func (w deadlineWriter) Write(p []byte) (n int, err error) {
	err = w.d.around(func() error {
		n, err = w.w.Write(p)
		return err
	})
	return n, err
}

// bodyAllowed reports whether a reply of this status may have a body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func (f *frontend) pathHint() string {
	if f.target == events.TargetServer {
		return "this is a client node: call the server with /server/<noun>[//arg/...]; channels are /channels/<name>"
	}
	return "this is the server node: call a client with /client/<name>/<noun>[//arg/...], list them with /clients; channels are /channels/<name>"
}

// writeCallError answers a failed call with its row of the error table.
func (f *frontend) writeCallError(w http.ResponseWriter, r *http.Request, err error) (int, string) {
	switch {
	case errors.Is(err, ErrPeerUnavailable):
		return writeError(w, http.StatusServiceUnavailable, handlers.CodePeerUnavailable, err.Error())
	case errors.Is(err, ErrPeerBusy):
		// Not sent: safe to try again, unlike a 504.
		return writeError(w, http.StatusServiceUnavailable, handlers.CodePeerBusy, err.Error())
	case errors.Is(err, ErrTimeout):
		return writeError(w, http.StatusGatewayTimeout, handlers.CodeTimeout, err.Error())
	case errors.Is(err, ErrBodyTooLarge):
		return writeError(w, http.StatusRequestEntityTooLarge, handlers.CodeTooLarge, err.Error())
	case errors.Is(err, ErrBadReply):
		return writeError(w, http.StatusBadGateway, handlers.CodeBadReply, err.Error())
	case errors.Is(err, events.ErrTooLarge): // the event's header, not sent
		return writeError(w, http.StatusRequestHeaderFieldsTooLarge, handlers.CodeTooLarge, err.Error())
	case r.Context().Err() != nil:
		// Most likely nobody is left to read this; if somebody is, it must
		// not look like a success.
		writeError(w, http.StatusBadGateway, handlers.CodeTunnelClosed, "the call was cancelled: "+err.Error())
		return 499, "caller_gone"
	default:
		return writeError(w, http.StatusBadGateway, handlers.CodeTunnelClosed, err.Error())
	}
}

// writeBodyError answers a call that failed while the request body was
// being read.
func (f *frontend) writeBodyError(w http.ResponseWriter, fb *frontBody, err error) (int, string) {
	if fb.stalled.Load() {
		// net/http cancels the request when its body read times out.
		return writeError(w, http.StatusRequestTimeout, handlers.CodeBodyTimeout,
			fmt.Sprintf("request body: nothing received for %v", f.cfg.BodyIdleTimeout))
	}
	return f.writeCallError(w, fb.req, err)
}

// smallBody is the largest request body of known length that the front
// end reads whole before sending the event.
const smallBody = 32 << 10

// prefixedBody is a front-end body whose first bytes were read ahead.
type prefixedBody struct {
	r  io.Reader
	fb *frontBody
}

func (p *prefixedBody) Read(b []byte) (int, error) { return p.r.Read(b) }
func (p *prefixedBody) abortRead()                 { p.fb.abortRead() }

// Trailer implements events.TrailerSource.
func (p *prefixedBody) Trailer() []*events.Header { return p.fb.Trailer() }

// wholeBody is a front-end body read whole before its event is sent,
// with the caller's trailer fields.
type wholeBody struct {
	*bytes.Reader
	fb *frontBody
}

// Trailer implements events.TrailerSource.
func (b *wholeBody) Trailer() []*events.Header { return b.fb.Trailer() }

// serveUpgrade carries a request to switch protocols (a WebSocket). If the
// peer answers 101, the caller's connection is taken over and its bytes
// cross the tunnel raw, both ways, as the event's two bodies; the peer's
// first bytes are the 101 response of the service itself.
func (f *frontend) serveUpgrade(w http.ResponseWriter, r *http.Request, peer string, ev *events.Request) (int, string) {
	pr, pw := io.Pipe()
	ev.ContentLength = -1
	resp, err := f.call(r.Context(), peer, ev, pr)
	if err != nil {
		pw.Close()
		return f.writeCallError(w, r, err)
	}
	if resp.Status != http.StatusSwitchingProtocols {
		pw.Close() // the service did not switch: an ordinary reply
		return f.writeReply(w, r, ev.Id, resp)
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		pw.CloseWithError(err)
		resp.Body.Close()
		f.log.Warn("upgrade: cannot take over the connection", "req", ev.Id, "err", err)
		return http.StatusInternalServerError, "hijack_failed"
	}
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(conn, resp.Body) // the service's 101, then its bytes
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(pw, brw) // what the caller sent, buffered or not
		done <- struct{}{}
	}()
	<-done
	// One side ended: end the other, then free the event.
	_ = conn.Close()
	_ = pw.Close()
	<-done
	_ = resp.Body.Close()
	return http.StatusSwitchingProtocols, ""
}

// upgradeType returns the protocol r asks to switch to, if any.
func upgradeType(h http.Header) string {
	for _, v := range h.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return h.Get("Upgrade")
			}
		}
	}
	return ""
}

// timeout parses X-Restpipe-Timeout.
func (f *frontend) timeout(v string) (time.Duration, error) {
	if v == "" {
		return f.cfg.DefaultTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil {
			return 0, fmt.Errorf("%s %q: want a duration like 5s or a number of seconds", HeaderTimeout, v)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < time.Millisecond || d > f.cfg.MaxTimeout {
		return 0, fmt.Errorf("%s %q: must be from 1ms to %v", HeaderTimeout, v, f.cfg.MaxTimeout)
	}
	return d, nil
}

// requestID returns the caller's id if it is sensible, else a new one.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 128 && strings.IndexFunc(given, badIDRune) < 0 {
		return given
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func badIDRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:", r))
}

// writeError writes the error body {"error": msg, "code": code}.
func writeError(w http.ResponseWriter, status int, code, msg string) (int, string) {
	w.Header().Set(HeaderReturnCode, strconv.Itoa(status))
	handlers.WriteError(w, status, code, msg)
	return status, code
}

// flushWriter writes a streamed reply to the caller. net/http sends each
// write of a chunked reply as two or three syscalls, whatever its size,
// so writes are gathered, up to streamBufSize: what is gathered goes out
// when the buffer is full, or replyFlushDelay after its first byte came,
// whichever is first, so no byte waits longer than that. The stream's
// pieces (a frame, 64 KiB or less) would otherwise each cost two or
// three syscalls on the caller's connection (10-15% of a fast stream's
// throughput, BenchmarkStreamTunnelDownload).
//
// A caller that takes slowReply or more to accept a write is slow: from
// then on every piece goes out as it is, nothing is gathered, and Slow
// tells the stream's reader (events.BodyReader.WriteTo), which then
// reads in small pieces too. Such a stream costs its window in yamux's
// buffer and a few KiB more, not a gather buffer and a 64 KiB reader
// each (README, "What a slow caller costs").
type flushWriter struct {
	mu    sync.Mutex // serialises writes and the timer's flush
	w     http.ResponseWriter
	bw    *bufio.Writer // nil unless something is gathered
	rc    *http.ResponseController
	wd    *writeDeadline
	timer *time.Timer
	armed bool
	done  bool
	slow  bool
	err   error // a flush by the timer failed
	// onSlow runs once, when the caller turns out slow.
	onSlow func()
}

const (
	// replyFlushDelay bounds how long a streamed reply's bytes wait to be sent.
	replyFlushDelay = time.Millisecond
	// slowReply is how long a write to the caller takes for the caller
	// to be slow.
	slowReply = 100 * time.Millisecond
)

var replyWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, streamBufSize) }}

func newFlushWriter(w http.ResponseWriter, rc *http.ResponseController, wd *writeDeadline, onSlow func()) *flushWriter {
	f := &flushWriter{w: w, rc: rc, wd: wd, onSlow: onSlow}
	f.timer = time.AfterFunc(time.Duration(1<<62), f.flushLate)
	return f
}

// Slow reports whether the caller has been slow to take the reply.
func (f *flushWriter) Slow() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.slow
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	if f.slow {
		// What is gathered goes first, then p as it is.
		if err := f.flush(); err != nil {
			return 0, err
		}
		return f.direct(p)
	}
	if f.bw == nil {
		f.bw = replyWriters.Get().(*bufio.Writer)
		f.bw.Reset(f.w)
	}
	var n int
	var err error
	if len(p) <= f.bw.Available() {
		n, err = f.bw.Write(p) // gathered only: nothing reaches the caller
	} else {
		err = f.timed(func() error {
			n, err = f.bw.Write(p)
			return err
		})
	}
	if err == nil && f.bw.Buffered() > 0 && !f.armed {
		f.armed = true
		f.timer.Reset(replyFlushDelay)
	}
	return n, err
}

// direct writes p to the caller as it is, and flushes it: the slow
// caller's way, where a syscall more does not matter and no timer
// should wait on a write that may take seconds.
func (f *flushWriter) direct(p []byte) (int, error) {
	var n int
	err := f.timed(func() error {
		var err error
		if n, err = f.w.Write(p); err != nil {
			return err
		}
		return f.rc.Flush()
	})
	return n, err
}

// timed runs write under the deadline, and marks the caller slow if it
// took slowReply or more.
func (f *flushWriter) timed(write func() error) error {
	start := time.Now()
	err := f.wd.around(write)
	if time.Since(start) >= slowReply && !f.slow {
		f.slow = true
		if f.onSlow != nil {
			f.onSlow()
		}
	}
	return err
}

// flushLate sends what the stream left waiting.
func (f *flushWriter) flushLate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = false
	if f.done || f.err != nil {
		return
	}
	if err := f.flush(); err != nil {
		f.err = err
	}
}

// flush sends what is gathered, and returns the buffer to its pool.
func (f *flushWriter) flush() error {
	if f.bw == nil {
		return nil
	}
	err := f.timed(func() error {
		if err := f.bw.Flush(); err != nil {
			return err
		}
		return f.rc.Flush()
	})
	if err == nil {
		f.putBuffer()
	}
	return err
}

// putBuffer returns the gather buffer to its pool.
func (f *flushWriter) putBuffer() {
	f.bw.Reset(nil)
	replyWriters.Put(f.bw)
	f.bw = nil
}

// release sends what is still gathered and returns the buffer to its
// pool; the timer will not touch the reply after it.
func (f *flushWriter) release() {
	f.timer.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = true
	if f.err == nil {
		_ = f.flush()
	}
	if f.bw != nil { // the flush failed, or was not tried
		f.putBuffer()
	}
}

// frontBody is a front-end request body: it enforces the size limit and
// an idle timeout per read, and can be interrupted when the event ends.
type frontBody struct {
	req     *http.Request
	body    io.ReadCloser
	rc      *http.ResponseController
	max     int64 // 0: no limit
	n       int64
	idle    time.Duration
	mu      sync.Mutex
	aborted bool
	ended   bool        // Read returned an error, io.EOF included
	stalled atomic.Bool // the caller sent nothing for idle
}

func newFrontBody(w http.ResponseWriter, r *http.Request, max int64, idle time.Duration) *frontBody {
	return &frontBody{req: r, body: r.Body, rc: http.NewResponseController(w), max: max, idle: idle}
}

func (b *frontBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.aborted {
		b.mu.Unlock()
		return 0, errors.New("event ended")
	}
	start := time.Now()
	_ = b.rc.SetReadDeadline(start.Add(b.idle))
	b.mu.Unlock()
	if b.max > 0 && int64(len(p)) > b.max-b.n+1 {
		p = p[:b.max-b.n+1]
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.mu.Lock()
		b.ended = true
		b.mu.Unlock()
	}
	if err != nil && err != io.EOF && strings.Contains(err.Error(), "long trailer") {
		// net/http refuses a trailer section longer than its read buffer
		// (4 KiB): "http: suspiciously long trailer after chunked body",
		// its own words, not an error value it exports.
		return n, fmt.Errorf("%w: its trailer fields are over net/http's limit (%v)", ErrBodyTooLarge, err)
	}
	if err == io.EOF {
		// The caller's trailer fields are in: bounded as the wire bounds
		// them, and refused as a body over its limit is (413).
		if t := events.TrailersFromHTTP(b.req.Trailer); len(t) > 0 {
			if size := events.TrailerSize(t); size > events.MaxTrailerSize {
				return n, fmt.Errorf("%w: its trailer fields take %d bytes, the limit is %d", ErrBodyTooLarge, size, events.MaxTrailerSize)
			}
		}
	}
	b.n += int64(n)
	if b.max > 0 && b.n > b.max {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, b.max)
	}
	var ne net.Error
	// A timeout after the whole idle time is the caller's stall, even if
	// the event was aborted meanwhile (net/http cancels the request first).
	if errors.As(err, &ne) && ne.Timeout() && time.Since(start) >= b.idle {
		b.stalled.Store(true)
		return n, fmt.Errorf("request body: nothing received for %v", b.idle)
	}
	return n, err
}

// closeIfUnread marks the reply Connection: close when the request body
// has not been read to its end: the rest will be drained (256 KiB at most)
// or the connection closed, never read as a next request. (net/http, in
// full-duplex mode, would otherwise drain the body after the handler and
// start a read that races the next request's: "invalid concurrent
// Body.Read call".)
func (b *frontBody) closeIfUnread(w http.ResponseWriter) {
	b.mu.Lock()
	ended := b.ended
	b.mu.Unlock()
	// On HTTP/2 a stream's unread body ends with the stream, and the
	// connection carries others: Connection: close would send it a
	// GOAWAY.
	if !ended && b.req.ProtoMajor < 2 {
		w.Header().Set("Connection", "close")
	}
}

// Trailer implements events.TrailerSource: the caller's trailer fields,
// once the body has been read to its end. A body of known length read to
// its length may not have seen its end yet: it is read once more, for
// the fields that may follow it (HTTP/2).
func (b *frontBody) Trailer() []*events.Header {
	b.mu.Lock()
	ended := b.ended
	b.mu.Unlock()
	if !ended {
		var one [1]byte
		if n, err := b.Read(one[:]); n > 0 || err != io.EOF {
			return nil // more body than its length, or an error: no fields
		}
	}
	return events.TrailersFromHTTP(b.req.Trailer)
}

func (b *frontBody) abortRead() {
	b.mu.Lock()
	b.aborted = true
	if !b.ended {
		// Only a read still under way needs waking. Once the body has
		// ended, net/http's background read watches the connection, and a
		// deadline in the past would cancel the next request on it.
		_ = b.rc.SetReadDeadline(time.Now())
	}
	b.mu.Unlock()
}

// ServeFrontend serves the server node's front end (see Frontend) on ln
// until ctx ends, then shuts down gracefully within
// Config.ShutdownTimeout, ending its channel subscribers (CloseChannels).
// Request headers are bounded in size (Config.MaxHeaderBytes) and time
// (Config.HeaderTimeout). It closes ln.
func (s *Server) ServeFrontend(ctx context.Context, ln net.Listener) error {
	return serveHTTP(ctx, ln, s.Frontend(), &s.cfg, s.CloseChannels)
}

// ServeFrontend serves the client node's front end (see Frontend) on ln,
// as Server.ServeFrontend does.
func (c *Client) ServeFrontend(ctx context.Context, ln net.Listener) error {
	return serveHTTP(ctx, ln, c.Frontend(), &c.cfg, c.CloseChannels)
}

// CloseChannels ends the node's channel subscribers (its front end's
// Server-Sent Events and WebSocket callers, and those of Channels()) with
// channels.ErrShutdown, and refuses new ones: http.Server.Shutdown
// neither ends nor waits for them, hijacked WebSocket connections least
// of all. ServeFrontend calls it as it shuts down; a program that serves
// Frontend with an http.Server of its own registers it with
// RegisterOnShutdown. A server's clients keep their subscriptions.
func (s *Server) CloseChannels() { s.hub.CloseAll(channels.ErrShutdown) }

// CloseChannels ends the node's channel subscribers, as
// Server.CloseChannels does.
func (c *Client) CloseChannels() { c.hub.CloseAll(channels.ErrShutdown) }

// frontendMaxStreams bounds the HTTP/2 streams (requests) a caller may
// have open at once on one connection to a front end; more are refused
// by the HTTP/2 layer itself (REFUSED_STREAM) until one ends. HTTP/1.1
// has one per connection. 100 is the least RFC 9113 recommends, and
// what a gRPC client multiplexes over a connection before it queues.
const frontendMaxStreams = 100

// frontendProtocols are what a front end speaks: HTTP/1.1, and HTTP/2
// over cleartext with prior knowledge (h2c: curl --http2-prior-knowledge,
// gRPC clients, h2load). Not the h2c upgrade from HTTP/1.1 (Upgrade:
// h2c), which net/http does not serve either.
func frontendProtocols() *http.Protocols {
	p := &http.Protocols{}
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

// serveHTTP serves h on ln until ctx ends, then shuts down within
// cfg.ShutdownTimeout; onShutdown, if not nil, runs as the shutdown starts.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, cfg *Config, onShutdown func()) error {
	logger := cfg.Logger // never nil: Config.withDefaults
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.HeaderTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.With("part", "http").Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		Protocols:         frontendProtocols(),
		// HTTP/2's bounds: its header list is bounded by MaxHeaderBytes,
		// as HTTP/1's headers are (431 above); its streams per connection
		// by frontendMaxStreams.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: frontendMaxStreams},
	}
	if onShutdown != nil {
		// Channel subscribers are long-lived (and WebSocket ones hijacked):
		// Shutdown neither ends nor waits for them, so they are told here.
		srv.RegisterOnShutdown(onShutdown)
	}
	logger.Info("front end listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(callerListener{ln}) }()
	select {
	case err := <-errc:
		return fmt.Errorf("front end %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-errc
	return nil
}
