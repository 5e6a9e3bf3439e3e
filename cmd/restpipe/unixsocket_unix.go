//go:build unix

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// socketHasMode: a UNIX socket here is a file with permission bits, so
// listenUnix makes it 0600.
const socketHasMode = true

// listenUnix opens the front end's UNIX socket at path with mode 0600 from
// its first moment, so that no other user can ever connect to it: the
// socket is bound inside a fresh 0700 directory next to path (nobody else
// can reach it there), made 0600, then linked into place, which fails
// rather than replaces when something has appeared at path meanwhile. The
// umask is not used: it is process-wide, and changing it races with every
// other goroutine that creates files.
func listenUnix(path string) (net.Listener, error) {
	if err := clearStaleSocket(path); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".rp") // 0700; short, for the socket path limit
	if err != nil {
		return nil, fmt.Errorf("front end: listen unix:%s: %w", path, err)
	}
	defer os.RemoveAll(dir) // empty by then, unless something failed
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("front end: listen unix:%s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // it is unlinked under its final name (unixListener.Close)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("front end: chmod unix:%s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		// Some file systems cannot link a socket; a rename replaces
		// rather than fails, so look once more first.
		if errors.Is(err, os.ErrExist) || !linkUnsupported(err) {
			ln.Close()
			return nil, fmt.Errorf("front end: listen unix:%s: %w", path, err)
		}
		if err := clearStaleSocket(path); err != nil {
			ln.Close()
			return nil, err
		}
		if err := os.Rename(tmp, path); err != nil {
			ln.Close()
			return nil, fmt.Errorf("front end: listen unix:%s: %w", path, err)
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("front end: listen unix:%s: %w", path, err)
	}
	return &unixListener{UnixListener: ln, path: path, fi: fi}, nil
}

// linkUnsupported reports a link(2) failure that says the file system
// does not do hard links (rather than that linking is not allowed).
func linkUnsupported(err error) bool {
	return errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOTSUP) ||
		errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.EMLINK)
}

// socketIsStale reports whether a failed connect to an existing socket
// means that nobody listens on it.
func socketIsStale(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// exposedSocketDir returns the first directory on the way from the
// socket at path up to the root that group or others may write and that
// is not sticky, with its mode; "" if there is none. Whoever can write
// such a directory can rename the node's socket (or a directory above
// it) away and put a socket of theirs at path: callers of the front end
// would then send their requests, credentials included, to that user.
// The socket's own mode cannot prevent it. In a sticky directory (/tmp)
// only a file's owner may rename it.
func exposedSocketDir(path string) (string, fs.FileMode) {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return "", 0
	}
	for {
		if fi, err := os.Stat(dir); err == nil {
			if m := fi.Mode(); m.Perm()&0o022 != 0 && m&fs.ModeSticky == 0 {
				return dir, m
			}
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", 0
		}
		dir = up
	}
}
