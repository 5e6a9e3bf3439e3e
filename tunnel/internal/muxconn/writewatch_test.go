package muxconn

import (
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// plainConn hides a connection's SyscallConn: writeWatch cannot ask its
// send queue, as on an OS that does not tell.
type plainConn struct{ net.Conn }

// TestWriteWatch: a write to a peer that reads nothing fails with
// ErrWriteStalled, after about the timeout where the OS says how much of
// the send queue is acknowledged (Linux), after stalledElsewhere times it
// elsewhere; a write to a peer that reads slowly (16 KiB every 20 ms, far
// slower than the kernel's wake-ups at its send buffer's size) goes
// through, however long it takes.
func TestWriteWatch(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for _, tc := range []struct {
		name     string
		reads    bool
		hideOS   bool
		size     int
		wantErr  bool
		maxAfter time.Duration // from the last byte taken to the error
	}{
		{"reader stops", false, false, 64 << 20, true, 3 * timeout},
		{"reader stops, OS not asked", false, true, 64 << 20, true, (stalledElsewhere + 2) * timeout},
		{"slow reader", true, false, 3 << 20, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.hideOS && runtime.GOOS != "linux" && tc.wantErr {
				t.Skip("the send queue is asked on Linux only")
			}
			srv, cli := loopbackTCP(t)
			_ = srv.(*net.TCPConn).SetWriteBuffer(64 << 10)
			_ = cli.(*net.TCPConn).SetReadBuffer(16 << 10)
			w := &writeWatch{Conn: srv, raw: srv}
			if tc.hideOS {
				w.raw = plainConn{srv}
			}
			w.timeout.Store(int64(timeout))
			read := make(chan int, 1)
			go func() {
				n := 0
				if tc.reads {
					buf := make([]byte, 16<<10)
					for n < tc.size {
						k, err := io.ReadFull(cli, buf)
						n += k
						if err != nil {
							break
						}
						time.Sleep(20 * time.Millisecond) // the reader's pace, not a wait for anything
					}
				}
				read <- n
			}()
			start := time.Now()
			n, err := w.Write(make([]byte, tc.size))
			took := time.Since(start)
			t.Logf("wrote %d bytes in %v: %v", n, took.Round(time.Millisecond), err)
			if !tc.wantErr {
				if err != nil || n != tc.size {
					t.Fatalf("wrote %d of %d: %v", n, tc.size, err)
				}
				if got := <-read; got != tc.size {
					t.Errorf("the reader got %d of %d bytes", got, tc.size)
				}
				return
			}
			if !errors.Is(err, ErrWriteStalled) {
				t.Fatalf("write to a peer that reads nothing: %v, want ErrWriteStalled", err)
			}
			// The kernel takes what fits in the buffers at once; from
			// then on nothing moves.
			if took > tc.maxAfter+time.Second {
				t.Errorf("stall noticed after %v, want about %v", took, tc.maxAfter)
			}
		})
	}
}

// TestSendQueued: the unacknowledged bytes of a send queue, as Linux
// tells them, grow while the peer reads nothing and go back to zero
// once it has read everything.
func TestSendQueued(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	srv, cli := loopbackTCP(t)
	_ = cli.(*net.TCPConn).SetReadBuffer(16 << 10)
	_ = srv.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, _ := srv.Write(make([]byte, 8<<20))
	q, ok := sendQueued(srv)
	if !ok || q <= 0 {
		t.Fatalf("sendQueued = %d, %v after %d bytes written to a peer that reads nothing", q, ok, n)
	}
	if _, err := io.ReadFull(cli, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queue to empty", func() bool { q, _ := sendQueued(srv); return q == 0 })
	if _, ok := sendQueued(plainConn{srv}); ok {
		t.Error("sendQueued answered for a connection with no SyscallConn")
	}
}

// TestPingsUnanswered: within the rate (MaxPings a second), a peer may
// have at most MaxPings pings unanswered: its 65th ends the session
// (ErrPingsUnanswered); answers written make room again.
func TestPingsUnanswered(t *testing.T) {
	ping := func() []byte { return flagged(typePing, flagSYN, 1) }
	for _, tc := range []struct {
		name     string
		answered int
		wantErr  error
	}{{"none answered", 0, ErrPingsUnanswered}, {"ten answered", 10, nil}} {
		t.Run(tc.name, func(t *testing.T) {
			var starts int
			g := opened(&starts)
			for range 40 {
				if err := g.scan(ping()); err != nil {
					t.Fatal(err)
				}
			}
			for range tc.answered {
				g.pingAnswered()
			}
			g.pingSince = time.Now().Add(-2 * time.Second) // a new second: under the rate
			var err error
			for range 30 {
				if err = g.scan(ping()); err != nil {
					break
				}
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("70 pings, %d answered: %v, want %v", tc.answered, err, tc.wantErr)
			}
		})
	}
}
