package handlers

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// errBadForwardPath is the cause of every path a forward route refuses.
var errBadForwardPath = errors.New("path refused")

// checkForwardPath decides whether raw, the escaped path of an event for a
// forward route after the route's own segment ("/a/b%20c"), may be
// appended to the route's target path. It runs on the node that serves
// the route, since the event may come from a hostile peer that wrote raw
// itself. It refuses, so that no backend can read the path as one outside
// the target's path or as something else than what restpipe checked:
//
//   - anything but "" or a path starting with '/';
//   - a byte that is not allowed unescaped in a URL path (RFC 3986 pchar
//     and '/'; '[' and ']' too, as Go's own front end leaves them): no
//     literal '\', space, control byte, non-ASCII byte, '?' or '#';
//   - a '%' not followed by two hex digits;
//   - an empty segment ("//"): path cleaning would merge it;
//   - a segment that decodes to "." or "..", or to only dots and spaces
//     ("...", ". .", which Windows file systems shorten), also before a
//     ';' ("..;x", which Tomcat and Spring read as "..");
//   - a decoded segment holding '/', '\', a control byte (NUL, CR, LF,
//     DEL, ...), or a '%' followed by two hex digits (a double encoding
//     such as %252e%252e or %252F, which a backend that decodes twice
//     would read as "..", "/");
//   - a decoded segment that holds a form lenient UTF-8 decoders read
//     as a character although it is not UTF-8 (lenientForm: an overlong
//     form of any length, %C0%AE and %F8%80%80%80%AE are a '.' to
//     decoders that accept them), or a look-alike of '.', '/', '\' or
//     '%' (lookAlikes: U+FF0E, U+2025, U+2215, ...). Other octets that
//     are not UTF-8 (%FF, a Latin-1 name) pass: HTTP allows them.
//
// Every path an honest front end sends under these rules passes (Go's
// front end escapes whatever needs it); forwardPath then normalises it.
func checkForwardPath(raw string) error {
	if raw == "" {
		return nil
	}
	if raw[0] != '/' {
		return fmt.Errorf("%w: %q does not start with /", errBadForwardPath, raw)
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return fmt.Errorf("%w: bad escape in %q", errBadForwardPath, raw)
			}
		case !pathByte(c):
			return fmt.Errorf("%w: byte %q not allowed in %q", errBadForwardPath, c, raw)
		}
	}
	segs := strings.Split(raw[1:], "/")
	for i, seg := range segs {
		if seg == "" {
			if i == len(segs)-1 {
				break // a trailing slash: "/dir/"
			}
			return fmt.Errorf("%w: empty segment (//) in %q", errBadForwardPath, raw)
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return fmt.Errorf("%w: %q: %v", errBadForwardPath, raw, err)
		}
		if err := checkSegment(dec); err != nil {
			return fmt.Errorf("%w: %q: %v", errBadForwardPath, raw, err)
		}
	}
	return nil
}

// forwardPath is the path a forward route sends its service for raw, the
// event's escaped path after the route's segment: raw checked by
// checkForwardPath, then normalised as RFC 3986 §6.2.2 says (escapes of
// unreserved characters decoded, the hex digits of the others upper-case).
// The auth service is asked about this path and the service gets it, so
// both read the same bytes: "/%73ecret" is "/secret" to both, not a path
// that passes a rule for /secret and reaches it anyway.
//
// Normalising a checked path cannot make it one the check refuses: it
// decodes to the same segments, and only unreserved characters, which
// the check allows anywhere, are decoded.
func forwardPath(raw string) (string, error) {
	if err := checkForwardPath(raw); err != nil {
		return "", err
	}
	return normalizeEscapes(raw), nil
}

// normalizeEscapes decodes the escapes of unreserved characters (ALPHA
// DIGIT - . _ ~) in s and upper-cases the hex digits of the others. s has
// only well-formed escapes (checkForwardPath).
func normalizeEscapes(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			b = append(b, s[i])
			continue
		}
		c := unhex(s[i+1])<<4 | unhex(s[i+2])
		if unreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex(s[i+1]), upperHex(s[i+2]))
		}
		i += 2
	}
	return string(b)
}

// unreserved reports whether c is an RFC 3986 unreserved character.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - ('a' - 'A')
	}
	return c
}

// checkSegment checks one decoded path segment.
func checkSegment(dec string) error {
	name, _, _ := strings.Cut(dec, ";")
	if name != "" && strings.Trim(name, ". ") == "" && strings.Contains(name, ".") {
		return fmt.Errorf("dot segment %q", dec)
	}
	if i := lenientForm(dec); i >= 0 {
		return fmt.Errorf("segment %q holds at byte %d a form that is not UTF-8 but lenient decoders read as a character (%%C0%%AE is a dot to some servers)", dec, i)
	}
	if i := strings.IndexAny(dec, lookAlikes); i >= 0 {
		return fmt.Errorf("segment %q holds a look-alike of '.', '/', '\\' or '%%' at byte %d", dec, i)
	}
	for i := 0; i < len(dec); i++ {
		switch c := dec[i]; {
		case c == '/' || c == '\\':
			return fmt.Errorf("encoded %q in a segment", c)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("control byte %#x in a segment", c)
		case c == '%' && i+2 < len(dec) && isHex(dec[i+1]) && isHex(dec[i+2]):
			return fmt.Errorf("double encoding %q in a segment", dec[i:i+3])
		}
	}
	return nil
}

// pathByte reports whether c may stand unescaped in a path: RFC 3986
// unreserved, sub-delims, ':', '@', '/', and '[' ']' as Go leaves them.
func pathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/[]", c) >= 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// checkForwardQuery refuses a raw query that the request line to the
// service could not carry as it is: a control byte, a space or '#'.
func checkForwardQuery(q string) error {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c == 0x7f || c == '#' {
			return fmt.Errorf("forward route: byte %q not allowed in the query", c)
		}
	}
	return nil
}

// forwardURL is the URL a checked raw path reaches on target: target's
// path, then raw, with one '/' between them whether or not target's path
// ends in one. An empty raw is "/".
func forwardURL(target *url.URL, raw, query string) *url.URL {
	if raw == "" {
		raw = "/"
	}
	base := strings.TrimSuffix(target.EscapedPath(), "/")
	esc := base + raw
	p, err := url.PathUnescape(esc)
	if err != nil { // cannot happen for a checked raw and a parsed target
		p = strings.TrimSuffix(target.Path, "/") + "/"
		esc = ""
	}
	u := *target
	u.Path, u.RawPath, u.RawQuery = p, esc, query
	return &u
}
