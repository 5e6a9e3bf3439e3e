package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestRulesChannels(t *testing.T) {
	rs, err := ParseRules([]string{
		"c1=get_time,channel:tenantA-*",
		"c2=subscribe:news,publish:up/*",
		"ops-*=*",
		"c3=get_*",
		"c4=channel:a?c,channel:[x-z]",
		"c5=*_time,[a-z]*,*e",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peer, target string
		allow        bool
	}{
		{"c1", "subscribe:tenantA-x", true},
		{"c1", "publish:tenantA-x", true},
		{"c1", "subscribe:tenantA-", true},
		// '*' crosses '/' in channel names: they are flat.
		{"c1", "subscribe:tenantA-eu/orders", true},
		{"c1", "publish:tenantA-eu/orders/x", true},
		{"c1", "subscribe:tenantB-orders", false},
		{"c1", "publish:tenantB-orders", false},
		{"c1", "subscribe:xtenantA-x", false},
		{"c1", "get_time", true},
		{"c2", "subscribe:news", true},
		{"c2", "publish:news", false},
		{"c2", "subscribe:news/sport", false},
		{"c2", "publish:up/a/b", true},
		{"c2", "subscribe:up/a", false},
		{"ops-1", "subscribe:any/thing at all", true},
		{"ops-1", "publish:x", true},
		// A handler glob does not reach channels.
		{"c3", "get_time", true},
		{"c3", "subscribe:get_x", false},
		{"c4", "subscribe:a/c", true},
		{"c4", "publish:abc", true},
		{"c4", "publish:y", true},
		{"c4", "publish:ab", false},
		{"stranger", "subscribe:tenantA-x", false},
		// Nor does a glob that names no channel kind, whatever it matches.
		{"c5", "get_time", true},
		{"c5", "subscribe:overtime", false},
		{"c5", "publish:over_time", false},
		{"c5", "subscribe:e", false},
	} {
		if got := rs.Allows(tc.peer, tc.target); got != tc.allow {
			t.Errorf("%s -> %s: allowed %v, want %v", tc.peer, tc.target, got, tc.allow)
		}
	}
	none, _ := ParseRules(nil)
	if !none.Allows("anyone", "publish:anything") {
		t.Error("no rules must allow every channel")
	}
}

func TestTargetOfChannelRequest(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Method: ChannelSubscribe, Channel: "a/b c"}, "subscribe:a/b c"},
		{Request{Method: ChannelPublish, Channel: "x"}, "publish:x"},
		{Request{Method: "GET", Name: "get_time"}, "get_time"},
	} {
		if got := tc.req.Target(); got != tc.want {
			t.Errorf("Target of %+v = %q, want %q", tc.req, got, tc.want)
		}
	}
}

func TestChannelURI(t *testing.T) {
	for name, want := range map[string]string{
		"news":           "/channels/news",
		"news/sport":     "/channels/news/sport",
		"a b?c#d%":       "/channels/a%20b%3Fc%23d%25",
		"é/":             "/channels/%C3%A9/",
		"tenantB-orders": "/channels/tenantB-orders",
		// Dot segments stay literal: "a/../b" is not "b".
		"tenantA-x/../tenantB-orders": "/channels/tenantA-x/%2E%2E/tenantB-orders",
		"./a/.":                       "/channels/%2E/a/%2E",
		"..x/.y":                      "/channels/..x/.y",
	} {
		if got := channelURI(name); got != want {
			t.Errorf("channelURI(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestMatchFlat(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"*", "", true},
		{"*", "a/b/c", true},
		{"a*", "a/b", true},
		{"a*c", "a/b/c", true},
		{"a*c", "a/b/cd", false},
		{"a?c", "a/c", true},
		{"a[/]c", "a/c", true},
		{"a[^b]c", "a/c", true},
		{"a\\*", "a*", true},
		{"a\\*", "ab", false},
		{"*/*", "a/b/c", true},
		{"*x", "a/b", false},
		{"[", "a", false}, // malformed: no match
		{"a", "a/", false},
	} {
		if got := matchFlat(tc.pattern, tc.name); got != tc.want {
			t.Errorf("matchFlat(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

// FuzzMatchFlat: matchFlat is path.Match where '/' is ordinary: they
// agree on every name without '/', and whatever path.Match matches,
// matchFlat matches too.
func FuzzMatchFlat(f *testing.F) {
	for _, s := range [][2]string{{"*", "a/b"}, {"a*c", "abc"}, {"[a-c]?*", "b/x"}, {"*[^x]?", "€"}, {"\\*", "*"}, {"tenantA-*", "tenantA-eu/x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if !utf8.ValidString(name) {
			return // channel names are UTF-8
		}
		want, err := path.Match(pattern, name)
		if err != nil {
			return // ParseRule refuses it
		}
		got := matchFlat(pattern, name)
		if !strings.Contains(name, "/") && got != want {
			t.Fatalf("matchFlat(%q, %q) = %v, path.Match says %v", pattern, name, got, want)
		}
		if want && !got {
			t.Fatalf("matchFlat(%q, %q) = false, path.Match matches", pattern, name)
		}
	})
}

func TestAuthorizeChannel(t *testing.T) {
	rs, err := ParseRules([]string{"c1=channel:tenantA-*"})
	if err != nil {
		t.Fatal(err)
	}
	req := func(method, channel string) *Request {
		return &Request{Peer: "c1", ID: "r1", Method: method, Channel: channel}
	}
	ctx := context.Background()
	r := NewRegistry()
	if err := r.AuthorizeChannel(ctx, req(ChannelPublish, "anything")); err != nil {
		t.Fatalf("no Auth hook: %v", err)
	}
	r.SetAuth(rs.Auth)
	if err := r.AuthorizeChannel(ctx, req(ChannelSubscribe, "tenantA-x")); err != nil {
		t.Fatalf("allowed: %v", err)
	}
	for _, tc := range []struct {
		name   string
		auth   AuthFunc
		req    *Request
		status int
		code   string
		msg    []string
	}{
		{"rules deny a subscribe", rs.Auth, req(ChannelSubscribe, "tenantB-orders"), 403, CodeForbidden,
			[]string{`node "c1" may not subscribe to channel "tenantB-orders"`, "no access rule allows it"}},
		{"rules deny a publish", rs.Auth, req(ChannelPublish, "tenantB-orders"), 403, CodeForbidden,
			[]string{`may not publish to channel "tenantB-orders"`}},
		{"a hook's own status", func(context.Context, *Request) (Decision, error) {
			return Decision{Status: 401, Code: "unauthorized", Reason: "who?"}, nil
		}, req(ChannelPublish, "x"), 401, "unauthorized", []string{"who?"}},
		{"a hook that cannot decide", func(context.Context, *Request) (Decision, error) {
			return Decision{}, errors.New("dial http://user:secret@auth: refused")
		}, req(ChannelSubscribe, "x"), 503, CodeAuthUnavailable, []string{"cannot decide"}},
		{"a hook that panics", func(context.Context, *Request) (Decision, error) { panic("boom") },
			req(ChannelSubscribe, "x"), 503, CodeAuthUnavailable, []string{"cannot decide"}},
		{"a hook that rewrites", func(_ context.Context, req *Request) (Decision, error) {
			req.Noun = []string{"files"}
			return Allow(), nil
		}, req(ChannelSubscribe, "x"), 403, CodeForbidden, []string{"cannot be rewritten"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.SetAuth(tc.auth)
			err := r.AuthorizeChannel(ctx, tc.req)
			var he *Error
			if !errors.As(err, &he) || he.Status != tc.status || he.Code != tc.code {
				t.Fatalf("AuthorizeChannel = %#v, want %d %s", err, tc.status, tc.code)
			}
			for _, m := range tc.msg {
				if !strings.Contains(he.Msg, m) {
					t.Errorf("message %q does not hold %q", he.Msg, m)
				}
			}
			if strings.Contains(he.Msg, "secret") {
				t.Errorf("message %q tells the peer the auth hook's error", he.Msg)
			}
		})
	}
}

func TestExternalAuthChannels(t *testing.T) {
	type seen struct{ uri, method, peer, channel string }
	got := make(chan seen, 10)
	svc, _ := authService(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Get(HeaderOriginalURI), r.Header.Get(HeaderOriginalMethod),
			r.Header.Get(HeaderPeer), strings.Join(r.Header.Values(HeaderChannel), ",")}
		switch uri := r.Header.Get(HeaderOriginalURI); {
		case strings.HasPrefix(uri, "/channels/tenantA-"):
			w.WriteHeader(http.StatusNoContent)
		case uri == "/channels/rewritten":
			w.Header().Set(HeaderRewrite, "/time")
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "tenant A only")
		}
	})
	a, err := NewExternalAuth(svc.URL, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry()
	r.SetAuth(a.Auth)
	ctx := context.Background()
	for _, tc := range []struct {
		method, channel string
		want            seen
		status          int
		msg             string
	}{
		{ChannelSubscribe, "tenantA-x/y z", seen{"/channels/tenantA-x/y%20z", "SUBSCRIBE", "c1", "tenantA-x%2Fy%20z"}, 0, ""},
		{ChannelPublish, "tenantA-x", seen{"/channels/tenantA-x", "PUBLISH", "c1", "tenantA-x"}, 0, ""},
		{ChannelPublish, "tenantB-orders", seen{"/channels/tenantB-orders", "PUBLISH", "c1", "tenantB-orders"}, 403, "tenant A only"},
		{ChannelSubscribe, "rewritten", seen{"/channels/rewritten", "SUBSCRIBE", "c1", "rewritten"}, 403, "cannot be rewritten"},
	} {
		err := r.AuthorizeChannel(ctx, &Request{Peer: "c1", ID: "r", Method: tc.method, Channel: tc.channel})
		if s := <-got; s != tc.want {
			t.Errorf("%s %s: auth service saw %+v, want %+v", tc.method, tc.channel, s, tc.want)
		}
		var he *Error
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("%s %s: %v, want allowed", tc.method, tc.channel, err)
		case tc.status != 0 && (!errors.As(err, &he) || he.Status != tc.status || !strings.Contains(he.Msg, tc.msg)):
			t.Errorf("%s %s: %v, want %d holding %q", tc.method, tc.channel, err, tc.status, tc.msg)
		}
	}
	// An event that looks like a channel request, with a forged
	// X-Restpipe-Channel, reaches the service without it.
	r.MustHandle("subscribe_channels_tenantA-x", func(context.Context, *Request) (any, error) { return "ran", nil })
	rep := dispatch(ctx, r, &Request{Peer: "c1", Method: "SUBSCRIBE", Noun: []string{"channels", "tenantA-x"}, Body: http.NoBody,
		Header: http.Header{"X-Restpipe-Channel": {"tenantA-x"}, "X_restpipe_channel": {"tenantA-x"}}})
	if s := <-got; s != (seen{"/channels/tenantA-x", "SUBSCRIBE", "c1", ""}) {
		t.Errorf("an event SUBSCRIBE /channels/tenantA-x: auth service saw %+v, want no %s", s, HeaderChannel)
	}
	closeBody(rep)
}
