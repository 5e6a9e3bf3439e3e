//go:build unix

package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestListFlagSources: a repeatable flag takes its whole list from the
// highest source that sets it (command line > RESTPIPE_* > RP_* > config
// file); within one source the values add up.
func TestListFlagSources(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "node.json")
	if err := os.WriteFile(cfgFile, []byte(`{"allow": ["a=*", "b=*"], "forward": {"files": "http://127.0.0.1:9000"},
		"origin": ["https://a.example"], "listen": "127.0.0.1:7000"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		allow   []string
		forward []string
		origin  []string
		listen  string
	}{
		{name: "config file alone", allow: []string{"a=*", "b=*"}, forward: []string{"files=http://127.0.0.1:9000"},
			origin: []string{"https://a.example"}, listen: "127.0.0.1:7000"},
		{name: "command line narrows the config file", args: []string{"--allow", "a=get_time"},
			allow: []string{"a=get_time"}, forward: []string{"files=http://127.0.0.1:9000"}, origin: []string{"https://a.example"}, listen: "127.0.0.1:7000"},
		{name: "two on the command line add up", args: []string{"--allow", "a=get_time", "--allow=b=get_cat", "--forward", "api=http://127.0.0.1:1"},
			allow: []string{"a=get_time", "b=get_cat"}, forward: []string{"api=http://127.0.0.1:1"}, origin: []string{"https://a.example"}, listen: "127.0.0.1:7000"},
		{name: "environment replaces the config file", env: map[string]string{"RESTPIPE_ALLOW": "a=get_time;a=get_cat", "RESTPIPE_ORIGIN": "https://b.example"},
			allow: []string{"a=get_time", "a=get_cat"}, forward: []string{"files=http://127.0.0.1:9000"}, origin: []string{"https://b.example"}, listen: "127.0.0.1:7000"},
		{name: "command line replaces the environment", env: map[string]string{"RESTPIPE_ALLOW": "a=get_time a=get_cat"}, args: []string{"--allow", "b=*"},
			allow: []string{"b=*"}, forward: []string{"files=http://127.0.0.1:9000"}, origin: []string{"https://a.example"}, listen: "127.0.0.1:7000"},
		{name: "an empty value replaces nothing", args: []string{"--allow", "", "--forward="},
			allow: []string{"a=*", "b=*"}, forward: []string{"files=http://127.0.0.1:9000"}, origin: []string{"https://a.example"}, listen: "127.0.0.1:7000"},
		{name: "environment of separators only replaces nothing", env: map[string]string{"RESTPIPE_ALLOW": " ; "},
			allow: []string{"a=*", "b=*"}, forward: []string{"files=http://127.0.0.1:9000"}, origin: []string{"https://a.example"}, listen: "127.0.0.1:7000"},
		{name: "an empty value among others", args: []string{"--allow", "", "--allow", "a=get_time"},
			allow: []string{"a=get_time"}, forward: []string{"files=http://127.0.0.1:9000"}, origin: []string{"https://a.example"}, listen: "127.0.0.1:7000"},
		{name: "RP_ variables sit above the config file", env: map[string]string{"BIND_PORT": "7001"},
			allow: []string{"a=*", "b=*"}, forward: []string{"files=http://127.0.0.1:9000"}, origin: []string{"https://a.example"}, listen: "0.0.0.0:7001"},
		{name: "RESTPIPE_ variables sit above RP_ variables", env: map[string]string{"BIND_PORT": "7001", "RESTPIPE_LISTEN": "127.0.0.1:7002"},
			allow: []string{"a=*", "b=*"}, forward: []string{"files=http://127.0.0.1:9000"}, origin: []string{"https://a.example"}, listen: "127.0.0.1:7002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			env := &cliEnv{stdout: &stderr, stderr: &stderr, getenv: func(k string) string { return tt.env[k] }}
			f, err := parseServerFlags(env, append([]string{"--config", cfgFile}, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				flag      string
				got, want []string
			}{{"allow", f.allow, tt.allow}, {"forward", f.forward, tt.forward}, {"origin", f.origins, tt.origin}} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("--%s %q, want %q", c.flag, c.got, c.want)
				}
			}
			if f.listen != tt.listen {
				t.Errorf("--listen %q, want %q", f.listen, tt.listen)
			}
		})
	}
	// The help text stays intact once the lists are put back.
	var out bytes.Buffer
	env := &cliEnv{stdout: &out, stderr: &out, getenv: func(string) string { return "" }}
	if _, err := parseClientFlags(env, []string{"-h"}); err == nil || !strings.Contains(out.String(), "-allow PEER=TARGET") ||
		strings.Contains(out.String(), "panic") || !strings.Contains(out.String(), "replaced, not merged") {
		t.Errorf("client -h: %v\n%s", err, out.String())
	}
}

// TestCommandLineNarrowsConfig: a server process whose config file allows
// c1 everything, with RESTPIPE_ALLOW and two --allow rules: only the
// command line's rules hold, over a real tunnel and after a SIGHUP reload.
func TestCommandLineNarrowsConfig(t *testing.T) {
	d := identities(t, "c1")
	cfgFile := filepath.Join(d, "server.json")
	if err := os.WriteFile(cfgFile, []byte(`{"allow": ["c1=*"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, srvLog := startProcess(t, []string{"RESTPIPE_ALLOW=c1=post_echo"}, "server", "--config", cfgFile,
		"--allow", "c1=get_time", "--allow", "c1=get_cat", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srvLog.wait(t, tunnelAddrRe)
	if n := srvLog.wait(t, `msg="access control" auth="(\d+) rules"`); n != "2" {
		t.Fatalf("%s rules in force, want the command line's 2", n)
	}
	cli := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cliHTTP := cli.log.wait(t, httpAddrRe)
	cli.log.wait(t, `msg="connected to server"`)

	check := func() {
		t.Helper()
		for _, c := range []struct {
			path   string
			status int
		}{
			{"/server/time", 200},      // command line
			{"/server/cat//a", 200},    // command line, the second rule
			{"/server/stream//1", 403}, // config file only
		} {
			if status, body := httpGet(t, "http://"+cliHTTP+c.path); status != c.status {
				t.Errorf("GET %s: %d %s, want %d", c.path, status, body, c.status)
			}
		}
		resp, err := httpPost("http://"+cliHTTP+"/server/echo", "hi") // environment only
		if err != nil || resp != 403 {
			t.Errorf("POST /server/echo: %d %v, want 403", resp, err)
		}
	}
	check()

	// A reload reads every source again, under the same rule.
	if err := os.WriteFile(cfgFile, []byte(`{"allow": ["c1=*", "c1=get_stream"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if n := srvLog.wait(t, `msg="reload: access control" auth="(\d+) rules"`); n != "2" {
		t.Errorf("%s rules in force after the reload, want the command line's 2", n)
	}
	check()
}

// TestEnvironmentIgnoredOutsideNodes: ca, identity and demo take no
// RESTPIPE_* variables; those set are named in a one-line note.
func TestEnvironmentIgnoredOutsideNodes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	caRun(t, "ca", "init", "--dir", dir).want(t, 0)
	caCert, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	caKey, _ := os.ReadFile(filepath.Join(dir, "ca.key"))

	// A real process, with RESTPIPE_FORCE=1 in its environment.
	r := runProcess(t, []string{"RESTPIPE_FORCE=1"}, "ca", "init", "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "ca.key exists; use --force to replace it") ||
		!strings.Contains(r.stderr, "restpipe ca init: note: ignoring RESTPIPE_FORCE: the environment sets flags of server and client only\n") {
		t.Errorf("RESTPIPE_FORCE=1 ca init: exit %d, stderr %q", r.code, r.stderr)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.key")); !bytes.Equal(again, caKey) {
		t.Fatal("RESTPIPE_FORCE=1 replaced the CA key")
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); !bytes.Equal(again, caCert) {
		t.Fatal("RESTPIPE_FORCE=1 replaced the CA certificate")
	}

	env := map[string]string{"RESTPIPE_FORCE": "1", "RESTPIPE_HOST": "evil.example", "RESTPIPE_DIR": t.TempDir(),
		"RESTPIPE_DAYS": "1", "RESTPIPE_IDENTITY_DIR": t.TempDir()}
	envRun := func(args ...string) caResult {
		t.Helper()
		var stdout, stderr bytes.Buffer
		e := &cliEnv{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }}
		return caResult{run(context.Background(), e, args), stdout.String(), stderr.String()}
	}
	r = envRun("ca", "issue", "--dir", dir, "--name", "c1")
	r.want(t, 0)
	if want := "restpipe ca issue: note: ignoring RESTPIPE_DAYS, RESTPIPE_DIR, RESTPIPE_FORCE, RESTPIPE_HOST: the environment sets flags of server and client only\n"; r.stderr != want {
		t.Errorf("ca issue stderr %q, want %q", r.stderr, want)
	}
	if !strings.Contains(r.stdout, `issued "c1" for client auth, valid until`) || strings.Contains(r.stdout, "evil") {
		t.Errorf("ca issue took the environment: %s", r.stdout)
	}
	if r = envRun("ca", "issue", "--dir", dir, "--name", "c1"); r.code != 1 || !strings.Contains(r.stderr, "exists; use --force") {
		t.Errorf("second ca issue with RESTPIPE_FORCE=1: exit %d %q", r.code, r.stderr)
	}
	// identity set: RESTPIPE_IDENTITY_DIR does not choose where it goes.
	idDir := filepath.Join(t.TempDir(), "id")
	r = envRun("identity", "set", "--cert", filepath.Join(dir, "c1.crt"), "--key", filepath.Join(dir, "c1.key"),
		"--ca", filepath.Join(dir, "ca.crt"), "--identity-dir", idDir)
	r.want(t, 0)
	if !strings.Contains(r.stderr, "ignoring RESTPIPE_FORCE, RESTPIPE_IDENTITY_DIR:") || !strings.Contains(r.stdout, idDir) {
		t.Errorf("identity set: stdout %q stderr %q", r.stdout, r.stderr)
	}
	if r = envRun("ca", "init", "-h"); r.code != 0 || strings.Contains(r.stderr, "from the environment as") {
		t.Errorf("ca init -h claims the environment:\n%s", r.stderr)
	}
}

// httpPost posts body as text/plain and returns the status.
func httpPost(url, body string) (int, error) {
	resp, err := http.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestRepeatableFlagsAreLists: every flag whose help says "repeatable" is
// a listValue, so that the source rule above covers it too.
func TestRepeatableFlagsAreLists(t *testing.T) {
	env := &cliEnv{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	fs := newNodeFlagSet(env, "node", "", "")
	var n nodeFlags
	n.register(fs, "127.0.0.1:0")
	lists := 0
	fs.VisitAll(func(f *flag.Flag) {
		_, isList := f.Value.(listValue)
		if strings.Contains(f.Usage, "repeatable") != isList {
			t.Errorf("--%s: says repeatable %v, is a listValue %v", f.Name, strings.Contains(f.Usage, "repeatable"), isList)
		}
		if isList {
			lists++
		}
	})
	if lists < 3 {
		t.Errorf("%d repeatable flags, want at least --allow, --forward and --origin", lists)
	}
}
