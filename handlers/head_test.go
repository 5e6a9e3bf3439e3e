package handlers

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestHeadName: a HEAD runs its head_ handler, or else the GET one, and
// the access rules are asked about the handler that runs.
func TestHeadName(t *testing.T) {
	r := NewRegistry()
	ran := ""
	r.MustHandle("get_doc", func(_ context.Context, req *Request) (any, error) { ran = "get_doc " + req.Method; return "doc", nil })
	r.MustHandle("get_both", func(context.Context, *Request) (any, error) { ran = "get_both"; return nil, nil })
	r.MustHandle("head_both", func(context.Context, *Request) (any, error) { ran = "head_both"; return nil, nil })
	rules, err := ParseRules([]string{"c1=get_doc,*_both", "c2=head_doc"})
	if err != nil {
		t.Fatal(err)
	}
	r.SetAuth(rules.Auth)
	for _, tc := range []struct {
		peer, method, noun string
		status             int
		ran                string
	}{
		{"c1", "HEAD", "doc", 200, "get_doc HEAD"},
		{"c1", "head", "doc", 200, "get_doc HEAD"},
		{"c1", "HEAD", "both", 200, "head_both"},
		{"c1", "GET", "both", 200, "get_both"},
		// A rule for head_doc is not one for the handler that runs.
		{"c2", "HEAD", "doc", 403, ""},
		{"c1", "HEAD", "missing", 403, ""},
	} {
		ran = ""
		req := &Request{Peer: tc.peer, Method: tc.method, Noun: []string{tc.noun}}
		req.Name = Name(req.Method, req.Noun) // as the serving node sets it
		rep := dispatch(context.Background(), r, req)
		if rep.Status != tc.status || ran != tc.ran {
			t.Errorf("%s %s %s: %d, ran %q; want %d, %q", tc.peer, tc.method, tc.noun, rep.Status, ran, tc.status, tc.ran)
		}
	}
}

func TestHeadReply(t *testing.T) {
	rep := HeadReply(&Reply{Body: strings.NewReader("twelve bytes")})
	if rep.Body != nil || rep.Header.Get("Content-Length") != "12" {
		t.Errorf("in-memory body: %v, %v", rep.Body, rep.Header)
	}
	// The service's length stands; a body of unknown length has none.
	rep = HeadReply(&Reply{Header: http.Header{"Content-Length": {"99"}}, Body: strings.NewReader("")})
	if rep.Body != nil || rep.Header.Get("Content-Length") != "99" {
		t.Errorf("with Content-Length: %v, %v", rep.Body, rep.Header)
	}
	rep = HeadReply(&Reply{Body: io.MultiReader(strings.NewReader("x"))})
	if rep.Body != nil || rep.Header.Get("Content-Length") != "" {
		t.Errorf("unknown length: %v, %v", rep.Body, rep.Header)
	}
}
