//go:build unix

package certs

import (
	"io/fs"
	"os"
)

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
