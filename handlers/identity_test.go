package handlers

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestForgeable(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Restpipe-Peer": true, "X_Restpipe_Peer": true, "x_restpipe_identity": true, "X-RESTPIPE-TIMEOUT": true,
		"X-Forwarded-For": true, "X_Forwarded_Host": true, "Forwarded": true, "X-Real-Ip": true, "X_REAL_IP": true,
		"X-Original-Uri": true, "X_Original_Method": true, "X-Original-Url": true, "X-Rewrite-Url": true,
		"True-Client-Ip": true, "X-Client-Ip": true,
		"X-Http-Method-Override": true, "X_HTTP_METHOD_OVERRIDE": true, "X-Http-Method": true, "X-Method-Override": true,
		"Authorization": false, "Cookie": false, "X-Request-Id": false, "X-Restpipeish": false, "Forwarded-X": false,
		"User-Agent": false, "X_Custom": false,
	} {
		if got := forgeable(name); got != want {
			t.Errorf("forgeable(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestDispatchStripsForgeable: no hook, handler or route sees a forged
// identity header.
func TestDispatchStripsForgeable(t *testing.T) {
	r := NewRegistry()
	var seen []http.Header
	r.Pre(func(_ context.Context, req *Request) (*Reply, error) {
		seen = append(seen, req.Header.Clone())
		return nil, nil
	})
	r.SetAuth(func(_ context.Context, req *Request) (Decision, error) {
		seen = append(seen, req.Header.Clone())
		return Allow(), nil
	})
	r.MustHandle("get_x", func(_ context.Context, req *Request) (any, error) {
		seen = append(seen, req.Header.Clone())
		return "ok", nil
	})
	h := http.Header{"X-Restpipe-Peer": {"admin"}, "X_restpipe_identity": {"root"}, "X-Forwarded-For": {"6.6.6.6"},
		"Authorization": {"Bearer t"}}
	rep := dispatch(context.Background(), r, &Request{Peer: "c1", Method: "GET", Noun: []string{"x"}, Header: h, Body: http.NoBody})
	if status, _ := statusBody(t, rep); status != 200 || len(seen) != 3 {
		t.Fatalf("%d, %d hooks saw it", status, len(seen))
	}
	for i, s := range seen {
		if len(s) != 1 || s.Get("Authorization") != "Bearer t" {
			t.Errorf("hook %d saw %v", i, s)
		}
	}
}

// TestDispatchStripsForgeableTrailer: a forged identity in a request's
// trailer fields is gone too, announced or not, once the body has ended.
func TestDispatchStripsForgeableTrailer(t *testing.T) {
	r := NewRegistry()
	var announced, ended http.Header
	r.MustHandle("post_x", func(_ context.Context, req *Request) (any, error) {
		announced = req.Trailer.Clone()
		_, _ = io.ReadAll(req.Body)
		ended = req.Trailer.Clone()
		return "ok", nil
	})
	tr := http.Header{"X-Restpipe-Peer": nil, "X-Sum": nil}
	body := &eofTrailer{r: strings.NewReader("abc"), dst: tr,
		fields: http.Header{"X-Restpipe-Peer": {"admin"}, "X-Forwarded-For": {"6.6.6.6"}, "X-Sum": {"1"}}}
	rep := dispatch(context.Background(), r, &Request{Peer: "c1", Method: "POST", Noun: []string{"x"}, Header: http.Header{}, Body: body, Trailer: tr})
	if status, _ := statusBody(t, rep); status != 200 {
		t.Fatalf("status %d", status)
	}
	if _, ok := announced["X-Restpipe-Peer"]; ok || len(announced) != 1 {
		t.Errorf("announced trailer fields the handler saw: %v", announced)
	}
	if len(ended) != 1 || ended.Get("X-Sum") != "1" {
		t.Errorf("trailer fields the handler saw at the end: %v", ended)
	}
}
