package certs

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// scriptEnv is the test's environment without RESTPIPE and RESTPIPE_*
// variables, plus extra.
func scriptEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RESTPIPE") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runScript runs make-identities.sh and returns its output and exit code.
func runScript(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"make-identities.sh"}, args...)...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run make-identities.sh: %v", err)
	}
	return out.String(), errOut.String(), code
}

func TestMakeIdentitiesScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build restpipe with")
	}
	bin := filepath.Join(t.TempDir(), "restpipe")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/restpipe")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/restpipe: %v\n%s", err, out)
	}
	env := scriptEnv("RESTPIPE=" + bin)

	_, stderr, code := runScript(t, env, t.TempDir())
	if code != 2 || !strings.HasPrefix(stderr, "usage: make-identities.sh DIR SERVER [CLIENT...]") {
		t.Errorf("one argument: exit %d, stderr %q; want 2 and the usage", code, stderr)
	}

	dir := filepath.Join(t.TempDir(), "ca")
	stdout, stderr, code := runScript(t, env, dir, "server", "c1", "c2")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, line := range []string{
		"CA      " + filepath.Join(dir, "ca.crt") + " (new)",
		"server  " + filepath.Join(dir, "server.crt") + " " + filepath.Join(dir, "server.key") + " (new)",
		"client  " + filepath.Join(dir, "c2.crt") + " " + filepath.Join(dir, "c2.key") + " (new)",
	} {
		if !strings.Contains(stdout, line+"\n") {
			t.Errorf("summary lacks %q:\n%s", line, stdout)
		}
	}
	assertMode(t, filepath.Join(dir, "ca.key"), 0o600)
	assertMode(t, filepath.Join(dir, "ca.crt"), 0o644)
	caFile := filepath.Join(dir, "ca.crt")
	load := func(name string) *Identity {
		t.Helper()
		assertMode(t, filepath.Join(dir, name+".key"), 0o600)
		assertMode(t, filepath.Join(dir, name+".crt"), 0o644)
		id, err := LoadIdentity(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), caFile)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	server := load("server")
	if server.Usage() != UsageServer || !slices.Equal(server.Leaf.DNSNames, []string{"localhost"}) ||
		len(server.Leaf.IPAddresses) != 1 || server.Leaf.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("server: usage %v, DNS %v, IPs %v", server.Usage(), server.Leaf.DNSNames, server.Leaf.IPAddresses)
	}
	for _, name := range []string{"c1", "c2"} {
		if id := load(name); id.Usage() != UsageClient || !slices.Equal(id.Leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
			t.Errorf("%s: usage %v", name, id.Usage())
		}
	}

	// Again with one more client: what exists is kept as it is.
	c1Key, _ := os.ReadFile(filepath.Join(dir, "c1.key"))
	caKey, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	stdout, stderr, code = runScript(t, env, dir, "server", "c1", "c3")
	if code != 0 {
		t.Fatalf("second run: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, s := range []string{
		"CA      " + caFile + " (exists, kept)",
		"server  " + filepath.Join(dir, "server.crt") + " " + filepath.Join(dir, "server.key") + " (exists, kept)",
		"client  " + filepath.Join(dir, "c1.crt") + " " + filepath.Join(dir, "c1.key") + " (exists, kept)",
		"client  " + filepath.Join(dir, "c3.crt") + " " + filepath.Join(dir, "c3.key") + " (new)",
	} {
		if !strings.Contains(stdout, s+"\n") {
			t.Errorf("second summary lacks %q:\n%s", s, stdout)
		}
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "c1.key")); !bytes.Equal(again, c1Key) {
		t.Error("second run replaced c1.key")
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.key")); !bytes.Equal(again, caKey) {
		t.Error("second run replaced ca.key")
	}
	load("c3")

	// A bad name fails with the CLI's message and exit code.
	_, stderr, code = runScript(t, env, dir, "server", "-bad")
	if code != 2 || !strings.Contains(stderr, `invalid name "-bad"`) {
		t.Errorf("bad name: exit %d, stderr %q", code, stderr)
	}

	// Without $RESTPIPE and with no restpipe on PATH, it builds one.
	path := filepath.Dir(goBin) + string(os.PathListSeparator) + "/usr/bin" + string(os.PathListSeparator) + "/bin"
	var noRestpipe []string
	for _, kv := range scriptEnv() {
		if !strings.HasPrefix(kv, "PATH=") {
			noRestpipe = append(noRestpipe, kv)
		}
	}
	noRestpipe = append(noRestpipe, "PATH="+path)
	for _, d := range filepath.SplitList(path) {
		if _, err := os.Stat(filepath.Join(d, "restpipe")); err == nil {
			t.Skipf("%s/restpipe is installed: cannot test the build fallback", d)
		}
	}
	stdout, stderr, code = runScript(t, noRestpipe, dir, "server", "c4")
	if code != 0 || !strings.Contains(stderr, "building restpipe from") || !strings.Contains(stdout, "c4.key (new)") {
		t.Errorf("build fallback: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	load("c4")
}
