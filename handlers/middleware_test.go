package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// statusBody reads a reply whole.
func statusBody(t *testing.T, rep *Reply) (int, string) {
	t.Helper()
	return rep.Status, string(readReply(t, rep))
}

func TestMiddlewareOrder(t *testing.T) {
	r := NewRegistry()
	var trace []string
	note := func(s string) { trace = append(trace, s) }
	r.MustHandle("get_real", func(_ context.Context, req *Request) (any, error) {
		note("handler " + req.Name + " as " + req.Identity)
		return "real", nil
	})
	r.Pre(func(_ context.Context, req *Request) (*Reply, error) {
		note("pre1 " + req.Name)
		if req.Noun[0] == "alias" {
			req.Noun = []string{"real"} // rewrite
		}
		return nil, nil
	})
	r.Pre(func(_ context.Context, req *Request) (*Reply, error) { note("pre2 " + req.Name); return nil, nil })
	r.SetAuth(func(_ context.Context, req *Request) (Decision, error) {
		note("auth " + req.Target())
		return Decision{Allow: true, Identity: "role:" + req.Peer}, nil
	})
	r.PostAuth(func(_ context.Context, req *Request, d Decision) (*Reply, error) {
		note("postauth " + d.Identity)
		return nil, nil
	})
	r.Post(func(_ context.Context, req *Request, rep *Reply) (*Reply, error) {
		note("post1")
		rep.Header = http.Header{"X-Post": {"1"}}
		return rep, nil
	})
	r.Post(func(_ context.Context, req *Request, rep *Reply) (*Reply, error) {
		note("post2 " + rep.Header.Get("X-Post"))
		return nil, nil // nil keeps the reply
	})
	rep := dispatch(context.Background(), r, &Request{Peer: "c1", Method: "GET", Noun: []string{"alias"}, Body: http.NoBody})
	if status, body := statusBody(t, rep); status != 200 || body != "\"real\"\n" {
		t.Fatalf("reply %d %q", status, body)
	}
	want := "pre1 get_alias|pre2 get_alias|auth get_real|postauth role:c1|handler get_real as role:c1|post1|post2 1"
	if got := strings.Join(trace, "|"); got != want {
		t.Errorf("order:\n got %s\nwant %s", got, want)
	}
}

func TestMiddlewareStops(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(r *Registry)
		status int
		code   string
	}{
		{"pre answers", func(r *Registry) {
			r.Pre(func(context.Context, *Request) (*Reply, error) { return ErrorReply(429, "slow_down", "too many"), nil })
		}, 429, "slow_down"},
		{"pre fails", func(r *Registry) {
			r.Pre(func(context.Context, *Request) (*Reply, error) { return nil, errors.New("no") })
		}, 500, CodeHandlerError},
		{"pre panics", func(r *Registry) {
			r.Pre(func(context.Context, *Request) (*Reply, error) { panic("pre bug") })
		}, 500, CodeHandlerError},
		{"auth denies", func(r *Registry) {
			r.SetAuth(func(context.Context, *Request) (Decision, error) { return Deny("nope"), nil })
		}, 403, CodeForbidden},
		{"auth denies with status", func(r *Registry) {
			r.SetAuth(func(context.Context, *Request) (Decision, error) {
				return Decision{Status: 401, Code: "unauthorized"}, nil
			})
		}, 401, "unauthorized"},
		{"auth cannot decide", func(r *Registry) {
			r.SetAuth(func(context.Context, *Request) (Decision, error) { return Decision{}, errors.New("down") })
		}, 503, CodeAuthUnavailable},
		{"auth panics", func(r *Registry) {
			r.SetAuth(func(context.Context, *Request) (Decision, error) { panic("auth bug") })
		}, 503, CodeAuthUnavailable},
		{"postauth answers", func(r *Registry) {
			r.PostAuth(func(context.Context, *Request, Decision) (*Reply, error) {
				return ErrorReply(402, "pay", "pay first"), nil
			})
		}, 402, "pay"},
		{"post fails", func(r *Registry) {
			r.Post(func(context.Context, *Request, *Reply) (*Reply, error) { return nil, errors.New("bad") })
		}, 500, CodeHandlerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			ran := false
			r.MustHandle("get_x", func(context.Context, *Request) (any, error) { ran = true; return "x", nil })
			tc.setup(r)
			var posted atomic.Bool
			r.Post(func(_ context.Context, _ *Request, rep *Reply) (*Reply, error) { posted.Store(true); return rep, nil })
			rep := dispatch(context.Background(), r, &Request{Peer: "c1", Method: "GET", Noun: []string{"x"}, Body: http.NoBody})
			status, body := statusBody(t, rep)
			var eb ErrorBody
			_ = json.Unmarshal([]byte(body), &eb)
			if status != tc.status || eb.Code != tc.code {
				t.Errorf("reply %d %s, want %d %s", status, body, tc.status, tc.code)
			}
			if ran && tc.name != "post fails" {
				t.Error("the handler ran")
			}
			if tc.name != "post fails" && !posted.Load() {
				t.Error("Post hooks did not see the refusal")
			}
			if tc.status == 403 && !strings.Contains(eb.Error, `"c1"`) || tc.status == 403 && !strings.Contains(eb.Error, "get_x") {
				t.Errorf("403 message %q should name the peer and the handler", eb.Error)
			}
		})
	}
}

func TestRules(t *testing.T) {
	rs, err := ParseRules([]string{"c1=get_time,get_cat", "ops-*=*", "web=forward:files", "any?=get_s*"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peer, target string
		allow        bool
	}{
		{"c1", "get_time", true},
		{"c1", "get_cat", true},
		{"c1", "post_echo", false},
		{"c1", "forward:files", false},
		{"c2", "get_time", false},
		{"ops-1", "post_anything", true},
		{"ops-1", "forward:files", true},
		{"ops", "get_time", false},
		{"web", "forward:files", true},
		{"web", "forward:other", false},
		{"web", "get_time", false},
		{"anyx", "get_stream", true},
		{"anyxy", "get_stream", false},
	} {
		if got := rs.Allows(tc.peer, tc.target); got != tc.allow {
			t.Errorf("%s -> %s: allowed %v, want %v", tc.peer, tc.target, got, tc.allow)
		}
	}
	none, _ := ParseRules(nil)
	if !none.Allows("anyone", "get_anything") {
		t.Error("no rules must allow everything")
	}
	for _, bad := range []string{"", "c1", "=get_time", "c1=", "c1= , ", "[=x", "c1=[x"} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) accepted", bad)
		}
	}
	// Through Serve: a forward route's target is forward:NAME.
	r := NewRegistry()
	if err := r.Forward("files", "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	r.SetAuth(rs.Auth)
	rep := dispatch(context.Background(), r, &Request{Peer: "c1", Method: "GET", Noun: []string{"files", "x"}, Body: http.NoBody})
	if status, body := statusBody(t, rep); status != 403 || !strings.Contains(body, "forward:files") {
		t.Errorf("c1 -> forward:files: %d %s", status, body)
	}
}

// authService is a test external auth service; answer decides each reply.
func authService(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		answer(w, r)
	}))
	t.Cleanup(s.Close)
	return s, &calls
}

func TestExternalAuth(t *testing.T) {
	// seen is written by the auth service's handlers, which may still run
	// (the slow one) when the next request comes: no order between them.
	var seen atomic.Pointer[http.Header]
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	svc, calls := authService(t, func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		seen.Store(&h)
		switch r.Header.Get(HeaderOriginalURI) {
		case "/secret":
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "not you")
		case "/misconfigured":
			w.WriteHeader(http.StatusOK) // a 200 must not allow
		case "/old//a":
			w.Header().Set(HeaderRewrite, "/new")
			w.Header().Set(HeaderIdentity, "svc-account")
			w.WriteHeader(http.StatusNoContent)
		case "/slow":
			select {
			case <-block:
			case <-r.Context().Done(): // the caller gave up
			}
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	a, err := NewExternalAuth(svc.URL, 200*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry()
	r.SetAuth(a.Auth)
	for _, n := range []string{"open", "secret", "misconfigured", "slow"} {
		r.MustHandle("get_"+n, func(context.Context, *Request) (any, error) { return "ran", nil })
	}
	var who string
	r.MustHandle("get_new", func(_ context.Context, req *Request) (any, error) {
		who = req.Identity
		return map[string]any{"args": req.Args}, nil
	})
	call := func(noun string, args ...string) (int, string) {
		req := &Request{Peer: "c1", ID: "req-9", Method: "GET", Noun: []string{noun}, Args: args,
			Header: http.Header{"Authorization": {"Bearer t"}}, Body: http.NoBody}
		return statusBody(t, dispatch(context.Background(), r, req))
	}
	if status, body := call("open"); status != 200 || body != "\"ran\"\n" {
		t.Errorf("204: %d %s", status, body)
	}
	for k, v := range map[string]string{HeaderOriginalURI: "/open", HeaderOriginalMethod: "GET", HeaderPeer: "c1",
		"X-Request-Id": "req-9", "Authorization": "Bearer t"} {
		if got := seen.Load().Get(k); got != v {
			t.Errorf("auth service saw %s %q, want %q", k, got, v)
		}
	}
	if status, body := call("secret"); status != 403 || !strings.Contains(body, "not you") || !strings.Contains(body, "forbidden") {
		t.Errorf("403: %d %s", status, body)
	}
	if status, body := call("misconfigured"); status != 503 || !strings.Contains(body, "auth_unavailable") {
		t.Errorf("200 must not allow: %d %s", status, body)
	}
	if status, body := call("slow"); status != 503 || !strings.Contains(body, "auth_unavailable") {
		t.Errorf("timeout: %d %s", status, body)
	}
	if status, body := call("old", "a"); status != 200 || body != `{"args":["a"]}`+"\n" || who != "svc-account" {
		t.Errorf("rewrite: %d %s as %q", status, body, who)
	}

	// With a TTL, a decision is asked once per (peer, method, URI).
	cached, err := NewExternalAuth(svc.URL, time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r.SetAuth(cached.Auth)
	before := calls.Load()
	for range 5 {
		call("open")
		call("secret")
	}
	if n := calls.Load() - before; n != 2 {
		t.Errorf("auth service asked %d times for 2 cached decisions", n)
	}
	for _, bad := range []string{"", "ftp://x", "not a url"} {
		if _, err := NewExternalAuth(bad, time.Second, 0); err == nil {
			t.Errorf("NewExternalAuth(%q) accepted", bad)
		}
	}
}
