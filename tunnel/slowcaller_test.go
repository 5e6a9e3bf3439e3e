package tunnel_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// TestSlowCaller: a caller that takes its reply slowly (a small socket
// buffer, a pause of 300 ms after each 64 KiB, longer than the front
// end's 100 ms for a slow write) is found slow, its reply then goes out
// as it comes through small buffers (a log line says so), and every byte
// of a 3 MiB reply arrives, in order, through that path; so does the
// same reply to a caller that reads at once (the gathered path).
func TestSlowCaller(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	s := startServer(t, p, nil)
	c := startClient(t, p, "c1", s.tunnelAddr, func(c *tunnel.Config) { c.Logger = logs.logger() })
	waitConnected(t, c, s)
	const size = 3 << 20
	s.reg.MustHandle("get_big", func(context.Context, *handlers.Request) (any, error) {
		return &handlers.Reply{Status: http.StatusOK, ContentType: "application/octet-stream",
			Body: io.LimitReader(&patternSource{}, size)}, nil
	})
	addr := c.httpURL[len("http://"):]
	for _, tc := range []struct {
		name  string
		pause time.Duration
	}{{"fast", 0}, {"slow", 300 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.pause > 0 {
				_ = conn.(*net.TCPConn).SetReadBuffer(16 << 10)
			}
			_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
			id := "slow-caller-" + tc.name
			fmt.Fprintf(conn, "GET /server/big HTTP/1.1\r\nHost: %s\r\nX-Request-Id: %s\r\n\r\n", addr, id)
			resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4<<10), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			buf := make([]byte, 64<<10)
			var check patternSource
			n := 0
			for {
				k, err := io.ReadFull(resp.Body, buf)
				if bad := check.verify(buf[:k]); bad >= 0 {
					t.Fatalf("byte %d: not what the handler sent", n+bad)
				}
				n += k
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d bytes: %v", n, err)
				}
				if tc.pause > 0 && n < size/2 {
					time.Sleep(tc.pause) // the caller being slow, not a wait for anything
				}
			}
			if n != size {
				t.Fatalf("got %d bytes, want %d", n, size)
			}
			if tc.pause > 0 {
				logs.wait(t, "the caller is slow", id)
			} else if l := logs.all(); containsAll(l, []string{"the caller is slow", id}) {
				t.Errorf("a caller that reads at once was taken for slow:\n%s", l)
			}
		})
	}
}

// patternSource yields a pattern with no short period; verify checks
// that p continues it, returning the index of the first byte that does
// not, or -1.
type patternSource struct{ i int }

func (s *patternSource) Read(p []byte) (int, error) {
	for j := range p {
		p[j] = byte(uint32(s.i+j) * 2654435761 >> 13)
	}
	s.i += len(p)
	return len(p), nil
}

func (s *patternSource) verify(p []byte) int {
	for j, b := range p {
		if b != byte(uint32(s.i+j)*2654435761>>13) {
			return j
		}
	}
	s.i += len(p)
	return -1
}
