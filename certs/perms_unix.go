//go:build unix

package certs

import (
	"io/fs"
	"os"
)

// PermissionBits reports whether this OS gives files Unix permission
// bits: here it does, so keys are written 0600, directories 0700, and
// CheckCADir and CheckKeyFile report what others can reach.
const PermissionBits = true

// permBits returns path's type and permission bits, following symbolic
// links (the file read is the one that counts); false if it cannot be
// read.
func permBits(path string) (fs.FileMode, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	return fi.Mode() & (fs.ModeDir | fs.ModePerm), true
}
