// Package webguard keeps web pages from driving a node's front end
// through the user's browser.
//
// A front end on loopback is reachable by every page the user opens: a
// page can send it requests that need no CORS preflight (a form POST, a
// fetch with Content-Type text/plain, a WebSocket), and, with DNS
// rebinding (evil.example resolving to 127.0.0.1), load itself from the
// front end's port and read every reply. A Policy refuses both before
// anything is served:
//
//   - the Host header must be one of the front end's own names (the
//     address the connection came in on, localhost, 127.0.0.1 and [::1],
//     each with the front end's port, plus the names given to it), or the
//     request is misdirected (ErrMisdirected, HTTP 421): a rebound page
//     sends its own name as Host;
//   - a request whose Origin is not the front end's own
//     (http://<one of its names>) or allowed by a pattern, or which
//     carries no Origin but Sec-Fetch-Site cross-site or same-site, is
//     foreign (ErrForeign, HTTP 403). "same-site" covers another port of
//     localhost: same site, other origin, refused too. An Origin of
//     "null" (sandboxed pages, redirects, file: URLs) is foreign.
//
// Requests with neither Origin nor Sec-Fetch-Site (curl, Go, Python)
// pass the Origin check. A front end on a UNIX socket is exempt from the
// Host check: no browser connects to one.
package webguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/restpipe/restpipe/handlers"
)

// Sentinel errors of Check.
var (
	// ErrMisdirected: the Host header names somebody else (421).
	ErrMisdirected = errors.New("misdirected request")
	// ErrForeign: the request comes from a page of another origin (403).
	ErrForeign = errors.New("request from a foreign web origin")
)

// Policy is the Host and Origin check of one front end. The zero Policy
// has no extra names and allows no other origin. It is safe for
// concurrent use and never changes after New.
type Policy struct {
	hosts    []hostName // extra names
	patterns []string   // allowed origins, lower case
}

// hostName is a parsed Host name: a host name (as given: compared
// without regard to case) or an IP address, and a port ("" when none is
// given).
type hostName struct {
	host string
	ip   netip.Addr // valid when the host is an IP address
	port string
}

// is reports whether h names host n (ports aside).
func (h hostName) is(n hostName) bool {
	if h.ip.IsValid() || n.ip.IsValid() {
		return h.ip == n.ip
	}
	return strings.EqualFold(h.host, n.host)
}

// New returns the policy of a front end that answers to the extra names
// hosts besides its own, and lets pages of the origins matched by
// patterns call it.
//
// A name is a host name or IP address ("tunnel.internal", "10.0.0.5",
// "[fd00::1]"), standing for it with the front end's port, or the same
// with a port ("proxy.internal:8443"), standing for exactly that. A
// pattern is a path.Match glob against the origin's host, with its port
// if it has one ("*.example.com", "app.example.com:8443"), or against
// "scheme://host[:port]" when it holds "://" ("https://app.example.com").
func New(hosts, patterns []string) (*Policy, error) {
	if err := CheckOrigins(patterns); err != nil {
		return nil, err
	}
	p := &Policy{}
	for _, h := range hosts {
		n, err := parseName(h)
		if err != nil {
			return nil, err
		}
		p.hosts = append(p.hosts, n)
	}
	for _, pat := range patterns {
		p.patterns = append(p.patterns, strings.ToLower(pat))
	}
	return p, nil
}

// CheckHosts checks extra Host names as New takes them.
func CheckHosts(hosts []string) error {
	for _, h := range hosts {
		if _, err := parseName(h); err != nil {
			return err
		}
	}
	return nil
}

// CheckOrigins checks that every origin pattern is a valid path.Match
// pattern.
func CheckOrigins(patterns []string) error {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("origin pattern %q: %w", p, err)
		}
	}
	return nil
}

func parseName(s string) (hostName, error) {
	n, ok := splitHostPort(s)
	bad := func(why string) (hostName, error) {
		return hostName{}, fmt.Errorf("host name %q: %s", s, why)
	}
	switch {
	case !ok:
		return bad(`want NAME or NAME:PORT ("tunnel.internal", "[fd00::1]:8080")`)
	case n.port != "" && !validPort(n.port):
		return bad("bad port")
	case strings.ContainsAny(n.host, "/\\@?#%*"):
		return bad("not a host name")
	}
	return n, nil
}

// splitHostPort splits a Host header or a name into its host (an IP
// address parsed, IPv6 in brackets) and its port, "" if none.
func splitHostPort(s string) (hostName, bool) {
	var n hostName
	if s == "" {
		return n, false
	}
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return n, false
		}
		host, rest := s[1:end], s[end+1:]
		if rest != "" {
			var found bool
			if n.port, found = strings.CutPrefix(rest, ":"); !found || n.port == "" {
				return n, false
			}
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return n, false // brackets are for IPv6 only
		}
		n.host, n.ip = host, ip.Unmap().WithZone("")
		return n, true
	}
	n.host = s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		n.host, n.port = s[:i], s[i+1:]
		if n.port == "" || strings.Contains(n.host, ":") {
			return n, false // an empty port, or IPv6 without brackets
		}
	}
	if n.host == "" || strings.ContainsFunc(n.host, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return n, false
	}
	if ip, err := netip.ParseAddr(n.host); err == nil {
		n.ip = ip.Unmap().WithZone("")
	}
	return n, true
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 1<<16 && p[0] != '0' && p[0] != '+'
}

var (
	loopback4 = netip.MustParseAddr("127.0.0.1")
	loopback6 = netip.IPv6Loopback()
)

// names are the Host names a front end answers to on one connection.
type names struct {
	tcp   bool       // reached over TCP: the connection's and loopback names count
	local netip.Addr // the connection's own address, if specified
	port  string     // the front end's port; "80" when it has none
	extra []hostName
}

// has reports whether the Host value hp (or an origin's host) is one of
// the names; a Host without a port means port 80, HTTP's default.
func (n *names) has(hp string) bool {
	h, ok := splitHostPort(hp)
	if !ok {
		return false
	}
	if h.port == "" {
		h.port = "80"
	} else if !validPort(h.port) {
		return false
	}
	if n.tcp && h.port == n.port {
		if h.ip.IsValid() && (h.ip == n.local || h.ip == loopback4 || h.ip == loopback6) {
			return true
		}
		if !h.ip.IsValid() && strings.EqualFold(h.host, "localhost") {
			return true
		}
	}
	for _, e := range n.extra {
		if cmpOr(e.port, n.port) == h.port && e.is(h) {
			return true
		}
	}
	return false
}

// names returns the Host names for a connection whose local address is
// local (nil when unknown, as for a handler called directly).
func (p *Policy) names(local net.Addr) names {
	n := names{port: "80", extra: p.hosts}
	// A UNIX socket has no port, and a handler called directly no
	// address: only the names given count, as they are given.
	if a, ok := local.(*net.TCPAddr); ok {
		n.tcp, n.port = true, strconv.Itoa(a.Port)
		if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsUnspecified() {
			n.local = ip.Unmap().WithZone("")
		}
	}
	return n
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Check returns nil if r may be served, else an error wrapping
// ErrMisdirected or ErrForeign that says why.
func (p *Policy) Check(r *http.Request) error {
	if p == nil {
		p = &Policy{}
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	own := p.names(local)
	if own.tcp && !own.has(r.Host) {
		return fmt.Errorf("%w: Host %q is not a name of this front end (see --http-host)", ErrMisdirected, r.Host)
	}
	origins := r.Header.Values("Origin")
	switch {
	case len(origins) > 1:
		return fmt.Errorf("%w: more than one Origin", ErrForeign)
	case len(origins) == 1:
		if p.ownOrigin(&own, origins[0]) || p.allowed(origins[0]) {
			return nil
		}
		return fmt.Errorf("%w: origin %q is not allowed (see --origin)", ErrForeign, origins[0])
	}
	switch site := strings.ToLower(r.Header.Get("Sec-Fetch-Site")); site {
	case "cross-site", "same-site":
		return fmt.Errorf("%w: a %s request without Origin", ErrForeign, site)
	}
	return nil
}

// parseOrigin parses a serialised origin: scheme "://" host [":" port],
// nothing else.
func parseOrigin(o string) (*url.URL, bool) {
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || u.Path != "" ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return nil, false
	}
	return u, true
}

// ownOrigin reports whether o is http://<one of the front end's names>.
func (p *Policy) ownOrigin(own *names, o string) bool {
	u, ok := parseOrigin(o)
	return ok && u.Scheme == "http" && own.has(u.Host)
}

// allowed reports whether a pattern allows origin o.
func (p *Policy) allowed(o string) bool {
	u, ok := parseOrigin(o)
	if !ok {
		return false
	}
	host := strings.ToLower(u.Host)
	for _, pat := range p.patterns {
		target := host
		if strings.Contains(pat, "://") {
			target = strings.ToLower(u.Scheme) + "://" + host
		}
		if ok, _ := path.Match(pat, target); ok {
			return true
		}
	}
	return false
}

// Status is the HTTP status and error code that answer err from Check.
func Status(err error) (int, string) {
	if errors.Is(err, ErrMisdirected) {
		return http.StatusMisdirectedRequest, handlers.CodeMisdirected
	}
	return http.StatusForbidden, handlers.CodeForbidden
}

// Handler returns h behind p: a request Check refuses is answered with
// its status and JSON error body, and never reaches h.
func (p *Policy) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := p.Check(r); err != nil {
			status, code := Status(err)
			handlers.WriteError(w, status, code, err.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}
