package handlers

import (
	"net/http"
	"strings"
)

// A reply's cookies land on the caller's front end's origin, whose host
// (127.0.0.1, localhost) every local service shares: browsers keep
// cookies apart by host, not by port. A handler is code of the node that
// serves it, with no page of its own to keep a session for, so its
// cookies would only reach other services; a forward route's are its
// web app's, which need them (README, Security).

// withoutHandlerCookies is answer for req that drops the cookies
// (Set-Cookie, and the obsolete Set-Cookie2, in any case) from the reply
// of a handler, and passes a forward route's reply as it is. It is the
// serving node's choice: the receiving node cannot tell a route's reply
// from a handler's, so a hostile peer can still send cookies (README,
// Security).
func (r *Registry) withoutHandlerCookies(req *Request, answer func(*Reply)) func(*Reply) {
	return func(rep *Reply) {
		// The header first: req.Route is read only for a reply that sets
		// a cookie, never for the error reply of an ended ctx, which goes
		// out while the handler may still hold req.
		if rep != nil && hasCookies(rep.Header) && req.Route == "" {
			dropCookies(rep.Header)
			r.log.Warn("handler reply: Set-Cookie dropped (only forward routes set cookies)",
				"req", req.ID, "handler", req.Name)
		}
		answer(rep)
	}
}

// cookieHeader reports whether k is a header that sets a cookie.
func cookieHeader(k string) bool {
	return strings.EqualFold(k, "Set-Cookie") || strings.EqualFold(k, "Set-Cookie2")
}

func hasCookies(h http.Header) bool {
	for k := range h {
		if cookieHeader(k) {
			return true
		}
	}
	return false
}

func dropCookies(h http.Header) {
	for k := range h {
		if cookieHeader(k) {
			delete(h, k)
		}
	}
}
