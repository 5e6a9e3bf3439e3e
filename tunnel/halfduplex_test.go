package tunnel_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// TestHalfDuplexCaller: a caller that sends a big body to post_echo and
// never reads the echo (Python requests and urllib send the whole body
// first) stops the reply's writes; after BodyIdleTimeout without progress
// its event ends with a log line, its connection is closed, and the
// goroutines and the stream are freed: the next call works.
func TestHalfDuplexCaller(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	logs := newLogCapture()
	const idle = 300 * time.Millisecond
	c := startClient(t, p, "c1", s.tunnelAddr, func(cfg *tunnel.Config) {
		cfg.BodyIdleTimeout = idle
		cfg.Logger = logs.logger()
	})
	waitConnected(t, c, s)
	if r := do(t, "POST", c.httpURL+"/server/echo", strings.NewReader("warm up")); r.status != 200 {
		t.Fatalf("echo before: %d %s", r.status, r.body)
	}
	base := runtime.NumGoroutine()
	addr := strings.TrimPrefix(c.httpURL, "http://")

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 1 << 30 // far more than every buffer on the way holds
	fmt.Fprintf(conn, "POST /server/echo HTTP/1.1\r\nHost: %s\r\nX-Request-Id: halfduplex-1\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", addr, size)
	type end struct {
		sent      int64
		lastStart time.Time // when the last write began
		err       error
	}
	ended := make(chan end, 1)
	go func() { // sends, never reads
		piece := make([]byte, 64<<10)
		var e end
		for e.sent < size {
			e.lastStart = time.Now()
			_ = conn.SetWriteDeadline(e.lastStart.Add(30 * time.Second))
			n, err := conn.Write(piece)
			e.sent += int64(n)
			if err != nil {
				e.err = err
				break
			}
		}
		ended <- e
	}()
	var e end
	select {
	case e = <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("a caller that does not read its reply still holds its event after 10 s")
	}
	stuck := time.Since(e.lastStart)
	t.Logf("sent %d bytes; the front end closed the connection %v after the caller's last write began (%v)", e.sent, stuck, e.err)
	if e.err == nil {
		t.Fatalf("the whole %d bytes went through without the caller reading", size)
	}
	if bound := idle + 2*time.Second; stuck > bound {
		t.Errorf("the event ended %v after the caller stopped, want within %v", stuck, bound)
	}
	t.Log(logs.wait(t, "WARN", "stopped reading", "req=halfduplex-1", "for=300ms"))
	conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitFor(t, ctx, func() bool { return runtime.NumGoroutine() <= base+5 }, "the goroutines to be freed")
	if r := do(t, "POST", c.httpURL+"/server/echo", strings.NewReader("after")); r.status != 200 || r.body != "after" {
		t.Errorf("echo after: %d %q", r.status, r.body)
	}
}

// TestReplyDeadlineNotCut: the reply's write deadline bounds a write that
// makes no progress, never a whole reply: a reply idle for longer than
// BodyIdleTimeout because its handler sends nothing, and a big reply to a
// caller that reads slowly but steadily, both arrive whole.
func TestReplyDeadlineNotCut(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	const idle = 300 * time.Millisecond
	s.reg.MustHandle("get_pause", func(_ context.Context, _ *handlers.Request) (any, error) {
		pr, pw := io.Pipe()
		go func() {
			_, _ = io.WriteString(pw, "a\n")
			time.Sleep(3 * idle) // the idleness under test
			_, _ = io.WriteString(pw, "b\n")
			pw.Close()
		}()
		return &handlers.Reply{Status: http.StatusOK, ContentType: "text/plain", Body: pr}, nil
	})
	const big = 24 << 20
	s.reg.MustHandle("get_big", func(_ context.Context, _ *handlers.Request) (any, error) {
		return &handlers.Reply{Status: http.StatusOK, ContentType: "application/octet-stream",
			Body: io.LimitReader(zeros{}, big)}, nil
	})
	logs := newLogCapture()
	c := startClient(t, p, "c1", s.tunnelAddr, func(cfg *tunnel.Config) {
		cfg.BodyIdleTimeout = idle
		cfg.Logger = logs.logger()
	})
	waitConnected(t, c, s)

	t.Run("idle handler", func(t *testing.T) {
		if r := get(t, c.httpURL+"/server/pause"); r.status != 200 || r.body != "a\nb\n" {
			t.Errorf("paused reply: %d %q", r.status, r.body)
		}
	})
	t.Run("slow reader", func(t *testing.T) {
		resp, err := http.Get(c.httpURL + "/server/big")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		start := time.Now()
		var n int64
		buf := make([]byte, 512<<10)
		for {
			m, err := io.ReadFull(resp.Body, buf)
			n += int64(m)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				t.Fatalf("after %d bytes: %v", n, err)
			}
			time.Sleep(50 * time.Millisecond) // a slow reader, under test
		}
		t.Logf("%d bytes in %v", n, time.Since(start))
		if n != big {
			t.Errorf("read %d bytes, want %d", n, big)
		}
	})
	if l := logs.all(); strings.Contains(l, "stopped reading") {
		t.Errorf("a reply was cut:\n%s", l)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
