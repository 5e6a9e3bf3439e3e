package tunnel

import (
	"cmp"
	"io"
	"net/http"
	"sync"

	"github.com/restpipe/restpipe/events"
)

// copyBufSize is the size of the buffers that copy bodies onto streams.
const copyBufSize = 64 << 10

// streamBufSize is the size of the buffers that carry a streamed body
// between a front end's caller and a stream: the bigger the reads and
// writes on the caller's connection, the fewer syscalls per byte, and
// (events.Writer.CopyBody writes a big read as one frame) the fewer
// frames.
const streamBufSize = 256 << 10

// streamBufs holds buffers of streamBufSize.
var streamBufs = newBufPool(streamBufSize)

// smallBufSize is the size of the buffers that copy a body in memory of
// at most that many bytes (most events' bodies): such a body does not
// take a 64 KiB buffer for its copy.
const smallBufSize = 4 << 10

// smallBufs holds buffers of smallBufSize.
var smallBufs = newBufPool(smallBufSize)

// copyBufs returns the pool to take a copy buffer of body from: def, or
// smallBufs for a body in memory that fits in one of those.
func copyBufs(body any, def *sync.Pool) *sync.Pool {
	if m, ok := body.(interface{ Len() int }); ok && m.Len() >= 0 && m.Len() <= smallBufSize {
		return smallBufs
	}
	return def
}

// newBufPool returns a pool of *[]byte buffers of size bytes.
func newBufPool(size int) *sync.Pool {
	return &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}}
}

// sendBufs returns the pool of copy buffers of Config.MaxFrame bytes, or of
// def bytes when it is 0; own is a pool of copyBufSize ones to reuse.
func (c Config) sendBufs(def int, own *sync.Pool) *sync.Pool {
	size := cmp.Or(c.MaxFrame, def)
	switch size {
	case copyBufSize:
		return own
	case streamBufSize:
		return streamBufs
	}
	return newBufPool(size)
}

// eventWriter returns the writer that frames an event (a request or a
// reply) with body onto w: a small one for an event without a body or
// with a small one in memory (copyBufs with def picks smallBufs for it),
// so that thousands of small events in flight do not each take a 64 KiB
// buffer; a big one for a body that streams.
func eventWriter(w io.Writer, body io.Reader, def *sync.Pool) *events.Writer {
	if body == nil || body == http.NoBody || copyBufs(body, def) == smallBufs {
		return events.NewSmallWriter(w)
	}
	return events.NewWriter(w)
}
