package tunnel

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/restpipe/restpipe/events"
)

// Mount returns a front end that serves only the paths under prefix of
// h (a node's front end), at its root: a request for "/P" reaches h as
// prefix + "/P". prefix is a front-end path without arguments, such as
// "/client/c1/web" (a forward route on client c1) or "/server/app".
//
// Served on a listener of its own with ServeFrontend, it gives a
// browser-facing app an origin of its own: its pages cannot reach
// /clients, other clients, channels or other routes, and what they send
// to the node's main front end comes from a foreign origin there (403),
// whereas pages served through the main front end are its own origin and
// can drive all of it. h's Host and Origin checks apply with the mount's
// listener's address.
func Mount(h http.Handler, prefix string) (http.Handler, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	p, err := events.ParsePath(prefix)
	switch {
	case err != nil:
		return nil, fmt.Errorf("mount %q: %w", prefix, err)
	case p.Target != events.TargetClient && p.Target != events.TargetServer,
		len(p.Args) > 0 || strings.Contains(prefix, "//"):
		return nil, fmt.Errorf("mount %q: want /client/<name>/<noun> or /server/<noun>, without arguments", prefix)
	case strings.ContainsAny(prefix, "?#"):
		return nil, fmt.Errorf("mount %q: a path only", prefix)
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
