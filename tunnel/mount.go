package tunnel

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/restpipe/restpipe/events"
)

// ServeMount serves, on ln, only the paths under prefix of the server's
// front end, at its root: a request for "/P" reaches the front end as
// prefix + "/P". prefix is a front-end path without arguments, such as
// "/client/c1/web" (a forward route on client c1); CheckMount tells
// which are. It serves until ctx ends, as ServeFrontend does, and closes
// ln.
//
// A mount gives a browser-facing app an origin of its own: its pages
// cannot reach /clients, other clients, channels or other routes, and
// what they send to the node's main front end comes from a foreign
// origin there (403), whereas pages served through the main front end
// are its own origin and can drive all of it. The front end's Host and
// Origin checks apply with the mount's listener's address.
func (s *Server) ServeMount(ctx context.Context, ln net.Listener, prefix string) error {
	h, err := mount(s.Frontend(), prefix)
	if err != nil {
		ln.Close()
		return err
	}
	return serveHTTP(ctx, ln, h, &s.cfg, nil) // no channel reaches a mount
}

// ServeMount serves the paths under prefix of the client's front end on
// ln, as Server.ServeMount does: prefix is a path such as "/server/app".
func (c *Client) ServeMount(ctx context.Context, ln net.Listener, prefix string) error {
	h, err := mount(c.Frontend(), prefix)
	if err != nil {
		ln.Close()
		return err
	}
	return serveHTTP(ctx, ln, h, &c.cfg, nil)
}

// CheckMount returns the error ServeMount would return for prefix: nil
// for a front-end path of the form /client/<name>/<noun...> or
// /server/<noun...>, without arguments, query or fragment (a trailing
// slash is dropped).
func CheckMount(prefix string) error {
	_, err := mountPrefix(prefix)
	return err
}

func mountPrefix(prefix string) (string, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	p, err := events.ParsePath(prefix)
	switch {
	case err != nil:
		return "", fmt.Errorf("mount %q: %w", prefix, err)
	case p.Target != events.TargetClient && p.Target != events.TargetServer,
		len(p.Args) > 0 || strings.Contains(prefix, "//"):
		return "", fmt.Errorf("mount %q: want /client/<name>/<noun> or /server/<noun>, without arguments", prefix)
	case strings.ContainsAny(prefix, "?#"):
		return "", fmt.Errorf("mount %q: a path only", prefix)
	case strings.HasSuffix(prefix, "/"):
		// A path on the mount would follow a double slash: its arguments.
		return "", fmt.Errorf("mount %q: want /client/<name>/<noun> or /server/<noun>, without arguments", prefix)
	case !utf8.ValidString(p.Peer) || slices.ContainsFunc(p.Noun, func(s string) bool { return !utf8.ValidString(s) }):
		// A prefix is text a user wrote: octets that are not UTF-8 are a mistake.
		return "", fmt.Errorf("mount %q: %w: not UTF-8", prefix, events.ErrBadPath)
	}
	return prefix, nil
}

// mount returns a handler that serves the paths under prefix of h, a
// node's front end, at its root.
func mount(h http.Handler, prefix string) (http.Handler, error) {
	prefix, err := mountPrefix(prefix)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := *r
		u := *r.URL
		u.RawPath = prefix + r.URL.EscapedPath()
		path, err := url.PathUnescape(u.RawPath)
		if err != nil {
			path = u.RawPath // not reached: EscapedPath is a valid escaping
		}
		u.Path = path
		r2.URL = &u
		h.ServeHTTP(w, &r2)
	}), nil
}
