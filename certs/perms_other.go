//go:build !unix

package certs

import "io/fs"

// PermissionBits reports whether this OS gives files Unix permission
// bits: here it does not. On Windows ACLs decide who can open a file:
// the mode a key is written with only clears its read-only flag, a new
// file takes its directory's ACL, and CheckCADir and CheckKeyFile report
// nothing.
const PermissionBits = false

// permBits reports nothing: without Unix permission bits (Windows uses
// ACLs, which Go's file modes do not show) there is nothing to check.
func permBits(string) (fs.FileMode, bool) { return 0, false }
