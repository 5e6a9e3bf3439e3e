package muxconn

import (
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// TestRecvLayoutFound: the fields of yamux.Stream that RecvReader needs
// are where it looks for them; with another yamux, this fails.
func TestRecvLayoutFound(t *testing.T) {
	if !RecvCompacts() {
		t.Fatal("yamux.Stream has no recvWindow uint32, recvBuf *bytes.Buffer and recvLock sync.Mutex: RecvReader cannot bound receive buffers (see recvbuf.go)")
	}
}

// TestRecvBufStaysAtWindow: the slowest reader there is (it reads only
// once the sender has filled the whole window) reads 12 MiB sent in
// 48 KiB writes. Read plainly, yamux's buffer grows past the window (to
// about twice it: the assumption recvbuf.go rests on); through a
// RecvReader it stays at window + 8 KiB from its first read on, and the
// bytes arrive whole and in order.
func TestRecvBufStaysAtWindow(t *testing.T) {
	const (
		window = 1 << 20
		total  = 12 << 20
		piece  = 48 << 10
	)
	for _, tc := range []struct {
		name    string
		compact bool
	}{{"plain yamux", false}, {"RecvReader", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srvSt, sent := sentStream(t, window, total, 1, func() int { return piece })
			rr := NewRecvReader(srvSt, window)
			var r io.Reader = srvSt
			if tc.compact {
				r = rr
			}
			buf := make([]byte, 64<<10)
			got, maxCap := 0, 0
			for got < total {
				// The slowest reader: wait until the sender has sent all it
				// may, or all there is.
				waitFor(t, "the window to fill", func() bool {
					m, _, rw := rr.state()
					return rw == 0 || got+m == total
				})
				n, err := r.Read(buf)
				for i := range n {
					if buf[i] != patternByte(1, got+i) {
						t.Fatalf("byte %d: got %#x, want %#x", got+i, buf[i], patternByte(1, got+i))
					}
				}
				got += n
				if err != nil {
					t.Fatalf("read after %d bytes: %v", got, err)
				}
				if _, c, _ := rr.state(); got > window && c > maxCap {
					maxCap = c // after the first window: the buffer it keeps
				}
			}
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: receive buffer at most %d KiB (window %d KiB)", tc.name, maxCap>>10, window>>10)
			switch {
			case tc.compact && maxCap > window+recvSlack:
				t.Errorf("receive buffer reached %d bytes, want at most window + %d = %d", maxCap, recvSlack, window+recvSlack)
			case !tc.compact && maxCap <= window+2*recvSlack:
				t.Errorf("plain yamux kept its buffer at %d bytes (window %d): bytes.Buffer no longer doubles, and RecvReader may be needless (recvbuf.go)", maxCap, window)
			}
		})
	}
}

// TestRecvReaderRandomised: writes of random sizes (1 byte to 200 KiB)
// read through a RecvReader in reads of random sizes, some at once and
// some only once the window is full, over a real session: every byte
// arrives in order, and once the stream has read a window its buffer
// never holds more than window + 8 KiB (checked before and after each
// read). Seeds are fixed, so a failure repeats.
func TestRecvReaderRandomised(t *testing.T) {
	const window = 1 << 20
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 14))
			total := 6<<20 + rng.IntN(1<<20)
			sizes := rand.New(rand.NewPCG(seed, 41))
			srvSt, sent := sentStream(t, window, total, 2, func() int { return 1 + sizes.IntN(200<<10) })
			rr := NewRecvReader(srvSt, window)
			buf := make([]byte, 128<<10)
			got := 0
			bound := func(when string) {
				if _, c, _ := rr.state(); got >= bulkRead+len(buf) && c > window+recvSlack {
					t.Fatalf("%s, after %d bytes: receive buffer of %d bytes, over window + %d", when, got, c, recvSlack)
				}
			}
			for got < total {
				if rng.IntN(3) == 0 {
					waitFor(t, "the window to fill", func() bool {
						m, _, rw := rr.state()
						return rw == 0 || got+m == total
					})
				}
				bound("before a read")
				n, err := rr.Read(buf[:1+rng.IntN(len(buf))])
				for i := range n {
					if buf[i] != patternByte(2, got+i) {
						t.Fatalf("byte %d: got %#x, want %#x", got+i, buf[i], patternByte(2, got+i))
					}
				}
				got += n
				if err != nil {
					t.Fatalf("read after %d of %d bytes: %v", got, total, err)
				}
				bound("after a read")
			}
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// sentStream opens a stream from the client of a new pair whose server
// has the receive window window, writes total bytes of pattern s
// (patternByte) on it in the pieces size gives, and returns the server's
// end; sent gets the writer's result.
func sentStream(t *testing.T, window, total, s int, size func() int) (srvSt *yamux.Stream, sent <-chan error) {
	t.Helper()
	p := newPair(t, func(c *yamux.Config) { c.MaxStreamWindowSize = uint32(window) })
	accepted := make(chan *yamux.Stream, 1)
	go p.srv.Serve(acceptor{serve: func(st *yamux.Stream) { accepted <- st }})
	st, err := p.cliSess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for off := 0; off < total; {
			buf := make([]byte, min(total-off, size()))
			for i := range buf {
				buf[i] = patternByte(s, off+i)
			}
			if _, err := st.Write(buf); err != nil {
				done <- err
				return
			}
			off += len(buf)
		}
		done <- st.Close()
	}()
	select {
	case srvSt = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no stream accepted")
	}
	t.Cleanup(func() { _ = srvSt.Close() })
	return srvSt, done
}
