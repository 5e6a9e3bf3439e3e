package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// clearStaleSocket makes way for a new socket at path. Nothing there is
// fine. A socket that nobody listens on any more (left by an earlier run)
// is removed. Anything else is refused, and left as it is: a regular file
// or directory named by mistake, or a socket another process still
// serves.
func clearStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("front end: unix:%s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("front end: unix:%s exists and is not a socket (%s); remove it or choose another path", path, fileKind(fi.Mode()))
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("front end: unix:%s: another process is listening on it", path)
	}
	if !socketIsStale(err) {
		return fmt.Errorf("front end: unix:%s: cannot tell whether the socket is still in use (%v); remove it if it is stale", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("front end: remove stale socket unix:%s: %w", path, err)
	}
	return nil
}

// fileKind names what a non-socket file is, for an error message.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	default:
		return "mode " + m.String()
	}
}

// unixListener is the front end's socket under its final name: Addr names
// that path, and Close removes it (if it is still this socket) rather
// than the temporary name it was bound under.
type unixListener struct {
	*net.UnixListener
	path string
	fi   fs.FileInfo // the socket as it was created, to tell it from a newer one
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if fi, statErr := os.Lstat(l.path); statErr == nil && os.SameFile(fi, l.fi) {
		os.Remove(l.path)
	}
	return err
}
