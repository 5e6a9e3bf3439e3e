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

// gripRequest is the JSON body of GRIP's POST /publish/ (Pushpin's HTTP
// publishing API).
type gripRequest struct {
	Items []gripItem `json:"items"`
}

type gripItem struct {
	Channel string                 `json:"channel"`
	ID      string                 `json:"id"`
	PrevID  string                 `json:"prev-id"`
	Formats map[string]*gripFormat `json:"formats"`
}

type gripFormat struct {
	Content    *string `json:"content"`
	ContentBin *string `json:"content-bin"`
	Action     string  `json:"action"`
}

// text returns the format's content, which must be UTF-8 text.
func (f *gripFormat) text() (string, error) {
	switch {
	case f.Action != "" && f.Action != "send":
		return "", fmt.Errorf("action %q is not supported", f.Action)
	case f.Content != nil:
		return *f.Content, nil
	case f.ContentBin != nil:
		b, err := base64.StdEncoding.DecodeString(*f.ContentBin)
		if err != nil {
			return "", fmt.Errorf("content-bin: %v", err)
		}
		if !utf8.Valid(b) {
			return "", errors.New("content-bin is not UTF-8 text: channels carry text only")
		}
		return string(b), nil
	}
	return "", errors.New("no content")
}

// ParsePublish parses a GRIP publish body (Pushpin's JSON:
// {"items":[{"channel":..., "id":..., "formats":{"http-stream":
// {"content":...}, "ws-message":{"content":...}}}]}) into messages, with
// prefix put before each channel name. ws-message is what WebSocket
// subscribers get, http-stream what Server-Sent Events subscribers get
// (as is: its publisher writes the SSE framing); an item with one of the
// two sends it to both kinds. maxMessage bounds each item's content.
// Items whose content is empty are left out (they are keep-alives) and
// counted in dropped.
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
		return nil, 0, fmt.Errorf("%w: %v", ErrBadPublish, err)
	}
	if req.Items == nil {
		return nil, 0, fmt.Errorf(`%w: no "items"`, ErrBadPublish)
	}
	items = make([]publishItem, 0, len(req.Items))
	for i, it := range req.Items {
		m, err := it.message(prefix, maxMessage)
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

func (it *gripItem) message(prefix string, maxMessage int64) (*Message, error) {
	m := &Message{Channel: prefix + it.Channel, ID: it.ID}
	if err := CheckName(m.Channel); err != nil {
		return nil, fmt.Errorf("channel %q: %v", m.Channel, err)
	}
	ws, stream := it.Formats["ws-message"], it.Formats["http-stream"]
	if ws == nil && stream == nil {
		if len(it.Formats) > 0 {
			return nil, errors.New(`only the "ws-message" and "http-stream" formats are supported`)
		}
		return nil, errors.New(`no "ws-message" or "http-stream" format`)
	}
	var err error
	if ws != nil {
		if m.Text, err = ws.text(); err != nil {
			return nil, fmt.Errorf("ws-message: %v", err)
		}
	}
	if stream != nil {
		if m.Stream, err = stream.text(); err != nil {
			return nil, fmt.Errorf("http-stream: %v", err)
		}
	}
	if ws == nil {
		m.Text = m.Stream
	}
	if int64(len(m.Text)) > maxMessage || int64(len(m.Stream)) > maxMessage {
		return nil, fmt.Errorf("content over the limit of %d bytes", maxMessage)
	}
	return m, nil
}
