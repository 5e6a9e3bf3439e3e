package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
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
	// HeaderTarget is what the event runs, as access rules name it
	// (Request.Target): "get_time_utc" whether the caller wrote /time/utc
	// or /time_utc, "forward:files", "subscribe:NAME". A service decides
	// by it; X-Original-URI is for logs and a route's paths.
	HeaderTarget = "X-Restpipe-Target"
	// HeaderOriginalUpgrade is the event's Upgrade ("websocket"), sent
	// only for an upgrade: an allowed GET is not an allowed WebSocket.
	HeaderOriginalUpgrade = "X-Original-Upgrade"
	// HeaderOriginalAuthorization carries the caller's Authorization when
	// the auth URL has user info: restpipe's own Basic credentials then
	// take the Authorization header.
	HeaderOriginalAuthorization = "X-Original-Authorization"
)

// ExternalAuth asks an HTTP service whether each event may run, as nginx's
// auth_request does. For every event it sends a GET to its URL with the
// event's headers (the forgeable ones already stripped, see
// stripForgeable) plus X-Original-URI, X-Original-Method, X-Restpipe-Peer,
// X-Restpipe-Target, X-Request-Id and, for an upgrade, X-Original-Upgrade,
// and reads the status:
//
//	204            allow (only 204: a 200 from a misconfigured service must not allow);
//	               X-Rewrite rewrites the noun path, X-Restpipe-Identity names the caller
//	403            deny (the body, if short, is the reason)
//	anything else  503 auth_unavailable, as is no answer within the timeout
//
// An auth URL with user info (http://svc:pw@host/check) makes restpipe
// authenticate itself: every request carries Authorization: Basic with
// those credentials, and the caller's Authorization, if any, goes as
// X-Original-Authorization (which no caller can forge: X-Original-* is
// stripped from events). Without user info the caller's Authorization
// goes as it is.
//
// With a TTL, allow and deny decisions are cached, each for the requests
// that would send the service the same thing: peer, method, URI, target,
// upgrade and every
// header but X-Request-Id (or only the headers CacheKey names). The key is
// a SHA-256 of them, so no credential is kept. At most maxAuthCache
// decisions are kept.
//
// A channel request (see AuthorizeChannel) is sent as X-Original-URI
// /channels/NAME and X-Original-Method SUBSCRIBE or PUBLISH, with no caller
// headers (the decision is about the node) and X-Restpipe-Channel, which
// an event never carries.
type ExternalAuth struct {
	url      string // without user info
	user     *url.Userinfo
	redacted string // the URL as given, for logs and errors: no password
	client   *http.Client
	ttl      time.Duration
	keyHdrs  []string // canonical names; nil: all but perRequest

	mu    sync.Mutex
	cache map[authKey]authEntry
	// onLookup, if set, is told of each cache lookup (OnCacheLookup).
	onLookup func(hit bool)
}

// authKey is the SHA-256 of what the auth service is sent (authKeyOf).
type authKey [sha256.Size]byte

type authEntry struct {
	d        Decision
	rewrite  string
	deadline time.Time
}

// maxAuthCache bounds the decision cache.
const maxAuthCache = 10000

// perRequest are headers restpipe sets anew for each request; they are
// left out of the cache key unless CacheKey names them.
var perRequest = map[string]bool{"X-Request-Id": true}

// AuthOption configures an ExternalAuth.
type AuthOption func(*ExternalAuth)

// CacheKey makes a cached decision depend on the named request headers
// alone (with peer, method and URI), instead of on all of them but
// X-Request-Id: for services that decide from, say, Authorization and
// Cookie only, while callers send headers that change with every request
// (Traceparent). Naming fewer headers than the service reads lets one
// caller's decision, and identity, go to another.
func CacheKey(headers ...string) AuthOption {
	return func(a *ExternalAuth) {
		a.keyHdrs = []string{}
		for _, h := range headers {
			if h = strings.TrimSpace(h); h != "" {
				a.keyHdrs = append(a.keyHdrs, textproto.CanonicalMIMEHeaderKey(h))
			}
		}
		sort.Strings(a.keyHdrs)
	}
}

// OnCacheLookup has f told of each lookup of the decision cache (with a
// TTL): hit is true when a cached decision answered, for a node's metrics.
func OnCacheLookup(f func(hit bool)) AuthOption {
	return func(a *ExternalAuth) { a.onLookup = f }
}

// NewExternalAuth returns an ExternalAuth that asks authURL, waits at most
// timeout for each answer, and caches decisions for ttl (0: no cache).
func NewExternalAuth(authURL string, timeout, ttl time.Duration, opts ...AuthOption) (*ExternalAuth, error) {
	u, err := url.Parse(authURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not the URL itself: it may hold a password.
		return nil, errors.New("auth URL: want an http:// or https:// URL")
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("auth timeout %v: must be positive", timeout)
	}
	redacted := u.Redacted()
	user := u.User
	u.User = nil
	a := &ExternalAuth{
		url:      u.String(),
		user:     user,
		redacted: redacted,
		ttl:      ttl,
		client: &http.Client{
			Timeout:   timeout,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
			// A redirect is an answer other than 204: no following.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		cache: map[authKey]authEntry{},
	}
	for _, o := range opts {
		o(a)
	}
	if a.keyHdrs != nil && len(a.keyHdrs) == 0 {
		return nil, errors.New("auth cache key: no header named")
	}
	for _, h := range a.keyHdrs {
		if !isToken(h) {
			return nil, fmt.Errorf("auth cache key: %q is not a header name", h)
		}
	}
	return a, nil
}

// String is the service's URL with any password replaced by "xxxxx".
func (a *ExternalAuth) String() string { return a.redacted }

// Auth is the external service as an Auth hook.
func (a *ExternalAuth) Auth(ctx context.Context, req *Request) (Decision, error) {
	uri := originalURI(req)
	var key authKey
	if a.ttl > 0 {
		key = a.keyOf(req, uri)
		e, ok := a.cached(key)
		if a.onLookup != nil {
			a.onLookup(ok)
		}
		if ok {
			return e.d, applyRewrite(req, e.rewrite)
		}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	if err != nil {
		return Decision{}, fmt.Errorf("auth service %s: %w", a.redacted, redactErr(err))
	}
	for k, vs := range req.Header {
		hreq.Header[k] = vs
	}
	if a.user != nil {
		// net/http would send the URL's credentials only in place of a
		// missing Authorization: an anonymous caller would arrive as
		// restpipe, and a caller's token would hide restpipe.
		if vs := hreq.Header.Values("Authorization"); len(vs) > 0 {
			hreq.Header[HeaderOriginalAuthorization] = vs
		}
		hreq.Header.Del("Authorization")
		pw, _ := a.user.Password()
		hreq.SetBasicAuth(a.user.Username(), pw)
	}
	hreq.Header.Set(HeaderOriginalURI, uri)
	hreq.Header.Set(HeaderOriginalMethod, req.Method)
	hreq.Header.Set(HeaderPeer, req.Peer)
	hreq.Header.Set(HeaderTarget, req.Target())
	if req.Upgrade != "" {
		hreq.Header.Set(HeaderOriginalUpgrade, req.Upgrade)
	}
	hreq.Header.Set("X-Request-Id", req.ID)
	setChannelHeader(hreq.Header, req)
	resp, err := a.client.Do(hreq)
	if err != nil {
		return Decision{}, fmt.Errorf("auth service %s: %w", a.redacted, redactErr(err))
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
		e.d = Deny("the auth service denied it")
		if reason != "" {
			e.d = Deny("the auth service denied it: " + reason)
		}
	default:
		return Decision{}, fmt.Errorf("auth service %s answered %d; only 204 allows and 403 denies", a.redacted, resp.StatusCode)
	}
	if err := applyRewrite(req, e.rewrite); err != nil {
		return Decision{}, err
	}
	if a.ttl > 0 {
		a.store(key, e)
	}
	return e.d, nil
}

// keyOf hashes what the auth service would be sent for req, but the
// per-request headers (or only the CacheKey headers): the decision it
// gave is valid for exactly the requests with the same key. Every field
// is length-prefixed, so no two different requests share an encoding.
func (a *ExternalAuth) keyOf(req *Request, uri string) authKey {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(req.Peer)
	put(req.Method)
	put(uri)
	put(req.Target()) // /time/utc and /time_utc: one target, but it is sent
	put(req.Upgrade)
	put(req.Channel) // a channel request never shares an event's entry
	names := a.keyHdrs
	if names == nil {
		for k := range req.Header {
			if !perRequest[textproto.CanonicalMIMEHeaderKey(k)] {
				names = append(names, k)
			}
		}
		sort.Strings(names)
	}
	for _, k := range names {
		from := k
		if a.user != nil && textproto.CanonicalMIMEHeaderKey(k) == HeaderOriginalAuthorization {
			from = "Authorization" // what the service gets under that name
		}
		vs := req.Header.Values(from)
		if vs == nil {
			vs = req.Header[from] // a non-canonical name from a hook
		}
		put(textproto.CanonicalMIMEHeaderKey(k))
		binary.BigEndian.PutUint64(n[:], uint64(len(vs)))
		h.Write(n[:])
		for _, v := range vs {
			put(v)
		}
	}
	var k authKey
	h.Sum(k[:0])
	return k
}

// redactErr replaces an error that names a URL (net/http's *url.Error)
// with one that names it without its password.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: RedactURL(ue.URL), Err: ue.Err}
	}
	return err
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

// originalURI is the event's path in noun space, with its query: for a
// forward route the raw path it forwards, for a handler the noun and
// arguments it runs with (not RawPath, which a peer writes as it likes
// and a Pre hook may have left behind).
func originalURI(req *Request) string {
	if req.Channel != "" {
		return channelURI(req.Channel)
	}
	var b strings.Builder
	if len(req.Noun) > 0 {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(req.Noun[0]))
	}
	if req.Route != "" {
		// Even when empty: the route then forwards the target's root,
		// whatever more the noun says (a hostile peer writes both). The
		// path in the form the route sends its service (forwardPath), so
		// that /files/%73ecret is asked about as /files/secret; a path
		// the route refuses is asked about as it came.
		raw := req.RawPath
		if p, err := forwardPath(raw); err == nil {
			raw = p
		}
		b.WriteString(raw)
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
