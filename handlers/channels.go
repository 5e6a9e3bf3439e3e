package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Channel requests: the server asks its Auth hook, with a Request whose
// Method is one of these and whose Channel is set, whether a client node
// may subscribe or publish to a channel. Their targets, as access rules
// name them, are "subscribe:NAME" and "publish:NAME"; a rule target
// "channel:GLOB" matches both.
const (
	// ChannelSubscribe is the Method of a subscribe request.
	ChannelSubscribe = "SUBSCRIBE"
	// ChannelPublish is the Method of a publish request.
	ChannelPublish = "PUBLISH"
)

// Prefixes of the channel targets.
const (
	targetSubscribe = "subscribe:"
	targetPublish   = "publish:"
	targetChannel   = "channel:"
)

// HeaderChannel, sent to the external auth service with a channel
// request only, is the channel's name, percent-escaped as one path
// segment ("news%2Fsport"): it tells a channel decision from an event
// whose method and URI look the same (a hostile peer may send an event
// SUBSCRIBE /channels/x). A caller's copy never reaches the service.
const HeaderChannel = "X-Restpipe-Channel"

// setChannelHeader sets HeaderChannel in h, sent to the external auth
// for req, or removes a copy the caller sent with an event.
func setChannelHeader(h http.Header, req *Request) {
	for k := range h {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), HeaderChannel) {
			delete(h, k)
		}
	}
	if req.Channel != "" {
		h.Set(HeaderChannel, url.PathEscape(req.Channel))
	}
}

// channelPathPrefix is where a front end serves channels: what the
// external auth's X-Original-URI of a channel request starts with.
const channelPathPrefix = "/channels/"

// AuthorizeChannel asks the Auth hook whether req, a channel request
// (Method ChannelSubscribe or ChannelPublish, Channel the channel's name,
// Peer the node's certificate name), may go ahead. It returns nil when it
// may, or when there is no Auth hook. Otherwise it returns an *Error: 403
// forbidden (or the Status and Code the Decision gave), or 503
// auth_unavailable when the hook could not decide (why is logged, not
// told: the answer goes to the peer).
//
// Only the Auth hook is asked: Pre, PostAuth and Post hooks are for
// events. An Auth hook that rewrites the request (the external auth's
// X-Rewrite) refuses it: a channel has no noun path to be rewritten to.
func (r *Registry) AuthorizeChannel(ctx context.Context, req *Request) error {
	auth := r.chain().auth
	if auth == nil {
		return nil
	}
	var d Decision
	var err error
	if _, perr := r.safeHook(req, "auth", func() (*Reply, error) {
		d, err = auth(ctx, req)
		return nil, nil
	}); perr != nil {
		err = perr
	}
	verb := channelVerb(req.Method)
	switch {
	case err != nil:
		// The answer goes to the peer: the auth service's address and
		// errors stay in this node's log.
		r.log.Warn("cannot decide a channel request", "peer", req.Peer, "op", req.Method,
			"channel", req.Channel, "req", req.ID, "err", err)
		return Errorf(http.StatusServiceUnavailable, CodeAuthUnavailable,
			"cannot decide whether node %q may %s channel %q: the access check failed (see the server's log)",
			req.Peer, verb, req.Channel)
	case len(req.Noun) > 0 || len(req.Args) > 0 || req.RawPath != "":
		return Errorf(http.StatusForbidden, CodeForbidden,
			"node %q may not %s channel %q: the auth hook rewrote the request, and a channel request cannot be rewritten",
			req.Peer, verb, req.Channel)
	case d.Allow:
		return nil
	}
	status, code := d.Status, d.Code
	if status == 0 {
		status = http.StatusForbidden
	}
	if code == "" {
		code = CodeForbidden
	}
	msg := fmt.Sprintf("node %q may not %s channel %q", req.Peer, verb, req.Channel)
	if d.Reason != "" {
		msg += ": " + d.Reason
	}
	return &Error{Status: status, Code: code, Msg: msg}
}

// channelVerb is what the message says a node may do to a channel.
func channelVerb(method string) string {
	if method == ChannelPublish {
		return "publish to"
	}
	return "subscribe to"
}

// channelTarget is the target of a channel request: "subscribe:NAME" or
// "publish:NAME".
func channelTarget(req *Request) string {
	if req.Method == ChannelPublish {
		return targetPublish + req.Channel
	}
	return targetSubscribe + req.Channel
}

// channelURI is the X-Original-URI of a channel request: the channel's
// front-end path, "/channels/NAME", each '/'-separated piece of the name
// percent-escaped (so "news/sport" is "/channels/news/sport", and
// "a b?" is "/channels/a%20b%3F"). Two names never share a URI. A piece
// that is "." or ".." goes as "%2E" or "%2E%2E": a channel name is
// literal, and an auth service that resolved dot segments would decide
// about another channel ("a/../b" is not "b").
func channelURI(name string) string {
	var b strings.Builder
	b.WriteString(channelPathPrefix)
	for i, seg := range strings.Split(name, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		switch seg {
		case ".":
			b.WriteString("%2E")
		case "..":
			b.WriteString("%2E%2E")
		default:
			b.WriteString(url.PathEscape(seg))
		}
	}
	return b.String()
}

// matchChannelTarget reports whether the rule target pattern matches
// target, a channel target ("subscribe:NAME" or "publish:NAME"): as it
// is, or as "channel:NAME". In a channel target '/' is an ordinary
// character, matched by '*' and '?' like any other (see matchFlat).
// Only "*" alone and patterns that name a channel kind ("subscribe:",
// "publish:", "channel:") match a channel: a handler glob such as
// "*_time" or "[a-z]*" must not let a peer into "subscribe:overtime".
func matchChannelTarget(pattern, target string) bool {
	if pattern != "*" && !strings.HasPrefix(pattern, targetSubscribe) &&
		!strings.HasPrefix(pattern, targetPublish) && !strings.HasPrefix(pattern, targetChannel) {
		return false
	}
	if matchFlat(pattern, target) {
		return true
	}
	_, name, _ := strings.Cut(target, ":")
	return matchFlat(pattern, targetChannel+name)
}

// isChannelTarget reports whether target names a channel request.
func isChannelTarget(target string) bool {
	return strings.HasPrefix(target, targetSubscribe) || strings.HasPrefix(target, targetPublish)
}

// matchFlat is path.Match for names in which '/' has no meaning: '*'
// matches any run of characters and '?' any one character, '/' included
// ("channel:tenantA-*" matches "channel:tenantA-eu/orders"). Everything
// else is path.Match's syntax and behaviour, byte for byte: for a name
// without '/', matchFlat and path.Match agree. A malformed pattern
// matches nothing (ParseRule refuses them).
func matchFlat(pattern, name string) bool {
Pattern:
	for len(pattern) > 0 {
		var star bool
		var chunk string
		star, chunk, pattern = scanChunk(pattern)
		if star && chunk == "" {
			return true // a trailing '*' matches the rest
		}
		t, ok, err := matchChunk(chunk, name)
		if ok && (len(t) == 0 || len(pattern) > 0) {
			name = t
			continue
		}
		if err != nil {
			return false
		}
		if star {
			for i := 0; i < len(name); i++ {
				t, ok, err := matchChunk(chunk, name[i+1:])
				if ok {
					if len(pattern) == 0 && len(t) > 0 {
						continue // the last chunk must end the name
					}
					name = t
					continue Pattern
				}
				if err != nil {
					return false
				}
			}
		}
		return false
	}
	return len(name) == 0
}

// scanChunk splits off pattern's next chunk: a run without '*', after
// the '*'s before it (star).
func scanChunk(pattern string) (star bool, chunk, rest string) {
	for len(pattern) > 0 && pattern[0] == '*' {
		pattern = pattern[1:]
		star = true
	}
	inRange := false
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			if i+1 < len(pattern) {
				i++
			}
		case '[':
			inRange = true
		case ']':
			inRange = false
		case '*':
			if !inRange {
				return star, pattern[:i], pattern[i:]
			}
		}
	}
	return star, pattern, ""
}

// matchChunk matches chunk (literals, '?', classes) against the start of
// s and returns the rest of s.
func matchChunk(chunk, s string) (rest string, ok bool, err error) {
	failed := false
	for len(chunk) > 0 {
		failed = failed || len(s) == 0
		switch chunk[0] {
		case '[':
			var r rune
			if !failed {
				var n int
				r, n = utf8.DecodeRuneInString(s)
				s = s[n:]
			}
			chunk = chunk[1:]
			negated := false
			if len(chunk) > 0 && chunk[0] == '^' {
				negated = true
				chunk = chunk[1:]
			}
			match := false
			nrange := 0
			for {
				if len(chunk) > 0 && chunk[0] == ']' && nrange > 0 {
					chunk = chunk[1:]
					break
				}
				var lo, hi rune
				if lo, chunk, err = classChar(chunk); err != nil {
					return "", false, err
				}
				hi = lo
				if chunk[0] == '-' {
					if hi, chunk, err = classChar(chunk[1:]); err != nil {
						return "", false, err
					}
				}
				match = match || lo <= r && r <= hi
				nrange++
			}
			failed = failed || match == negated
		case '?':
			if !failed {
				_, n := utf8.DecodeRuneInString(s)
				s = s[n:]
			}
			chunk = chunk[1:]
		case '\\':
			chunk = chunk[1:]
			if len(chunk) == 0 {
				return "", false, errBadGlob
			}
			fallthrough
		default:
			if !failed {
				failed = chunk[0] != s[0]
				s = s[1:]
			}
			chunk = chunk[1:]
		}
	}
	if failed {
		return "", false, nil
	}
	return s, true, nil
}

// classChar reads a character of a class, possibly escaped.
func classChar(chunk string) (r rune, rest string, err error) {
	if len(chunk) == 0 || chunk[0] == '-' || chunk[0] == ']' {
		return 0, "", errBadGlob
	}
	if chunk[0] == '\\' {
		chunk = chunk[1:]
		if len(chunk) == 0 {
			return 0, "", errBadGlob
		}
	}
	r, n := utf8.DecodeRuneInString(chunk)
	if r == utf8.RuneError && n == 1 {
		return 0, "", errBadGlob
	}
	rest = chunk[n:]
	if len(rest) == 0 {
		return 0, "", errBadGlob
	}
	return r, rest, nil
}

// errBadGlob is a malformed pattern; matchFlat treats it as no match.
var errBadGlob = fmt.Errorf("handlers: bad pattern")
