package faultproxy

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer is a TCP echo server on loopback that counts its connections.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int32
	open     atomic.Int32
	ended    chan struct{} // one value each time a connection's peer ends it
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln, ended: make(chan struct{}, 100)}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.open.Add(1)
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
				e.open.Add(-1)
				e.ended <- struct{}{}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			_ = c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg on c and reads as many bytes back.
func roundTrip(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo differs: sent %d bytes, sha %x; got sha %x", len(msg), sha256.Sum256(msg), sha256.Sum256(got))
	}
}

// wantSilence checks that nothing, not even an end of stream, arrives on c
// for a while: what a black-holed connection looks like from its end.
func wantSilence(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	n, err := c.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read %d bytes, err %v; want nothing at all", what, n, err)
	}
}

// waitFor polls cond (state with no event to wait on) for up to 10 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestForward(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())

	a := dial(t, p.Addr())
	b := dial(t, p.Addr())
	roundTrip(t, a, []byte("hello"))
	roundTrip(t, b, []byte("world"))
	roundTrip(t, a, randomBytes(t, 1<<20))
	if n := p.Conns(); n != 2 {
		t.Errorf("Conns() = %d, want 2", n)
	}
	if n := e.accepted.Load(); n != 2 {
		t.Errorf("target accepted %d connections, want 2", n)
	}

	// A half-close crosses the proxy: the echo server sees the end of
	// stream, closes, and that end comes back.
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	<-e.ended
	_ = a.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := a.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after half-close: read %d, %v; want EOF", n, err)
	}
	waitFor(t, func() bool { return p.Conns() == 1 }, "the closed connection to be forgotten")
	roundTrip(t, b, []byte("still here"))
}

func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := newProxy(t, addr)
	c := dial(t, p.Addr())
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a proxy whose target is down", n)
	}
}

func TestCut(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	a := dial(t, p.Addr())
	b := dial(t, p.Addr())
	roundTrip(t, a, []byte("a"))
	roundTrip(t, b, []byte("b"))

	p.Cut()
	if n := p.Conns(); n != 0 {
		t.Errorf("Conns() after Cut = %d, want 0", n)
	}
	for _, c := range []net.Conn{a, b} {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("client side after Cut: read %d, %v; want the connection closed", n, err)
		}
	}
	// The target's side is closed too.
	<-e.ended
	<-e.ended

	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("after the cut"))
}

func TestBlackHole(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	a := dial(t, p.Addr())
	roundTrip(t, a, []byte("before"))

	p.BlackHole(true)
	// Writes still succeed (the proxy reads and drops), nothing comes back,
	// and no end of stream either.
	if _, err := a.Write(randomBytes(t, 256<<10)); err != nil {
		t.Fatalf("write into the black hole: %v", err)
	}
	wantSilence(t, a, "black-holed connection")

	// A connection made during the black hole connects, but never reaches
	// the target.
	b := dial(t, p.Addr())
	if _, err := b.Write([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	wantSilence(t, b, "connection made during the black hole")
	if n := e.accepted.Load(); n != 1 {
		t.Errorf("target accepted %d connections, want 1", n)
	}
	if n := p.Conns(); n != 2 {
		t.Errorf("Conns() = %d, want 2 (black-holed ones count)", n)
	}

	p.BlackHole(false)
	// The old connections stay dead; new ones work.
	if _, err := a.Write([]byte("hello?")); err != nil {
		t.Fatal(err)
	}
	wantSilence(t, a, "black-holed connection after BlackHole(false)")
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("after"))

	// The end of a black-holed connection closing is not passed on: the
	// target's side stays open until the proxy closes.
	open := e.open.Load()
	_ = a.Close()
	_ = b.Close()
	waitFor(t, func() bool { return p.Conns() == 2 }, "b, whose only end closed, to be forgotten")
	if e.open.Load() != open {
		t.Errorf("the target saw a black-holed connection end")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p.Conns() != 0 {
		t.Errorf("Conns() after Close = %d", p.Conns())
	}
	waitFor(t, func() bool { return e.open.Load() == 0 }, "Close to close the target's side")
}

func TestDelay(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	const d = 50 * time.Millisecond
	p.Delay(d)
	c := dial(t, p.Addr())
	for range 3 {
		start := time.Now()
		roundTrip(t, c, []byte("ping"))
		// Once to the echo server, once back.
		if rtt := time.Since(start); rtt < 2*d {
			t.Errorf("round trip %v with a delay of %v each way, want at least %v", rtt, d, 2*d)
		}
	}
	// Latency, not a throughput limit: a burst of chunks is delayed once,
	// not once per chunk (64 chunks x 2 x 50 ms would be 6.4 s).
	start := time.Now()
	roundTrip(t, c, randomBytes(t, 2<<20))
	if el := time.Since(start); el < 2*d || el > 5*time.Second {
		t.Errorf("2 MiB round trip took %v", el)
	}
	p.Delay(0)
	roundTrip(t, c, []byte("no delay"))
}

func TestThrottle(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	const rate = 1 << 20 // bytes per second, each way
	p.Throttle(rate)
	c := dial(t, p.Addr())
	msg := randomBytes(t, 512<<10)
	start := time.Now()
	roundTrip(t, c, msg) // both directions at once: about 0.5 s
	el := time.Since(start)
	if min := time.Duration(float64(len(msg)-rate/50) / rate * float64(time.Second)); el < min {
		t.Errorf("512 KiB at %d B/s took %v, want at least %v", rate, el, min)
	}
	if el > 10*time.Second {
		t.Errorf("512 KiB at %d B/s took %v", rate, el)
	}
	t.Logf("512 KiB echo at 1 MiB/s each way: %v", el)
	p.Throttle(0)
	start = time.Now()
	roundTrip(t, c, msg)
	if el2 := time.Since(start); el2 >= el {
		t.Errorf("unthrottled echo took %v, throttled %v", el2, el)
	}
}

// TestCloseLeavesNothing: Close ends every goroutine, with connections
// forwarding, delayed, black-holed and blocked on a peer that does not
// read.
func TestCloseLeavesNothing(t *testing.T) {
	e := startEcho(t)
	before := runtime.NumGoroutine()
	p, err := New(e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := dial(t, p.Addr())
	roundTrip(t, a, []byte("x"))
	p.Delay(time.Hour)
	if _, err := a.Write([]byte("held back")); err != nil {
		t.Fatal(err)
	}
	p.Delay(0)
	b := dial(t, p.Addr())
	roundTrip(t, b, []byte("y"))
	// b's echo comes back to a reader that never reads: the proxy's
	// writer towards b ends up blocked.
	go func() { _, _ = b.Write(randomBytes(t, 8<<20)) }()
	p.BlackHole(true)
	h := dial(t, p.Addr())
	_, _ = h.Write([]byte("z"))

	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if p.Conns() != 0 {
		t.Errorf("Conns() after Close = %d", p.Conns())
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The proxy's own goroutines are gone at once; the echo server's end
	// when it sees its connections closed.
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before+1 }, "goroutines to end")
}
