//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// processEnv marks a run of this test binary as the restpipe command.
const processEnv = "GO_TEST_RESTPIPE_MAIN"

// TestRestpipeProcess is not a test: run by restpipeProcess with
// processEnv set, it is "restpipe ARGS...", a real process with the real
// environment and signals.
func TestRestpipeProcess(t *testing.T) {
	if os.Getenv(processEnv) != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Args = append([]string{"restpipe"}, args...)
	main()
}

// restpipeProcess is "restpipe args..." as a process, with the test's
// environment minus every RESTPIPE_*, RP_* and DEBUG variable, plus env.
func restpipeProcess(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestRestpipeProcess$", "--"}, args...)...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "RESTPIPE") && !strings.HasPrefix(k, "RP_") &&
			k != "DEBUG" && k != "BIND_IP" && k != "BIND_PORT" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, processEnv+"=1")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// runProcess runs restpipe to the end and returns what it left behind.
func runProcess(t *testing.T, env []string, args ...string) caResult {
	t.Helper()
	code, stdout, stderr := runCommand(t, restpipeProcess(t, env, args...))
	return caResult{code, stdout, stderr}
}

// runCommand runs cmd to the end and returns its exit code (-1 if a
// signal ended it) and output; a failure to start it fails the test.
func runCommand(t *testing.T, cmd *exec.Cmd) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %q: %v", cmd.Args, err)
	}
	return code, out.String(), errOut.String()
}

// startProcess starts a restpipe node as a process whose stderr is the
// returned log; it is stopped with SIGTERM at the end of the test.
func startProcess(t *testing.T, env []string, args ...string) (*exec.Cmd, *logBuffer) {
	t.Helper()
	cmd := restpipeProcess(t, env, args...)
	log := newLogBuffer()
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	return cmd, log
}
