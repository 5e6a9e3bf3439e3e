package tunnel

import "sync"

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

// newBufPool returns a pool of *[]byte buffers of size bytes.
func newBufPool(size int) *sync.Pool {
	return &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}}
}
