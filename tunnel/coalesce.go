package tunnel

import (
	"encoding/binary"
	"net"
	"sync"
)

// yamux v0.1.2's send loop (its only writer on the connection) writes each
// frame as two calls: the 12-byte header, then, for a data frame, the body.
// Over TLS each call is its own record and syscall, which doubles the cost
// of every small event. coalesceConn holds a data frame's header and sends
// it with its body in one write when they fit one TLS record.
//
// Header layout (yamux spec): version (1), type (1), flags (2), stream id
// (4), length (4); type 0 is data, and a data frame's body of length bytes
// follows its header.
const (
	yamuxHeaderSize = 12
	// maxCoalesce keeps a merged write within one TLS record.
	maxCoalesce = 16 << 10
)

var coalesceBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, maxCoalesce)
	return &b
}}

type coalesceConn struct {
	net.Conn
	hdr  [yamuxHeaderSize]byte
	held bool
}

func (c *coalesceConn) Write(p []byte) (int, error) {
	if c.held {
		c.held = false
		if len(p) <= maxCoalesce-yamuxHeaderSize {
			bp := coalesceBufs.Get().(*[]byte)
			buf := append(append((*bp)[:0], c.hdr[:]...), p...)
			n, err := c.Conn.Write(buf)
			*bp = buf[:0]
			coalesceBufs.Put(bp)
			return max(n-yamuxHeaderSize, 0), err
		}
		if _, err := c.Conn.Write(c.hdr[:]); err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	if len(p) == yamuxHeaderSize && p[0] == 0 && p[1] == 0 && binary.BigEndian.Uint32(p[8:12]) > 0 {
		copy(c.hdr[:], p) // a data header: its body comes next
		c.held = true
		return len(p), nil
	}
	return c.Conn.Write(p)
}
