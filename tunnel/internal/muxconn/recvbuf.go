package muxconn

// Receive buffers that stay at one window.
//
// yamux keeps what a stream has received and not yet been read in a
// bytes.Buffer (Stream.recvBuf), which it never compacts by itself
// unless half of it is free: a reader that takes the stream's bytes
// slower than they come (a caller reading a reply at 10 KB/s) leaves the
// buffer holding up to a window while its front is consumed, and each
// time new data reaches its end, bytes.Buffer allocates twice what it
// holds. Such a stream ends up with a buffer of about twice the window.
//
// A RecvReader keeps it at window + recvSlack. Before each read it looks
// at the stream's buffer and its receive window (under the stream's own
// lock, the one yamux takes to fill the buffer) and makes sure that the
// most the peer may send before the next read fits after the buffer's
// end: it moves the unread bytes to the front when needed (once per half
// window consumed on a full stream, so about one copy of each byte, what
// bytes.Buffer itself spends), gives a buffer holding much a capacity of
// window + recvSlack once, and limits the read that may send a window
// update to what keeps the bound. Nothing else changes: yamux still
// fills, reads and accounts the buffer.
//
// This is the one place that depends on yamux's internals rather than
// its API and wire format: the unexported fields recvWindow (uint32),
// recvBuf (*bytes.Buffer) and recvLock (sync.Mutex) of yamux.Stream
// v0.1.2, found by name and type through reflect. If they are not there
// (another yamux), RecvReader reads the stream as it is (RecvCompacts
// reports false) and a test fails. TestRecvBufStaysAtWindow,
// TestRecvLayoutFound.

import (
	"bytes"
	"io"
	"reflect"
	"sync"
	"unsafe"

	"github.com/hashicorp/yamux"
)

// recvSlack is what a stream's receive buffer holds beyond its window: a
// page, and room for bytes.Buffer's 512-byte probe (bytes.MinRead)
// before each piece it reads.
const recvSlack = 8 << 10

// recvLayout locates the fields of yamux.Stream a RecvReader uses.
var recvLayout = func() (l struct {
	ok             bool
	win, buf, lock uintptr
}) {
	t := reflect.TypeFor[yamux.Stream]()
	field := func(name string, want reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		return f.Offset, ok && f.Type == want
	}
	var ok1, ok2, ok3 bool
	l.win, ok1 = field("recvWindow", reflect.TypeFor[uint32]())
	l.buf, ok2 = field("recvBuf", reflect.TypeFor[*bytes.Buffer]())
	l.lock, ok3 = field("recvLock", reflect.TypeFor[sync.Mutex]())
	l.ok = ok1 && ok2 && ok3
	return l
}()

// RecvCompacts reports whether RecvReader can hold yamux's receive
// buffers to a window (the fields it needs are where it expects them).
func RecvCompacts() bool { return recvLayout.ok }

// RecvReader reads a yamux stream whose session has the receive window
// window (yamux.Config.MaxStreamWindowSize), keeping the stream's receive
// buffer at most window + 8 KiB. One goroutine reads it at a time.
type RecvReader struct {
	st     *yamux.Stream
	window int
	read   int // bytes read, up to bulkRead
}

// bulkRead is how much a stream has read when it counts as bulk: it may
// soon hold a window unread (its reader waiting on something else, a
// slow caller), so it gets the buffer it keeps before that, since no
// read would come meanwhile to keep yamux from doubling its buffer (to
// twice the window). A smaller stream (most replies) never takes it.
const bulkRead = 64 << 10

// NewRecvReader returns a RecvReader of st, in a session whose streams'
// receive window is window.
func NewRecvReader(st *yamux.Stream, window uint32) *RecvReader {
	return &RecvReader{st: st, window: int(window)}
}

var _ io.Reader = (*RecvReader)(nil)

// Read reads from the stream, as yamux.Stream.Read.
func (r *RecvReader) Read(p []byte) (int, error) {
	if len(p) > 0 && recvLayout.ok {
		p = r.makeRoom(p)
	}
	n, err := r.st.Read(p)
	if r.read < bulkRead {
		r.read += n
	}
	return n, err
}

// fields returns the stream's receive window, buffer and lock.
func (r *RecvReader) fields() (*uint32, **bytes.Buffer, *sync.Mutex) {
	base := unsafe.Pointer(r.st)
	return (*uint32)(unsafe.Add(base, recvLayout.win)),
		(**bytes.Buffer)(unsafe.Add(base, recvLayout.buf)),
		(*sync.Mutex)(unsafe.Add(base, recvLayout.lock))
}

// makeRoom readies the stream's buffer for a read into p, and returns
// the part of p the read may fill.
//
// What it keeps true: until the next read, the peer sends at most the
// receive window (recvWindow after this read's window update, if it
// sends one), and bytes.Buffer needs bytes.MinRead free past that;
// if the buffer's free end holds that, it never grows. The buffer's
// unread bytes (m) and the window (rw) add up to at most window.
func (r *RecvReader) makeRoom(p []byte) []byte {
	winp, bufp, mu := r.fields()
	mu.Lock()
	defer mu.Unlock()
	b := *bufp
	w := r.window
	bulk := r.read >= bulkRead
	if b == nil && !bulk {
		return p // nothing buffered: yamux allocates a frame's size
	}
	var m, c int
	if b != nil {
		m, c = b.Len(), b.Cap()
	}
	rw := int(*winp)
	if m == 0 && b != nil {
		if !bulk && c > w+2*recvSlack {
			*bufp = nil // a big buffer now empty: yamux makes a new one when needed
			return p
		}
		b.Reset() // what bytes.Buffer does at its next write; the rest applies
	}
	// A stream that holds much, or is bulk, gets the one buffer it
	// keeps: window + recvSlack.
	if (m >= w/4 || bulk) && (c < w+recvSlack || c > w+2*recvSlack) {
		nb := bytes.NewBuffer(make([]byte, 0, w+recvSlack))
		if b != nil {
			nb.Write(b.Bytes())
		}
		*bufp, b, c = nb, nb, nb.Cap()
	}
	if c < w+recvSlack {
		// A small buffer: bytes.Buffer may grow it, to at most twice
		// what it holds (under window/2), then the step above applies.
		return p
	}
	off := c - b.Available() - m
	slide := func() {
		unread := b.Bytes()
		b.Reset()
		b.Write(unread) // to the front, in place (copy handles overlap)
		off = 0
	}
	// The read takes n <= len(p) bytes (waiting for some if m is 0) and
	// sends a window update if window - (m + a - n) - (rw - a) >= window/2
	// for the a bytes that came meanwhile, that is if n >= m + rw -
	// window/2. The peer may then send window - (m + a - n) more, which
	// ends at most at off + n + window: within capacity, with MinRead to
	// spare, if off + n <= c - window - MinRead.
	if len(p) >= m+rw-w/2 {
		room := c - w - bytes.MinRead
		if off+len(p) > room && off > 0 {
			slide()
		}
		if len(p) > room-off {
			p = p[:max(room-off, 1)]
		}
		return p
	}
	// No update: the peer sends at most rw more.
	if b.Available() < rw+bytes.MinRead {
		slide()
	}
	return p
}

// state returns, under the stream's lock, what its buffer holds unread,
// the buffer's capacity and the receive window (for tests).
func (r *RecvReader) state() (unread, capacity, window int) {
	winp, bufp, mu := r.fields()
	mu.Lock()
	defer mu.Unlock()
	if b := *bufp; b != nil {
		unread, capacity = b.Len(), b.Cap()
	}
	return unread, capacity, int(*winp)
}
