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

func newBufPool() *sync.Pool {
	return &sync.Pool{New: func() any {
		b := make([]byte, copyBufSize)
		return &b
	}}
}

var errTooManyFiles = syscall.EMFILE

// disconnectReason says in words why a session ended.
func disconnectReason(err error) string {
	switch {
	case err == nil:
		return "closed"
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
