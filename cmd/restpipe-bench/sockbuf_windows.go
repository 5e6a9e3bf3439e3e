package main

import "syscall"

// setRecvBuffer sets a socket's receive buffer (SO_RCVBUF) to size.
func setRecvBuffer(c syscall.RawConn, size int) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
	}); err != nil {
		return err
	}
	return serr
}
