package channels_test

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/restpipe/restpipe/tunnel/channels"
)

// escapedRunes is a path of n copies of r, percent-escaped as a browser
// sends it.
func escapedRunes(r string, n int) string {
	return channels.PathPrefix + url.PathEscape(strings.Repeat(r, n))
}

// parsePathTests are shared with FuzzParsePath as its seed corpus.
var parsePathTests = []struct {
	name string
	path string
	want string // "" for an error
}{
	{"plain", "/channels/news", "news"},
	{"escaped space", "/channels/a%20b", "a b"},
	{"plus kept", "/channels/a+b", "a+b"},
	{"escaped slash", "/channels/a%2Fb", "a/b"},
	{"slashes allowed", "/channels/a/b/c", "a/b/c"},
	{"trailing slash kept", "/channels/a/", "a/"},
	{"escaped UTF-8", "/channels/caf%C3%A9", "café"},
	{"escaped multibyte", "/channels/%E2%82%AC", "€"},
	{"lower-case escapes", "/channels/%e2%82%ac", "€"},
	{"256 characters of 2 bytes", escapedRunes("é", 256), strings.Repeat("é", 256)},
	{"256 characters of 4 bytes", escapedRunes("😀", 256), strings.Repeat("😀", 256)},
	{"256 ASCII characters", "/channels/" + strings.Repeat("a", 256), strings.Repeat("a", 256)},
	{"257 characters of 4 bytes", escapedRunes("😀", 257), ""},
	{"257 characters of 2 bytes", escapedRunes("é", 257), ""},
	{"257 ASCII characters", "/channels/" + strings.Repeat("a", 257), ""},
	{"invalid UTF-8", "/channels/%FF", ""},
	{"truncated UTF-8", "/channels/caf%C3", ""},
	{"bad escape", "/channels/%zz", ""},
	{"cut escape", "/channels/a%2", ""},
	{"empty name", "/channels/", ""},
	{"no trailing slash", "/channels", ""},
	{"missing prefix", "/news", ""},
	{"other prefix", "/channel/news", ""},
	{"no leading slash", "channels/news", ""},
	{"prefix case matters", "/Channels/news", ""},
	{"empty path", "", ""},
}

func TestParsePath(t *testing.T) {
	for _, tt := range parsePathTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := channels.ParsePath(tt.path)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParsePath(%q) = %q, want an error", tt.path, got)
				}
				if !errors.Is(err, channels.ErrBadChannel) {
					t.Fatalf("ParsePath(%q) error %v does not wrap ErrBadChannel", tt.path, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePath(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // part of the error; "" for none
	}{
		{"one character", "a", ""},
		{"slashes and spaces", "a/b c", ""},
		{"256 ASCII", strings.Repeat("a", 256), ""},
		{"256 runes of 3 bytes", strings.Repeat("€", 256), ""},
		{"256 runes of 4 bytes", strings.Repeat("😀", 256), ""},
		{"empty", "", "empty"},
		{"257 ASCII", strings.Repeat("a", 257), "257 characters"},
		{"257 runes of 4 bytes", strings.Repeat("😀", 257), "257 characters"},
		{"invalid byte", "\xff", "UTF-8"},
		{"invalid byte inside", "a\xffb", "UTF-8"},
		{"lone surrogate encoded", "\xed\xa0\x80", "UTF-8"},
		{"many invalid bytes", strings.Repeat("\xff", 300), "UTF-8"},
		{"CR LF", "a\r\nb", "control character"},
		{"NUL", "a\x00", "control character"},
		{"DEL", "\x7f", "control character"},
		{"C1 control", "a\u0085b", "control character"},
		{"tab", "a\tb", "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := channels.CheckName(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckName: %v", err)
				}
				return
			}
			if !errors.Is(err, channels.ErrBadChannel) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckName = %v, want ErrBadChannel mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// parsePublishTests are shared with FuzzParsePublish as its seed corpus.
var parsePublishTests = []struct {
	name    string
	body    string
	prefix  string
	max     int64
	want    []channels.Message
	wantErr string // part of the error; "" for none
}{
	{
		name: "ws-message only",
		body: `{"items":[{"channel":"test","formats":{"ws-message":{"content":"hello"}}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "test", Text: "hello", To: channels.ToWebSocket}},
	},
	{
		name: "http-stream only, with ids",
		body: `{"items":[{"channel":"mychannel","id":"an-item-id","prev-id":"another-item-id",
			"formats":{"http-stream":{"content":"data: hello\n\n"}}}]}`,
		max: 1024,
		// For Server-Sent Events subscribers only, as in Pushpin.
		want: []channels.Message{{Channel: "mychannel", ID: "an-item-id", Stream: "data: hello\n\n", To: channels.ToEvents}},
	},
	{
		name: "both formats",
		body: `{"items":[{"channel":"test","formats":{
			"ws-message":{"content":"hello"},
			"http-stream":{"content":"event: greeting\ndata: hello\n\n"}}}]}`,
		max: 1024,
		want: []channels.Message{{Channel: "test", Text: "hello", Stream: "event: greeting\ndata: hello\n\n",
			To: channels.ToWebSocket | channels.ToEvents}},
	},
	{
		name: "content-bin",
		body: `{"items":[{"channel":"test","formats":{"ws-message":{"content-bin":"aGVsbG8gd29ybGQ="}}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "test", Text: "hello world", To: channels.ToWebSocket}},
	},
	{
		name: "content-bin in http-stream",
		body: `{"items":[{"channel":"test","formats":{"http-stream":{"content-bin":"ZGF0YTogaGkKCg=="}}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "test", Stream: "data: hi\n\n", To: channels.ToEvents}},
	},
	{
		name:    "content-bin not base64",
		body:    `{"items":[{"channel":"test","formats":{"ws-message":{"content-bin":"not base64!"}}}]}`,
		max:     1024,
		wantErr: "content-bin",
	},
	{
		name:    "content-bin not UTF-8",
		body:    `{"items":[{"channel":"test","formats":{"ws-message":{"content-bin":"/w=="}}}]}`,
		max:     1024,
		wantErr: "not UTF-8",
	},
	{
		name:   "prefix prepended",
		body:   `{"items":[{"channel":"news","formats":{"ws-message":{"content":"x"}}}]}`,
		prefix: "app1:",
		max:    1024,
		want:   []channels.Message{{Channel: "app1:news", Text: "x", To: channels.ToWebSocket}},
	},
	{
		name: "several items in order",
		body: `{"items":[
			{"channel":"a","formats":{"ws-message":{"content":"1"}}},
			{"channel":"b","formats":{"ws-message":{"content":"2"}}},
			{"channel":"a","formats":{"ws-message":{"content":"3","action":"send"}}}]}`,
		max: 1024,
		want: []channels.Message{
			{Channel: "a", Text: "1", To: channels.ToWebSocket}, {Channel: "b", Text: "2", To: channels.ToWebSocket},
			{Channel: "a", Text: "3", To: channels.ToWebSocket},
		},
	},
	{
		name: "empty content dropped",
		body: `{"items":[
			{"channel":"a","formats":{"ws-message":{"content":""}}},
			{"channel":"a","formats":{"ws-message":{"content":"kept"}}},
			{"channel":"a","formats":{"http-stream":{"content":""}}},
			{"channel":"a","formats":{"ws-message":{"content-bin":""}}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "a", Text: "kept", To: channels.ToWebSocket}},
	},
	{
		name: "only keep-alives",
		body: `{"items":[{"channel":"a","formats":{"ws-message":{"content":""}}}]}`,
		max:  1024,
		want: []channels.Message{},
	},
	{
		name: "no items",
		body: `{"items":[]}`,
		max:  1024,
		want: []channels.Message{},
	},
	{
		name: "unicode escapes",
		body: `{"items":[{"channel":"caf\u00e9","formats":{"ws-message":{"content":"\u20ac \ud83d\ude00"}}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "café", Text: "€ 😀", To: channels.ToWebSocket}},
	},
	{
		name: "exactly maxMessage",
		body: `{"items":[{"channel":"a","formats":{"ws-message":{"content":"12345"}}}]}`,
		max:  5,
		want: []channels.Message{{Channel: "a", Text: "12345", To: channels.ToWebSocket}},
	},
	{
		name:    "ws-message over maxMessage",
		body:    `{"items":[{"channel":"a","formats":{"ws-message":{"content":"123456"}}}]}`,
		max:     5,
		wantErr: "over the limit of 5 bytes",
	},
	{
		name:    "http-stream over maxMessage",
		body:    `{"items":[{"channel":"a","formats":{"ws-message":{"content":"1"},"http-stream":{"content":"123456"}}}]}`,
		max:     5,
		wantErr: "over the limit",
	},
	{
		name:    "content-bin over maxMessage once decoded",
		body:    `{"items":[{"channel":"a","formats":{"ws-message":{"content-bin":"MTIzNDU2"}}}]}`,
		max:     5,
		wantErr: "over the limit",
	},
	{
		name:    "one bad item spoils the request",
		body:    `{"items":[{"channel":"a","formats":{"ws-message":{"content":"ok"}}},{"channel":"a"}]}`,
		max:     1024,
		wantErr: "item 1",
	},
	{name: "missing items", body: `{}`, max: 1024, wantErr: `no "items"`},
	{name: "null items", body: `{"items":null}`, max: 1024, wantErr: `no "items"`},
	{
		name:    "no formats",
		body:    `{"items":[{"channel":"a"}]}`,
		max:     1024,
		wantErr: `no "ws-message" or "http-stream" format`,
	},
	{
		name:    "empty formats",
		body:    `{"items":[{"channel":"a","formats":{}}]}`,
		max:     1024,
		wantErr: `no "ws-message" or "http-stream" format`,
	},
	{
		name:    "only http-response",
		body:    `{"items":[{"channel":"a","formats":{"http-response":{"body":"hello\n"}}}]}`,
		max:     1024,
		wantErr: `"http-response" alone is not supported`,
	},
	{
		name:    "unknown format only",
		body:    `{"items":[{"channel":"a","formats":{"x-other":{"content":"x"}}}]}`,
		max:     1024,
		wantErr: "only the",
	},
	{
		name:    "format without content",
		body:    `{"items":[{"channel":"a","formats":{"ws-message":{}}}]}`,
		max:     1024,
		wantErr: `no "content" or "content-bin"`,
	},
	{
		name: "ws-message close",
		body: `{"items":[{"channel":"a","formats":{"ws-message":{"action":"close"}}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "a", Close: true, To: channels.ToWebSocket}},
	},
	{
		name: "ws-message close with code and reason",
		body: `{"items":[{"channel":"a","ws-message":{"action":"close","code":4001,"reason":"bye"}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "a", Close: true, To: channels.ToWebSocket, CloseCode: 4001, CloseReason: "bye"}},
	},
	{
		name: "http-stream close",
		body: `{"items":[{"channel":"a","formats":{"http-stream":{"action":"close"}}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "a", Close: true, To: channels.ToEvents}},
	},
	{
		name: "both closed, top level",
		body: `{"items":[{"channel":"a","http-stream":{"action":"close"},"ws-message":{"action":"close"}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "a", Close: true, To: channels.ToEvents | channels.ToWebSocket}},
	},
	{
		name:    "close code a server may not send",
		body:    `{"items":[{"channel":"a","ws-message":{"action":"close","code":1005}}]}`,
		max:     1024,
		wantErr: `close "code" 1005`,
	},
	{
		name:    "close reason over a close frame",
		body:    `{"items":[{"channel":"a","ws-message":{"action":"close","reason":"` + strings.Repeat("r", 124) + `"}}]}`,
		max:     1024,
		wantErr: "123",
	},
	{
		name:    "one format closes, the other sends",
		body:    `{"items":[{"channel":"a","http-stream":{"action":"close"},"ws-message":{"content":"x"}}]}`,
		max:     1024,
		wantErr: "two items",
	},
	{
		name:    "unknown action",
		body:    `{"items":[{"channel":"a","http-stream":{"action":"hint"}}]}`,
		max:     1024,
		wantErr: `"action" "hint" is not supported`,
	},
	{
		name: "formats at the top level (pubcontrol, gripcontrol)",
		body: `{"items":[{"channel":"news","id":"1","http-stream":{"content":"data: s\n\n"},"ws-message":{"content":"w"}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "news", ID: "1", Text: "w", Stream: "data: s\n\n",
			To: channels.ToWebSocket | channels.ToEvents}},
	},
	{
		name: "http-stream at the top level, content-bin",
		body: `{"items":[{"channel":"news","http-stream":{"content-bin":"ZGF0YTogaGkKCg=="}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "news", Stream: "data: hi\n\n", To: channels.ToEvents}},
	},
	{
		name: "ws-message at the top level, http-response ignored beside it",
		body: `{"items":[{"channel":"news","ws-message":{"content":"w"},"http-response":{"body":"r"}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "news", Text: "w", To: channels.ToWebSocket}},
	},
	{
		name: "one empty format of two: for the other kind only",
		body: `{"items":[{"channel":"news","ws-message":{"content":""},"http-stream":{"content":"data: s\n\n"}}]}`,
		max:  1024,
		want: []channels.Message{{Channel: "news", Stream: "data: s\n\n", To: channels.ToEvents}},
	},
	{
		name:    "a format both in formats and at the top level",
		body:    `{"items":[{"channel":"a","ws-message":{"content":"1"},"formats":{"ws-message":{"content":"2"}}}]}`,
		max:     1024,
		wantErr: "both in",
	},
	{
		name:    "a form body",
		body:    `hello=world`,
		max:     1024,
		wantErr: "the body is not JSON: invalid character 'h' looking for beginning of value (at byte 1 of 11)",
	},
	{
		name:    "a wrong type names the item and the field",
		body:    `{"items":[{"channel":"a","ws-message":{"content":"x"}},{"channel":7,"ws-message":{"content":"x"}}]}`,
		max:     1024,
		wantErr: `item 1: "channel" is a JSON number, want a string`,
	},
	{
		name:    "a wrong type in a format",
		body:    `{"items":[{"channel":"a","http-stream":{"content":["x"]}}]}`,
		max:     1024,
		wantErr: `item 0: http-stream: "content" is a JSON array, want a string`,
	},
	{name: "bad JSON", body: `{"items":[`, max: 1024, wantErr: "bad publish request"},
	{name: "not an object", body: `["items"]`, max: 1024, wantErr: "bad publish request"},
	{name: "items not a list", body: `{"items":{}}`, max: 1024, wantErr: "bad publish request"},
	{name: "empty body", body: ``, max: 1024, wantErr: "bad publish request"},
	{
		name:    "content not a string",
		body:    `{"items":[{"channel":"a","formats":{"ws-message":{"content":1}}}]}`,
		max:     1024,
		wantErr: "bad publish request",
	},
	{
		name:    "missing channel",
		body:    `{"items":[{"formats":{"ws-message":{"content":"x"}}}]}`,
		max:     1024,
		wantErr: "empty",
	},
	{
		name:    "channel too long once prefixed",
		body:    `{"items":[{"channel":"` + strings.Repeat("€", 255) + `","formats":{"ws-message":{"content":"x"}}}]}`,
		prefix:  "p:",
		max:     1024,
		wantErr: "257 characters",
	},
	{
		name:   "channel at the limit once prefixed",
		body:   `{"items":[{"channel":"` + strings.Repeat("€", 254) + `","formats":{"ws-message":{"content":"x"}}}]}`,
		prefix: "p:",
		max:    1024,
		want:   []channels.Message{{Channel: "p:" + strings.Repeat("€", 254), Text: "x", To: channels.ToWebSocket}},
	},
	{
		name:    "prefix not UTF-8",
		body:    `{"items":[{"channel":"a","formats":{"ws-message":{"content":"x"}}}]}`,
		prefix:  "\xff",
		max:     1024,
		wantErr: "UTF-8",
	},
	{
		name:    "invalid channel of an empty item",
		body:    `{"items":[{"channel":"","formats":{"ws-message":{"content":""}}}]}`,
		max:     1024,
		wantErr: "empty",
	},
}

func TestParsePublish(t *testing.T) {
	for _, tt := range parsePublishTests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, dropped, err := channels.ParsePublish([]byte(tt.body), tt.prefix, tt.max)
			if tt.wantErr != "" {
				if !errors.Is(err, channels.ErrBadPublish) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePublish = %v, %v; want ErrBadPublish mentioning %q", msgs, err, tt.wantErr)
				}
				if msgs != nil {
					t.Fatalf("ParsePublish returned %d messages with its error", len(msgs))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublish: %v", err)
			}
			got := []channels.Message{}
			for _, m := range msgs {
				got = append(got, *m)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParsePublish =\n%+v\nwant\n%+v", got, tt.want)
			}
			if n := itemCount(t, []byte(tt.body)); dropped != n-len(msgs) {
				t.Fatalf("dropped %d, want %d of %d items", dropped, n-len(msgs), n)
			}
		})
	}
}
