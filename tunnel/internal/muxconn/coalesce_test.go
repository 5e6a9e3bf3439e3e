package muxconn

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"
)

// recordConn records each Write it gets, and tells wrote of each.
type recordConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	wrote  chan struct{} // nil: nobody listens
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, append([]byte(nil), p...))
	r.mu.Unlock()
	if r.wrote != nil {
		r.wrote <- struct{}{}
	}
	return len(p), nil
}

func (r *recordConn) Close() error { return nil }

func plain(typ byte, length uint32) []byte {
	return flagged(typ, 0, length)
}

func flagged(typ byte, flags uint16, length uint32) []byte {
	h := make([]byte, headerSize)
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:4], flags)
	binary.BigEndian.PutUint32(h[4:8], 7)
	binary.BigEndian.PutUint32(h[8:12], length)
	return h
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func TestCoalesceConn(t *testing.T) {
	rec := &recordConn{}
	c := &coalesceConn{Conn: rec}
	small := bytes.Repeat([]byte("s"), 100)
	big := bytes.Repeat([]byte("b"), maxCoalesce)
	chunk := bytes.Repeat([]byte("c"), 32<<10+3) // a streamed chunk
	syn := flagged(1, flagSYN, 1<<20)
	fin := flagged(1, flagFIN, 0)
	for _, w := range [][]byte{
		plain(0, 100), small, // data frame: one write
		plain(1, 4096),                  // window update: no body, written at once
		plain(0, 0),                     // data frame with no body (a FIN): at once
		plain(0, uint32(len(big))), big, // too big to merge: two writes
		plain(0, uint32(len(chunk))), chunk, // a streamed chunk: one write
		syn, plain(0, 100), small, // SYN held, sent with the data
		fin, plain(2, 0), // FIN held, sent with a ping
	} {
		n, err := c.Write(w)
		if err != nil || n != len(w) {
			t.Fatalf("Write(%d bytes) = %d, %v", len(w), n, err)
		}
	}
	want := [][]byte{
		append(plain(0, 100), small...),
		plain(1, 4096),
		plain(0, 0),
		plain(0, uint32(len(big))),
		big,
		cat(plain(0, uint32(len(chunk))), chunk),
		cat(syn, plain(0, 100), small),
		cat(fin, plain(2, 0)),
	}
	if len(rec.writes) != len(want) {
		t.Fatalf("%d writes, want %d", len(rec.writes), len(want))
	}
	for i := range want {
		if !bytes.Equal(rec.writes[i], want[i]) {
			t.Errorf("write %d: %d bytes, want %d", i, len(rec.writes[i]), len(want[i]))
		}
	}
}

// A held SYN, ACK or FIN that finds no frame to ride with goes out on its
// own after holdFor.
func TestCoalesceConnHeldFrameLeavesAlone(t *testing.T) {
	rec := &recordConn{wrote: make(chan struct{}, 1)}
	c := &coalesceConn{Conn: rec}
	ack := flagged(1, flagACK, 0)
	fin := flagged(1, flagFIN, 0)
	start := time.Now()
	for _, w := range [][]byte{ack, fin} {
		if n, err := c.Write(w); err != nil || n != len(w) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	select {
	case <-rec.wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("held frames never sent")
	}
	if d := time.Since(start); d < holdFor {
		t.Errorf("sent after %v, before holdFor %v", d, holdFor)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.writes) != 1 || !bytes.Equal(rec.writes[0], cat(ack, fin)) {
		t.Errorf("writes %q, want the ACK and FIN in one", rec.writes)
	}
}

// TestCloseBoundedWhenPeerStopsReading: Close of a connection whose peer
// reads nothing more (net.Pipe: no buffer at all, as a socket whose send
// buffer is full) returns within closeNotifyWait or so, not after the 5 s
// that tls.Conn gives its close_notify; it held a node's shutdown past
// its timeout on a slow link.
func TestCloseBoundedWhenPeerStopsReading(t *testing.T) {
	srvConf, cliConf := testTLS(t)
	a, b := net.Pipe()
	defer b.Close()
	srv, cli := tls.Server(a, srvConf), tls.Client(b, cliConf)
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	c := &coalesceConn{Conn: srv}
	start := time.Now()
	_ = c.Close()
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v with a peer that reads nothing, want about 100ms", took)
	}
}
