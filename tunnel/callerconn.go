package tunnel

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// callerSendBuffer is the kernel's send buffer (SO_SNDBUF) of a front
// end's connection to a caller; the kernel doubles it (for its
// bookkeeping): 256 KiB in all. Left to itself, Linux lets it grow to
// tcp_wmem's maximum (4 MiB) for a caller that reads slowly on loopback:
// 200 such callers held 750 MB of kernel memory, a slow caller's reply
// took minutes to reach the node's own buffers (where the stream window
// bounds it), and a blocked write was woken only once a third of the 4
// MiB had drained (over a minute at 10 KB/s: curl --limit-rate was cut
// by the write deadline). Loopback and a LAN need far less to run at full
// speed (BenchmarkStreamTunnelDownload: no difference measured).
const callerSendBuffer = 128 << 10

// callerListener is a front end's listener: each TCP connection it
// accepts has a send buffer of callerSendBuffer and is a progressConn.
type callerListener struct{ net.Listener }

func (l callerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	_ = tc.SetWriteBuffer(callerSendBuffer)
	return &progressConn{TCPConn: tc}, nil
}

// progressConn is a caller's connection whose write deadline bounds how
// long a write may go without progress, not how long it may take: the
// write fails once the kernel has taken no byte of it for the deadline's
// span (measured from when it was set), and goes on while it takes some.
// The front end sets a
// deadline of Config.BodyIdleTimeout around each write of a reply
// (writeDeadline): a caller that reads nothing for that long is cut, one
// that reads slowly but steadily is not, however big the write (a
// gathered 256 KiB at 2 KB/s takes two minutes). The kernel wakes a
// blocked writer only once part of its send buffer is free, so progress
// shows in steps of up to about half of it (128 KiB).
type progressConn struct {
	*net.TCPConn
	mu   sync.Mutex
	idle time.Duration // the write deadline last set, from when it was set; 0: none
}

// SetWriteDeadline implements net.Conn.
func (c *progressConn) SetWriteDeadline(t time.Time) error {
	c.setIdle(t)
	return c.TCPConn.SetWriteDeadline(t)
}

// SetDeadline implements net.Conn.
func (c *progressConn) SetDeadline(t time.Time) error {
	c.setIdle(t)
	return c.TCPConn.SetDeadline(t)
}

func (c *progressConn) setIdle(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle = 0
	if !t.IsZero() {
		c.idle = time.Until(t)
	}
}

// Write implements net.Conn. It waits in steps of a quarter of the
// deadline's span, and fails once nothing has gone out for the whole
// span: between 1 and 1.25 times it after the last byte the kernel took
// (the deadline is one span from the last progress, not from the last
// step that made some).
func (c *progressConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	idle := c.idle
	c.mu.Unlock()
	if idle <= 0 {
		return c.TCPConn.Write(p)
	}
	total, last := 0, time.Now()
	for {
		next := time.Now().Add(idle / 4)
		if end := last.Add(idle); end.Before(next) {
			next = end
		}
		if err := c.TCPConn.SetWriteDeadline(next); err != nil {
			return total, err
		}
		n, err := c.TCPConn.Write(p)
		total += n
		p = p[n:]
		if n > 0 {
			last = time.Now()
		}
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(last) >= idle {
			return total, err
		}
	}
}
