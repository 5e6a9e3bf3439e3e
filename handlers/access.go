package handlers

import (
	"context"
	"fmt"
	"slices"
)

// Access returns the Auth hook that combines access rules and an external
// auth service as restpipe's CLI does with --allow and --auth-url: the
// rules are asked first; if they allow the event, the service is asked;
// and if the service rewrote the event (X-Rewrite), the rules are asked
// again about the target it now calls, so that a rewrite never reaches a
// handler or route the rules do not allow the peer. (A rewritten path to
// a forward route is then checked like any other, see Forward.) Either
// may be nil or empty; with neither, Access returns nil: every event runs.
func (r *Registry) Access(rules *Rules, ext *ExternalAuth) AuthFunc {
	hasRules := rules != nil && rules.Len() > 0
	switch {
	case !hasRules && ext == nil:
		return nil
	case ext == nil:
		return rules.Auth
	}
	return func(ctx context.Context, req *Request) (Decision, error) {
		if hasRules {
			if d, err := rules.Auth(ctx, req); err != nil || !d.Allow {
				return d, err
			}
		}
		before := req.Target()
		noun, args, raw := slices.Clone(req.Noun), slices.Clone(req.Args), req.RawPath
		d, err := ext.Auth(ctx, req)
		if err != nil || !d.Allow {
			return d, err
		}
		if slices.Equal(noun, req.Noun) && slices.Equal(args, req.Args) && raw == req.RawPath {
			return d, nil
		}
		req.Name = r.handlerName(req.Method, req.Noun)
		r.setRoute(req)
		if hasRules && !rules.Allows(req.Peer, req.Target()) {
			return Deny(fmt.Sprintf("no access rule allows it (the auth service rewrote %s to it)", before)), nil
		}
		return d, nil
	}
}
