package events

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Target says which node a front-end path addresses.
type Target int

const (
	// TargetServer is "/server/<noun...>" on a client node's front end.
	TargetServer Target = iota + 1
	// TargetClient is "/client/<name>/<noun...>" on the server's front end.
	TargetClient
	// TargetClients is "/clients": the list of connected clients.
	TargetClients
)

// ErrBadPath reports a front-end path that matches none of the forms.
var ErrBadPath = errors.New("bad path")

// Path is a parsed front-end path.
type Path struct {
	Target Target
	// Peer is the client name of a TargetClient path.
	Peer string
	// Noun holds the noun segments, unescaped: "/server/time/utc" has
	// ["time", "utc"].
	Noun []string
	// Args holds the arguments after the double slash, one per segment,
	// unescaped: "/server/cat//a%20b/c" has ["a b", "c"].
	Args []string
	// Rest is the escaped path after the first noun segment, arguments
	// included ("/a//b" for "/server/files/a//b"): what a forward route
	// passes on.
	Rest string
}

// ParsePath parses the escaped path of a front-end request
// (r.URL.EscapedPath()). It splits on "//" and "/" before unescaping, so
// that "%2F" stays inside its segment. A noun segment may not be empty
// (but for one trailing slash) nor hold "/"; arguments may.
func ParsePath(escaped string) (Path, error) {
	if escaped == "/clients" || escaped == "/clients/" {
		return Path{Target: TargetClients}, nil
	}
	var p Path
	var rest string
	switch {
	case strings.HasPrefix(escaped, "/server/"):
		p.Target = TargetServer
		rest = escaped[len("/server/"):]
	case strings.HasPrefix(escaped, "/client/"):
		p.Target = TargetClient
		rest = escaped[len("/client/"):]
		name, after, ok := strings.Cut(rest, "/")
		if !ok {
			return Path{}, fmt.Errorf("%w: %q has no noun after the client name", ErrBadPath, escaped)
		}
		peer, err := unescapeSegment(name, "client name")
		if err != nil {
			return Path{}, fmt.Errorf("%w: %q: %v", ErrBadPath, escaped, err)
		}
		p.Peer = peer
		rest = after
	default:
		return Path{}, fmt.Errorf("%w: %q is neither /server/<noun> nor /client/<name>/<noun>", ErrBadPath, escaped)
	}

	nounPart, argPart, hasArgs := strings.Cut(rest, "//")
	segs := strings.Split(nounPart, "/")
	if len(segs) > 1 && segs[len(segs)-1] == "" && !hasArgs {
		segs = segs[:len(segs)-1] // one trailing slash
	}
	if nounPart == "" {
		return Path{}, fmt.Errorf("%w: %q has no noun", ErrBadPath, escaped)
	}
	p.Noun = make([]string, 0, len(segs))
	for _, s := range segs {
		n, err := unescapeSegment(s, "noun segment")
		if err != nil {
			return Path{}, fmt.Errorf("%w: %q: %v", ErrBadPath, escaped, err)
		}
		p.Noun = append(p.Noun, n)
	}
	if hasArgs {
		for _, s := range strings.Split(argPart, "/") {
			a, err := url.PathUnescape(s)
			if err != nil {
				return Path{}, fmt.Errorf("%w: %q: argument %q: %v", ErrBadPath, escaped, s, err)
			}
			p.Args = append(p.Args, a)
		}
	}
	// Rest starts after the first noun segment, in the escaped form.
	p.Rest = rest[len(segs[0]):]
	return p, nil
}

func unescapeSegment(s, what string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty %s", what)
	}
	u, err := url.PathUnescape(s)
	if err != nil {
		return "", fmt.Errorf("%s %q: %v", what, s, err)
	}
	if u == "" || strings.Contains(u, "/") {
		return "", fmt.Errorf("%s %q may not hold '/'", what, s)
	}
	return u, nil
}
