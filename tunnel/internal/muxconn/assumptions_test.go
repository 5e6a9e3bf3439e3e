package muxconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// These tests pin the assumptions of the package comment on the real
// libraries: each fails the day one stops holding.

// frameRecorder sits where coalesceConn sits, between a yamux session
// and its tls.Conn, and records what yamux writes and how much it asks
// to read.
type frameRecorder struct {
	net.Conn
	mu       sync.Mutex
	writes   [][]byte
	writers  []string // the function of yamux's that made each write
	readBufs []int
}

func (r *frameRecorder) Write(p []byte) (int, error) {
	stack := make([]byte, 4<<10)
	stack = stack[:runtime.Stack(stack, false)]
	who := "another function"
	if bytes.Contains(stack, []byte("yamux.(*Session).sendLoop")) {
		who = "sendLoop"
	}
	r.mu.Lock()
	r.writes = append(r.writes, append([]byte(nil), p...))
	r.writers = append(r.writers, who)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

func (r *frameRecorder) Read(p []byte) (int, error) {
	r.mu.Lock()
	r.readBufs = append(r.readBufs, len(p))
	r.mu.Unlock()
	return r.Conn.Read(p)
}

// take returns the writes recorded since the last take.
func (r *frameRecorder) take() ([][]byte, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, who := r.writes, r.writers
	r.writes, r.writers = nil, nil
	return w, who
}

// tlsPair is a TLS 1.3 connection over loopback, both ends handshaken.
func tlsPair(t *testing.T, srvTap, cliTap *tapConn) (srv, cli *tls.Conn) {
	t.Helper()
	srvTLS, cliTLS := testTLS(t)
	srvTap.Conn, cliTap.Conn = loopbackTCP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, cli = tls.Server(srvTap, srvTLS), tls.Client(cliTap, cliTLS)
	done := make(chan error, 1)
	go func() { done <- srv.HandshakeContext(ctx) }()
	if err := cli.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close(); _ = srv.Close() })
	return srv, cli
}

// wantFrame checks that w is one header-only frame (or a data header) of
// the given type, flags, stream and length, in the layout of frame.go.
func wantFrame(t *testing.T, what string, w []byte, typ byte, flags uint16, id, length uint32) {
	t.Helper()
	if len(w) != headerSize {
		t.Errorf("%s: a write of %d bytes, want the %d-byte header alone", what, len(w), headerSize)
		return
	}
	h := header(w)
	if w[0] != 0 || h.typ() != typ || h.flags() != flags || h.streamID() != id || h.length() != length {
		t.Errorf("%s: header % x: version %d type %d flags %#x stream %d length %d, want version 0 type %d flags %#x stream %d length %d",
			what, w, w[0], h.typ(), h.flags(), h.streamID(), h.length(), typ, flags, id, length)
	}
}

// TestYamuxFramesAsAssumed pins assumptions 1 to 7 on yamux itself: the
// header layout and flags, a data frame as two writes (header, then
// body), SYN, ACK and FIN on header-only window updates, every write from
// the send loop, reads through a 4 KiB buffer, the ACK sent when a stream
// is accepted.
func TestYamuxFramesAsAssumed(t *testing.T) {
	srvTC, cliTC := tlsPair(t, &tapConn{}, &tapConn{})
	srvRec, cliRec := &frameRecorder{Conn: srvTC}, &frameRecorder{Conn: cliTC}
	srv, err := yamux.Server(srvRec, testYamux())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := yamux.Client(cliRec, testYamux())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	// A stream opens with a window update flagged SYN (its window above
	// the initial one, none here), written before OpenStream returns.
	st, err := cli.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	w, _ := cliRec.take()
	if len(w) != 1 {
		t.Fatalf("OpenStream: %d writes, want 1 (%q)", len(w), w)
	}
	wantFrame(t, "SYN", w[0], typeWindow, flagSYN, 1, 0)

	// A data frame: its header, then its body, two writes.
	body := bytes.Repeat([]byte("d"), 100)
	if _, err := st.Write(body); err != nil {
		t.Fatal(err)
	}
	w, _ = cliRec.take()
	if len(w) != 2 {
		t.Fatalf("a stream write of 100 bytes: %d writes, want 2 (header, body)", len(w))
	}
	wantFrame(t, "data header", w[0], typeData, 0, 1, 100)
	if !bytes.Equal(w[1], body) {
		t.Errorf("data body: %d bytes, want the 100 written", len(w[1]))
	}

	// Accepting it sends the ACK, a header-only window update.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sst, err := srv.AcceptStreamWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, _ = srvRec.take()
	if len(w) != 1 {
		t.Fatalf("AcceptStream: %d writes, want 1", len(w))
	}
	wantFrame(t, "ACK", w[0], typeWindow, flagACK, 1, 0)

	// Closing a stream sends a header-only window update flagged FIN.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	w, _ = cliRec.take()
	if len(w) != 1 {
		t.Fatalf("Close: %d writes, want 1", len(w))
	}
	wantFrame(t, "FIN", w[0], typeWindow, flagFIN, 1, 0)
	_ = sst.Close()

	// A ping: type 2 flagged SYN, its id in the length field; the answer
	// flagged ACK.
	if _, err := cli.Ping(); err != nil {
		t.Fatal(err)
	}
	w, _ = cliRec.take()
	if len(w) != 1 {
		t.Fatalf("Ping: %d writes, want 1", len(w))
	}
	wantFrame(t, "ping", w[0], typePing, flagSYN, 0, 0)
	waitFor(t, "the pong written", func() bool {
		srvRec.mu.Lock()
		defer srvRec.mu.Unlock()
		return len(srvRec.writes) >= 2 // the server's FIN, its pong
	})
	w, _ = srvRec.take()
	wantFrame(t, "server FIN", w[0], typeWindow, flagFIN, 1, 0)
	wantFrame(t, "pong", w[1], typePing, flagACK, 0, 0)

	// A go-away: type 3, header only.
	if err := srv.GoAway(); err != nil {
		t.Fatal(err)
	}
	w, who := srvRec.take()
	if len(w) != 1 {
		t.Fatalf("GoAway: %d writes, want 1", len(w))
	}
	wantFrame(t, "go-away", w[0], typeGoAway, 0, 0, 0)

	// Every write came from the send loop: the only writer.
	_, cwho := cliRec.take()
	for _, w := range append(who, cwho...) {
		if w != "sendLoop" {
			t.Errorf("a write from %s: yamux's send loop is no longer its only writer", w)
		}
	}
	// Headers are read through a 4 KiB buffer (bufio's default): the
	// first read of each end, a header's, is into 4 KiB.
	for _, r := range []*frameRecorder{srvRec, cliRec} {
		r.mu.Lock()
		if len(r.readBufs) == 0 || r.readBufs[0] != 4096 {
			t.Errorf("reads into %v bytes: yamux no longer reads headers through a 4 KiB buffer", r.readBufs)
		}
		r.mu.Unlock()
	}
}

// TestYamuxRefusesAfterGoAway pins assumption 8 at the socket: once a
// session has sent its go-away, a stream the peer opens is never queued
// for AcceptStream but reset at once, with a header-only window update
// flagged RST.
func TestYamuxRefusesAfterGoAway(t *testing.T) {
	p := newPair(t, nil)
	p.srv.Serve(acceptor{})
	p.cliTap.pause()
	if err := p.srvSess.GoAway(); err != nil {
		t.Fatal(err)
	}
	// The server's reader is held back with the late stream's frames
	// while the recorder goes in, so that it next reads through it (the
	// session's reader uses coalesceConn.Conn without a lock).
	p.srvTap.pause()
	held := p.srvTap.heldBack()
	st, err := p.cliSess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the late stream never reached the server")
	}
	rec := &frameRecorder{}
	// Watch what the server's coalesceConn is given to write.
	p.srv.cc.mu.Lock()
	inner := p.srv.cc.Conn
	rec.Conn = inner
	p.srv.cc.Conn = rec
	p.srv.cc.mu.Unlock()
	p.srvTap.unpause()
	waitFor(t, "the late stream reset", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, w := range rec.writes {
			if len(w) >= headerSize && header(w[len(w)-headerSize:]).flags()&flagRST != 0 {
				return true
			}
		}
		return false
	})
	w, _ := rec.take()
	wantFrame(t, "refusal", w[len(w)-1], typeWindow, flagRST, st.StreamID(), 0)
	if pending, _ := p.srv.g.counts(); pending != 0 {
		t.Errorf("%d streams pending after the refusal, want 0", pending)
	}
}

// TestTLSRecordsAsAssumed pins assumptions 11 and 12 on crypto/tls: a
// Write of up to 16 KiB of plaintext (once past its small first records)
// is one record and one socket write, a bigger one a socket write per
// 16 KiB record, which recordBatcher gathers into one.
func TestTLSRecordsAsAssumed(t *testing.T) {
	srvTap2, cliTap2 := &tapConn{}, &tapConn{}
	srv2, cli2 := tlsPairBatched(t, srvTap2, cliTap2)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := srv2.Read(buf); err != nil {
				return
			}
		}
	}()
	writes := func(f func()) int64 {
		before := cliTap2.writes.Load()
		f()
		return cliTap2.writes.Load() - before
	}
	write := func(n int) {
		if _, err := cli2.tc.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	if n := writes(func() { write(500) }); n != 1 {
		t.Errorf("a first write of 500 bytes: %d socket writes, want 1", n)
	}
	write(256 << 10) // past crypto/tls's small first records
	for _, size := range []int{100, 4 << 10, tlsRecordSize} {
		if n := writes(func() { write(size) }); n != 1 {
			t.Errorf("a write of %d bytes: %d socket writes, want 1 (one record)", size, n)
		}
	}
	if n := writes(func() { write(4 * tlsRecordSize) }); n != 4 {
		t.Errorf("a write of %d bytes: %d socket writes, want 4 (one a record): recordBatcher's premise", 4*tlsRecordSize, n)
	}
	if n := writes(func() {
		_, err := cli2.rb.batch(func() (int, error) { return cli2.tc.Write(make([]byte, 4*tlsRecordSize)) })
		if err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("a batched write of %d bytes: %d socket writes, want 1", 4*tlsRecordSize, n)
	}
}

// batchedClient is a client tls.Conn over a recordBatcher, as Handshake
// builds it.
type batchedClient struct {
	tc *tls.Conn
	rb *recordBatcher
}

func tlsPairBatched(t *testing.T, srvTap, cliTap *tapConn) (*tls.Conn, batchedClient) {
	t.Helper()
	srvTLS, cliTLS := testTLS(t)
	srvTap.Conn, cliTap.Conn = loopbackTCP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := tls.Server(srvTap, srvTLS)
	done := make(chan error, 1)
	go func() { done <- srv.HandshakeContext(ctx) }()
	c, err := Handshake(ctx, cliTap, Client, cliTLS)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(); _ = srv.Close() })
	return srv, batchedClient{tc: c.tc, rb: c.rb}
}

// TestYamuxOpensIDsInTurn pins assumption 8's ids: each end opens its
// streams with ids of its own parity (odd for the client, even for the
// server, from 1 and 2), so that ErrStreamID never ends a session with an
// honest peer. (Their SYNs need not go out in id order: two streams
// opened at once race to the send queue.)
func TestYamuxOpensIDsInTurn(t *testing.T) {
	p := newPair(t, nil)
	echoServer(t, p.srv)
	echoServer(t, p.cli)
	for _, end := range []struct {
		name  string
		sess  *yamux.Session
		first uint32
	}{{"client", p.cliSess, 1}, {"server", p.srvSess, 2}} {
		want := end.first
		for range 5 {
			st, err := end.sess.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			if id := st.StreamID(); id != want {
				t.Errorf("%s opened stream %d, want %d", end.name, id, want)
			}
			_ = st.Close()
			want += 2
		}
	}
}
