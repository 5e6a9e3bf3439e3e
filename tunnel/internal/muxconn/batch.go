package muxconn

import (
	"net"
	"sync"
	"time"
)

const (
	// maxCoalesce bounds one merged write: a 64 KiB body chunk with its
	// framing and what is held fits, so a streamed chunk leaves in one
	// write, not as a separate 12-byte header record.
	maxCoalesce = 96 << 10
	// holdFor bounds how long a SYN, ACK or FIN waits for company. Long
	// enough to ride with the next event of a caller at concurrency 1 (a
	// round trip is about 0.2 ms here), short against any timeout.
	holdFor = time.Millisecond
	// tlsRecordSize is the most plaintext one TLS record carries
	// (assumption 11).
	tlsRecordSize = 16 << 10
)

// smallBuf is the size of the buffers that hold control frames and merge
// them with a small frame: most writes. Only a large frame takes one of
// maxCoalesce (pools hold on to what a burst of connections took).
const smallBuf = 2 << 10

var (
	smallBufs = sync.Pool{New: func() any {
		b := make([]byte, 0, smallBuf)
		return &b
	}}
	coalesceBufs = sync.Pool{New: func() any {
		b := make([]byte, 0, maxCoalesce)
		return &b
	}}
)

// getBuf returns an empty pooled buffer of at least n bytes (n at most
// maxCoalesce).
func getBuf(n int) *[]byte {
	if n <= smallBuf {
		return smallBufs.Get().(*[]byte)
	}
	return coalesceBufs.Get().(*[]byte)
}

// putBuf returns a buffer from getBuf to its pool.
func putBuf(bp *[]byte) {
	*bp = (*bp)[:0]
	switch c := cap(*bp); {
	case c == smallBuf:
		smallBufs.Put(bp)
	case c >= maxCoalesce:
		coalesceBufs.Put(bp)
	}
}

// recordBatcher sits between a tls.Conn and its socket. crypto/tls writes
// each record of a Write with its own syscall (assumption 12), so a 64
// KiB frame costs five; while batch runs, recordBatcher gathers them and
// sends them in one. Other writes (the handshake, alerts, a key update)
// pass straight through, in order: mu is held across every write to the
// socket.
type recordBatcher struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      *[]byte // from getBuf while batching
}

func (b *recordBatcher) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batching {
		*b.buf = append(*b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

// batch runs write (a Write to the tls.Conn above) with the records it
// makes gathered into one socket write.
func (b *recordBatcher) batch(write func() (int, error)) (int, error) {
	b.mu.Lock()
	b.batching = true
	b.buf = getBuf(maxCoalesce)
	b.mu.Unlock()
	n, err := write()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	bp := b.buf
	b.buf = nil
	if len(*bp) > 0 {
		if _, werr := b.Conn.Write(*bp); err == nil && werr != nil {
			err, n = werr, 0
		}
	}
	putBuf(bp)
	return n, err
}
