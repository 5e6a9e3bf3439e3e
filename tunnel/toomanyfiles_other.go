//go:build !windows

package tunnel

import (
	"errors"
	"syscall"
)

// tooManyFiles reports whether an accept failed because the process is
// out of file descriptors: the server retries it after a pause.
func tooManyFiles(err error) bool { return errors.Is(err, syscall.EMFILE) }
