package muxconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// ErrWriteStalled ends a session whose peer took no byte of a write to
// the connection for the write timeout (Conn.WatchWrites): it stopped
// reading, or the link is gone.
var ErrWriteStalled = errors.New("the peer took no byte for the write timeout")

// writeWatch is the connection under TLS, as it writes: a write to it may
// go without progress for at most timeout, and then fails with
// ErrWriteStalled; a write that progresses, however slowly, goes on. This,
// not yamux's ConnectionWriteTimeout, is what tells a dead or unread
// connection from a slow busy one: yamux's timeout runs from when a frame
// is queued, so on a 1 Mbit/s link a stream's frame waiting behind other
// streams' frames failed its event (its write returned
// ErrConnectionWriteTimeout) with the connection working all along; the
// tunnel now gives yamux a queue timeout far longer (tunnel.Config.yamux)
// and relies on this.
//
// Progress is the peer acknowledging bytes, not a write returning: the
// kernel wakes a blocked writer only once part of its send buffer is free
// (a third of it, which Linux may grow to 4 MiB: at 1 Mbit/s, over 10 s
// without a write returning on a healthy link). So the write waits in
// steps of half the timeout, and at each step that took nothing, on Linux,
// it asks the kernel how much of the connection's send queue is still
// unacknowledged (SIOCOUTQ): a queue that shrank is a peer reading. A
// write is stalled once the queue has not moved for the timeout (the
// first step, with nothing to compare, counts as still). Where the OS
// does not tell (sendQueued), a write is stalled after stalledElsewhere
// times the timeout without a byte taken.
//
// A deadline set from above (tls.Conn's close_notify, coalesceConn's
// Close) is kept as it is, for the writes until it is cleared.
type writeWatch struct {
	net.Conn
	raw      net.Conn     // the TCP connection, for sendQueued
	timeout  atomic.Int64 // nanoseconds; 0: no watch
	explicit atomic.Bool  // a deadline set from above is in force
}

// stalledElsewhere is how many timeouts a write may take no byte where
// the OS does not say how much of the send queue is acknowledged.
const stalledElsewhere = 6

// SetWriteDeadline implements net.Conn: a deadline from above.
func (w *writeWatch) SetWriteDeadline(t time.Time) error {
	w.explicit.Store(!t.IsZero())
	return w.Conn.SetWriteDeadline(t)
}

// SetDeadline implements net.Conn.
func (w *writeWatch) SetDeadline(t time.Time) error {
	w.explicit.Store(!t.IsZero())
	return w.Conn.SetDeadline(t)
}

// Write implements net.Conn.
func (w *writeWatch) Write(p []byte) (int, error) {
	d := time.Duration(w.timeout.Load())
	if d <= 0 || w.explicit.Load() {
		return w.Conn.Write(p)
	}
	step := d / 2
	var (
		total int
		still time.Duration // how long the send queue has not moved
		lastQ = -1          // its size at the last step; -1: not known
		limit = d
	)
	for {
		if err := w.Conn.SetWriteDeadline(time.Now().Add(step)); err != nil {
			return total, err
		}
		n, err := w.Conn.Write(p)
		total += n
		p = p[n:]
		switch {
		case err == nil:
			return total, nil
		case !errors.Is(err, os.ErrDeadlineExceeded) || w.explicit.Load():
			return total, err
		case n > 0:
			still, lastQ = 0, -1 // some went out: the peer is reading
			continue
		}
		if q, ok := sendQueued(w.raw); ok {
			if lastQ >= 0 && q < lastQ {
				still = 0
			} else {
				still += step
			}
			lastQ = q
		} else {
			still, limit = still+step, stalledElsewhere*d // no byte taken this step
		}
		if still >= limit {
			return total, fmt.Errorf("%w (%v): %w", ErrWriteStalled, d, err)
		}
	}
}

// WatchWrites makes a write to the connection that goes without progress
// for d fail (ErrWriteStalled), which ends the session; 0 turns it off.
// Call it before Start.
func (c *Conn) WatchWrites(d time.Duration) { c.ww.timeout.Store(int64(d)) }
