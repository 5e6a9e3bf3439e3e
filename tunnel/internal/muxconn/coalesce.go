package muxconn

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// coalesceConn is the connection yamux's session runs on: the tls.Conn,
// with its writes merged and its reads shown to the gate.
//
// yamux's send loop (the only writer, assumption 3) writes each frame as
// its own call, and a data frame as two: the 12-byte header, then the
// body (assumption 4). Over TLS each call is its own record and syscall,
// and wakes the peer's reader once more. A small event would cost three
// writes a side: the stream's SYN (or ACK), its data, its FIN.
//
// coalesceConn cuts that to about one:
//   - it holds a data frame's header and sends it with its body in one
//     write;
//   - it holds the frames that open and close streams (window updates
//     flagged SYN, ACK or FIN, header only: assumption 5) and sends them
//     with the next frame that goes out: a SYN with the request right
//     behind it, an ACK with the reply, a FIN with the next event's data.
//     A held frame goes out on its own after holdFor at the latest, so
//     nothing waits on it longer than that: an ACK whose handler is slow,
//     a FIN that cancels a handler, the last FIN before the session goes
//     idle.
//
// Every other frame (pings, go-aways, plain window updates that let a
// sender go on, resets) goes out at once, with whatever is held before
// it. A reset of a stream the peer opened and nobody accepted is yamux
// refusing it (assumption 8): the gate hears of it.
type coalesceConn struct {
	net.Conn
	// gate counts the streams the peer opens (see gate).
	gate *gate

	// rb, if set, is the socket under Conn (a tls.Conn): a write of more
	// than one record goes to the socket in one syscall.
	rb *recordBatcher
	// idle, if set, is the socket under rb: while the session has no
	// stream open, Read waits for it here, on a small stack, rather than
	// inside Conn (see idleReader).
	idle *idleReader
	// sess is the session over this connection, once yamux has made it.
	sess atomic.Pointer[yamux.Session]
	// since is when the session started; received is when its last Read
	// that returned bytes ended, as time.Since(since) (monotonic, one
	// atomic store per Read: see Conn.LastReceived).
	since    time.Time
	received atomic.Int64
	// count, if set, adds up what Read and Write pass (Conn.CountInto).
	count *Counters

	mu      sync.Mutex
	hdr     [headerSize]byte
	hdrHeld bool    // hdr is a data header whose body comes next
	pending *[]byte // held control frames, from getBuf; nil if none
	timer   *time.Timer
	armed   bool  // timer runs for what is pending
	err     error // a write of held frames failed: the connection is broken

	endMu  sync.Mutex
	closed bool
	onEnd  func() // see whenClosed

	// readErr is the first error a read of Conn returned, as crypto/tls
	// gave it: a TLS alert from the peer, an EOF, a reset.
	readErr atomic.Pointer[error]
}

// Read reads what the session reads, and shows it to the gate.
func (c *coalesceConn) Read(p []byte) (int, error) {
	if c.gate != nil {
		c.gate.beforeRead()
	}
	var n int
	var err error
	if c.idle.usable() && c.idleSession() {
		n, err = c.idle.readFrom(c.Conn, p)
	} else {
		n, err = c.Conn.Read(p)
	}
	if err != nil {
		first := err // only an error is moved to the heap, not every read's err
		c.readErr.CompareAndSwap(nil, &first)
	}
	if n > 0 {
		c.received.Store(int64(time.Since(c.since)))
		if c.count != nil {
			c.count.In.Add(uint64(n))
		}
		if c.gate != nil {
			if verr := c.gate.scan(p[:n]); verr != nil {
				return 0, verr
			}
		}
	}
	return n, err
}

// lastReceived is when a Read last returned bytes (when the session
// started, before the first).
func (c *coalesceConn) lastReceived() time.Time {
	return c.since.Add(time.Duration(c.received.Load()))
}

// idleSession reports whether the session has no stream open: the next
// frame may be a long way off. With a stream open (an event, a channel
// relay, a transfer) the next one is usually near, and waiting on a
// small stack would cost each frame two more syscalls.
func (c *coalesceConn) idleSession() bool {
	s := c.sess.Load()
	return s != nil && s.NumStreams() == 0
}

// whenClosed has f called, on a goroutine of its own, once the connection
// is closed: yamux closes it when the session ends, whatever the reason
// (assumption 10). If it is closed already, f is called at once.
func (c *coalesceConn) whenClosed(f func()) {
	c.endMu.Lock()
	defer c.endMu.Unlock()
	if c.closed {
		go f()
		return
	}
	c.onEnd = f
}

func (c *coalesceConn) Write(p []byte) (int, error) {
	if c.count != nil {
		c.count.Out.Add(uint64(len(p))) // what yamux sends, held frames included
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.hdrHeld {
		c.hdrHeld = false
		return c.writeHeld(c.hdr[:], p)
	}
	if len(p) == headerSize {
		h := header(p)
		flags := h.flags()
		switch {
		case h.typ() == typeData && h.length() > 0:
			copy(c.hdr[:], p) // its body comes next
			c.hdrHeld = true
			return len(p), nil
		case h.typ() == typeWindow && flags&(flagSYN|flagACK|flagFIN) != 0 &&
			(c.pending == nil || len(*c.pending)+len(p) <= headerSize*64):
			c.hold(p)
			return len(p), nil
		case h.typ() == typeWindow && flags&flagRST != 0 && c.gate != nil:
			c.gate.refused(h.streamID())
		case h.typ() == typePing && flags&flagACK != 0 && c.gate != nil:
			c.gate.pingAnswered() // counted as it goes: it is written now
		}
	}
	return c.writeHeld(nil, p)
}

// hold adds a control frame to the held ones and makes sure the timer will
// send it.
func (c *coalesceConn) hold(p []byte) {
	if c.pending == nil {
		c.pending = getBuf(smallBuf)
	}
	*c.pending = append(*c.pending, p...)
	if !c.armed {
		c.armed = true
		if c.timer == nil {
			c.timer = time.AfterFunc(holdFor, c.flushHeld)
		} else {
			c.timer.Reset(holdFor)
		}
	}
}

// writeHeld writes what is held, then hdr and body, in one write when they
// fit, and returns how much of body was written.
func (c *coalesceConn) writeHeld(hdr, body []byte) (int, error) {
	if c.armed {
		c.armed = false
		c.timer.Stop()
	}
	held := 0
	if c.pending != nil {
		held = len(*c.pending)
	}
	if c.rb != nil && len(body) > tlsRecordSize && (held > 0 || len(hdr) > 0) {
		// A big body is not copied to sit behind its header: the header
		// goes in a TLS record of its own, and the records of both leave
		// in one syscall.
		bp := c.takeHeld(held + len(hdr))
		buf := append(*bp, hdr...)
		n, err := c.rb.batch(func() (int, error) {
			if _, err := c.Conn.Write(buf); err != nil {
				return 0, err
			}
			return c.Conn.Write(body)
		})
		*bp = buf
		putBuf(bp)
		return n, err
	}
	need := held + len(hdr) + len(body)
	if need <= maxCoalesce && (held > 0 || len(hdr) > 0) {
		bp := c.takeHeld(need)
		buf := append(append(*bp, hdr...), body...)
		n, err := c.write(buf)
		*bp = buf
		putBuf(bp)
		return max(n-held-len(hdr), 0), err
	}
	if held > 0 || len(hdr) > 0 {
		// Too big to merge (a frame over maxCoalesce): what is held and
		// the header, then the body.
		bp := c.takeHeld(held + len(hdr))
		buf := append(*bp, hdr...)
		_, err := c.Conn.Write(buf)
		*bp = buf
		putBuf(bp)
		if err != nil {
			return 0, err
		}
	}
	return c.write(body)
}

// takeHeld returns a buffer of at least n bytes that starts with the held
// frames, which it takes.
func (c *coalesceConn) takeHeld(n int) *[]byte {
	bp := c.pending
	c.pending = nil
	if bp != nil && n <= cap(*bp) {
		return bp
	}
	nb := getBuf(n)
	if bp != nil {
		*nb = append(*nb, *bp...)
		putBuf(bp)
	}
	return nb
}

// write writes p to the connection, its records in one syscall.
func (c *coalesceConn) write(p []byte) (int, error) {
	if c.rb == nil || len(p) <= tlsRecordSize {
		return c.Conn.Write(p)
	}
	return c.rb.batch(func() (int, error) { return c.Conn.Write(p) })
}

// flushHeld sends the held frames that found no company within holdFor.
func (c *coalesceConn) flushHeld() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.armed {
		return // sent meanwhile, or the timer was re-armed
	}
	c.armed = false
	if c.hdrHeld || c.pending == nil || c.err != nil {
		return // a data frame is being written: they go with it
	}
	bp := c.pending
	c.pending = nil
	_, err := c.Conn.Write(*bp)
	putBuf(bp)
	if err != nil {
		// Nobody waits on this write to hear of it: break the connection,
		// so that the session's reader fails and the session ends.
		c.err = err
		_ = c.Conn.Close()
	}
}

// Close sends what is held, if the connection can take it at once,
// closes the connection, and calls the whenClosed function.
func (c *coalesceConn) Close() error {
	c.endMu.Lock()
	first, onEnd := !c.closed, c.onEnd
	c.closed = true
	c.endMu.Unlock()
	if first && onEnd != nil {
		defer func() { go onEnd() }()
	}
	if c.mu.TryLock() {
		if c.armed {
			c.armed = false
			c.timer.Stop()
		}
		if c.pending != nil && c.err == nil && !c.hdrHeld {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
			_, _ = c.Conn.Write(*c.pending)
		}
		c.mu.Unlock()
	}
	if tc, ok := c.Conn.(*tls.Conn); ok {
		// tls.Conn.Close sends a close_notify first, with a deadline of
		// its own of 5 s, when no write is under way: on a socket whose
		// send buffer is full (a slow link, a peer that stopped reading)
		// that held a node's shutdown up to 5 s past its timeout. The
		// alert is a courtesy: after closeNotifyWait the socket is closed
		// under it.
		t := time.AfterFunc(closeNotifyWait, func() { _ = tc.NetConn().Close() })
		defer t.Stop()
	}
	return c.Conn.Close()
}

// closeNotifyWait bounds how long Close waits to send TLS's close_notify.
const closeNotifyWait = 100 * time.Millisecond
