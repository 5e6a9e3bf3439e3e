package handlers

import (
	"net/http"
	"strings"
)

// Headers a caller could forge to pass for someone else, or to make a
// backend read another path, method or address, are stripped from every event
// on the node that receives it, before any hook runs: whatever names
// them, in any case, with '_' for '-' ("X_Restpipe_Peer", which CGI, PHP
// and WSGI read as X-Restpipe-Peer):
//
//	X-Restpipe-*     restpipe's own: X-Restpipe-Peer, X-Restpipe-Identity, ...
//	X-Forwarded-*    and Forwarded, X-Real-Ip, X-Client-Ip, True-Client-Ip,
//	                 X-Cluster-Client-Ip: addresses only this node can vouch for
//	X-Original-*     X-Original-URI, X-Original-Method (the auth exchange),
//	                 X-Original-URL, and X-Rewrite-URL: path overrides of
//	                 some frameworks
//	X-Http-Method-Override, X-Http-Method, X-Method-Override: method
//	                 overrides, which would make a backend run DELETE for
//	                 an event the rules and the auth service saw as a GET
//
// The forward routes then set X-Restpipe-Peer, X-Restpipe-Identity,
// X-Forwarded-For and X-Forwarded-Proto themselves (see Forward).
var forgeableExact = map[string]bool{
	"forwarded":           true,
	"x-real-ip":           true,
	"x-client-ip":         true,
	"true-client-ip":      true,
	"x-cluster-client-ip": true,
	"x-rewrite-url":       true,
	// Method overrides (Symfony, Express's method-override, Google APIs).
	"x-http-method-override": true,
	"x-http-method":          true,
	"x-method-override":      true,
}

var forgeablePrefixes = []string{"x-restpipe-", "x-forwarded-", "x-original-"}

// forgeable reports whether a header of this name is stripped from events.
func forgeable(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	if forgeableExact[n] {
		return true
	}
	for _, p := range forgeablePrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// stripForgeable removes the forgeable headers from h.
func stripForgeable(h http.Header) {
	for k := range h {
		if forgeable(k) {
			delete(h, k)
		}
	}
}
