package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/restpipe/restpipe/certs"
)

// caResult is what one in-process "restpipe ..." run left behind.
type caResult struct {
	code           int
	stdout, stderr string
}

// caRun runs one restpipe command line in-process, with an empty
// environment.
func caRun(t *testing.T, args ...string) caResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &cliEnv{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	code := run(context.Background(), env, args)
	return caResult{code, stdout.String(), stderr.String()}
}

// want fails the test unless the run exited with code; a failure must
// say why on exactly one line of stderr.
func (r caResult) want(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	if code != 0 && strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr is not one line: %q", r.stderr)
	}
}

func assertFileMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %#o, want %#o", path, got, want)
	}
}

func TestCAInitIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")

	r := caRun(t, "ca", "init", "--dir", dir)
	r.want(t, 0)
	for _, f := range []string{"ca.crt", "ca.key"} {
		if !strings.Contains(r.stdout, filepath.Join(dir, f)) {
			t.Errorf("init output does not name %s:\n%s", f, r.stdout)
		}
	}
	assertFileMode(t, filepath.Join(dir, "ca.key"), 0o600)
	assertFileMode(t, filepath.Join(dir, "ca.crt"), 0o644)
	ca, err := certs.OpenCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Subject.CommonName != "restpipe CA" {
		t.Errorf("CA name %q, want the default", ca.Cert.Subject.CommonName)
	}

	// A second init is refused: it would orphan every identity.
	r = caRun(t, "ca", "init", "--dir", dir)
	r.want(t, 1)
	if want := "restpipe ca: " + filepath.Join(dir, "ca.key") + " exists; use --force to replace it\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}

	// A server identity.
	r = caRun(t, "ca", "issue", "--dir", dir, "--name", "server", "--host", "localhost", "--host", "127.0.0.1")
	r.want(t, 0)
	for _, s := range []string{filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), "server auth", "localhost, 127.0.0.1"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("issue output does not say %q:\n%s", s, r.stdout)
		}
	}
	server, err := certs.LoadIdentity(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(server.Leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || !slices.Equal(server.Leaf.DNSNames, []string{"localhost"}) || len(server.Leaf.IPAddresses) != 1 {
		t.Errorf("server cert: EKU %v, DNS %v, IPs %v", server.Leaf.ExtKeyUsage, server.Leaf.DNSNames, server.Leaf.IPAddresses)
	}

	// A client identity, issued once, refused the second time, replaced
	// with --force.
	r = caRun(t, "ca", "issue", "--dir", dir, "--name", "c1", "--days", "30")
	r.want(t, 0)
	if !strings.Contains(r.stdout, "client auth") {
		t.Errorf("issue output does not say client auth:\n%s", r.stdout)
	}
	keyPath := filepath.Join(dir, "c1.key")
	assertFileMode(t, keyPath, 0o600)
	assertFileMode(t, filepath.Join(dir, "c1.crt"), 0o644)
	first, _ := os.ReadFile(keyPath)

	r = caRun(t, "ca", "issue", "--dir", dir, "--name", "c1")
	r.want(t, 1)
	if want := "restpipe ca: " + keyPath + " exists; use --force to replace it\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	if again, _ := os.ReadFile(keyPath); !bytes.Equal(again, first) {
		t.Error("a refused issue changed the key")
	}

	r = caRun(t, "ca", "issue", "--dir", dir, "--name", "c1", "--force", "--usage", "both")
	r.want(t, 0)
	if again, _ := os.ReadFile(keyPath); bytes.Equal(again, first) {
		t.Error("--force did not replace the key")
	}
	c1, err := certs.LoadIdentity(filepath.Join(dir, "c1.crt"), keyPath, filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if c1.Usage() != certs.UsageServer|certs.UsageClient {
		t.Errorf("--usage both gave %v", c1.Usage())
	}
	assertFileMode(t, keyPath, 0o600)
}

func TestCAUsageErrors(t *testing.T) {
	dir := t.TempDir()
	caRun(t, "ca", "init", "--dir", dir).want(t, 0)
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no subcommand", []string{"ca"}, "init, issue, install, uninstall"},
		{"unknown subcommand", []string{"ca", "sign"}, `unknown subcommand "sign": want init, issue, install, uninstall`},
		{"init without --dir", []string{"ca", "init"}, "--dir is required"},
		{"init with no days", []string{"ca", "init", "--dir", t.TempDir(), "--days", "0"}, "--days 0"},
		{"init past 100 years", []string{"ca", "init", "--dir", t.TempDir(), "--days", "36501"}, "--days 36501: want 1 to 36500 (100 years)"},
		{"issue with days that wrap", []string{"ca", "issue", "--dir", dir, "--name", "c9", "--days", "213504"}, "--days 213504: want 1 to 36500 (100 years)"},
		{"issue with negative days", []string{"ca", "issue", "--dir", dir, "--name", "c9", "--days", "-1"}, "--days -1"},
		{"issue with days past int", []string{"ca", "issue", "--dir", dir, "--name", "c9", "--days", "99999999999999999999"}, "-days"},
		{"issue without --dir", []string{"ca", "issue", "--name", "c1"}, "--dir is required"},
		{"issue without --name", []string{"ca", "issue", "--dir", dir}, "--name is required"},
		{"bad name", []string{"ca", "issue", "--dir", dir, "--name", "-rf"}, `invalid name "-rf"`},
		{"name ca", []string{"ca", "issue", "--dir", dir, "--name", "ca"}, `invalid name "ca"`},
		{"bad name, no CA", []string{"ca", "issue", "--dir", t.TempDir(), "--name", "a/b"}, `invalid name "a/b"`},
		{"bad host", []string{"ca", "issue", "--dir", dir, "--name", "s", "--host", "a b"}, `invalid host "a b"`},
		{"bad usage", []string{"ca", "issue", "--dir", dir, "--name", "s", "--usage", "peer"}, `invalid usage "peer"`},
		{"stray argument", []string{"ca", "issue", "--dir", dir, "--name", "s", "extra"}, `unexpected argument "extra"`},
		{"install without --dir", []string{"ca", "install"}, "--dir is required"},
		{"uninstall without --dir", []string{"ca", "uninstall"}, "--dir is required"},
		{"identity without subcommand", []string{"identity"}, "set, show"},
		{"identity set without --ca", []string{"identity", "set", "--cert", "x", "--key", "y"}, "--ca is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := caRun(t, tt.args...)
			r.want(t, 2)
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not say %q", r.stderr, tt.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 { // ca.crt, ca.key, revoked.txt
		t.Errorf("usage errors wrote files: %d entries in the CA dir", len(entries))
	}
}

func TestCAHelp(t *testing.T) {
	for _, sub := range []string{"init", "issue", "install", "uninstall"} {
		r := caRun(t, "ca", sub, "-h")
		r.want(t, 0)
		for _, s := range []string{"restpipe ca " + sub + ":", "-dir", "Example:\n  restpipe ca " + sub} {
			if !strings.Contains(r.stderr, s) {
				t.Errorf("ca %s -h does not say %q:\n%s", sub, s, r.stderr)
			}
		}
	}
	r := caRun(t, "ca", "-h")
	r.want(t, 0)
	for _, s := range []string{"init", "issue", "install", "uninstall"} {
		if !strings.Contains(r.stdout, "  "+s+" ") {
			t.Errorf("ca -h does not list %s:\n%s", s, r.stdout)
		}
	}
	r = caRun(t, "identity", "set", "-h")
	r.want(t, 0)
	if !strings.Contains(r.stderr, "-identity-dir") || !strings.Contains(r.stderr, "Example:") {
		t.Errorf("identity set -h:\n%s", r.stderr)
	}
}

func TestCAInstallWithoutCA(t *testing.T) {
	// A missing ca.crt fails before the system trust store is touched.
	missing := filepath.Join(t.TempDir(), "none")
	for _, sub := range []string{"install", "uninstall"} {
		r := caRun(t, "ca", sub, "--dir", missing)
		r.want(t, 1)
		if want := "restpipe ca: read CA " + filepath.Join(missing, "ca.crt") + ": no such file or directory\n"; r.stderr != want {
			t.Errorf("ca %s: stderr %q, want %q", sub, r.stderr, want)
		}
	}
}

func TestIdentitySet(t *testing.T) {
	caDir := t.TempDir()
	caRun(t, "ca", "init", "--dir", caDir).want(t, 0)
	caRun(t, "ca", "issue", "--dir", caDir, "--name", "c1").want(t, 0)
	caRun(t, "ca", "issue", "--dir", caDir, "--name", "c2").want(t, 0)
	file := func(name string) string { return filepath.Join(caDir, name) }
	idDir := filepath.Join(t.TempDir(), "restpipe")

	r := caRun(t, "identity", "set", "--cert", file("c1.crt"), "--key", file("c1.key"), "--ca", file("ca.crt"), "--identity-dir", idDir)
	r.want(t, 0)
	if !strings.Contains(r.stdout, `installed identity "c1"`) || !strings.Contains(r.stdout, idDir) {
		t.Errorf("identity set output:\n%s", r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("unexpected stderr %q", r.stderr)
	}
	assertFileMode(t, idDir, 0o700)
	assertFileMode(t, filepath.Join(idDir, "node.key"), 0o600)
	assertFileMode(t, filepath.Join(idDir, "node.crt"), 0o644)
	assertFileMode(t, filepath.Join(idDir, "ca.crt"), 0o644)
	if id, err := certs.LoadIdentityDir(idDir); err != nil || id.Name() != "c1" {
		t.Fatalf("installed identity: %v, %v", id, err)
	}

	r = caRun(t, "identity", "show", "--identity-dir", idDir)
	r.want(t, 0)
	if !strings.Contains(r.stdout, "name:   c1\n") || !strings.Contains(r.stdout, "usage:  client\n") {
		t.Errorf("identity show:\n%s", r.stdout)
	}

	// Replacing needs --force.
	r = caRun(t, "identity", "set", "--cert", file("c2.crt"), "--key", file("c2.key"), "--ca", file("ca.crt"), "--identity-dir", idDir)
	r.want(t, 1)
	if want := "restpipe identity: " + filepath.Join(idDir, "node.key") + " exists; use --force to replace it\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	caRun(t, "identity", "set", "--cert", file("c2.crt"), "--key", file("c2.key"), "--ca", file("ca.crt"), "--identity-dir", idDir, "--force").want(t, 0)
	if id, err := certs.LoadIdentityDir(idDir); err != nil || id.Name() != "c2" {
		t.Fatalf("after --force: %v, %v", id, err)
	}
}

func TestIdentitySetErrors(t *testing.T) {
	caDir := t.TempDir()
	caRun(t, "ca", "init", "--dir", caDir).want(t, 0)
	caRun(t, "ca", "issue", "--dir", caDir, "--name", "c1").want(t, 0)
	caRun(t, "ca", "issue", "--dir", caDir, "--name", "c2").want(t, 0)
	file := func(name string) string { return filepath.Join(caDir, name) }
	idDir := filepath.Join(t.TempDir(), "restpipe")
	tests := []struct {
		name          string
		cert, key, ca string
		want          string
	}{
		{"missing cert", file("c9.crt"), file("c1.key"), file("ca.crt"), "restpipe identity: read cert " + file("c9.crt") + ": no such file or directory\n"},
		{"missing key", file("c1.crt"), file("c9.key"), file("ca.crt"), "restpipe identity: read key " + file("c9.key") + ": no such file or directory\n"},
		{"missing CA", file("c1.crt"), file("c1.key"), file("ca9.crt"), "restpipe identity: read CA " + file("ca9.crt") + ": no such file or directory\n"},
		{"wrong key", file("c1.crt"), file("c2.key"), file("ca.crt"), "restpipe identity: key " + file("c2.key") + " does not match certificate " + file("c1.crt") + ": key does not match certificate\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := caRun(t, "identity", "set", "--cert", tt.cert, "--key", tt.key, "--ca", tt.ca, "--identity-dir", idDir)
			r.want(t, 1)
			if r.stderr != tt.want {
				t.Errorf("stderr %q\nwant   %q", r.stderr, tt.want)
			}
		})
	}
	if _, err := os.Stat(idDir); err == nil {
		t.Errorf("a failed identity set created %s", idDir)
	}
}
