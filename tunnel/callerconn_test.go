package tunnel

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestProgressConnDeadline: a 2 MiB write to a reader that takes 16 KiB
// every 20 ms (about 0.8 MB/s: 2.6 s in all) under a 250 ms write
// deadline goes through on a progressConn, and fails on a plain
// connection; a reader that stops reading fails the write within about
// the deadline either way.
func TestProgressConnDeadline(t *testing.T) {
	const size, idle = 2 << 20, 250 * time.Millisecond
	for _, tc := range []struct {
		name     string
		progress bool
		stop     bool
		wantErr  bool
	}{
		{"plain, steady reader", false, false, true},
		{"progress, steady reader", true, false, false},
		{"progress, reader stops", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					accepted <- c
				}
				close(accepted)
			}()
			rd, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			_ = rd.(*net.TCPConn).SetReadBuffer(16 << 10)
			raw := <-accepted
			if raw == nil {
				t.Fatal("no connection accepted")
			}
			defer raw.Close()
			_ = raw.(*net.TCPConn).SetWriteBuffer(16 << 10)
			var w net.Conn = raw
			if tc.progress {
				w = &progressConn{TCPConn: raw.(*net.TCPConn)}
			}
			readDone := make(chan int64, 1)
			go func() {
				var n int64
				buf := make([]byte, 16<<10)
				for {
					if tc.stop && n >= 256<<10 {
						break // stops reading, connection left open
					}
					k, err := io.ReadFull(rd, buf)
					n += int64(k)
					if err != nil {
						break
					}
					time.Sleep(20 * time.Millisecond) // the reader's pace, not a wait for anything
				}
				readDone <- n
			}()
			_ = w.SetWriteDeadline(time.Now().Add(idle))
			start := time.Now()
			n, err := w.Write(make([]byte, size))
			took := time.Since(start)
			t.Logf("wrote %d of %d bytes in %v: %v", n, size, took.Round(time.Millisecond), err)
			if tc.wantErr {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("write: %v, want a deadline error", err)
				}
				if tc.stop {
					// It stopped after 256 KiB, which took about 0.3 s,
					// and the buffers hold at most about 100 KiB more: the
					// write fails at most 1.25 x 250 ms after the last byte
					// went out, well within 1 s of the stop.
					if took > 1300*time.Millisecond {
						t.Errorf("a reader that stopped failed the write only after %v", took)
					}
				}
				return
			}
			if err != nil || n != size {
				t.Fatalf("wrote %d of %d: %v", n, size, err)
			}
			_ = w.Close()
			if got := <-readDone; got != size {
				t.Errorf("reader got %d bytes, want %d", got, size)
			}
		})
	}
}
