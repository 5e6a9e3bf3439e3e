//go:build linux

package muxconn

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// idleReader is the socket under a session's tls.Conn, for the session's
// reader to wait on a small stack (Linux only: idleread_other.go is the
// portable default, without it).
//
// yamux's reader spends an idle session's life waiting for the next
// frame, and a goroutine keeps the stack it had when it parked. Parked
// inside tls.Conn.Read, about twenty frames down in the record layer, it
// uses too much of its stack for the garbage collector to shrink it, and
// the runtime starts new goroutines with the average stack of the last
// collection: after a burst of TLS handshakes, 8 KiB. Within readFrom, a
// read here does not wait: one read(2), and errWouldBlock when there is
// nothing, which crypto/tls passes up without breaking the
// connection (a temporary net.Error, like a read deadline's timeout:
// assumption 13).
// coalesceConn.Read then waits a few frames from the top of the stack
// (waitReadable) and reads again, and the stack shrinks to 4 KiB at the
// next collection. It costs two syscalls per wait (a look before parking,
// and one after).
type idleReader struct {
	net.Conn
	raw     syscall.RawConn
	started bool // set by start; readFrom may be used
	noWait  bool // while readFrom runs: Read does not wait

	// readOnce's argument and results, and readable's byte: kept here so
	// that the functions given to raw are made once, not per read.
	readP    []byte
	readN    int
	readErr  error
	readFn   func(fd uintptr) bool
	peekFn   func(fd uintptr) bool
	peekByte [1]byte
}

// newIdleReader wraps conn, the TCP connection a tls.Conn will run on;
// nil if conn is no socket.
func newIdleReader(conn net.Conn) *idleReader {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &idleReader{Conn: conn, raw: raw}
	r.readFn = r.readOnce
	r.peekFn = r.readable
	return r
}

// start allows readFrom, once the handshake is done and before the
// session's reader starts: from then on the only reader is
// coalesceConn.Read, on the session's reader goroutine.
func (r *idleReader) start() {
	if r != nil {
		r.started = true
	}
}

// usable reports whether readFrom may be used.
func (r *idleReader) usable() bool { return r != nil && r.started }

// errWouldBlock is what a read that would have waited returns.
var errWouldBlock error = wouldBlockError{}

type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "read would block" }
func (wouldBlockError) Timeout() bool   { return false }
func (wouldBlockError) Temporary() bool { return true }

func (r *idleReader) Read(p []byte) (int, error) {
	if !r.noWait {
		return r.Conn.Read(p)
	}
	r.readP = p
	err := r.raw.Read(r.readFn)
	n, rerr := r.readN, r.readErr
	r.readP, r.readErr = nil, nil
	switch {
	case err != nil: // closed, or a deadline passed
		return 0, err
	case rerr == syscall.EAGAIN:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readOnce is one read(2) into readP that does not wait.
func (r *idleReader) readOnce(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), r.readP)
		if err == syscall.EINTR {
			continue
		}
		r.readN, r.readErr = max(n, 0), err
		return true
	}
}

// waitReadable waits until the socket has something to read: data, its
// end or an error. It looks before it waits, so that what came after
// the read that would have blocked is not missed.
func (r *idleReader) waitReadable() error { return r.raw.Read(r.peekFn) }

// readable reports whether a read would not block now.
func (r *idleReader) readable(fd uintptr) bool {
	for {
		_, _, err := syscall.Recvfrom(int(fd), r.peekByte[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err == syscall.EINTR {
			continue
		}
		return err != syscall.EAGAIN
	}
}

// readFrom reads from tc, the tls.Conn over r, and waits for the socket
// in waitReadable rather than inside tc. Use it only once started.
func (r *idleReader) readFrom(tc io.Reader, p []byte) (int, error) {
	r.noWait = true
	defer func() { r.noWait = false }()
	for {
		n, err := tc.Read(p)
		if !errors.Is(err, errWouldBlock) {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
		if err := r.waitReadable(); err != nil {
			return 0, err
		}
	}
}
