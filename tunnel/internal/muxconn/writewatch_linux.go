package muxconn

import (
	"net"
	"syscall"
	"unsafe"
)

// sendQueued is how many bytes of c's send queue the peer has not
// acknowledged yet (SIOCOUTQ, which Linux names TIOCOUTQ for sockets).
func sendQueued(c net.Conn) (int, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var q int32
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&q)))
	}); err != nil || errno != 0 {
		return 0, false
	}
	return int(q), true
}
