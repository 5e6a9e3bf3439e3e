package muxconn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// maxWritesPerEvent is what a small event (a 100-byte request, a 100-byte
// reply) may cost in socket writes, both ends together, at concurrency
// 1. Merged, it is 2 (the SYN with the request, the ACK with the reply,
// each FIN with the next event's first frame), a little more when a FIN
// waits out holdFor; unmerged, 8 (SYN, header, body, FIN on each side).
const maxWritesPerEvent = 3.0

// TestWritesPerSmallEvent asserts the gain write merging exists for: the
// socket writes of small events, one after the other, through real yamux
// sessions over TLS.
func TestWritesPerSmallEvent(t *testing.T) {
	p := newPair(t, nil)
	req, rep := bytes.Repeat([]byte("q"), 100), bytes.Repeat([]byte("r"), 100)
	// The caller may read a reply before the server's Write of it has
	// returned: the test waits for every handler before the pair closes.
	var served sync.WaitGroup
	defer served.Wait()
	p.srv.Serve(acceptor{serve: func(st *yamux.Stream) {
		served.Add(1)
		defer served.Done()
		defer st.Close()
		buf := make([]byte, len(req))
		if _, err := io.ReadFull(st, buf); err != nil {
			t.Errorf("server read: %v", err)
			return
		}
		if _, err := st.Write(rep); err != nil {
			t.Errorf("server write: %v", err)
		}
	}})
	event := func() {
		st, err := p.cliSess.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		_ = st.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := st.Write(req); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(rep))
		if _, err := io.ReadFull(st, buf); err != nil {
			t.Fatal(err)
		}
	}
	event() // the first stream of a session costs no more, but warm up
	const n = 200
	before := p.srvTap.writes.Load() + p.cliTap.writes.Load()
	for range n {
		event()
	}
	writes := float64(p.srvTap.writes.Load()+p.cliTap.writes.Load()-before) / n
	t.Logf("%.2f socket writes per small event, both ends (bound %.1f; 8 unmerged)", writes, maxWritesPerEvent)
	if writes > maxWritesPerEvent {
		t.Errorf("%.2f socket writes per small event, want at most %.1f: write merging no longer works (see the package comment's assumptions)", writes, maxWritesPerEvent)
	}
}

// echoServer serves every stream by echoing it to its end.
func echoServer(t testing.TB, c *Conn) {
	c.Serve(acceptor{serve: func(st *yamux.Stream) {
		defer st.Close()
		_ = st.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(st, st); err != nil {
			t.Errorf("echo stream %d: %v", st.StreamID(), err)
		}
	}})
}

// patternByte is byte i of stream s's pattern: no short period, so that
// a byte out of place or missing shows.
func patternByte(s, i int) byte { return byte(uint32(i)*2654435761>>13) + byte(s*31) }

// chunkSize maps two fuzz bytes to a write size that exercises each path
// of coalesceConn.writeHeld: small (merged with its header), over a TLS
// record (batched), over maxCoalesce (header, then body).
func chunkSize(a, b byte) int {
	n := int(a&0x3f)<<8 | int(b)
	switch a >> 6 {
	case 0:
		return n%64 + 1
	case 1:
		return n%(4<<10) + 1
	case 2:
		return n%(40<<10) + 1
	}
	return maxCoalesce - (8 << 10) + n%(64<<10) // around maxCoalesce
}

// FuzzSessionBytes writes streams of fuzz-chosen chunk sizes at once
// through one real session (echoed back by the other end) and checks that
// every byte arrives, in order, on its own stream, both ways.
func FuzzSessionBytes(f *testing.F) {
	f.Add([]byte{0, 0, 10})
	f.Add([]byte{3, 0x40, 0x10, 0x80, 0x20, 0xc0, 0x01, 0, 5, 0xff, 0xff})
	f.Add([]byte{1, 0xc0, 0, 0xc0, 0xff, 0x81, 0x02, 0x41, 0x03})
	f.Add([]byte{2, 0x7f, 0xff, 0x3f, 0xff, 0xbf, 0xff, 0x00, 0x01})
	p := newPair(f, nil)
	echoServer(f, p.srv)
	f.Fuzz(func(t *testing.T, plan []byte) {
		if len(plan) < 3 {
			return
		}
		streams := int(plan[0])%4 + 1
		var sizes []int
		total := 0
		for i := 1; i+1 < len(plan) && total < 1<<20; i += 2 {
			n := chunkSize(plan[i], plan[i+1])
			sizes = append(sizes, n)
			total += n
		}
		var wg sync.WaitGroup
		for s := range streams {
			var mine []int // every streams-th chunk, from s
			for i := s; i < len(sizes); i += streams {
				mine = append(mine, sizes[i])
			}
			st, err := p.cliSess.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			_ = st.SetDeadline(time.Now().Add(10 * time.Second))
			wg.Add(2)
			go func() {
				defer wg.Done()
				off := 0
				for _, n := range mine {
					buf := make([]byte, n)
					for i := range buf {
						buf[i] = patternByte(s, off+i)
					}
					if _, err := st.Write(buf); err != nil {
						t.Errorf("stream %d: write: %v", s, err)
						return
					}
					off += n
				}
				_ = st.Close() // half-close: the echo ends
			}()
			go func() {
				defer wg.Done()
				want := 0
				for _, n := range mine {
					want += n
				}
				got, buf := 0, make([]byte, 32<<10)
				for {
					k, err := st.Read(buf)
					for i := range k {
						if buf[i] != patternByte(s, got+i) {
							t.Errorf("stream %d: byte %d is %#x, want %#x", s, got+i, buf[i], patternByte(s, got+i))
							return
						}
					}
					got += k
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Errorf("stream %d: read after %d bytes: %v", s, got, err)
						return
					}
				}
				if got != want {
					t.Errorf("stream %d: %d bytes back, want %d", s, got, want)
				}
			}()
		}
		wg.Wait()
	})
}

// counted is an acceptor that counts the streams it served.
func counted(served *atomic.Int64, admit func() bool) acceptor {
	return acceptor{admit: admit, serve: func(st *yamux.Stream) {
		served.Add(1)
		_ = st.Close()
	}}
}

// TestAcceptorsAfterGoAway: after this node's go-away, the streams the
// peer opens (it has not read the go-away yet) are refused by yamux (a
// reset, assumption 8); the gate's count goes back to zero and no
// acceptor is left waiting.
func TestAcceptorsAfterGoAway(t *testing.T) {
	p := newPair(t, nil)
	var served atomic.Int64
	p.srv.Serve(counted(&served, nil))
	st, err := p.cliSess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = st.Write([]byte("x"))
	waitFor(t, "the first stream served", func() bool { return served.Load() == 1 })
	_ = st.Close()

	// The client reads nothing more until unpaused.
	p.cliTap.pause()
	if err := p.srvSess.GoAway(); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var opened []*yamux.Stream
	for range n {
		st, err := p.cliSess.OpenStream()
		if err != nil {
			t.Fatalf("open after the go-away, unread: %v", err)
		}
		_ = st.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := st.Write([]byte("late")); err != nil {
			t.Fatal(err)
		}
		opened = append(opened, st)
	}
	waitFor(t, "the late streams refused", func() bool {
		p.srv.g.mu.Lock()
		defer p.srv.g.mu.Unlock()
		return p.srv.g.refusals == n
	})
	waitFor(t, "the count back to zero with no acceptor", func() bool {
		pending, running := p.srv.g.counts()
		return pending == 0 && !running && goroutinesIn("(*gate).acceptLoop") == 0
	})
	if got := served.Load(); got != 1 {
		t.Errorf("%d streams served, want 1 (none after the go-away)", got)
	}
	p.cliTap.unpause()
	if _, err := opened[0].Read(make([]byte, 1)); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Errorf("a late stream reads %v, want %v", err, yamux.ErrConnectionReset)
	}
}

// TestAcceptorsBacklogFull: streams beyond yamux's accept backlog are
// refused (a reset); the count holds those queued, which are all served,
// and then no acceptor is left.
func TestAcceptorsBacklogFull(t *testing.T) {
	const backlog, n = 2, 6
	p := newPair(t, func(c *yamux.Config) { c.AcceptBacklog = backlog })
	var served atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	p.srv.Serve(counted(&served, func() bool {
		once.Do(func() { <-release }) // the first acceptor holds off
		return true
	}))
	for range n {
		st, err := p.cliSess.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		defer st.Close()
	}
	waitFor(t, fmt.Sprintf("%d streams refused and %d queued", n-backlog, backlog), func() bool {
		p.srv.g.mu.Lock()
		defer p.srv.g.mu.Unlock()
		return p.srv.g.refusals == n-backlog && p.srv.g.pending == backlog
	})
	close(release)
	waitFor(t, "the queued streams served, no acceptor left", func() bool {
		pending, running := p.srv.g.counts()
		return served.Load() == backlog && pending == 0 && !running && goroutinesIn("(*gate).acceptLoop") == 0
	})
}

// TestStreamsReopened: a peer that speaks the wire itself opens the same
// id again and again after this node's go-away (yamux refuses each with a
// reset of that id, and does not remember it). Each reset takes one SYN
// off: the count goes back to zero, no acceptor is left, and the session
// stays up.
func TestStreamsReopened(t *testing.T) {
	p := newPair(t, nil)
	var served atomic.Int64
	p.srv.Serve(counted(&served, nil))
	if err := p.srvSess.GoAway(); err != nil {
		t.Fatal(err)
	}
	// Past the client's session: its own yamux writes nothing meanwhile
	// (no keep-alive, no stream).
	frames := cat(
		onStream(typeWindow, flagSYN, 1001, 0),
		onStream(typeWindow, flagSYN, 1001, 0),
		onStream(typeData, flagSYN, 1001, 1), []byte("x"),
		onStream(typeWindow, flagSYN, 999, 0))
	if _, err := p.cli.tc.Write(frames); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "four refusals, the count back to zero, no acceptor", func() bool {
		p.srv.g.mu.Lock()
		refusals := p.srv.g.refusals
		p.srv.g.mu.Unlock()
		pending, running := p.srv.g.counts()
		return refusals == 4 && pending == 0 && !running && goroutinesIn("(*gate).acceptLoop") == 0
	})
	if got := served.Load(); got != 0 {
		t.Errorf("%d streams served, want 0", got)
	}
	if p.srvSess.IsClosed() {
		t.Errorf("session closed: %v", p.srv.Violation())
	}
}

// TestStreamsNotThePeers: a peer that opens a stream with an id of this
// node's parity (which it opens itself, and whose resets are no
// refusals) or with id 0 has the session ended, with ErrStreamID.
func TestStreamsNotThePeers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames []byte
	}{
		{"the server's own id", onStream(typeWindow, flagSYN, 2, 0)},
		{"id zero", onStream(typeData, flagSYN, 0, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, nil)
			var served atomic.Int64
			p.srv.Serve(counted(&served, nil))
			if _, err := p.cli.tc.Write(tc.frames); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.srvSess.CloseChan():
			case <-time.After(5 * time.Second):
				pending, running := p.srv.g.counts()
				t.Fatalf("session still open (%d streams pending, acceptor running %v, %d served)", pending, running, served.Load())
			}
			if err := p.srv.Violation(); !errors.Is(err, ErrStreamID) {
				t.Errorf("violation %v, want %v", err, ErrStreamID)
			}
			waitFor(t, "no acceptor left", func() bool { return goroutinesIn("(*gate).acceptLoop") == 0 })
			if got := served.Load(); got != 0 {
				t.Errorf("%d streams served, want 0", got)
			}
		})
	}
}

// TestLastReceived: each end's LastReceived moves when bytes arrive (a
// ping, its answer) and not otherwise; before any, it is the session's
// start.
func TestLastReceived(t *testing.T) {
	var zero Conn
	if !zero.LastReceived().IsZero() {
		t.Errorf("LastReceived before Start: %v, want the zero Time", zero.LastReceived())
	}
	t0 := time.Now()
	p := newPair(t, nil)
	for _, c := range []*Conn{p.srv, p.cli} {
		if c.LastReceived().Before(t0) {
			t.Errorf("LastReceived %v, before the session started at %v", c.LastReceived(), t0)
		}
	}
	srvBefore := p.srv.LastReceived()
	t1 := time.Now()
	if _, err := p.cliSess.Ping(); err != nil {
		t.Fatal(err)
	}
	// The server read the ping before it answered; the client read the
	// answer before Ping returned.
	if got := p.srv.LastReceived(); got.Before(t1) || !got.After(srvBefore) {
		t.Errorf("server's LastReceived %v after a ping sent at %v (was %v)", got, t1, srvBefore)
	}
	if got := p.cli.LastReceived(); got.Before(t1) || got.After(time.Now()) {
		t.Errorf("client's LastReceived %v after its ping's answer (sent at %v)", got, t1)
	}
	// Nothing crossed since: it stays put.
	if a, b := p.cli.LastReceived(), p.cli.LastReceived(); !a.Equal(b) {
		t.Errorf("LastReceived moved from %v to %v with nothing received", a, b)
	}
}
