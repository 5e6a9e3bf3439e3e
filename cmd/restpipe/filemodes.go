package main

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"

	"github.com/restpipe/restpipe/certs"
)

// What the CLI says about the modes of the keys it writes and the
// sockets it listens on, true on every OS: on Windows, which has no Unix
// permission bits (certs.PermissionBits, socketHasMode), ACLs decide who
// can open a file, and a new file takes its directory's: the CLI says so
// rather than print a mode that does not apply, or check nothing without
// a word.

// keyMode is what a command's output says of a private key it wrote.
func keyMode() string {
	if certs.PermissionBits {
		return "0600"
	}
	return "no file modes on " + runtime.GOOS + ": its directory's ACL decides who can read it"
}

// noteUncheckedCADir tells, on an OS without permission bits, that the
// CA directory's permissions were not checked (see warnExposed).
func noteUncheckedCADir(w io.Writer, dir string) {
	if !certs.PermissionBits {
		fmt.Fprintf(w, "restpipe ca: note: permissions are not checked on %s, where ACLs decide: make sure only this user can open %s\n", runtime.GOOS, dir)
	}
}

// noteUncheckedKey logs, on an OS without permission bits, that a node's
// private key was not checked for other users' access (see
// certs.CheckKeyFile).
func noteUncheckedKey(logger *slog.Logger, keyFile string) {
	if !certs.PermissionBits {
		logger.Info("this node's private key is not checked for other users' access: there are no file modes on this OS, its ACL decides",
			"file", keyFile, "os", runtime.GOOS)
	}
}

// warnSocketWithoutMode logs, on an OS where a UNIX socket has no mode,
// who can connect to the front end's socket at path.
func warnSocketWithoutMode(logger *slog.Logger, path string) {
	if !socketHasMode {
		logger.Warn("the front end's socket has no mode on this OS: who may connect, and act as this node, is decided by its ACL, inherited from its directory",
			"dir", filepath.Dir(path), "os", runtime.GOOS, "fix", "keep the socket in a directory only this user can open")
	}
}
