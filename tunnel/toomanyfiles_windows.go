package tunnel

import (
	"errors"
	"syscall"
)

// wsaEMFILE is Winsock's "too many open sockets" (WSAEMFILE), which an
// accept returns on Windows where Unix says EMFILE.
const wsaEMFILE syscall.Errno = 10024

// tooManyFiles reports whether an accept failed because the process is
// out of sockets: the server retries it after a pause.
func tooManyFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, wsaEMFILE)
}
