package events

import (
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// hopByHop are the headers that belong to one HTTP connection, not to the
// event (RFC 9110 section 7.6.1).
var hopByHop = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// framing headers are carried by the event itself, not as headers.
var framing = map[string]bool{
	"Content-Length": true,
	"Content-Type":   true,
	"Host":           true,
}

// HeadersFromHTTP converts the end-to-end headers of h into event headers:
// hop-by-hop headers (but TE: trailers), those named in Connection, and
// the ones the event carries itself (Content-Length, Content-Type) are
// left out.
func HeadersFromHTTP(h http.Header) []*Header {
	named := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				named[textproto.CanonicalMIMEHeaderKey(f)] = true
			}
		}
	}
	out := make([]*Header, 0, len(h))
	for k, vs := range h {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if ck == "Te" {
			if teTrailers(vs) {
				out = append(out, &Header{Name: ck, Values: [][]byte{[]byte("trailers")}})
			}
			continue
		}
		if hopByHop[ck] || framing[ck] || named[ck] {
			continue
		}
		out = append(out, &Header{Name: ck, Values: Bytes(vs)})
	}
	return out
}

// HeadersToHTTP adds event headers to dst, leaving out any hop-by-hop or
// framing header a peer may have put there.
func HeadersToHTTP(hs []*Header, dst http.Header) {
	for _, h := range hs {
		ck := textproto.CanonicalMIMEHeaderKey(h.Name)
		if ck == "Te" {
			if teTrailers(Strings(h.Values)) {
				dst.Set(ck, "trailers")
			}
			continue
		}
		if !validName(ck) || hopByHop[ck] || framing[ck] {
			continue
		}
		for _, v := range h.Values {
			if validValue(v) {
				dst.Add(ck, string(v))
			}
		}
	}
}

// teTrailers reports whether TE values hold the token "trailers": the
// caller takes trailers (a gRPC client must say so). Of TE, a hop-by-hop
// header, only that token crosses the tunnel, so that a forward route's
// service hears it (net/http's ReverseProxy passes TE: trailers on);
// transfer codings are the connection's.
func teTrailers(vs []string) bool {
	for _, v := range vs {
		for _, tok := range strings.Split(v, ",") {
			tok, _, _ = strings.Cut(tok, ";")
			if strings.EqualFold(strings.TrimSpace(tok), "trailers") {
				return true
			}
		}
	}
	return false
}

// validName reports whether s is an HTTP token, so that a peer cannot
// smuggle a malformed header through the front end.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validValue reports whether s holds no control character but tab.
func validValue(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// Bytes converts strings to the bytes fields of the wire messages
// (ProtocolVersion 2): the octets as they are, UTF-8 or not. nil stays nil.
func Bytes(ss []string) [][]byte {
	if ss == nil {
		return nil
	}
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// Strings converts the bytes fields of a wire message back to strings,
// octet for octet. nil stays nil.
func Strings(bs [][]byte) []string {
	if bs == nil {
		return nil
	}
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// ContentType returns a content type from a wire message as a header
// value: "" if it holds a control character, which a peer could use to
// split the caller's reply.
func ContentType(b []byte) string {
	if !validValue(b) {
		return ""
	}
	return string(b)
}

// A reply to HEAD has no body, so nothing frames the length its GET's body
// would have had: that length travels as a Content-Length event header,
// which the sender adds (AddHeadLength) and the caller of the HEAD reads
// (HeadLength). Everywhere else Content-Length stays out of event headers.

// AddHeadLength adds the Content-Length cl (a header value) to the
// headers of a reply to HEAD, if it is a length.
func AddHeadLength(hs []*Header, cl string) []*Header {
	if n, ok := parseLength(cl); ok {
		hs = append(hs, &Header{Name: "Content-Length", Values: [][]byte{strconv.AppendInt(nil, n, 10)}})
	}
	return hs
}

// HeadLength returns the Content-Length a reply to HEAD carries among its
// headers hs, if it has one that is a length.
func HeadLength(hs []*Header) (int64, bool) {
	for _, h := range hs {
		if textproto.CanonicalMIMEHeaderKey(h.Name) == "Content-Length" && len(h.Values) == 1 {
			return parseLength(string(h.Values[0]))
		}
	}
	return 0, false
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
