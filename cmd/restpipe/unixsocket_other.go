//go:build !unix

package main

import (
	"fmt"
	"io/fs"
	"net"
	"os"
)

// socketHasMode: a UNIX socket here has no permission bits (on Windows
// its ACL, inherited from its directory, decides who may connect), so
// the node warns (warnSocketWithoutMode).
const socketHasMode = false

// listenUnix opens the front end's UNIX socket at path. Without Unix
// permission bits (Windows: the socket file takes its directory's ACL)
// there is no mode to set: keep the socket in a directory only this user
// can open. A stale socket is removed, anything else at path is refused.
func listenUnix(path string) (net.Listener, error) {
	if err := clearStaleSocket(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("front end: listen unix:%s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("front end: listen unix:%s: %w", path, err)
	}
	return &unixListener{UnixListener: ln, path: path, fi: fi}, nil
}

// socketIsStale reports whether a failed connect to an existing socket
// means that nobody listens on it: on these platforms any failure does.
func socketIsStale(error) bool { return true }

// exposedSocketDir: without Unix permission bits there is nothing to
// look at (see listenUnix).
func exposedSocketDir(string) (string, fs.FileMode) { return "", 0 }
