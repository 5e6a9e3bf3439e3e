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
// go without progress (no byte taken by the kernel) for at most timeout,
// and then fails with ErrWriteStalled; a write that progresses, however
// slowly, goes on. This, not yamux's ConnectionWriteTimeout, is what
// tells a dead or unread connection from a slow busy one: yamux's timeout
// runs from when a frame is queued, so on a 1 Mbit/s link a stream's
// frame waiting behind other streams' frames failed its event (its write
// returned ErrConnectionWriteTimeout) with the connection working all
// along; the tunnel now gives yamux a queue timeout far longer
// (tunnel.Config.yamux) and relies on this.
//
// A deadline set from above (tls.Conn's close_notify, coalesceConn's
// Close) is kept as it is, for the writes until it is cleared.
type writeWatch struct {
	net.Conn
	timeout  atomic.Int64 // nanoseconds; 0: no watch
	explicit atomic.Bool  // a deadline set from above is in force
}

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
	total := 0
	for {
		if err := w.Conn.SetWriteDeadline(time.Now().Add(d)); err != nil {
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
		case n == 0:
			return total, fmt.Errorf("%w (%v): %w", ErrWriteStalled, d, err)
		}
		// Some went out: the peer is reading; the deadline moves on.
	}
}

// WatchWrites makes a write to the connection that goes without progress
// for d fail (ErrWriteStalled), which ends the session; 0 turns it off.
// Call it before Start.
func (c *Conn) WatchWrites(d time.Duration) { c.ww.timeout.Store(int64(d)) }
