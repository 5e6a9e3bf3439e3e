//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCAPermissionWarnings: a CA directory or key that others can reach
// is used, with one warning line per problem naming it, its mode and the
// chmod that fixes it; a world-readable ca.crt is no problem.
func TestCAPermissionWarnings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	dirLine := "restpipe ca: warning: CA directory " + dir + " has mode 0755 (group or others can list or enter it): chmod 700 " + dir + "\n"
	key := filepath.Join(dir, "ca.key")
	keyLine := "restpipe ca: warning: CA key " + key + " has mode 0640 (readable by group or others): chmod 600 " + key + "\n"

	chmod := func(path string, mode os.FileMode) {
		t.Helper()
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		before func()
		args   []string
		stderr string
	}{
		{"init in an existing 0755 directory", nil, []string{"ca", "init", "--dir", dir}, dirLine},
		{"issue", nil, []string{"ca", "issue", "--dir", dir, "--name", "c1"}, dirLine},
		{"issue with a readable CA key", func() { chmod(key, 0o640) }, []string{"ca", "issue", "--dir", dir, "--name", "c2"}, dirLine + keyLine},
		{"revoke", nil, []string{"ca", "revoke", "--dir", dir, "--name", "c1"}, dirLine + keyLine},
		{"identity keys too", func() { chmod(dir, 0o700); chmod(key, 0o600); chmod(filepath.Join(dir, "c2.key"), 0o644) },
			[]string{"ca", "issue", "--dir", dir, "--name", "c3"},
			"restpipe ca: warning: identity key " + filepath.Join(dir, "c2.key") + " has mode 0644 (readable by group or others): chmod 600 " + filepath.Join(dir, "c2.key") + "\n"},
		{"private, ca.crt world-readable: silent", func() { chmod(filepath.Join(dir, "c2.key"), 0o600); chmod(filepath.Join(dir, "ca.crt"), 0o644) },
			[]string{"ca", "issue", "--dir", dir, "--name", "c4"}, ""},
		{"ca.crt writable by others", func() { chmod(filepath.Join(dir, "ca.crt"), 0o666) }, []string{"ca", "revoke", "--dir", dir, "--name", "c4"},
			"restpipe ca: warning: CA certificate " + filepath.Join(dir, "ca.crt") + " has mode 0666 (writable by group or others): chmod go-w " + filepath.Join(dir, "ca.crt") + "\n"},
		{"init --force in a private directory: silent", func() { chmod(filepath.Join(dir, "ca.crt"), 0o644) }, []string{"ca", "init", "--dir", dir, "--force"}, ""},
		{"init of a new directory: silent", nil, []string{"ca", "init", "--dir", filepath.Join(t.TempDir(), "new")}, ""},
	}
	for _, tt := range tests {
		if tt.before != nil {
			tt.before()
		}
		r := caRun(t, tt.args...)
		if r.code != 0 || r.stderr != tt.stderr {
			t.Errorf("%s: %v: exit %d\nstderr %q\nwant   %q", tt.name, tt.args, r.code, r.stderr, tt.stderr)
		}
	}
}

// TestNodeKeyPermissionWarning: a node whose private key others can read
// starts, and its log says so with the fix.
func TestNodeKeyPermissionWarning(t *testing.T) {
	d := identities(t)
	key := filepath.Join(d, "server.key")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startNode(t, nil, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", key, "--ca", filepath.Join(d, "ca.crt"))
	srv.log.wait(t, `level=WARN msg="this node's private key is not private: other users can reach it" file=`+strings.ReplaceAll(key, ".", `\.`)+` mode=0644 fix="chmod 600 `)
	srv.log.wait(t, tunnelAddrRe) // and it runs
}
