//go:build unix

package main

// The interop suite (issue 15, point 9): the real restpipe binary, as a
// server and a client process, driven by clients we did not write (curl,
// python3 with requests, ...). Each interop_<topic>_test.go starts its
// nodes with interopPair and calls them with curlRun, pythonRun or a
// tool of its own found with needTool. A client that is not installed
// makes its case skip, naming the Debian package (make client-deps
// installs them), never pass silently.

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pair is a server and a client "c1" running as processes, connected.
type pair struct {
	dir            string     // the CA, server and c1 identities
	tunnel         string     // the server's tunnel address
	srvURL, cliURL string     // front ends: "http://127.0.0.1:PORT"
	srvLog, cliLog *logBuffer // each process's stderr
}

// interopPair makes identities (a CA, "server" for 127.0.0.1 and a client
// "c1"), starts "restpipe server" and "restpipe client" as processes on
// kernel-chosen loopback ports, and returns once c1 is connected. A
// test's own flags (--forward, --max-body, ...) come last in serverArgs
// and clientArgs. Both processes get SIGTERM when the test ends.
func interopPair(t *testing.T, serverArgs, clientArgs []string) *pair {
	t.Helper()
	d := identities(t, "c1")
	ca := filepath.Join(d, "ca.crt")
	p := &pair{dir: d}
	_, p.srvLog = startProcess(t, nil, append([]string{"server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", ca}, serverArgs...)...)
	p.tunnel = p.srvLog.wait(t, tunnelAddrRe)
	p.srvURL = "http://" + p.srvLog.wait(t, httpAddrRe)
	_, p.cliLog = startProcess(t, nil, append([]string{"client", "--server", p.tunnel, "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", ca}, clientArgs...)...)
	p.cliURL = "http://" + p.cliLog.wait(t, httpAddrRe)
	p.cliLog.wait(t, `msg="connected to server"`)
	p.srvLog.wait(t, `msg="client connected".* peer=c1`)
	return p
}

// toolRun is what one run of an outside client left behind.
type toolRun struct {
	code           int
	stdout, stderr string
}

// toolTimeout bounds every outside client's run.
const toolTimeout = 20 * time.Second

// needTool skips the test unless the program is on the PATH; pkg is the
// Debian package that has it.
func needTool(t *testing.T, program, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		t.Skipf("no %s: install %s (make client-deps)", program, pkg)
	}
	return path
}

// runTool runs a program to the end (at most toolTimeout) and returns
// its exit code and output; a failure to start it fails the test.
func runTool(t *testing.T, program string, args ...string) toolRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Env = toolEnv()
	code, stdout, stderr := runCommand(t, cmd)
	if ctx.Err() != nil {
		t.Fatalf("%s %q: still running after %v\nstderr: %s", program, args, toolTimeout, stderr)
	}
	return toolRun{code, stdout, stderr}
}

// toolEnv is the test's environment without proxy settings, which curl
// and requests would otherwise use for 127.0.0.1 too.
func toolEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasSuffix(strings.ToLower(k), "_proxy") {
			env = append(env, kv)
		}
	}
	return env
}

// curlRun runs "curl --silent --show-error args..." (skipping the test
// when there is no curl).
func curlRun(t *testing.T, args ...string) toolRun {
	t.Helper()
	curl := needTool(t, "curl", "curl")
	return runTool(t, curl, append([]string{"--silent", "--show-error"}, args...)...)
}

// missingModule finds the module a python3 script could not import.
var missingModule = regexp.MustCompile(`ModuleNotFoundError: No module named '([\w.]+)'`)

// debianPython is Debian's own python3, which has the modules that
// apt-get installs (python3-requests, python3-websockets) when the
// python3 on the PATH (pyenv, a venv) does not.
const debianPython = "/usr/bin/python3"

// pythonRun runs "python3 -c script args..." (sys.argv[1:] is args). When
// the script's imports fail with the python3 on the PATH, it runs with
// debianPython; the test skips when neither has the module, naming its
// Debian package (requests: python3-requests), or when there is no
// python3.
func pythonRun(t *testing.T, script string, args ...string) toolRun {
	t.Helper()
	py := needTool(t, "python3", "python3")
	r := runTool(t, py, append([]string{"-c", script}, args...)...)
	m := missingModule.FindStringSubmatch(r.stderr)
	if r.code != 0 && m != nil && py != debianPython {
		if _, err := exec.LookPath(debianPython); err == nil {
			r = runTool(t, debianPython, append([]string{"-c", script}, args...)...)
			m = missingModule.FindStringSubmatch(r.stderr)
		}
	}
	if r.code != 0 && m != nil {
		mod, _, _ := strings.Cut(m[1], ".")
		t.Skipf("python3 has no %s: install python3-%s (make client-deps)", mod, mod)
	}
	return r
}

// ok fails the test unless the run exited with code 0, and returns it.
func (r toolRun) ok(t *testing.T) toolRun {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit code %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r
}

// TestInteropPair: the harness itself, with both clients, both ways.
func TestInteropPair(t *testing.T) {
	p := interopPair(t, nil, nil)
	if r := curlRun(t, p.cliURL+"/server/time").ok(t); !strings.Contains(r.stdout, `"node":"server"`) {
		t.Errorf("curl GET /server/time: %s", r.stdout)
	}
	r := pythonRun(t, `
import sys, requests
r = requests.get(sys.argv[1] + "/client/c1/time", timeout=10)
print(r.status_code, r.text)`, p.srvURL).ok(t)
	if !strings.HasPrefix(r.stdout, "200 ") || !strings.Contains(r.stdout, `"node":"c1"`) {
		t.Errorf("requests GET /client/c1/time: %s", r.stdout)
	}
}

// streamLines runs program (at most toolTimeout, or until the test ends)
// in dir ("" for the test's own) and returns its stdout's lines as they
// come; the channel closes when the program ends.
func streamLines(t *testing.T, dir, program string, args ...string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Env, cmd.Dir = toolEnv(), dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- strings.TrimSuffix(sc.Text(), "\r")
		}
	}()
	t.Cleanup(func() {
		cancel()
		for range lines {
		}
		<-done
		if err := cmd.Wait(); err != nil && ctx.Err() == nil && t.Failed() {
			t.Logf("%s: %v\nstderr: %s", program, err, stderr.String())
		}
	})
	return lines
}
