package handlers

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/events"
)

// eofTrailer is a request body that fills its request's Trailer at its
// end, as the tunnel's does.
type eofTrailer struct {
	r      io.Reader
	dst    http.Header
	fields http.Header
}

func (b *eofTrailer) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		for k, vs := range b.fields {
			b.dst[k] = vs
		}
	}
	return n, err
}

// TestForwardRelay: what a forward route's service gets of a request
// (its trailer fields, its length, TE, no Accept-Encoding of the route's
// own) and what the Reply carries of the service's answer (announced
// trailer names, trailer fields after the body, its Content-Length).
func TestForwardRelay(t *testing.T) {
	type got struct {
		trailer http.Header
		te      []string
		length  int64
		header  http.Header
	}
	seen := make(chan got, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		seen <- got{r.Trailer, r.TransferEncoding, r.ContentLength, r.Header}
		switch r.URL.Path {
		case "/announced":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Sum", "1")
		case "/unannounced":
			_, _ = io.WriteString(w, "body")
			// Flushed, or net/http sends a length and drops the field.
			w.(http.Flusher).Flush()
			w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
		case "/length":
			w.Header().Set("Content-Length", "4")
			_, _ = io.WriteString(w, "body")
		}
	}))
	t.Cleanup(up.Close)
	reg := NewRegistry()
	if err := reg.Forward("app", up.URL); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		path        string
		header      http.Header
		trailer     http.Header // announced
		fields      http.Header // sent at the body's end
		length      int64
		wantTrailer http.Header // the service's request Trailer
		wantTE      []string
		wantLength  int64
		wantTEHdr   string
		announced   []string // Reply.Trailer
		replyFields http.Header
		replyLength string
	}{
		{name: "announced both ways", path: "/announced", trailer: http.Header{"X-Up": nil, "X-Restpipe-Peer": nil},
			fields: http.Header{"X-Up": {"u"}, "X-Restpipe-Peer": {"forged"}}, length: 3,
			wantTrailer: http.Header{"X-Up": {"u"}}, wantTE: []string{"chunked"}, wantLength: -1,
			announced: []string{"X-Sum"}, replyFields: http.Header{"X-Sum": {"1"}}},
		{name: "not announced", path: "/unannounced", trailer: http.Header{}, fields: http.Header{"X-Late": {"l"}}, length: -1,
			wantTrailer: http.Header{"X-Late": {"l"}}, wantTE: []string{"chunked"}, wantLength: -1,
			replyFields: http.Header{"Grpc-Status": {"0"}}},
		{name: "TE trailers, a length, no fields", path: "/length", header: http.Header{"Te": {"trailers"}}, length: 3,
			wantLength: 3, wantTEHdr: "trailers", replyLength: "4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &Request{Peer: "c1", ID: "r1", Method: http.MethodPost, Noun: []string{"app"}, RawPath: tc.path,
				Header: tc.header.Clone(), ContentLength: tc.length, Trailer: tc.trailer}
			if req.Header == nil {
				req.Header = http.Header{}
			}
			req.Body = strings.NewReader("abc")
			if tc.trailer != nil {
				req.Body = &eofTrailer{r: req.Body, dst: tc.trailer, fields: tc.fields}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			answered := make(chan *Reply, 1)
			reg.Serve(ctx, req.WithContext(ctx), func(rep *Reply) { answered <- rep })
			rep := <-answered
			g := <-seen
			if len(g.trailer) != len(tc.wantTrailer) || g.trailer.Get("X-Up") != tc.wantTrailer.Get("X-Up") || g.trailer.Get("X-Late") != tc.wantTrailer.Get("X-Late") {
				t.Errorf("service's request trailer %v, want %v", g.trailer, tc.wantTrailer)
			}
			if strings.Join(g.te, ",") != strings.Join(tc.wantTE, ",") || g.length != tc.wantLength {
				t.Errorf("service's request framing %v, length %d; want %v, %d", g.te, g.length, tc.wantTE, tc.wantLength)
			}
			if g.header.Get("Te") != tc.wantTEHdr || g.header.Get("Accept-Encoding") != "" {
				t.Errorf("service's TE %q, Accept-Encoding %q", g.header.Get("Te"), g.header.Get("Accept-Encoding"))
			}
			if names := events.TrailerNames(rep.Trailer); strings.Join(names, ",") != strings.Join(tc.announced, ",") {
				t.Errorf("Reply.Trailer %v, want %v", rep.Trailer, tc.announced)
			}
			if cl := rep.Header.Get("Content-Length"); cl != tc.replyLength {
				t.Errorf("reply Content-Length %q, want %q", cl, tc.replyLength)
			}
			b, err := io.ReadAll(rep.Body)
			if err != nil || string(b) != "body" {
				t.Fatalf("reply body %q, %v", b, err)
			}
			ts, ok := rep.Body.(events.TrailerSource)
			if !ok {
				t.Fatalf("reply body %T is no TrailerSource", rep.Body)
			}
			fields := http.Header{}
			events.TrailersToHTTP(ts.Trailer(), fields)
			if len(fields) != len(tc.replyFields) {
				t.Errorf("reply trailer fields %v, want %v", fields, tc.replyFields)
			}
			for k := range tc.replyFields {
				if fields.Get(k) != tc.replyFields.Get(k) {
					t.Errorf("reply trailer %s: %q, want %q", k, fields.Get(k), tc.replyFields.Get(k))
				}
			}
		})
	}
}
