package channels

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel/internal/hub"
)

// Handler serves channels on a front end: "/channels/<name>" (WebSocket
// and Server-Sent Events subscribers, an HTML page, POST to publish) and
// GRIP's "POST /publish/". Set Bus; the other fields have defaults.
//
// Handler makes no browser checks of its own: serve it behind a
// webguard.Policy (Policy.Handler), as a node's front end does, so that
// pages of other origins and rebound pages cannot use the channels.
type Handler struct {
	// Bus carries the messages across the tunnel. Required.
	Bus Bus
	// Prefix is put before the channel name of every GRIP publish item.
	Prefix string
	// MaxMessage bounds one message, in bytes. Default 64 KiB.
	MaxMessage int64
	// WriteTimeout bounds each write to a subscriber, and how long a
	// publish waits for its place in the channel's order. Default 10 s.
	WriteTimeout time.Duration
	// KeepAlive is how often an idle subscriber is pinged (WebSocket) or
	// sent an SSE comment. Default 15 s.
	KeepAlive time.Duration
	// Logger receives the handler's logs. Default: discard.
	Logger *slog.Logger
	// PublishKey, when set, is the key POST /publish/ must show in its
	// Authorization, in one of the forms the GRIP publisher libraries
	// send: a JWT signed with it (HS256, with "exp"; see VerifyJWT),
	// "Bearer KEY", or Basic with KEY as the password (any user).
	// Anything else is 401 unauthorized. It guards /publish/ only:
	// POST /channels/NAME and WebSocket subscribers publish as before.
	// Default none: /publish/ takes any caller, as the rest of the front
	// end does.
	PublishKey []byte
}

// Is reports whether escapedPath is served by a channels Handler.
func Is(escapedPath string) bool {
	return strings.HasPrefix(escapedPath, PathPrefix) || escapedPath == "/channels" || isPublish(escapedPath)
}

// isPublish reports whether escapedPath is GRIP's publish endpoint:
// "/publish/", "/publish", or "//publish/", where the GRIP publisher
// libraries post when their control URI ends in a slash
// ("http://127.0.0.1:8081/" + "/publish/").
func isPublish(escapedPath string) bool {
	return escapedPath == PublishPath || escapedPath == "/publish" || escapedPath == "/"+PublishPath
}

func (h *Handler) maxMessage() int64 { return cmp.Or(h.MaxMessage, 64<<10) }
func (h *Handler) writeTimeout() time.Duration {
	return cmp.Or(h.WriteTimeout, 10*time.Second)
}
func (h *Handler) keepAlive() time.Duration { return cmp.Or(h.KeepAlive, 15*time.Second) }
func (h *Handler) log() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Logger
}

// ServeHTTP serves a channel path or the GRIP publish endpoint.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	if isPublish(p) {
		h.servePublish(w, r)
		return
	}
	channel, err := ParsePath(p)
	if err != nil {
		handlers.WriteError(w, http.StatusNotFound, handlers.CodeBadPath, err.Error())
		return
	}
	switch {
	case r.Method == http.MethodPost:
		h.servePost(w, r, channel)
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD, POST")
		handlers.WriteError(w, http.StatusMethodNotAllowed, handlers.CodeMethodNotAllowed,
			"channels take GET (WebSocket, Server-Sent Events or the HTML page) and POST (publish), not "+r.Method)
	case isWebSocket(r):
		h.serveWebSocket(w, r, channel)
	case acceptsEventStream(r):
		h.serveEvents(w, r, channel)
	default:
		h.servePage(w, r, channel)
	}
}

// servePost publishes the request body as one message.
func (h *Handler) servePost(w http.ResponseWriter, r *http.Request, channel string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxMessage()))
	if err != nil {
		h.writeBodyError(w, err)
		return
	}
	if !utf8.Valid(body) {
		handlers.WriteError(w, http.StatusBadRequest, handlers.CodeBadRequest, "message is not UTF-8 text")
		return
	}
	m := &Message{Channel: channel, Text: string(body)}
	if m.Empty() {
		handlers.WriteJSON(w, http.StatusOK, publishResult{Channel: channel, Dropped: 1, Note: "empty message dropped"})
		return
	}
	if err := h.publish(r.Context(), m); err != nil {
		h.writePublishError(w, err)
		return
	}
	handlers.WriteJSON(w, http.StatusOK, publishResult{Channel: channel, Published: 1})
}

// publishResult is the JSON answer to a publish.
type publishResult struct {
	Channel   string `json:"channel,omitempty"`
	Published int    `json:"published"`
	Dropped   int    `json:"dropped,omitempty"`
	Note      string `json:"note,omitempty"`
}

// servePublish serves GRIP's POST /publish/.
func (h *Handler) servePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		handlers.WriteError(w, http.StatusMethodNotAllowed, handlers.CodeMethodNotAllowed, "/publish/ takes POST, not "+r.Method)
		return
	}
	if len(h.PublishKey) > 0 {
		if err := h.authorizePublish(r); err != nil {
			h.log().Info("GRIP publish refused", "caller", r.RemoteAddr, "reason", err)
			w.Header().Add("WWW-Authenticate", `Bearer realm="restpipe publish"`)
			w.Header().Add("WWW-Authenticate", `Basic realm="restpipe publish", charset="UTF-8"`)
			handlers.WriteError(w, http.StatusUnauthorized, handlers.CodeUnauthorized,
				"/publish/ needs the publish key: "+err.Error())
			return
		}
	}
	// The body is JSON whatever its Content-Type, as Pushpin reads it:
	// curl -d sends application/x-www-form-urlencoded, and some
	// publishers send none.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16*h.maxMessage()+64<<10))
	if err != nil {
		h.writeBodyError(w, err)
		return
	}
	items, dropped, err := parsePublish(body, h.Prefix, h.maxMessage())
	if err != nil {
		msg := err.Error()
		if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONType(ct) {
			msg += fmt.Sprintf(" (the body is read as JSON whatever its Content-Type; this one was sent as %q)", ct)
		}
		handlers.WriteError(w, http.StatusBadRequest, handlers.CodeBadRequest, msg)
		return
	}
	// An item the server refuses (access rules) does not stop the others:
	// each is decided on its own, and the answer names the refused ones.
	var refused []refusedItem
	var first *handlers.Error
	published := 0
	for _, it := range items {
		err := h.publish(r.Context(), it.m)
		var he *handlers.Error
		switch {
		case err == nil:
			published++
			continue
		case errors.As(err, &he):
			if first == nil {
				first = he
			}
			refused = append(refused, refusedItem{Item: it.index, Channel: it.m.Channel, Error: err.Error()})
			continue
		}
		if published > 0 || len(refused) > 0 {
			err = fmt.Errorf("%w (of the items before, %d were published and %d refused)", err, published, len(refused))
		}
		h.writePublishError(w, err)
		return
	}
	if first != nil {
		handlers.WriteJSON(w, first.Status, gripRefusal{
			ErrorBody: handlers.ErrorBody{Code: first.Code,
				Error: fmt.Sprintf("%d of %d items refused, %d published; the first refused: item %d: %s",
					len(refused), len(items), published, refused[0].Item, refused[0].Error)},
			Published: published, Refused: refused})
		return
	}
	res := publishResult{Published: published, Dropped: dropped}
	if dropped > 0 {
		res.Note = "items with an empty content dropped"
	}
	handlers.WriteJSON(w, http.StatusOK, res)
}

// authorizePublish checks a publish's Authorization against
// h.PublishKey: nil if it shows the key, or why not (which never quotes
// the key nor what the caller sent).
func (h *Handler) authorizePublish(r *http.Request) error {
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return errors.New(`no Authorization header: send a JWT signed with the key ("Bearer JWT"), "Bearer KEY" or Basic with the key as the password`)
	case len(values) > 1:
		return errors.New("more than one Authorization header")
	}
	scheme, cred, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		if keyEqual(cred, h.PublishKey) {
			return nil
		}
		if strings.Count(cred, ".") == 2 {
			return VerifyJWT(cred, h.PublishKey, time.Now())
		}
		return errors.New("the Bearer token is neither the publish key nor a JWT")
	case strings.EqualFold(scheme, "Basic"):
		// Python's pubcontrol 3 sends str(b64encode(...)) on Python 3:
		// "Basic b'dXNlcjprZXk='".
		if len(cred) > 3 && strings.HasPrefix(cred, "b'") && strings.HasSuffix(cred, "'") {
			cred = cred[2 : len(cred)-1]
		}
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return errors.New("the Basic credentials are not base64")
		}
		_, password, ok := strings.Cut(string(raw), ":")
		if !ok {
			return errors.New(`the Basic credentials are not "user:password"`)
		}
		if keyEqual(password, h.PublishKey) {
			return nil
		}
		return errors.New("the Basic password is not the publish key")
	}
	return errors.New("the Authorization is neither Bearer nor Basic")
}

// keyEqual compares got with key in constant time (their SHA-256, so
// that not even the length is told).
func keyEqual(got string, key []byte) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256(key)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// isJSONType reports whether the content type ct is JSON.
func isJSONType(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// gripRefusal is the error answer of a GRIP publish some of whose items
// the server refused.
type gripRefusal struct {
	handlers.ErrorBody
	Published int           `json:"published"`
	Refused   []refusedItem `json:"refused"`
}

// refusedItem names a GRIP item the server refused: its index in the
// request's items, its channel (with the prefix) and why.
type refusedItem struct {
	Item    int    `json:"item"`
	Channel string `json:"channel"`
	Error   string `json:"error"`
}

func (h *Handler) publish(ctx context.Context, m *Message) error {
	ctx, cancel := context.WithTimeout(ctx, h.writeTimeout())
	defer cancel()
	return h.Bus.Publish(ctx, m)
}

func (h *Handler) writeBodyError(w http.ResponseWriter, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		handlers.WriteError(w, http.StatusRequestEntityTooLarge, handlers.CodeTooLarge,
			fmt.Sprintf("message over the limit of %d bytes", tooLarge.Limit))
		return
	}
	handlers.WriteError(w, http.StatusBadRequest, handlers.CodeBadRequest, "read message: "+err.Error())
}

func (h *Handler) writePublishError(w http.ResponseWriter, err error) {
	h.writeBusError(w, "not published", err)
}

// writeBusError answers a publish or subscribe (what failed: "not
// published") that the Bus refused or could not do.
func (h *Handler) writeBusError(w http.ResponseWriter, what string, err error) {
	var he *handlers.Error
	switch {
	case errors.As(err, &he):
		// Refused by the server (its access rules): 403 forbidden, or
		// what it said.
		handlers.WriteError(w, he.Status, he.Code, what+": "+err.Error())
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrShutdown):
		handlers.WriteError(w, http.StatusServiceUnavailable, handlers.CodePeerUnavailable, what+": "+err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		handlers.WriteError(w, http.StatusGatewayTimeout, handlers.CodeTimeout, what+" in time: "+err.Error())
	default:
		handlers.WriteError(w, http.StatusBadGateway, handlers.CodeTunnelClosed, what+": "+err.Error())
	}
}

// subscribe subscribes for an HTTP request, answering the error if any.
func (h *Handler) subscribe(w http.ResponseWriter, r *http.Request, channel string) *Subscriber {
	ctx, cancel := context.WithTimeout(r.Context(), h.writeTimeout())
	defer cancel()
	sub, err := h.Bus.Subscribe(ctx, channel)
	if err != nil {
		// Before a WebSocket upgrade: a refusal is a plain HTTP answer.
		h.writeBusError(w, "not subscribed", err)
		return nil
	}
	return sub
}

// serveEvents streams the channel as Server-Sent Events.
func (h *Handler) serveEvents(w http.ResponseWriter, r *http.Request, channel string) {
	sub := h.subscribe(w, r, channel)
	if sub == nil {
		return
	}
	defer sub.Close()
	log := h.log().With("channel", channel, "caller", r.RemoteAddr)
	log.Debug("SSE subscriber joined")
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	write := func(s string) error {
		_ = rc.SetWriteDeadline(time.Now().Add(h.writeTimeout()))
		if _, err := io.WriteString(w, s); err != nil {
			return err
		}
		return rc.Flush()
	}
	// retry: an EventSource whose connection to this node breaks comes
	// back after 2 s (it does on its own, as long as the answer is 200).
	start := "retry: 2000\n: subscribed\n\n"
	if gap := resumeGap(r, sub); gap != "" {
		start += noticeEvent("gap", gap)
	}
	if err := write(start); err != nil {
		return
	}
	ka := time.NewTicker(h.keepAlive())
	defer ka.Stop()
	var b strings.Builder
	for {
		var err error
		select {
		case m := <-hub.Queue(sub):
			hub.Received(sub, m)
			if !m.ForEvents() {
				continue // a GRIP item for WebSocket subscribers only
			}
			if m.Close {
				log.Info("SSE subscriber closed by the publisher")
				_ = write("event: close\ndata: " + closedByPublisher + "\n\n")
				return
			}
			b.Reset()
			switch {
			case m.Outage != "":
				log.Info("SSE subscriber told of an outage", "reason", m.Outage)
				b.WriteString(noticeEvent("outage", m.Outage))
			case m.Gap:
				log.Info("SSE subscriber told of a gap")
				b.WriteString(noticeEvent("gap", gapReason))
			default:
				writeEvent(&b, m)
			}
			err = write(b.String())
		case <-ka.C:
			err = write(": keep-alive\n\n")
		case <-sub.Done():
			log.Info("SSE subscriber dropped", "reason", sub.Err())
			_ = write("event: close\ndata: " + oneLine(sub.Err().Error()) + "\n\n")
			return
		case <-r.Context().Done():
			log.Debug("SSE subscriber left")
			return
		}
		if err != nil {
			log.Debug("SSE subscriber lost", "err", err)
			return
		}
	}
}

// gapReason is the reason a subscriber is given with a gap after an
// outage.
const gapReason = "subscribed again after an outage of the tunnel: messages published meanwhile did not reach this subscriber"

// Notice is the JSON of a notice (an outage or a gap) to a subscriber:
// the data of an SSE "event: outage" or "event: gap", a WebSocket binary
// message.
type Notice struct {
	// Type is "outage" or "gap".
	Type string `json:"type"`
	// Reason says why, for a person.
	Reason string `json:"reason"`
}

// noticeJSON is the notice of type typ with reason, as JSON.
func noticeJSON(typ, reason string) []byte {
	b, _ := json.Marshal(Notice{Type: typ, Reason: reason})
	return b
}

// noticeEvent is the SSE event of a notice: "event: outage" or "event:
// gap" with the Notice as its data line.
func noticeEvent(typ, reason string) string {
	return "event: " + typ + "\ndata: " + string(noticeJSON(typ, reason)) + "\n\n"
}

// resumeGap is the reason of a gap to tell an SSE subscriber that comes
// back with a Last-Event-ID (an EventSource reconnecting) unless that ID
// is the channel's last message this node knows of; "" if none is due.
// No message is replayed: the node keeps none.
func resumeGap(r *http.Request, sub *Subscriber) string {
	last, ok := r.Header["Last-Event-Id"]
	if !ok {
		return ""
	}
	id := strings.Join(last, ",")
	prev, known := sub.PrevID()
	switch {
	case !known:
		return fmt.Sprintf("resumed after message %q, but this node knows of no message of the channel since its subscribers left: messages may have been missed", oneLine(id))
	case prev != id:
		return fmt.Sprintf("resumed after message %q, but the channel's last message here was %q: messages may have been missed (none is replayed)", oneLine(id), oneLine(prev))
	}
	return ""
}

// writeEvent frames m as one Server-Sent Event (or writes its Stream as is).
func writeEvent(b *strings.Builder, m *Message) {
	if m.Stream != "" {
		b.WriteString(m.Stream)
		return
	}
	if m.ID != "" {
		b.WriteString("id: ")
		b.WriteString(oneLine(m.ID))
		b.WriteByte('\n')
	}
	text := strings.ReplaceAll(m.Text, "\r\n", "\n")
	for line := range strings.SplitSeq(strings.ReplaceAll(text, "\r", "\n"), "\n") {
		b.WriteString("data: ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
}

// oneLine replaces line breaks, which would end an SSE field.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
}

// serveWebSocket serves a WebSocket subscriber, which may also publish.
func (h *Handler) serveWebSocket(w http.ResponseWriter, r *http.Request, channel string) {
	sub := h.subscribe(w, r, channel)
	if sub == nil {
		return
	}
	defer sub.Close()
	// The origin was checked in front of the Handler, with a JSON answer.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept answered the caller
	}
	defer c.CloseNow()
	c.SetReadLimit(h.maxMessage())
	log := h.log().With("channel", channel, "caller", r.RemoteAddr)
	log.Debug("WebSocket subscriber joined")

	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	closing := make(chan closeReason, 1) // from the reader: why to close
	go func() {
		// With a reason to close, the writer closes with it: cancelling ctx
		// here would race that (and abort a write in progress, which drops
		// the connection without a close frame).
		if why, ok := h.readWebSocket(ctx, c, channel); ok {
			closing <- why
			return
		}
		cancel()
	}()
	ka := time.NewTicker(h.keepAlive())
	defer ka.Stop()
	for {
		select {
		case m := <-hub.Queue(sub):
			hub.Received(sub, m)
			if !m.ForWebSocket() {
				continue // a GRIP item for Server-Sent Events subscribers only
			}
			if m.Close {
				code, reason := websocket.StatusCode(m.CloseCode), m.CloseReason
				if code == 0 {
					code = websocket.StatusNormalClosure
				}
				if reason == "" {
					reason = closedByPublisher
				}
				log.Info("WebSocket subscriber closed by the publisher", "code", code)
				_ = c.Close(code, closeText(reason))
				return
			}
			typ, data := websocket.MessageText, []byte(m.Text)
			switch {
			case m.Outage != "":
				// A notice is a binary message, which no publisher can
				// send: a channel's messages are text.
				log.Info("WebSocket subscriber told of an outage", "reason", m.Outage)
				typ, data = websocket.MessageBinary, noticeJSON("outage", m.Outage)
			case m.Gap:
				log.Info("WebSocket subscriber told of a gap")
				typ, data = websocket.MessageBinary, noticeJSON("gap", gapReason)
			case m.Text == "":
				continue // a GRIP item with an empty ws-message: nothing for WebSocket
			}
			wctx, wcancel := context.WithTimeout(ctx, h.writeTimeout())
			err := c.Write(wctx, typ, data)
			wcancel()
			if err != nil {
				log.Debug("WebSocket subscriber lost", "err", err)
				return
			}
		case <-ka.C:
			go func() {
				pctx, pcancel := context.WithTimeout(ctx, h.writeTimeout())
				defer pcancel()
				if err := c.Ping(pctx); err != nil && ctx.Err() == nil {
					log.Debug("WebSocket subscriber did not answer a ping", "err", err)
					cancel()
				}
			}()
		case <-sub.Done():
			log.Info("WebSocket subscriber dropped", "reason", sub.Err())
			_ = c.Close(closeCode(sub.Err()), closeText(sub.Err().Error()))
			return
		case why := <-closing:
			log.Info("WebSocket subscriber closed", "code", why.code, "reason", why.text)
			_ = c.Close(why.code, closeText(why.text))
			return
		case <-ctx.Done():
			log.Debug("WebSocket subscriber left")
			return
		}
	}
}

// closedByPublisher is why a subscriber ends on a GRIP close.
const closedByPublisher = "closed by the publisher"

type closeReason struct {
	code websocket.StatusCode
	text string
}

// readWebSocket publishes what the subscriber sends until the connection
// ends; it returns a reason to close with, if it is the one ending it.
func (h *Handler) readWebSocket(ctx context.Context, c *websocket.Conn, channel string) (closeReason, bool) {
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return closeReason{}, false
		}
		if len(data) == 0 {
			continue // a keep-alive: dropped
		}
		if !utf8.Valid(data) {
			return closeReason{websocket.StatusInvalidFramePayloadData, "messages must be UTF-8 text"}, true
		}
		if err := h.publish(ctx, &Message{Channel: channel, Text: string(data)}); err != nil {
			return closeReason{closeCode(err), "publish: " + err.Error()}, true
		}
	}
}

// closeCode is the WebSocket close status for why a subscriber ends.
func closeCode(err error) websocket.StatusCode {
	var he *handlers.Error
	switch {
	case errors.As(err, &he):
		return websocket.StatusPolicyViolation // refused by the server
	case errors.Is(err, ErrSlow):
		return websocket.StatusPolicyViolation
	case errors.Is(err, ErrUnavailable):
		return websocket.StatusTryAgainLater
	case errors.Is(err, ErrShutdown):
		return websocket.StatusGoingAway
	case errors.Is(err, ErrClosed):
		return websocket.StatusNormalClosure
	}
	return websocket.StatusInternalError
}

// closeText fits a close reason in a close frame (123 bytes of UTF-8).
func closeText(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func acceptsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
			if mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

// servePage serves the HTML page with a WebSocket client for channel.
func (h *Handler) servePage(w http.ResponseWriter, r *http.Request, channel string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:")
	if r.Method == http.MethodHead {
		return
	}
	_ = pageTemplate.Execute(w, struct{ Channel string }{channel})
}
