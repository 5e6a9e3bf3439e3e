package events

import (
	"net/http"
	"net/textproto"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
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
// hop-by-hop headers, those named in Connection, and the ones the event
// carries itself (Content-Length, Content-Type) are left out. Of TE, only
// "trailers" crosses (as "Te: trailers"): the caller takes trailer
// fields, which a gRPC service wants to hear.
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
		if hopByHop[ck] || framing[ck] || named[ck] {
			continue
		}
		out = append(out, &Header{Name: ck, Values: Bytes(vs)})
	}
	if takesTrailers(h.Values("Te")) {
		out = append(out, &Header{Name: "Te", Values: [][]byte{[]byte("trailers")}})
	}
	return out
}

// takesTrailers reports whether TE values hold the "trailers" token.
func takesTrailers(vs []string) bool {
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

// HeadersToHTTP adds event headers to dst, leaving out any hop-by-hop or
// framing header a peer may have put there, but "Te: trailers".
func HeadersToHTTP(hs []*Header, dst http.Header) {
	for _, h := range hs {
		ck := textproto.CanonicalMIMEHeaderKey(h.Name)
		if ck == "Te" {
			if len(h.Values) == 1 && string(h.Values[0]) == "trailers" {
				dst.Set("Te", "trailers")
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

// Length returns the length a Content-Length value cl states, for
// Reply.content_length: nil unless it is one (decimal digits only, as
// RFC 9110 section 8.6 has it). A reply that knows its body's length
// sends it in that field, never as a header: a reply to HEAD, which has
// no body, sends the length its GET's body would have had.
func Length(cl string) *int64 {
	if n, ok := parseLength(cl); ok {
		return &n
	}
	return nil
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// notTrailer are the fields a trailer may not carry (RFC 9110 section
// 6.5.1): those needed before the content (framing, routing, request
// modifiers, authentication, content format) and the hop-by-hop ones.
// net/http's client refuses most of them in a Trailer announcement.
var notTrailer = map[string]bool{
	"Authorization":       true,
	"Authentication-Info": true,
	"Cache-Control":       true,
	"Content-Encoding":    true,
	"Content-Length":      true,
	"Content-Range":       true,
	"Content-Type":        true,
	"Cookie":              true,
	"Expect":              true,
	"Host":                true,
	"Max-Forwards":        true,
	"Pragma":              true,
	"Range":               true,
	"Set-Cookie":          true,
	"Www-Authenticate":    true,
}

// TrailerAllowed reports whether a field named name may travel as a
// trailer field: an HTTP token that is neither hop-by-hop nor one of the
// fields RFC 9110 section 6.5.1 keeps out of trailers (Content-Length,
// Transfer-Encoding, Host, Authorization, Content-Type, ...). Other
// trailer fields are dropped, both ways.
func TrailerAllowed(name string) bool {
	ck := textproto.CanonicalMIMEHeaderKey(name)
	return validName(ck) && !hopByHop[ck] && !notTrailer[ck]
}

// TrailersFromHTTP converts the trailer fields of h (an http.Request's or
// http.Response's Trailer, once its body has been read) into event
// headers: those TrailerAllowed refuses, and names without values (an
// announcement that was never filled), are left out. nil for none.
func TrailersFromHTTP(h http.Header) []*Header {
	var out []*Header
	for k, vs := range h {
		if len(vs) == 0 || !TrailerAllowed(k) {
			continue
		}
		out = append(out, &Header{Name: textproto.CanonicalMIMEHeaderKey(k), Values: Bytes(vs)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// TrailersToHTTP adds the trailer fields hs, as a peer sent them, to dst:
// names TrailerAllowed refuses and values with a control character are
// left out.
func TrailersToHTTP(hs []*Header, dst http.Header) {
	for _, h := range hs {
		if !TrailerAllowed(h.Name) {
			continue
		}
		ck := textproto.CanonicalMIMEHeaderKey(h.Name)
		for _, v := range h.Values {
			if validValue(v) {
				dst.Add(ck, string(v))
			}
		}
	}
}

// TrailerNames returns the names of the trailer fields h announces (the
// keys of an http.Request's or http.Response's Trailer, or a handler's
// announcement) that TrailerAllowed accepts, canonical and sorted, for
// Request.trailer and Reply.trailer. nil for none.
func TrailerNames(h http.Header) []string {
	var out []string
	for k := range h {
		if TrailerAllowed(k) {
			out = append(out, textproto.CanonicalMIMEHeaderKey(k))
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// AnnouncedTrailer returns an http.Header holding, with no values, the
// trailer names a peer announced that TrailerAllowed accepts: the
// Trailer map of a request or reply before its body has been read, as
// net/http's are. nil for none.
func AnnouncedTrailer(names []string) http.Header {
	var h http.Header
	for _, n := range names {
		if TrailerAllowed(n) {
			if h == nil {
				h = http.Header{}
			}
			h[textproto.CanonicalMIMEHeaderKey(n)] = nil
		}
	}
	return h
}

// TrailerSize is the size of a Trailer carrying the fields hs, as
// MaxTrailerSize counts it.
func TrailerSize(hs []*Header) int { return proto.Size(&Trailer{Headers: hs}) }
