//go:build !linux

package muxconn

import (
	"io"
	"net"
)

// idleReader is Linux-only (idleread_linux.go); elsewhere the session's
// reader waits inside the tls.Conn, and newIdleReader returns nil.
type idleReader struct{ net.Conn }

func newIdleReader(net.Conn) *idleReader { return nil }

func (r *idleReader) start()       {}
func (r *idleReader) usable() bool { return false }

func (r *idleReader) readFrom(tc io.Reader, p []byte) (int, error) { return tc.Read(p) }
