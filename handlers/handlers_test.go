package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// waitLimit bounds every wait on another goroutine, so that a bug shows
// as a failure instead of a hung test.
const waitLimit = 10 * time.Second

func TestName(t *testing.T) {
	tests := []struct {
		method string
		noun   []string
		want   string
	}{
		{"GET", []string{"time"}, "get_time"},
		{"GET", []string{"time", "utc"}, "get_time_utc"},
		{"POST", []string{"a", "b"}, "post_a_b"},
		{"Get", []string{"time"}, "get_time"},
		{"pOsT", []string{"echo"}, "post_echo"},
		{"DELETE", []string{"files", "x"}, "delete_files_x"},
	}
	for _, tt := range tests {
		if got := Name(tt.method, tt.noun); got != tt.want {
			t.Errorf("Name(%q, %q) = %q, want %q", tt.method, tt.noun, got, tt.want)
		}
	}
}

func nopFunc(context.Context, *Request) (any, error) { return nil, nil }

func TestHandle(t *testing.T) {
	good := []string{"get_time", "post_a_b", "get_time_utc", "delete_x", "get_a.b-c", "get_Time"}
	bad := []string{
		"",
		"gettime",    // no underscore
		"get_",       // no noun
		"_time",      // no method
		"GET_time",   // upper-case method
		"Get_time",   // mixed-case method
		"g3t_time",   // digit in the method
		"get_ti me",  // space
		"get time",   // space before the underscore
		"get_a/b",    // slash
		"get_a\tb",   // control character
		"get_a\x7fb", // DEL
	}
	r := NewRegistry()
	for _, name := range good {
		if err := r.Handle(name, nopFunc); err != nil {
			t.Errorf("Handle(%q): %v", name, err)
		}
	}
	for _, name := range bad {
		if err := r.Handle(name, nopFunc); !errors.Is(err, ErrBadName) {
			t.Errorf("Handle(%q) = %v, want ErrBadName", name, err)
		}
	}
	if err := r.Handle("get_nil", nil); err == nil {
		t.Error("Handle with a nil func succeeded")
	}
	if _, ok := r.Lookup("get_nil"); ok {
		t.Error("a nil func was registered")
	}
	if got := strings.Join(r.Names(), ","); got != "delete_x,get_Time,get_a.b-c,get_time,get_time_utc,post_a_b" {
		t.Errorf("Names() = %q, want the good names sorted", got)
	}
}

func TestMustHandlePanics(t *testing.T) {
	defer func() {
		if p := recover(); p == nil {
			t.Error("MustHandle with a bad name did not panic")
		}
	}()
	NewRegistry().MustHandle("bad", nopFunc)
}

// readReply reads rep's body to the end.
func readReply(t *testing.T, rep *Reply) []byte {
	t.Helper()
	if rep.Body == nil {
		return nil
	}
	b, err := io.ReadAll(rep.Body)
	if err != nil {
		t.Fatalf("read reply body: %v", err)
	}
	closeBody(rep)
	return b
}

// checkError checks that rep is the error reply of the error table.
func checkError(t *testing.T, rep *Reply, status int, code, msgPart string) {
	t.Helper()
	if rep.Status != status || rep.ErrorCode != code || rep.ContentType != "application/json" {
		t.Errorf("reply = %d %q %q, want %d %q application/json", rep.Status, rep.ErrorCode, rep.ContentType, status, code)
	}
	body := readReply(t, rep)
	var eb map[string]string
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if len(eb) != 2 || eb["code"] != code || !strings.Contains(eb["error"], msgPart) {
		t.Errorf("error body = %q, want {\"error\": ...%s..., \"code\": %q}", body, msgPart, code)
	}
}

// closer is a reply body that reports its Close.
type closer struct {
	io.Reader
	closed chan struct{}
}

func newCloser(s string) *closer {
	return &closer{Reader: strings.NewReader(s), closed: make(chan struct{})}
}

func (c *closer) Close() error { close(c.closed); return nil }

func TestDispatch(t *testing.T) {
	passed := &Reply{Status: http.StatusCreated, ContentType: "text/csv", Header: http.Header{"X-A": {"1"}}, Body: strings.NewReader("a,b")}
	r := NewRegistry()
	r.MustHandle("get_err", func(context.Context, *Request) (any, error) {
		return nil, errors.New("disk full")
	})
	r.MustHandle("get_wrapped", func(context.Context, *Request) (any, error) {
		return nil, fmt.Errorf("open x: %w", Errorf(http.StatusForbidden, "forbidden", "not you"))
	})
	r.MustHandle("get_teapot", func(context.Context, *Request) (any, error) {
		return nil, Errorf(http.StatusTeapot, "teapot", "I am a %s", "teapot")
	})
	r.MustHandle("get_zero", func(context.Context, *Request) (any, error) {
		return nil, &Error{Msg: "no status or code"}
	})
	r.MustHandle("get_panic", func(context.Context, *Request) (any, error) {
		panic("kaboom")
	})
	r.MustHandle("get_map", func(_ context.Context, req *Request) (any, error) {
		return map[string]any{"args": req.Args, "n": 1}, nil
	})
	r.MustHandle("get_nil", func(context.Context, *Request) (any, error) { return nil, nil })
	r.MustHandle("get_bytes", func(context.Context, *Request) (any, error) { return []byte{0, 1, 2}, nil })
	r.MustHandle("get_reader", func(context.Context, *Request) (any, error) { return strings.NewReader("rd"), nil })
	r.MustHandle("get_reply", func(context.Context, *Request) (any, error) { return passed, nil })
	r.MustHandle("get_replyval", func(context.Context, *Request) (any, error) { return Reply{Status: 202}, nil })
	r.MustHandle("get_badjson", func(context.Context, *Request) (any, error) { return make(chan int), nil })

	ok := func(name string, args ...string) *Reply {
		t.Helper()
		return dispatch(context.Background(), r, &Request{Method: "GET", Noun: []string{name}, Args: args})
	}

	t.Run("no handler", func(t *testing.T) {
		checkError(t, ok("missing"), http.StatusNotFound, CodeNoHandler, "get_missing")
	})
	t.Run("plain error", func(t *testing.T) {
		checkError(t, ok("err"), http.StatusInternalServerError, CodeHandlerError, "disk full")
	})
	t.Run("handler error", func(t *testing.T) {
		checkError(t, ok("teapot"), http.StatusTeapot, "teapot", "I am a teapot")
	})
	t.Run("wrapped handler error", func(t *testing.T) {
		checkError(t, ok("wrapped"), http.StatusForbidden, "forbidden", "not you")
	})
	t.Run("handler error without status", func(t *testing.T) {
		checkError(t, ok("zero"), http.StatusInternalServerError, CodeHandlerError, "no status or code")
	})
	t.Run("panic", func(t *testing.T) {
		checkError(t, ok("panic"), http.StatusInternalServerError, CodeHandlerError, "kaboom")
		// The registry still serves.
		if rep := ok("map"); rep.Status != http.StatusOK {
			t.Errorf("after a panic: status %d", rep.Status)
		}
	})
	t.Run("JSON", func(t *testing.T) {
		rep := ok("map", "a", "b")
		if rep.Status != http.StatusOK || rep.ContentType != "application/json" || rep.ErrorCode != "" {
			t.Errorf("reply = %d %q %q", rep.Status, rep.ContentType, rep.ErrorCode)
		}
		if got := string(readReply(t, rep)); got != `{"args":["a","b"],"n":1}`+"\n" {
			t.Errorf("body = %q", got)
		}
	})
	t.Run("nil value", func(t *testing.T) {
		rep := ok("nil")
		if got := string(readReply(t, rep)); rep.Status != http.StatusOK || got != "null\n" {
			t.Errorf("reply = %d %q", rep.Status, got)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		rep := ok("bytes")
		got := readReply(t, rep)
		if rep.Status != http.StatusOK || rep.ContentType != "application/octet-stream" || !bytes.Equal(got, []byte{0, 1, 2}) {
			t.Errorf("reply = %d %q %q", rep.Status, rep.ContentType, got)
		}
	})
	t.Run("reader", func(t *testing.T) {
		rep := ok("reader")
		if got := string(readReply(t, rep)); rep.ContentType != "application/octet-stream" || got != "rd" {
			t.Errorf("reply = %q %q", rep.ContentType, got)
		}
	})
	t.Run("*Reply passed through", func(t *testing.T) {
		if rep := ok("reply"); rep != passed {
			t.Errorf("reply = %+v, want the handler's own", rep)
		}
	})
	t.Run("Reply value", func(t *testing.T) {
		if rep := ok("replyval"); rep.Status != 202 {
			t.Errorf("status = %d, want 202", rep.Status)
		}
	})
	t.Run("unencodable value", func(t *testing.T) {
		checkError(t, ok("badjson"), http.StatusInternalServerError, CodeHandlerError, "JSON")
	})
	t.Run("name from method and noun", func(t *testing.T) {
		req := &Request{Method: "Get", Noun: []string{"map"}}
		if rep := dispatch(context.Background(), r, req); rep.Status != http.StatusOK || req.Name != "get_map" {
			t.Errorf("status %d, name %q", rep.Status, req.Name)
		}
	})
	t.Run("explicit name wins", func(t *testing.T) {
		req := &Request{Method: "GET", Noun: []string{"missing"}, Name: "get_map"}
		if rep := dispatch(context.Background(), r, req); rep.Status != http.StatusOK {
			t.Errorf("status %d", rep.Status)
		}
	})
}

// TestDispatchClosesDiscardedBody: a reply body that comes with an error
// is nobody's, so Serve closes it.
func TestDispatchClosesDiscardedBody(t *testing.T) {
	body := newCloser("lost")
	r := NewRegistry()
	r.MustHandle("get_x", func(context.Context, *Request) (any, error) {
		return &Reply{Body: body}, errors.New("failed after all")
	})
	checkError(t, dispatch(context.Background(), r, &Request{Name: "get_x"}), http.StatusInternalServerError, CodeHandlerError, "failed after all")
	select {
	case <-body.closed:
	default:
		t.Error("the discarded reply body was not closed")
	}
}

// blockingRegistry has get_block, a handler that ignores its context and
// waits for the test to end, then returns a body that reports its close.
func blockingRegistry(t *testing.T) (r *Registry, entered chan struct{}, late *closer) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	entered = make(chan struct{})
	late = newCloser("too late")
	r = NewRegistry()
	r.MustHandle("get_block", func(context.Context, *Request) (any, error) {
		close(entered)
		<-release
		return &Reply{Body: late}, nil
	})
	return r, entered, late
}

// dispatch serves req through r.Serve, the path a node serves every event
// by, and returns the reply answer got as soon as it got it: at the
// deadline, while a handler that ignores its context runs on.
func dispatch(ctx context.Context, r *Registry, req *Request) *Reply {
	got := make(chan *Reply, 1)
	go r.Serve(ctx, req, func(rep *Reply) { got <- rep })
	return <-got
}

// dispatchAsync runs dispatch and fails the test if it does not return.
func dispatchAsync(t *testing.T, r *Registry, ctx context.Context) (rep *Reply, took time.Duration) {
	t.Helper()
	done := make(chan *Reply, 1)
	start := time.Now()
	go func() { done <- dispatch(ctx, r, &Request{Name: "get_block"}) }()
	select {
	case rep = <-done:
		return rep, time.Since(start)
	case <-time.After(waitLimit):
		t.Fatal("Serve did not answer at the deadline of a handler that ignores its context")
		return nil, 0
	}
}

func TestDispatchDeadline(t *testing.T) {
	r, entered, late := blockingRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rep, took := dispatchAsync(t, r, ctx)
	checkError(t, rep, http.StatusGatewayTimeout, CodeTimeout, "deadline")
	select {
	case <-entered:
	default:
		t.Error("the handler never ran")
	}
	// The deadline was set before the dispatch started: whether it had
	// passed is what tells, not how long the dispatch took.
	if _, ok := ctx.Deadline(); ok && ctx.Err() == nil {
		t.Errorf("Serve answered after %v, before the deadline", took)
	}
	select {
	case <-late.closed:
		t.Error("the late reply was closed before the handler returned it")
	default:
	}
}

// TestDispatchClosesLateReply: the reply a handler returns after the
// deadline is closed, since nobody will read it.
func TestDispatchClosesLateReply(t *testing.T) {
	release := make(chan struct{})
	late := newCloser("too late")
	r := NewRegistry()
	r.MustHandle("get_block", func(context.Context, *Request) (any, error) {
		<-release
		return &Reply{Body: late}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	rep, _ := dispatchAsync(t, r, ctx)
	checkError(t, rep, http.StatusGatewayTimeout, CodeTimeout, "deadline")
	close(release)
	select {
	case <-late.closed:
	case <-time.After(waitLimit):
		t.Fatal("the late reply was never closed")
	}
}

func TestDispatchCancel(t *testing.T) {
	t.Run("while the handler runs", func(t *testing.T) {
		r, entered, _ := blockingRegistry(t)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-entered
			cancel()
		}()
		rep, _ := dispatchAsync(t, r, ctx)
		checkError(t, rep, 499, CodeTunnelClosed, "went away")
	})
	t.Run("before dispatch", func(t *testing.T) {
		r, entered, _ := blockingRegistry(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rep, _ := dispatchAsync(t, r, ctx)
		checkError(t, rep, 499, CodeTunnelClosed, "went away")
		select {
		case <-entered:
			t.Error("the handler ran for a caller that had gone")
		default:
		}
	})
	t.Run("deadline passed before dispatch", func(t *testing.T) {
		r, _, _ := blockingRegistry(t)
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		rep, _ := dispatchAsync(t, r, ctx)
		checkError(t, rep, http.StatusGatewayTimeout, CodeTimeout, "deadline")
	})
}

// TestDispatchHandlerSeesDeadline: a handler that honours its context
// and returns its error gets the timeout reply too.
func TestDispatchHandlerSeesDeadline(t *testing.T) {
	r := NewRegistry()
	r.MustHandle("get_wait", func(ctx context.Context, _ *Request) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	checkError(t, dispatch(ctx, r, &Request{Name: "get_wait"}), http.StatusGatewayTimeout, CodeTimeout, "deadline")
}

// TestDispatchConcurrent: handlers run at once, and registering while
// serving is safe (run with -race).
func TestDispatchConcurrent(t *testing.T) {
	r := NewRegistry()
	Builtins(r, "n1")
	const n = 20
	done := make(chan error, n)
	for i := range n {
		go func() {
			name := fmt.Sprintf("get_h%d", i)
			if err := r.Handle(name, func(context.Context, *Request) (any, error) { return i, nil }); err != nil {
				done <- err
				return
			}
			rep := dispatch(context.Background(), r, &Request{Name: name})
			b, err := io.ReadAll(rep.Body)
			if err == nil && string(b) != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("%s answered %q", name, b)
			}
			done <- err
		}()
	}
	for range n {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func dispatchBuiltin(t *testing.T, req *Request) *Reply {
	t.Helper()
	r := NewRegistry()
	Builtins(r, "node-7")
	if req.Method == "" {
		req.Method = "GET"
	}
	return dispatch(context.Background(), r, req)
}

func TestBuiltinTime(t *testing.T) {
	before := time.Now()
	rep := dispatchBuiltin(t, &Request{Noun: []string{"time"}})
	if rep.Status != http.StatusOK || rep.ContentType != "application/json" {
		t.Fatalf("reply = %d %q", rep.Status, rep.ContentType)
	}
	var got struct {
		Time   string `json:"time"`
		UnixMs *int64 `json:"unix_ms"`
		Node   string `json:"node"`
	}
	body := readReply(t, rep)
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	ts, err := time.Parse(time.RFC3339Nano, got.Time)
	if err != nil {
		t.Errorf("time %q: %v", got.Time, err)
	}
	if got.Node != "node-7" || got.UnixMs == nil {
		t.Fatalf("body = %s", body)
	}
	if ts.UnixMilli() != *got.UnixMs || *got.UnixMs < before.UnixMilli() || *got.UnixMs > time.Now().UnixMilli() {
		t.Errorf("time %s and unix_ms %d disagree or are not now", got.Time, *got.UnixMs)
	}
}

func TestBuiltinCat(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"a"}, "a"},
		{[]string{"hello ", "world"}, "hello world"},
		{[]string{"a/b", "", "c"}, "a/bc"},
	}
	for _, tt := range tests {
		rep := dispatchBuiltin(t, &Request{Noun: []string{"cat"}, Args: tt.args})
		var got map[string]string
		if err := json.Unmarshal(readReply(t, rep), &got); err != nil {
			t.Fatal(err)
		}
		if rep.Status != http.StatusOK || len(got) != 1 || got["result"] != tt.want {
			t.Errorf("get_cat%q = %d %v, want {result: %q}", tt.args, rep.Status, got, tt.want)
		}
	}
}

func TestBuiltinEcho(t *testing.T) {
	tests := []struct{ ct, wantCT string }{
		{"text/plain; charset=utf-8", "text/plain; charset=utf-8"},
		{"", "application/octet-stream"},
	}
	for _, tt := range tests {
		body := strings.Repeat("echo ", 10000)
		rep := dispatchBuiltin(t, &Request{Method: "POST", Noun: []string{"echo"}, ContentType: tt.ct, Body: strings.NewReader(body)})
		if got := string(readReply(t, rep)); rep.Status != http.StatusOK || rep.ContentType != tt.wantCT || got != body {
			t.Errorf("post_echo (%q) = %d %q, %d bytes; want 200 %q, %d bytes", tt.ct, rep.Status, rep.ContentType, len(got), tt.wantCT, len(body))
		}
	}
	// Only POST echoes.
	checkError(t, dispatchBuiltin(t, &Request{Method: "GET", Noun: []string{"echo"}}), http.StatusNotFound, CodeNoHandler, "get_echo")
}

func TestBuiltinStream(t *testing.T) {
	start := time.Now()
	rep := dispatchBuiltin(t, &Request{Noun: []string{"stream"}, Args: []string{"3"}})
	if rep.Status != http.StatusOK || rep.ContentType != "text/plain; charset=utf-8" {
		t.Fatalf("reply = %d %q", rep.Status, rep.ContentType)
	}
	lines := strings.Split(strings.TrimSuffix(string(readReply(t, rep)), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3: %q", len(lines), lines)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %d of 3 at ", i+1); !strings.HasPrefix(l, want) {
			t.Errorf("line %d = %q, want prefix %q", i+1, l, want)
		}
	}
	// Two 100 ms intervals lie between the three lines.
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("3 lines took %v, want at least 200ms", took)
	}

	rep = dispatchBuiltin(t, &Request{Noun: []string{"stream"}, Args: []string{"0"}})
	if got := readReply(t, rep); rep.Status != http.StatusOK || len(got) != 0 {
		t.Errorf("get_stream//0 = %d %q, want 200 and no lines", rep.Status, got)
	}
}

func TestBuiltinStreamBadCount(t *testing.T) {
	for _, arg := range []string{"abc", "-1", "100001", "", "1e3", " 3"} {
		rep := dispatchBuiltin(t, &Request{Noun: []string{"stream"}, Args: []string{arg}})
		checkError(t, rep, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("%q", arg))
	}
}

func TestTicker(t *testing.T) {
	tk := newTicker(context.Background(), 4, time.Millisecond)
	defer tk.Close()
	b, err := io.ReadAll(tk)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 4 || !strings.HasPrefix(string(b), "line 1 of 4 at ") {
		t.Errorf("ticker wrote %d lines: %q", n, b)
	}
}

// TestTickerSmallReads: a reader with a small buffer gets whole lines
// too, a piece at a time.
func TestTickerSmallReads(t *testing.T) {
	want, err := io.ReadAll(newTicker(context.Background(), 3, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(iotest.OneByteReader(newTicker(context.Background(), 3, time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	// The lines hold the time: compare all but it.
	strip := func(b []byte) []string {
		var out []string
		for _, l := range strings.SplitAfter(string(b), "\n") {
			before, _, _ := strings.Cut(l, " at ")
			out = append(out, before+strings.Repeat("|", strings.Count(l, "\n")))
		}
		return out
	}
	if g, w := strip(got), strip(want); strings.Join(g, "") != strings.Join(w, "") {
		t.Errorf("one byte at a time: %q, want %q", g, w)
	}
}

// TestTickerCancel: the stream stops when the caller goes away, instead
// of running for up to 100000 intervals.
func TestTickerCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tk := newTicker(ctx, 100000, time.Hour)
	defer tk.Close()
	p := make([]byte, 100)
	if _, err := tk.Read(p); err != nil {
		t.Fatalf("first line: %v", err)
	}
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := tk.Read(p)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Read after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("ticker kept waiting after its context ended")
	}
}

// TestServe: Serve runs the handler in the caller's goroutine and answers
// once; at the deadline it answers 504 at once, returns only when the
// handler has, and closes the late reply.
func TestServe(t *testing.T) {
	r := NewRegistry()
	r.MustHandle("get_ok", func(context.Context, *Request) (any, error) { return map[string]int{"a": 1}, nil })
	r.MustHandle("get_panic", func(context.Context, *Request) (any, error) { panic("boom") })
	serve := func(ctx context.Context, name string) []*Reply {
		var got []*Reply
		r.Serve(ctx, &Request{Name: name}, func(rep *Reply) { got = append(got, rep) })
		return got
	}
	if got := serve(context.Background(), "get_ok"); len(got) != 1 || got[0].Status != http.StatusOK {
		t.Fatalf("get_ok answered %d times: %+v", len(got), got)
	}
	if got := serve(context.Background(), "get_panic"); len(got) != 1 {
		t.Fatalf("get_panic answered %d times", len(got))
	} else {
		checkError(t, got[0], http.StatusInternalServerError, CodeHandlerError, "panicked")
	}
	if got := serve(context.Background(), "get_none"); len(got) != 1 {
		t.Fatalf("get_none answered %d times", len(got))
	} else {
		checkError(t, got[0], http.StatusNotFound, CodeNoHandler, "get_none")
	}

	release, entered := make(chan struct{}), make(chan struct{})
	late := newCloser("too late")
	r.MustHandle("get_block", func(context.Context, *Request) (any, error) {
		close(entered)
		<-release
		return &Reply{Body: late}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	answered := make(chan *Reply, 2)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		r.Serve(ctx, &Request{Name: "get_block"}, func(rep *Reply) { answered <- rep })
	}()
	<-entered
	select {
	case rep := <-answered:
		checkError(t, rep, http.StatusGatewayTimeout, CodeTimeout, "deadline")
	case <-time.After(waitLimit):
		t.Fatal("no answer at the deadline")
	}
	select {
	case <-returned:
		t.Fatal("Serve returned while its handler still ran")
	default:
	}
	close(release)
	<-returned
	select {
	case <-late.closed:
	default:
		t.Error("the late reply was not closed")
	}
	if len(answered) != 0 {
		t.Error("answered twice")
	}
}
