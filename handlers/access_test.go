package handlers

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestExternalAuthCacheKey(t *testing.T) {
	svc, calls := authService(t, func(w http.ResponseWriter, r *http.Request) {
		if who, ok := map[string]string{"Bearer alice": "alice", "Bearer bob": "bob"}[r.Header.Get("Authorization")]; ok {
			w.Header().Set(HeaderIdentity, who)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusForbidden)
	})
	ask := func(a *ExternalAuth, h http.Header) Decision {
		t.Helper()
		req := &Request{Peer: "c1", ID: "id-" + h.Get("X-Trace"), Method: "GET", Noun: []string{"x"}, Header: h}
		d, err := a.Auth(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, err := NewExternalAuth(svc.URL, time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []struct {
		h     http.Header
		allow bool
		who   string
		calls int32
	}{
		{http.Header{"Authorization": {"Bearer alice"}}, true, "alice", 1},
		{http.Header{"Authorization": {"Bearer alice"}, "X-Request-Id": {"other"}}, true, "alice", 1},
		{http.Header{}, false, "", 2},
		{http.Header{"Authorization": {"Bearer mallory"}}, false, "", 3},
		{http.Header{"Authorization": {"Bearer bob"}}, true, "bob", 4},
		{http.Header{"Authorization": {"Bearer alice", "Bearer bob"}}, true, "alice", 5}, // asked anew
		{http.Header{"Authorization": {"Bearer alice"}, "Cookie": {"s=1"}}, true, "alice", 6},
		{http.Header{"Authorization": {"Bearer alice"}}, true, "alice", 6},
	} {
		d := ask(a, s.h)
		if d.Allow != s.allow || d.Identity != s.who || calls.Load() != s.calls {
			t.Errorf("step %d: allow %v as %q after %d calls, want %v as %q after %d", i, d.Allow, d.Identity, calls.Load(), s.allow, s.who, s.calls)
		}
	}
	// The cache holds hashes, not credentials.
	a.mu.Lock()
	if len(a.cache) != 6 {
		t.Errorf("%d cached decisions, want 6", len(a.cache))
	}
	a.mu.Unlock()

	// CacheKey: only the named headers count.
	k, err := NewExternalAuth(svc.URL, time.Second, time.Minute, CacheKey("authorization", " Cookie"))
	if err != nil {
		t.Fatal(err)
	}
	calls.Store(0)
	for i := range 3 {
		if d := ask(k, http.Header{"Authorization": {"Bearer alice"}, "X-Trace": {strings.Repeat("x", i)}}); d.Identity != "alice" {
			t.Errorf("CacheKey: %+v", d)
		}
	}
	if d := ask(k, http.Header{"Authorization": {"Bearer bob"}}); d.Identity != "bob" {
		t.Errorf("CacheKey, Bob: %+v", d)
	}
	if calls.Load() != 2 {
		t.Errorf("CacheKey: %d calls, want 2", calls.Load())
	}

	for _, bad := range [][]string{{"Authorization Cookie"}, {",", " "}, {"X:y"}} {
		if _, err := NewExternalAuth(svc.URL, time.Second, time.Minute, CacheKey(bad...)); err == nil {
			t.Errorf("CacheKey(%q) accepted", bad)
		}
	}

	// The cache stays bounded.
	for i := range maxAuthCache + 10 {
		var key authKey
		key[0], key[1], key[2] = byte(i), byte(i>>8), byte(i>>16)
		a.store(key, authEntry{d: Allow()})
	}
	a.mu.Lock()
	if n := len(a.cache); n > maxAuthCache {
		t.Errorf("%d cached decisions, over %d", n, maxAuthCache)
	}
	a.mu.Unlock()
}

// TestAuthSeesWhatRuns: the auth service is told the path that runs: a
// handler's noun and arguments, whatever raw path a peer sent with them.
func TestAuthSeesWhatRuns(t *testing.T) {
	var uris []string
	svc, _ := authService(t, func(w http.ResponseWriter, r *http.Request) {
		uris = append(uris, r.Header.Get(HeaderOriginalURI))
		w.WriteHeader(http.StatusNoContent)
	})
	ext, err := NewExternalAuth(svc.URL, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry()
	r.MustHandle("get_admin_x", nopFunc)
	if err := r.Forward("files", "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	r.SetAuth(ext.Auth)
	for _, req := range []*Request{
		{Noun: []string{"admin", "x"}, Args: []string{"a b"}, RawPath: "/../public"},
		{Noun: []string{"files", "ignored"}, RawPath: "/p%20q/r", RawQuery: "v=1"},
	} {
		req.Peer, req.Method, req.Body = "evil", "GET", http.NoBody
		closeBody(dispatch(context.Background(), r, req))
	}
	if want := []string{"/admin/x//a%20b", "/files/p%20q/r?v=1"}; strings.Join(uris, " ") != strings.Join(want, " ") {
		t.Errorf("auth service saw %q, want %q", uris, want)
	}
}

// TestAccess: rules first, then the service, then the rules again about a
// rewritten target.
func TestAccess(t *testing.T) {
	svc, calls := authService(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get(HeaderOriginalURI) {
		case "/rewriteme":
			w.Header().Set(HeaderRewrite, "/files/secret")
		case "/alias":
			w.Header().Set(HeaderRewrite, "/time")
		case "/deny":
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ext, err := NewExternalAuth(svc.URL, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := ParseRules([]string{"c1=get_time,get_rewriteme,get_alias,get_deny,forward:echo"})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry()
	if r.Access(nil, nil) != nil || r.Access(&Rules{}, nil) != nil {
		t.Error("Access with neither is not nil")
	}
	if err := r.Forward("files", "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"time", "rewriteme", "alias", "deny", "other"} {
		r.MustHandle("get_"+n, func(_ context.Context, req *Request) (any, error) { return req.Name, nil })
	}
	r.SetAuth(r.Access(rules, ext))
	call := func(noun string) (int, string) {
		return statusBody(t, dispatch(context.Background(), r, &Request{Peer: "c1", Method: "GET", Noun: []string{noun}, Body: http.NoBody}))
	}
	for _, tc := range []struct {
		noun   string
		status int
		part   string
		calls  int32
	}{
		{"time", 200, "get_time", 1},
		{"other", 403, "no access rule", 1}, // the service is not asked
		{"rewriteme", 403, "forward:files", 2},
		{"alias", 200, "get_time", 3},
		{"deny", 403, "the auth service denied it", 4},
	} {
		if status, body := call(tc.noun); status != tc.status || !strings.Contains(body, tc.part) || calls.Load() != tc.calls {
			t.Errorf("%s: %d %s after %d calls, want %d %q after %d", tc.noun, status, body, calls.Load(), tc.status, tc.part, tc.calls)
		}
	}
	// Without rules, the service alone decides.
	r.SetAuth(r.Access(nil, ext))
	if status, body := call("rewriteme"); status != 502 {
		t.Errorf("no rules: %d %s, want the route's 502", status, body)
	}
}

// TestAuthErrorStaysInLog: what made Auth fail is logged with the request
// id and kept out of the reply.
func TestAuthErrorStaysInLog(t *testing.T) {
	var logBuf bytes.Buffer
	r := NewRegistry(WithLogger(slog.New(slog.NewTextHandler(&logBuf, nil))))
	r.MustHandle("get_x", nopFunc)
	r.SetAuth(func(context.Context, *Request) (Decision, error) {
		return Decision{}, errors.New(`Get "http://svc:S3cretPw@10.1.2.3/": refused`)
	})
	status, body := statusBody(t, dispatch(context.Background(), r, &Request{ID: "r-7", Peer: "c1", Method: "GET", Noun: []string{"x"}, Body: http.NoBody}))
	if status != 503 || strings.Contains(body, "S3cretPw") || strings.Contains(body, "10.1.2.3") || !strings.Contains(body, "r-7") {
		t.Errorf("%d %s", status, body)
	}
	if l := logBuf.String(); !strings.Contains(l, "req=r-7") || !strings.Contains(l, "10.1.2.3") {
		t.Errorf("log: %s", l)
	}

	// ExternalAuth itself names its URL without the password.
	a, err := NewExternalAuth("http://svc:S3cretPw@127.0.0.1:1/check", time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Auth(context.Background(), &Request{Peer: "c1", Method: "GET", Noun: []string{"x"}})
	if err == nil || strings.Contains(err.Error(), "S3cretPw") || !strings.Contains(err.Error(), "svc:xxxxx@127.0.0.1:1") {
		t.Errorf("error %v", err)
	}
	if s := a.String(); s != "http://svc:xxxxx@127.0.0.1:1/check" {
		t.Errorf("String %q", s)
	}
	if _, err := NewExternalAuth("http://svc:S3cretPw@[::1/", time.Second, 0); err == nil || strings.Contains(err.Error(), "S3cretPw") {
		t.Errorf("bad URL error %v", err)
	}
}
