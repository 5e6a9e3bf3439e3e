package handlers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
)

// The middleware chain runs around every event on the receiving node, in
// this order:
//
//	Pre hooks       (in registration order) may rewrite the event (Noun,
//	                Args, Header, ...) or answer it themselves
//	Auth            (one) decides: allow, or deny with a status
//	PostAuth hooks  see the decision and the identity it settled on
//	the handler     or the forward route
//	Post hooks      (in registration order) see and may replace the reply
//
// Post hooks see every reply the chain produced, refusals included.

// PreFunc runs before anything else. It may change req; a non-nil Reply
// answers the event without a handler (Post hooks still run). An error is
// a 500 handler_error.
type PreFunc func(ctx context.Context, req *Request) (*Reply, error)

// AuthFunc decides whether req may run. An error means it could not
// decide: the event is answered 503 auth_unavailable.
type AuthFunc func(ctx context.Context, req *Request) (Decision, error)

// PostAuthFunc sees what Auth decided for an allowed event. A non-nil
// Reply answers the event without a handler.
type PostAuthFunc func(ctx context.Context, req *Request, d Decision) (*Reply, error)

// PostFunc sees the reply and returns the one to send (rep itself, or a
// new one).
type PostFunc func(ctx context.Context, req *Request, rep *Reply) (*Reply, error)

// Decision is an Auth hook's answer.
type Decision struct {
	// Allow lets the event run.
	Allow bool
	// Status, Code and Reason answer a denied event; the defaults are 403,
	// "forbidden" and a sentence naming the target and the peer.
	Status int
	Code   string
	Reason string
	// Identity is who the caller is taken to be, for PostAuth hooks and
	// handlers (Request.Identity); default the peer's certificate name.
	Identity string
}

// Allow is the Decision that lets an event run.
func Allow() Decision { return Decision{Allow: true} }

// Deny is the Decision that refuses an event with 403 forbidden.
func Deny(reason string) Decision { return Decision{Reason: reason} }

// CodeForbidden and CodeAuthUnavailable are the codes of the two ways Auth
// stops an event.
const (
	CodeForbidden       = "forbidden"
	CodeAuthUnavailable = "auth_unavailable"
)

// Pre adds a Pre hook.
func (r *Registry) Pre(f PreFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pre = append(r.pre[:len(r.pre):len(r.pre)], f)
}

// SetAuth sets the Auth hook, replacing the one before (the built-in rule
// engine is one; nil removes it, letting every event run). It takes effect
// for the next event: connections stay up.
func (r *Registry) SetAuth(f AuthFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.auth = f
}

// PostAuth adds a PostAuth hook.
func (r *Registry) PostAuth(f PostAuthFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.postAuth = append(r.postAuth[:len(r.postAuth):len(r.postAuth)], f)
}

// Post adds a Post hook.
func (r *Registry) Post(f PostFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.post = append(r.post[:len(r.post):len(r.post)], f)
}

// chain is a snapshot of the hooks, taken once per event.
type chain struct {
	pre      []PreFunc
	auth     AuthFunc
	postAuth []PostAuthFunc
	post     []PostFunc
}

func (r *Registry) chain() chain {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return chain{pre: r.pre, auth: r.auth, postAuth: r.postAuth, post: r.post}
}

// Target is what an event calls, as access rules name it: the handler
// name ("get_time"), or "forward:" and the route for a forward route; for
// a channel request, "subscribe:" or "publish:" and the channel.
func (req *Request) Target() string {
	if req.Channel != "" {
		return channelTarget(req)
	}
	if req.Route != "" {
		return "forward:" + req.Route
	}
	return req.Name
}

// before runs Pre, Auth and PostAuth. A non-nil reply ends the event.
func (r *Registry) before(ctx context.Context, c chain, req *Request) *Reply {
	noun := slices.Clone(req.Noun)
	for _, f := range c.pre {
		rep, err := r.safeHook(req, "pre", func() (*Reply, error) { return f(ctx, req) })
		if err != nil {
			return ErrorReply(http.StatusInternalServerError, CodeHandlerError, "pre hook: "+err.Error())
		}
		if rep != nil {
			return rep
		}
	}
	r.resolve(req, noun) // a Pre hook may have changed the noun
	noun = slices.Clone(req.Noun)
	d := Allow()
	if c.auth != nil {
		var err error
		if _, perr := r.safeHook(req, "auth", func() (*Reply, error) {
			d, err = c.auth(ctx, req)
			return nil, nil
		}); perr != nil {
			err = perr // the hook panicked
		}
		if err != nil {
			// The error may name the auth service, its address or what it
			// said: that stays in this node's log.
			r.log.Warn("auth: could not decide", "req", req.ID, "peer", req.Peer, "target", req.Target(), "err", err)
			return ErrorReply(http.StatusServiceUnavailable, CodeAuthUnavailable,
				fmt.Sprintf("cannot decide whether %q may call %s: the auth service could not decide (request %s)",
					req.Peer, req.Target(), req.ID))
		}
		r.resolve(req, noun) // Auth may have rewritten the noun
		if !d.Allow {
			return denyReply(req, d)
		}
		req.vouched = d.Identity
	}
	if d.Identity == "" {
		d.Identity = req.Peer
	}
	req.Identity = d.Identity
	for _, f := range c.postAuth {
		rep, err := r.safeHook(req, "post-auth", func() (*Reply, error) { return f(ctx, req, d) })
		if err != nil {
			return ErrorReply(http.StatusInternalServerError, CodeHandlerError, "post-auth hook: "+err.Error())
		}
		if rep != nil {
			return rep
		}
	}
	return nil
}

// after runs the Post hooks on rep.
func (r *Registry) after(ctx context.Context, c chain, req *Request, rep *Reply) *Reply {
	for _, f := range c.post {
		next, err := r.safeHook(req, "post", func() (*Reply, error) { return f(ctx, req, rep) })
		if err != nil {
			closeBody(rep)
			return ErrorReply(http.StatusInternalServerError, CodeHandlerError, "post hook: "+err.Error())
		}
		if next != nil {
			rep = next
		}
	}
	return rep
}

func denyReply(req *Request, d Decision) *Reply {
	status, code, reason := d.Status, d.Code, d.Reason
	if status == 0 {
		status = http.StatusForbidden
	}
	if code == "" {
		code = CodeForbidden
	}
	msg := fmt.Sprintf("peer %q may not call %s", req.Peer, req.Target())
	if reason != "" {
		msg += ": " + reason
	}
	return ErrorReply(status, code, msg)
}

// safeHook runs a hook, turning a panic into an error.
func (r *Registry) safeHook(req *Request, kind string, f func() (*Reply, error)) (rep *Reply, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("hook panicked", "hook", kind, "req", req.ID, "peer", req.Peer, "panic", fmt.Sprint(p))
			rep, err = nil, fmt.Errorf("%s hook panicked: %v", kind, p)
		}
	}()
	return f()
}
