package handlers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/restpipe/restpipe/events"
)

// Headers of the external auth exchange.
const (
	// HeaderOriginalURI is the event's path on the receiving node, in
	// noun space: "/time", "/cat//a/b?q=1", "/files/x" for a forward route.
	HeaderOriginalURI = "X-Original-URI"
	// HeaderOriginalMethod is the event's HTTP method.
	HeaderOriginalMethod = "X-Original-Method"
	// HeaderPeer is the calling node's certificate name.
	HeaderPeer = "X-Restpipe-Peer"
	// HeaderRewrite, in a 204, replaces the event's noun path ("/other/noun",
	// "/cat//x/y" to replace the arguments too).
	HeaderRewrite = "X-Rewrite"
	// HeaderIdentity, in a 204, names who the caller is taken to be.
	HeaderIdentity = "X-Restpipe-Identity"
)

// ExternalAuth asks an HTTP service whether each event may run, as nginx's
// auth_request does. For every event it sends a GET to its URL with the
// event's headers plus X-Original-URI, X-Original-Method, X-Restpipe-Peer
// and X-Request-Id, and reads the status:
//
//	204            allow (only 204: a 200 from a misconfigured service must not allow);
//	               X-Rewrite rewrites the noun path, X-Restpipe-Identity names the caller
//	403            deny (the body, if short, is the reason)
//	anything else  503 auth_unavailable, as is no answer within the timeout
//
// Allow and deny decisions are cached per (peer, method, URI) for the TTL.
//
// A channel request (see AuthorizeChannel) is sent as X-Original-URI
// /channels/NAME and X-Original-Method SUBSCRIBE or PUBLISH, with no caller
// headers (the decision is about the node) and X-Restpipe-Channel, which
// an event never carries.
type ExternalAuth struct {
	url    string
	client *http.Client
	ttl    time.Duration

	mu    sync.Mutex
	cache map[authKey]authEntry
}

type authKey struct{ peer, method, uri string }

type authEntry struct {
	d        Decision
	rewrite  string
	deadline time.Time
}

// maxAuthCache bounds the decision cache.
const maxAuthCache = 10000

// NewExternalAuth returns an ExternalAuth that asks authURL, waits at most
// timeout for each answer, and caches decisions for ttl (0: no cache).
func NewExternalAuth(authURL string, timeout, ttl time.Duration) (*ExternalAuth, error) {
	u, err := url.Parse(authURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("auth URL %q: want an http:// or https:// URL", authURL)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("auth timeout %v: must be positive", timeout)
	}
	return &ExternalAuth{
		url: authURL,
		ttl: ttl,
		client: &http.Client{
			Timeout:   timeout,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
			// A redirect is an answer other than 204: no following.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		cache: map[authKey]authEntry{},
	}, nil
}

// Auth is the external service as an Auth hook.
func (a *ExternalAuth) Auth(ctx context.Context, req *Request) (Decision, error) {
	key := authKey{req.Peer, req.Method, originalURI(req)}
	if e, ok := a.cached(key); ok {
		return e.d, applyRewrite(req, e.rewrite)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	if err != nil {
		return Decision{}, err
	}
	for k, vs := range req.Header {
		hreq.Header[k] = vs
	}
	hreq.Header.Set(HeaderOriginalURI, key.uri)
	hreq.Header.Set(HeaderOriginalMethod, req.Method)
	hreq.Header.Set(HeaderPeer, req.Peer)
	hreq.Header.Set("X-Request-Id", req.ID)
	setChannelHeader(hreq.Header, req)
	resp, err := a.client.Do(hreq)
	if err != nil {
		return Decision{}, fmt.Errorf("auth service: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	var e authEntry
	switch resp.StatusCode {
	case http.StatusNoContent:
		e.d = Decision{Allow: true, Identity: resp.Header.Get(HeaderIdentity)}
		e.rewrite = resp.Header.Get(HeaderRewrite)
	case http.StatusForbidden:
		reason := strings.TrimSpace(string(body))
		if len(reason) > 200 || strings.ContainsAny(reason, "\r\n") {
			reason = ""
		}
		e.d = Deny(strings.TrimSpace("the auth service denied it " + reason))
	default:
		return Decision{}, fmt.Errorf("auth service answered %d; only 204 allows and 403 denies", resp.StatusCode)
	}
	if err := applyRewrite(req, e.rewrite); err != nil {
		return Decision{}, err
	}
	a.store(key, e)
	return e.d, nil
}

func (a *ExternalAuth) cached(k authKey) (authEntry, bool) {
	if a.ttl <= 0 {
		return authEntry{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.cache[k]
	if !ok || time.Now().After(e.deadline) {
		return authEntry{}, false
	}
	return e, true
}

func (a *ExternalAuth) store(k authKey, e authEntry) {
	if a.ttl <= 0 {
		return
	}
	now := time.Now()
	e.deadline = now.Add(a.ttl)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= maxAuthCache {
		for k, old := range a.cache {
			if now.After(old.deadline) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= maxAuthCache {
			clear(a.cache)
		}
	}
	a.cache[k] = e
}

// originalURI is the event's path in noun space, with its query.
func originalURI(req *Request) string {
	if req.Channel != "" {
		return channelURI(req.Channel)
	}
	var b strings.Builder
	if len(req.Noun) > 0 {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(req.Noun[0]))
	}
	if req.RawPath != "" {
		b.WriteString(req.RawPath)
	} else {
		for _, n := range req.Noun[min(1, len(req.Noun)):] {
			b.WriteByte('/')
			b.WriteString(url.PathEscape(n))
		}
		if len(req.Args) > 0 {
			b.WriteByte('/')
			for _, a := range req.Args {
				b.WriteByte('/')
				b.WriteString(url.PathEscape(a))
			}
		}
	}
	if req.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(req.RawQuery)
	}
	return b.String()
}

// applyRewrite replaces req's noun path with rewrite ("/noun/more",
// "/noun//arg"); arguments are kept unless the rewrite has its own.
func applyRewrite(req *Request, rewrite string) error {
	if rewrite == "" {
		return nil
	}
	p, err := events.ParsePath("/server" + rewrite)
	if err != nil || !strings.HasPrefix(rewrite, "/") {
		return fmt.Errorf("auth service: bad %s %q", HeaderRewrite, rewrite)
	}
	req.Noun = p.Noun
	if strings.Contains(rewrite, "//") {
		req.Args = p.Args
	}
	req.RawPath = p.Rest
	return nil
}
