package tunnel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// callSeen is what the inspect handler reports of the request it served.
type callSeen struct {
	Peer, ID, Method, Name, ContentType, RawQuery, Body string
	Args                                                []string
	Query                                               url.Values
	Header                                              http.Header
	ContentLength                                       int64
	HasDeadline                                         bool
	DeadlineIn                                          time.Duration
}

func inspect(ctx context.Context, req *handlers.Request) (any, error) {
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	d, ok := ctx.Deadline()
	return callSeen{Peer: req.Peer, ID: req.ID, Method: req.Method, Name: req.Name,
		ContentType: req.ContentType, RawQuery: req.RawQuery, Body: string(b), Args: req.Args,
		Query: req.Query, Header: req.Header, ContentLength: req.ContentLength,
		HasDeadline: ok, DeadlineIn: time.Until(d)}, nil
}

// TestCall: an embedder's Call, in both directions, reaches the handler
// with every field of the Request, and the reply streams back.
func TestCall(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	for _, reg := range []*handlers.Registry{s.reg, c.reg} {
		reg.MustHandle("get_inspect", inspect)
		reg.MustHandle("post_inspect", inspect)
		reg.MustHandle("get_inspect_deep", inspect)
	}
	calls := map[string]func(ctx context.Context, req *tunnel.Request) (*tunnel.Response, error){
		"server to c1": func(ctx context.Context, req *tunnel.Request) (*tunnel.Response, error) {
			return s.Call(ctx, "c1", req)
		},
		"c1 to server": c.Call,
	}
	tests := []struct {
		name string
		req  func() tunnel.Request // a new one per call: a Body is read once
		ctx  time.Duration         // a context deadline this far ahead; 0: none
		want callSeen
	}{
		{
			name: "defaults",
			req:  func() tunnel.Request { return tunnel.Request{Noun: []string{"inspect"}} },
			want: callSeen{Method: "GET", Name: "get_inspect", Query: url.Values{}},
		},
		{
			name: "everything",
			req: func() tunnel.Request {
				return tunnel.Request{Method: "POST", Noun: []string{"inspect"}, Args: []string{"a b", "c/d", ""},
					Query: url.Values{"q": {"1", "2"}, "x": {"é"}}, Header: http.Header{"X-Thing": {"v"}, "Connection": {"close"}},
					ContentType: "text/plain", Body: strings.NewReader("hello"), ID: "my-id", Timeout: 3 * time.Second}
			},
			want: callSeen{ID: "my-id", Method: "POST", Name: "post_inspect", ContentType: "text/plain",
				RawQuery: "q=1&q=2&x=%C3%A9", Body: "hello", Args: []string{"a b", "c/d", ""},
				Query: url.Values{"q": {"1", "2"}, "x": {"é"}}, Header: http.Header{"X-Thing": {"v"}},
				ContentLength: 5, HasDeadline: true, DeadlineIn: 3 * time.Second},
		},
		{
			name: "a body of unknown length and a noun of two segments",
			req: func() tunnel.Request {
				return tunnel.Request{Method: "get", Noun: []string{"inspect", "deep"}, Body: io.MultiReader(strings.NewReader("one "), strings.NewReader("two"))}
			},
			want: callSeen{Method: "GET", Name: "get_inspect_deep", Body: "one two", Query: url.Values{}, ContentLength: -1},
		},
		{
			name: "the deadline of ctx reaches the handler",
			req: func() tunnel.Request {
				return tunnel.Request{Noun: []string{"inspect"}, Body: bytes.NewBufferString("")}
			},
			ctx:  5 * time.Second,
			want: callSeen{Method: "GET", Name: "get_inspect", Query: url.Values{}, HasDeadline: true, DeadlineIn: 5 * time.Second},
		},
	}
	for dir, call := range calls {
		for _, tt := range tests {
			t.Run(dir+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				if tt.ctx > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.ctx)
					defer cancel()
				}
				req := tt.req()
				resp, err := call(ctx, &req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.Status != http.StatusOK || resp.ContentType != "application/json" {
					t.Fatalf("status %d, type %q", resp.Status, resp.ContentType)
				}
				var got callSeen
				if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
					t.Fatal(err)
				}
				want := tt.want
				want.Peer = map[bool]string{true: "server", false: "c1"}[dir == "server to c1"]
				if want.ID == "" {
					if len(got.ID) != 16 {
						t.Errorf("ID %q: want a new random one", got.ID)
					}
					want.ID = got.ID
				}
				if want.HasDeadline && got.HasDeadline {
					if left := got.DeadlineIn; left > want.DeadlineIn || left < want.DeadlineIn-2*time.Second {
						t.Errorf("handler's deadline in %v, want about %v", left, want.DeadlineIn)
					}
					want.DeadlineIn = got.DeadlineIn
				} else if !want.HasDeadline {
					want.DeadlineIn = got.DeadlineIn
				}
				if want.Header == nil {
					want.Header = http.Header{}
				}
				if !equalJSON(t, got, want) {
					t.Errorf("handler saw\n%+v\nwant\n%+v", got, want)
				}
			})
		}
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// TestCallRefused: a Request that cannot make an event is refused before
// anything is sent, and a peer that is not there is ErrPeerUnavailable.
func TestCallRefused(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	ctx := context.Background()
	tests := []struct {
		name string
		req  *tunnel.Request
		want error // errors.Is; nil: any error
	}{
		{"nil", nil, nil},
		{"no noun", &tunnel.Request{}, events.ErrBadPath},
		{"a negative timeout", &tunnel.Request{Noun: []string{"time"}, Timeout: -time.Second}, nil},
		{"a method not UTF-8", &tunnel.Request{Method: "\xff", Noun: []string{"time"}}, nil},
		{"a method not a token", &tunnel.Request{Method: "GET /x", Noun: []string{"time"}}, nil},
		// Over the peer's MaxEventHeader and its stream window (1 MiB):
		// the peer would answer 431 without reading it all, and the write
		// would wait for a window that never comes.
		{"a header over MaxEventHeader", &tunnel.Request{Noun: []string{"time"},
			Header: http.Header{"X-Big": {strings.Repeat("a", 1<<20)}}}, events.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			resp, err := c.Call(ctx, tt.req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("sent: status %d", resp.Status)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
			if errors.Is(err, tunnel.ErrTunnelClosed) {
				t.Errorf("err %v: it was sent", err)
			}
		})
	}
	if _, err := s.Call(ctx, "nobody", &tunnel.Request{Noun: []string{"time"}}); !errors.Is(err, tunnel.ErrPeerUnavailable) {
		t.Errorf("Call to nobody: %v, want ErrPeerUnavailable", err)
	}
	// The session is still good.
	resp, err := c.Call(ctx, &tunnel.Request{Noun: []string{"time"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Status != http.StatusOK {
		t.Errorf("get_time: %d", resp.Status)
	}
}

// lenReader is a Body whose Len() says n, whatever it holds.
type lenReader struct {
	io.Reader
	n int
}

func (l lenReader) Len() int { return l.n }

// TestCallBodyLenBelowZero: a Body whose Len() is below zero is sent as
// one of unknown length, not a panic.
func TestCallBodyLenBelowZero(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	s.reg.MustHandle("post_inspect", inspect)
	resp, err := c.Call(context.Background(), &tunnel.Request{Method: "POST", Noun: []string{"inspect"},
		Body: lenReader{strings.NewReader("abc"), -7}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var seen callSeen
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusOK || seen.Body != "abc" || seen.ContentLength != -1 {
		t.Errorf("%d, body %q, ContentLength %d; want 200, \"abc\", -1", resp.Status, seen.Body, seen.ContentLength)
	}
}

// stuckBody is a Body whose Read blocks until released.
type stuckBody struct{ release chan struct{} }

func (b stuckBody) Read([]byte) (int, error) {
	<-b.release
	return 0, io.EOF
}

// TestCallBodyBlocks: a Body whose Read never returns holds a Call with a
// Timeout no longer than the Timeout and the second the upload is given
// after it: Call and Body.Close return.
func TestCallBodyBlocks(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	s.reg.MustHandle("post_inspect", inspect)
	body := stuckBody{make(chan struct{})}
	t.Cleanup(func() { close(body.release) })
	done := make(chan string, 1)
	go func() {
		resp, err := c.Call(context.Background(), &tunnel.Request{Method: "POST", Noun: []string{"inspect"},
			Body: body, Timeout: 200 * time.Millisecond})
		if err != nil {
			done <- err.Error()
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- strconv.Itoa(resp.Status)
	}()
	select {
	case got := <-done:
		t.Logf("the call ended: %s", got)
	case <-time.After(5 * time.Second):
		t.Fatal("Call with a Body that blocks and a 200ms Timeout still running after 5s")
	}
	resp, err := c.Call(context.Background(), &tunnel.Request{Noun: []string{"time"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Status != http.StatusOK {
		t.Errorf("the next call: %d", resp.Status)
	}
}
