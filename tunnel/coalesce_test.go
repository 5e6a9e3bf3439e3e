package tunnel

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
)

// recordConn records each Write it gets.
type recordConn struct {
	net.Conn
	writes [][]byte
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.writes = append(r.writes, append([]byte(nil), p...))
	return len(p), nil
}

func header(typ byte, length uint32) []byte {
	h := make([]byte, yamuxHeaderSize)
	h[1] = typ
	binary.BigEndian.PutUint32(h[4:8], 7)
	binary.BigEndian.PutUint32(h[8:12], length)
	return h
}

func TestCoalesceConn(t *testing.T) {
	rec := &recordConn{}
	c := &coalesceConn{Conn: rec}
	small := bytes.Repeat([]byte("s"), 100)
	big := bytes.Repeat([]byte("b"), maxCoalesce)
	for _, w := range [][]byte{
		header(0, 100), small, // data frame: one write
		header(1, 4096),                  // window update: no body, written at once
		header(0, 0),                     // data frame with no body (a FIN): at once
		header(0, uint32(len(big))), big, // too big to merge: two writes
	} {
		n, err := c.Write(w)
		if err != nil || n != len(w) {
			t.Fatalf("Write(%d bytes) = %d, %v", len(w), n, err)
		}
	}
	want := [][]byte{
		append(header(0, 100), small...),
		header(1, 4096),
		header(0, 0),
		header(0, uint32(len(big))),
		big,
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
