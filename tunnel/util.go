package tunnel

import (
	"errors"
	"io"
	"sync"
	"syscall"

	"github.com/hashicorp/yamux"
)

// copyBufSize is the size of the buffers that copy bodies onto streams.
const copyBufSize = 64 << 10

// relayBufSize is the size of the buffers that relay a streamed body
// between a front end's caller and a stream: the bigger the reads and
// writes on the caller's connection, the fewer syscalls per byte, and
// (events.Writer.CopyBody writes a big read as one frame) the fewer
// frames.
const relayBufSize = 256 << 10

// relayBufs holds buffers of relayBufSize.
var relayBufs = newBufPool(relayBufSize)

// newBufPool returns a pool of *[]byte buffers of size bytes.
func newBufPool(size int) *sync.Pool {
	return &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}}
}

var errTooManyFiles = syscall.EMFILE

// disconnectReason says in words why a session ended.
func disconnectReason(err error) string {
	switch {
	case err == nil:
		return "closed"
	case errors.As(err, new(*peerNotice)):
		return err.Error()
	case errors.Is(err, yamux.ErrKeepAliveTimeout):
		return "keep-alive timeout: peer stopped answering"
	case errors.Is(err, yamux.ErrSessionShutdown):
		return "closed by this node"
	case errors.Is(err, io.EOF):
		return "closed by peer"
	case errors.Is(err, yamux.ErrRemoteGoAway):
		return "peer is shutting down"
	default:
		return err.Error()
	}
}
