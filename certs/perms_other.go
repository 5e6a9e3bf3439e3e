//go:build !unix

package certs

import "io/fs"

// permBits reports nothing: without Unix permission bits (Windows uses
// ACLs, which Go's file modes do not show) there is nothing to check.
func permBits(string) (fs.FileMode, bool) { return 0, false }
