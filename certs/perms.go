package certs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Exposure is a file or directory of a CA or an identity that users other
// than its owner can reach: a CA directory or private key readable by the
// group or others, or a certificate or revocation list they can write.
// Permission bits are checked on Unix only; elsewhere (Windows ACLs) no
// exposure is reported.
type Exposure struct {
	// What names the thing: "CA directory", "CA key", "identity key",
	// "private key", "CA certificate", "revocation list".
	What string
	// Path is the file or directory.
	Path string
	// Mode is its permission bits.
	Mode fs.FileMode
	// Why says who can do what: "readable by group or others".
	Why string
	// Fix is the command that closes it: "chmod 700 DIR", "chmod 600 FILE".
	Fix string
}

// String is a one-line description with the fix:
// "CA key ca/ca.key has mode 0644 (readable by group or others): chmod 600 ca/ca.key".
func (e Exposure) String() string {
	return fmt.Sprintf("%s %s has mode %#o (%s): %s", e.What, e.Path, e.Mode.Perm(), e.Why, e.Fix)
}

// Permission masks: what may not be set for group and others.
const (
	privateMask fs.FileMode = 0o077 // a directory of keys, or a key: nothing for anyone else
	publicMask  fs.FileMode = 0o022 // a certificate: anyone may read it, nobody else write it
)

// CheckCADir reports what of the CA in dir users other than its owner can
// reach: dir itself (want 0700), ca.key and every other *.key in it (want
// 0600), and ca.crt and revoked.txt when others can write them. A
// world-readable ca.crt is fine: it is public. Files that do not exist
// are skipped, and so is everything on a platform without Unix
// permission bits.
func CheckCADir(dir string) []Exposure {
	var out []Exposure
	if e, ok := exposed("CA directory", dir, privateMask, "chmod 700 "+dir); ok {
		out = append(out, e)
	}
	keys := []string{filepath.Join(dir, "ca.key")}
	if entries, err := os.ReadDir(dir); err == nil {
		var more []string
		for _, de := range entries {
			if name := de.Name(); name != "ca.key" && strings.HasSuffix(name, ".key") && !de.IsDir() {
				more = append(more, filepath.Join(dir, name))
			}
		}
		sort.Strings(more)
		keys = append(keys, more...)
	}
	for i, k := range keys {
		what := "identity key"
		if i == 0 {
			what = "CA key"
		}
		if e, ok := exposed(what, k, privateMask, "chmod 600 "+k); ok {
			out = append(out, e)
		}
	}
	for _, f := range []struct{ what, name string }{{"CA certificate", "ca.crt"}, {"revocation list", RevokedFile}} {
		p := filepath.Join(dir, f.name)
		if e, ok := exposed(f.what, p, publicMask, "chmod go-w "+p); ok {
			out = append(out, e)
		}
	}
	return out
}

// exposed reports path as an Exposure when any bit of mask is set in its
// permission bits.
func exposed(what, path string, mask fs.FileMode, fix string) (Exposure, bool) {
	mode, ok := permBits(path)
	if !ok || mode.Perm()&mask == 0 {
		return Exposure{}, false
	}
	var why string
	switch bits := mode.Perm() & mask; {
	case mode.IsDir():
		why = "group or others can list or enter it"
	case bits&0o044 != 0:
		why = "readable by group or others"
	case bits&0o022 != 0:
		why = "writable by group or others"
	default:
		why = "executable by group or others"
	}
	return Exposure{What: what, Path: path, Mode: mode, Why: why, Fix: fix}, true
}

// CheckKeyFile reports a private key file that users other than its
// owner can read or write (want 0600). Without PermissionBits it reports
// nothing.
func CheckKeyFile(path string) (Exposure, bool) {
	return exposed("private key", path, privateMask, "chmod 600 "+path)
}
