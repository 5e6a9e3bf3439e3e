package channels

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	// PathPrefix is where channels live on a front end: /channels/<name>.
	PathPrefix = "/channels/"
	// PublishPath is GRIP's publish endpoint (Pushpin's /publish/).
	PublishPath = "/publish/"
	// MaxNameLen is the longest channel name, in characters.
	MaxNameLen = 256
)

// ErrBadChannel reports a channel name that is empty, too long or not
// UTF-8.
var ErrBadChannel = errors.New("bad channel name")

// ParsePath returns the channel named by escapedPath, a front-end path
// "/channels/<name>" as sent (percent-escapes allowed).
func ParsePath(escapedPath string) (string, error) {
	rest, ok := strings.CutPrefix(escapedPath, PathPrefix)
	if !ok {
		return "", fmt.Errorf("%w: channel paths are %s<name>", ErrBadChannel, PathPrefix)
	}
	name, err := url.PathUnescape(rest)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadChannel, err)
	}
	return name, CheckName(name)
}

// CheckName checks that name is 1 to MaxNameLen characters of valid UTF-8
// with no control character.
func CheckName(name string) error {
	switch n := utf8.RuneCountInString(name); {
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not valid UTF-8", ErrBadChannel)
	case n == 0:
		return fmt.Errorf("%w: empty", ErrBadChannel)
	case n > MaxNameLen:
		return fmt.Errorf("%w: %d characters, the limit is %d", ErrBadChannel, n, MaxNameLen)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		// CR, LF and NUL would reach logs, SSE lines and the auth
		// service's headers.
		return fmt.Errorf("%w: holds a control character", ErrBadChannel)
	}
	return nil
}

// ErrBadPublish reports a GRIP publish request that cannot be used.
var ErrBadPublish = errors.New("bad publish request")

// The GRIP formats a publish item may carry.
const (
	formatWS       = "ws-message"
	formatStream   = "http-stream"
	formatResponse = "http-response"
)

// gripRequest is the JSON body of GRIP's POST /publish/ (Pushpin's HTTP
// publishing API). Each item is decoded on its own, so that an error
// names the item.
type gripRequest struct {
	Items []json.RawMessage `json:"items"`
}

// gripItem is one item. Its formats come either in "formats" (Pushpin's
// documented form, @fanoutio/grip 4) or each at the top level of the item
// (Python's pubcontrol and gripcontrol, older Node libraries), which
// Pushpin accepts too.
type gripItem struct {
	Channel  string                     `json:"channel"`
	ID       string                     `json:"id"`
	PrevID   string                     `json:"prev-id"`
	Formats  map[string]json.RawMessage `json:"formats"`
	WS       json.RawMessage            `json:"ws-message"`
	Stream   json.RawMessage            `json:"http-stream"`
	Response json.RawMessage            `json:"http-response"`
}

// gripFormat is an http-stream or ws-message format.
type gripFormat struct {
	Content    *string `json:"content"`
	ContentBin *string `json:"content-bin"`
	// Action is "send" (the default) or "close".
	Action string `json:"action"`
	// Code and Reason are a ws-message close's status and reason.
	Code   *int   `json:"code"`
	Reason string `json:"reason"`
}

// text returns the format's content, which must be UTF-8 text.
func (f *gripFormat) text() (string, error) {
	switch {
	case f.Content != nil:
		return *f.Content, nil
	case f.ContentBin != nil:
		b, err := base64.StdEncoding.DecodeString(*f.ContentBin)
		if err != nil {
			return "", fmt.Errorf(`"content-bin" is not base64: %v`, err)
		}
		if !utf8.Valid(b) {
			return "", errors.New(`"content-bin" is not UTF-8 text: channels carry text only`)
		}
		return string(b), nil
	}
	return "", errors.New(`no "content" or "content-bin"`)
}

// isClose reports whether f closes subscribers, or sends (false).
func (f *gripFormat) isClose() (bool, error) {
	switch f.Action {
	case "", "send":
		return false, nil
	case "close":
		return true, nil
	}
	return false, fmt.Errorf(`"action" %q is not supported: "send" or "close"`, f.Action)
}

// ParsePublish parses a GRIP publish body (Pushpin's JSON:
// {"items":[{"channel":..., "id":..., "formats":{"http-stream":
// {"content":...}, "ws-message":{"content":...}}}]}, the formats in
// "formats" or at the top level of the item) into messages, with prefix
// put before each channel name. Each format goes to its own kind of
// subscriber, as in Pushpin: ws-message to WebSocket subscribers,
// http-stream to Server-Sent Events subscribers, as is (its publisher
// writes the SSE framing); Message.To says which. An "action": "close"
// format closes the channel's subscribers of its kind instead.
// maxMessage bounds each content. Items whose contents are all empty are
// left out (they are keep-alives) and counted in dropped.
func ParsePublish(body []byte, prefix string, maxMessage int64) (msgs []*Message, dropped int, err error) {
	items, dropped, err := parsePublish(body, prefix, maxMessage)
	if err != nil {
		return nil, 0, err
	}
	msgs = make([]*Message, len(items))
	for i, it := range items {
		msgs[i] = it.m
	}
	return msgs, dropped, nil
}

// publishItem is a message of a GRIP publish with the index of its item
// in the request (counting the dropped ones), for answers that name it.
type publishItem struct {
	index int
	m     *Message
}

// parsePublish is ParsePublish, keeping each message's item index.
func parsePublish(body []byte, prefix string, maxMessage int64) (items []publishItem, dropped int, err error) {
	var req gripRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, 0, fmt.Errorf(`%w: %s`, ErrBadPublish, jsonError(err, body))
	}
	if req.Items == nil {
		return nil, 0, fmt.Errorf(`%w: no "items" array (want {"items": [{"channel": ..., "http-stream": {"content": ...}}]})`, ErrBadPublish)
	}
	items = make([]publishItem, 0, len(req.Items))
	for i, raw := range req.Items {
		m, err := parseItem(raw, prefix, maxMessage)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: item %d: %v", ErrBadPublish, i, err)
		}
		if m.Empty() {
			dropped++
		} else {
			items = append(items, publishItem{i, m})
		}
	}
	return items, dropped, nil
}

// jsonError says what is wrong with a JSON body, and where.
func jsonError(err error, body []byte) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("the body is not JSON: %v (at byte %d of %d)", syn, syn.Offset, len(body))
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("%q is a JSON %s, want %s", typ.Field, typ.Value, jsonType(typ.Type.Kind().String()))
	case errors.As(err, &typ):
		return fmt.Sprintf("the body is a JSON %s, want an object", typ.Value)
	}
	return err.Error()
}

// jsonType names a Go kind the way JSON would.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	case "int", "int64":
		return "a number"
	}
	return kind
}

// parseItem turns one GRIP item into a message.
func parseItem(raw json.RawMessage, prefix string, maxMessage int64) (*Message, error) {
	var it gripItem
	if err := json.Unmarshal(raw, &it); err != nil {
		return nil, errors.New(jsonError(err, raw))
	}
	m := &Message{Channel: prefix + it.Channel, ID: it.ID}
	if err := CheckName(m.Channel); err != nil {
		return nil, fmt.Errorf("channel %q: %v", m.Channel, err)
	}
	formats := map[string]json.RawMessage{}
	for name, f := range it.Formats {
		formats[name] = f
	}
	for name, f := range map[string]json.RawMessage{formatWS: it.WS, formatStream: it.Stream, formatResponse: it.Response} {
		if f == nil {
			continue
		}
		if _, twice := formats[name]; twice {
			return nil, fmt.Errorf("%q is both in \"formats\" and at the top level of the item", name)
		}
		formats[name] = f
	}
	ws, err := decodeFormat(formats, formatWS)
	if err != nil {
		return nil, err
	}
	stream, err := decodeFormat(formats, formatStream)
	if err != nil {
		return nil, err
	}
	if ws == nil && stream == nil {
		if _, ok := formats[formatResponse]; ok {
			return nil, errors.New(`"http-response" alone is not supported: restpipe has no long-polling subscribers; publish "http-stream" (Server-Sent Events subscribers) or "ws-message" (WebSocket subscribers)`)
		}
		if len(formats) > 0 {
			return nil, errors.New(`only the "ws-message" and "http-stream" formats are supported`)
		}
		return nil, errors.New(`no "ws-message" or "http-stream" format`)
	}
	// An "http-response" beside them is for long-polling subscribers,
	// which restpipe does not have: it reaches nobody, as in Pushpin with
	// none connected.
	wsClose, err := formatClose(ws)
	if err != nil {
		return nil, fmt.Errorf("ws-message: %v", err)
	}
	streamClose, err := formatClose(stream)
	if err != nil {
		return nil, fmt.Errorf("http-stream: %v", err)
	}
	if wsClose || streamClose {
		return closeMessage(m, ws, stream, wsClose, streamClose)
	}
	if ws != nil {
		if m.Text, err = ws.text(); err != nil {
			return nil, fmt.Errorf("ws-message: %v", err)
		}
		if m.Text != "" {
			m.To |= ToWebSocket
		}
	}
	if stream != nil {
		if m.Stream, err = stream.text(); err != nil {
			return nil, fmt.Errorf("http-stream: %v", err)
		}
		if m.Stream != "" {
			m.To |= ToEvents
		}
	}
	if int64(len(m.Text)) > maxMessage || int64(len(m.Stream)) > maxMessage {
		return nil, fmt.Errorf("content over the limit of %d bytes", maxMessage)
	}
	return m, nil
}

// decodeFormat decodes the format name of formats, nil if absent.
func decodeFormat(formats map[string]json.RawMessage, name string) (*gripFormat, error) {
	raw, ok := formats[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var f gripFormat
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %s", name, jsonError(err, raw))
	}
	return &f, nil
}

func formatClose(f *gripFormat) (bool, error) {
	if f == nil {
		return false, nil
	}
	return f.isClose()
}

// closeMessage makes m the close of the subscribers of the kinds whose
// format closes. An item cannot both close one kind and send to another.
func closeMessage(m *Message, ws, stream *gripFormat, wsClose, streamClose bool) (*Message, error) {
	if ws != nil && !wsClose || stream != nil && !streamClose {
		return nil, errors.New(`one format closes and the other sends: publish them as two items`)
	}
	m.Close = true
	if streamClose {
		m.To |= ToEvents
	}
	if wsClose {
		m.To |= ToWebSocket
		if ws.Code != nil {
			if !ValidCloseCode(*ws.Code) {
				return nil, fmt.Errorf(`ws-message: close "code" %d is not one a server may send (1000-1003, 1007-1014, 3000-4999)`, *ws.Code)
			}
			m.CloseCode = *ws.Code
		}
		if len(ws.Reason) > 123 {
			return nil, fmt.Errorf(`ws-message: close "reason" is %d bytes, a close frame holds 123`, len(ws.Reason))
		}
		m.CloseReason = ws.Reason
	}
	return m, nil
}

// ValidCloseCode reports whether a WebSocket close status may be sent by
// a server (RFC 6455, 7.4): a GRIP close's "code".
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}
