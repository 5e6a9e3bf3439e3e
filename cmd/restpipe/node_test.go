package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logBuffer is a node's stderr that a test can wait on.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return len(p), nil
}

// String returns the log so far.
func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wait returns the first submatch of re once the log holds it.
func (b *logBuffer) wait(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(20 * time.Second)
	for {
		b.mu.Lock()
		m := rx.FindStringSubmatch(b.buf.String())
		ch := b.changed
		b.mu.Unlock()
		if m != nil {
			if len(m) > 1 {
				return m[1]
			}
			return m[0]
		}
		select {
		case <-ch:
		case <-timeout:
			b.mu.Lock()
			defer b.mu.Unlock()
			t.Fatalf("no log line matching %q in:\n%s", re, b.buf.String())
		}
	}
}

// node is a restpipe command running in-process until stop.
type node struct {
	log  *logBuffer
	out  *logBuffer
	code chan int
	stop func() int
}

func startNode(t *testing.T, getenv func(string) string, args ...string) *node {
	t.Helper()
	return startNodeEnv(t, getenv, nil, args...)
}

// startNodeEnv is startNode with a channel standing for SIGHUP.
func startNodeEnv(t *testing.T, getenv func(string) string, reload chan os.Signal, args ...string) *node {
	t.Helper()
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	n := &node{log: newLogBuffer(), out: newLogBuffer(), code: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	env := &cliEnv{stdout: n.out, stderr: n.log, getenv: getenv, reload: reload}
	go func() { n.code <- run(ctx, env, args) }()
	n.stop = sync.OnceValue(func() int { cancel(); return <-n.code })
	t.Cleanup(func() { n.stop() })
	return n
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// identities makes a CA in a temporary directory with a server identity
// for 127.0.0.1 and one client identity per name, and returns the directory.
func identities(t *testing.T, clients ...string) string {
	t.Helper()
	d := t.TempDir()
	caRun(t, "ca", "init", "--dir", d).want(t, 0)
	caRun(t, "ca", "issue", "--dir", d, "--name", "server", "--host", "localhost", "--host", "127.0.0.1").want(t, 0)
	for _, name := range clients {
		caRun(t, "ca", "issue", "--dir", d, "--name", name).want(t, 0)
	}
	return d
}

const (
	tunnelAddrRe = `msg="tunnel listening".* addr=(127\.0\.0\.1:\d+)`
	httpAddrRe   = `msg="front end listening".* addr=(127\.0\.0\.1:\d+)`
)

// TestWalkthrough follows the README: identities with the CA tool, a
// server, a client, calls both ways, then a clean stop.
func TestWalkthrough(t *testing.T) {
	d := identities(t, "c1")

	srv := startNode(t, nil, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	srvHTTP := srv.log.wait(t, httpAddrRe)

	cli := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0", "--log-level", "debug",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cliHTTP := cli.log.wait(t, httpAddrRe)
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected".* peer=c1`)

	for _, c := range []struct{ url, want string }{
		{"http://" + cliHTTP + "/server/time", `"node":"server"`},
		{"http://" + cliHTTP + "/server/cat//hello%20/world", `"result":"hello world"`},
		{"http://" + srvHTTP + "/client/c1/time", `"node":"c1"`},
		{"http://" + srvHTTP + "/client/c1/cat//a/b", `"result":"ab"`},
		{"http://" + srvHTTP + "/clients", `"name":"c1"`},
	} {
		status, body := httpGet(t, c.url)
		if status != 200 || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %d %s, want %s", c.url, status, body, c.want)
		}
	}
	// Debug logs show each event with its request id.
	cli.log.wait(t, `msg="front end".* req=\w+ method=GET path=/server/time status=200`)

	if code := cli.stop(); code != 0 {
		t.Errorf("client exit code %d", code)
	}
	srv.log.wait(t, `msg="client disconnected".* peer=c1`)
	if code := srv.stop(); code != 0 {
		t.Errorf("server exit code %d", code)
	}
}

// TestRestPipeEnvironment: RestPipe's variables and RESTPIPE_* set the
// addresses, and the identity comes from --identity-dir.
func TestRestPipeEnvironment(t *testing.T) {
	d := identities(t, "c1")
	idDir := filepath.Join(t.TempDir(), "identity")
	caRun(t, "identity", "set", "--identity-dir", idDir, "--cert", filepath.Join(d, "c1.crt"),
		"--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt")).want(t, 0)

	srvEnv := map[string]string{"BIND_IP": "127.0.0.1", "BIND_PORT": "0", "RESTPIPE_HTTP": "127.0.0.1:0"}
	srv := startNode(t, func(k string) string { return srvEnv[k] }, "server",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	host, port, _ := strings.Cut(tunnelAddr, ":")

	cliEnv := map[string]string{"RP_CLIENT_TARGET_HOSTNAME": host, "RP_CLIENT_TARGET_PORT": port,
		"RESTPIPE_HTTP": "127.0.0.1:0", "RESTPIPE_IDENTITY_DIR": idDir, "DEBUG": "1"}
	cli := startNode(t, func(k string) string { return cliEnv[k] }, "client")
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected".* peer=c1`)
	cliHTTP := cli.log.wait(t, httpAddrRe)
	if status, body := httpGet(t, "http://"+cliHTTP+"/server/time"); status != 200 {
		t.Errorf("call through the client: %d %s", status, body)
	}
	cli.log.wait(t, `level=DEBUG msg="front end"`) // DEBUG=1
}

// TestNodeUsageErrors: bad identities and flags give one line and exit
// code 1 (failure) or 2 (usage).
func TestNodeUsageErrors(t *testing.T) {
	d := t.TempDir()
	caRun(t, "ca", "init", "--dir", d).want(t, 0)
	caRun(t, "ca", "issue", "--dir", d, "--name", "c1").want(t, 0)
	crt, key, ca := filepath.Join(d, "c1.crt"), filepath.Join(d, "c1.key"), filepath.Join(d, "ca.crt")
	missing := filepath.Join(d, "nope.crt")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"client", "--server", "127.0.0.1:1", "--cert", missing, "--key", key, "--ca", ca}, 1, "nope.crt"},
		{[]string{"client", "--server", "127.0.0.1:1", "--cert", crt, "--key", crt, "--ca", ca}, 1, "c1.crt"},
		{[]string{"server", "--cert", crt, "--key", key, "--ca", missing}, 1, "nope.crt"},
		{[]string{"server", "--identity-dir", filepath.Join(d, "empty")}, 1, "identity set"},
		{[]string{"client", "--server", "127.0.0.1:1", "--cert", crt}, 2, "together"},
		{[]string{"client", "--cert", crt, "--key", key, "--ca", ca}, 2, "--server is required"},
		{[]string{"client", "--server", "nohostport", "--cert", crt, "--key", key, "--ca", ca}, 2, "host:port"},
		{[]string{"server", "--log-level", "loud", "--cert", crt, "--key", key, "--ca", ca}, 2, "log-level"},
		{[]string{"server", "--listen", "127.0.0.1:0", "--http", "nonsense", "--cert", crt, "--key", key, "--ca", ca}, 2, "--http"},
		{[]string{"client", "stray"}, 2, "stray"},
		{[]string{"client", "--server", "127.0.0.1:1", "--window", "100", "--cert", crt, "--key", key, "--ca", ca}, 2, "256KiB"},
		{[]string{"client", "--server", "127.0.0.1:1", "--window", "lots"}, 2, `invalid value "lots" for flag -window: want a size`},
		{[]string{"server", "--max-body", "1.5MiB"}, 2, `invalid value "1.5MiB" for flag -max-body: want a size`},
		{[]string{"server", "--channel-max-message", "1M"}, 2, `invalid value "1M" for flag -channel-max-message: want a size`},
		{[]string{"server", "--max-frame", "big"}, 2, `invalid value "big" for flag -max-frame: want a size`},
		{[]string{"client", "--server", "127.0.0.1:1", "--max-frame", "4KiB", "--cert", crt, "--key", key, "--ca", ca}, 2, "16KiB to 1MiB"},
		{[]string{"server", "--max-frame", "2MiB", "--cert", crt, "--key", key, "--ca", ca}, 2, "--max-frame 2MiB"},
		{[]string{"server", "--timeout", "soon"}, 2, "invalid value"},
		{[]string{"server", "--origin", "[bad", "--cert", crt, "--key", key, "--ca", ca}, 2, "--origin"},
		{[]string{"server", "--http-host", "http://x", "--cert", crt, "--key", key, "--ca", ca}, 2, "--http-host"},
		{[]string{"server", "--http-host", "x:0", "--cert", crt, "--key", key, "--ca", ca}, 2, "--http-host"},
		{[]string{"server", "--http-app", "127.0.0.1:0", "--cert", crt, "--key", key, "--ca", ca}, 2, "ADDR=PATH"},
		{[]string{"server", "--http-app", "127.0.0.1:0=/clients", "--cert", crt, "--key", key, "--ca", ca}, 2, "--http-app"},
		{[]string{"server", "--http-app", "nohost=/client/c1/web", "--cert", crt, "--key", key, "--ca", ca}, 2, "--http-app"},
		{[]string{"server", "--channel-max-message", "1MiB", "--cert", crt, "--key", key, "--ca", ca}, 2, "256KiB"},
		{[]string{"server", "--channel-queue", "0", "--cert", crt, "--key", key, "--ca", ca}, 2, "--channel-queue"},
		{[]string{"server", "--channel-queue", "999999999999999", "--cert", crt, "--key", key, "--ca", ca}, 2, "--channel-queue must be from 1 to 65536"},
		{[]string{"server", "--window", "17179869184GiB"}, 2, `"17179869184GiB" is too large`},
		{[]string{"server", "--max-streams", "0", "--cert", crt, "--key", key, "--ca", ca}, 2, "--max-streams"},
		{[]string{"server", "--max-subscriptions", "65537", "--cert", crt, "--key", key, "--ca", ca}, 2, "--max-subscriptions must be from 1 to 65536"},
		{[]string{"server", "--max-streams", "65537", "--cert", crt, "--key", key, "--ca", ca}, 2, "--max-streams must be from 1 to 65536"},
		// Each bound is Config.Validate's; the message names the flag, the
		// value given and the bound.
		{[]string{"server", "--timeout", "0", "--cert", crt, "--key", key, "--ca", ca}, 2, "--timeout 0s: --timeout must be positive"},
		{[]string{"client", "--server", "127.0.0.1:1", "--keepalive", "-1s", "--cert", crt, "--key", key, "--ca", ca}, 2, "--keepalive -1s: --keepalive must be positive"},
		{[]string{"server", "--shutdown-timeout", "0s", "--cert", crt, "--key", key, "--ca", ca}, 2, "--shutdown-timeout 0s: --shutdown-timeout must be positive"},
		{[]string{"server", "--max-body", "-1", "--cert", crt, "--key", key, "--ca", ca}, 2, `invalid value "-1" for flag -max-body: want a size`},
		{[]string{"server", "--window", "65537KiB", "--cert", crt, "--key", key, "--ca", ca}, 2, "--window 65537KiB: --window must be from 256KiB to 64MiB"},
		// 4 GiB + 256 KiB is 256 KiB in a uint32: refused, not wrapped.
		{[]string{"server", "--window", "4194560KiB", "--cert", crt, "--key", key, "--ca", ca}, 2, "--window 4194560KiB: --window must be from 256KiB to 64MiB"},
		{[]string{"server", "--max-frame", "4KiB", "--cert", crt, "--key", key, "--ca", ca}, 2, "--max-frame 4KiB: --max-frame must be 0 or from 16KiB to 1MiB"},
		{[]string{"server", "--max-subscriptions", "0", "--cert", crt, "--key", key, "--ca", ca}, 2, "--max-subscriptions 0: --max-subscriptions must be from 1 to 65536"},
		{[]string{"server", "--channel-max-message", "0", "--cert", crt, "--key", key, "--ca", ca}, 2, "--channel-max-message 0: --channel-max-message must be from 1 to 256KiB"},
		{[]string{"server", "--channel-queue", "65537", "--cert", crt, "--key", key, "--ca", ca}, 2, "--channel-queue 65537: --channel-queue must be from 1 to 65536"},
		{[]string{"server", "--channel-outage-wait", "-1s", "--cert", crt, "--key", key, "--ca", ca}, 2, "--channel-outage-wait -1s: --channel-outage-wait must be positive"},
		// A flag out of bounds is told before a missing identity.
		{[]string{"server", "--auth-timeout", "0", "--auth-url", "http://127.0.0.1:1/auth", "--identity-dir", filepath.Join(d, "empty")}, 2, "--auth-timeout 0s: --auth-timeout must be positive"},
		{[]string{"server", "--auth-timeout", "-1s", "--identity-dir", filepath.Join(d, "empty")}, 2, "--auth-timeout -1s: --auth-timeout must be positive"},
		{[]string{"client", "--server", "127.0.0.1:1", "--auth-ttl", "-1s", "--identity-dir", filepath.Join(d, "empty")}, 2, "--auth-ttl -1s: --auth-ttl must not be negative"},
		{[]string{"server", "--max-streams", "0", "--identity-dir", filepath.Join(d, "empty")}, 2, "--max-streams 0: --max-streams must be from 1 to 65536"},
		{[]string{"frobnicate"}, 2, "unknown command"},
	} {
		r := caRun(t, tc.args...)
		r.want(t, tc.code)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: stderr %q, want it to mention %q", tc.args, r.stderr, tc.want)
		}
	}
}

// TestDemoOnce runs the demo's calls and checks what it prints.
func TestDemoOnce(t *testing.T) {
	r := caRun(t, "demo", "--once")
	r.want(t, 0)
	for _, want := range []string{
		"$ curl -s http://127.0.0.1:", "/server/time", `"node":"server"`, `{"result":"hello world"}`,
		"/client/demo-client/time", `"node":"demo-client"`, `"name":"demo-client"`,
		"HTTP 503", "peer_unavailable", "HTTP 404", "no_handler", "ping through the tunnel",
		"/channels/demo", `{"channel":"demo","published":1}`, "printed: data: hello, subscribers",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestForwardFlagsAndConfig: forward routes from --forward and from a
// config file reach a local HTTP service; bad routes stop the start-up.
func TestForwardFlagsAndConfig(t *testing.T) {
	d := identities(t, "c1")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "service saw %s", r.URL.Path)
	}))
	defer up.Close()

	cfgFile := filepath.Join(d, "server.json")
	cfg := fmt.Sprintf(`{"listen": "127.0.0.1:0", "http": "127.0.0.1:0", "forward": {"files": %q},
		"cert": %q, "key": %q, "ca": %q, "timeout": "5s"}`,
		up.URL+"/root", filepath.Join(d, "server.crt"), filepath.Join(d, "server.key"), filepath.Join(d, "ca.crt"))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startNode(t, nil, "server", "--config", cfgFile)
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	cli := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
		"--forward", "api="+up.URL, "--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cliHTTP := cli.log.wait(t, httpAddrRe)
	srvHTTP := srv.log.wait(t, httpAddrRe)
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected"`)

	if status, body := httpGet(t, "http://"+cliHTTP+"/server/files/a/b"); status != 200 || body != "service saw /root/a/b" {
		t.Errorf("config-file route: %d %q", status, body)
	}
	if status, body := httpGet(t, "http://"+srvHTTP+"/client/c1/api/x"); status != 200 || body != "service saw /x" {
		t.Errorf("--forward route: %d %q", status, body)
	}

	bad := filepath.Join(d, "bad.json")
	for _, tc := range []struct {
		args []string
		file string
		want string
	}{
		{args: []string{"--forward", "files"}, want: "NAME=URL"},
		{args: []string{"--forward", "files=ftp://x"}, want: "https:// or h2c://"},
		{args: []string{"--config", bad}, file: `{"listen": "127.0.0.1:0", "colour": "blue"}`, want: `unknown setting "colour"`},
		{args: []string{"--config", bad}, file: `[1, 2]`, want: "not a JSON object"},
		{args: []string{"--config", filepath.Join(d, "missing.json")}, want: "missing.json"},
	} {
		if tc.file != "" {
			if err := os.WriteFile(bad, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		args := append([]string{"server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
			"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt")}, tc.args...)
		r := caRun(t, args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to mention %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// TestHTTPHostSources: --http-host from the command line, the
// environment and the config file each add a Host name the front end
// answers to; any other name is 421 misdirected.
func TestHTTPHostSources(t *testing.T) {
	d := identities(t)
	cfgFile := filepath.Join(d, "server.json")
	if err := os.WriteFile(cfgFile, []byte(`{"http-host": ["from-file.internal", "proxy.internal:8443"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt")}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		args  []string
		hosts []string // accepted, with the front end's port unless they have one
	}{
		{"flag", nil, []string{"--http-host", "from-flag.internal", "--http-host", "[fd00::1]"}, []string{"from-flag.internal", "[fd00::1]"}},
		{"environment", map[string]string{"RESTPIPE_HTTP_HOST": "from-env.internal other.internal"}, nil, []string{"from-env.internal", "other.internal"}},
		{"config file", nil, []string{"--config", cfgFile}, []string{"from-file.internal", "proxy.internal:8443"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startNode(t, func(k string) string { return tc.env[k] }, append(append([]string{}, base...), tc.args...)...)
			addr := srv.log.wait(t, httpAddrRe)
			port := addr[strings.LastIndexByte(addr, ':')+1:]
			status := func(host string) int {
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/clients", nil)
				req.Host = host
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			for _, h := range append(tc.hosts, "localhost", "127.0.0.1") {
				if !strings.Contains(strings.TrimPrefix(h, "[fd00::1]"), ":") {
					h += ":" + port
				}
				if s := status(h); s != http.StatusOK {
					t.Errorf("Host %s: %d, want 200", h, s)
				}
			}
			if s := status("evil.example:" + port); s != http.StatusMisdirectedRequest {
				t.Errorf("Host evil.example: %d, want 421", s)
			}
		})
	}
}

// TestPythonHandlerExample runs examples/python-handler behind a forward
// route, as the README shows.
func TestPythonHandlerExample(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	cmd := exec.Command(py, "../../examples/python-handler/handler.py", "--port", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("python handler did not start: %v", err)
	}
	pyURL := strings.TrimSpace(strings.TrimPrefix(line, "python handler on "))

	d := identities(t, "c1")
	srv := startNode(t, nil, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	srvHTTP := srv.log.wait(t, httpAddrRe)
	cli := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0", "--forward", "py="+pyURL,
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected"`)

	if status, body := httpGet(t, "http://"+srvHTTP+"/client/c1/py/hello?name=ada"); status != 200 ||
		!strings.Contains(body, `"greeting": "hello ada, from Python"`) || !strings.Contains(body, `"caller": "127.0.0.1"`) || !strings.Contains(body, `"peer": "server"`) {
		t.Errorf("GET through the python handler: %d %s", status, body)
	}
	resp, err := http.Post("http://"+srvHTTP+"/client/c1/py/words", "text/plain", strings.NewReader("count my words"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"words": 3`) {
		t.Errorf("POST through the python handler: %d %s", resp.StatusCode, b)
	}
}

// TestRevocation: a revoked identity is refused at the handshake, and one
// revoked while connected is dropped when the list is reloaded (SIGHUP).
func TestRevocation(t *testing.T) {
	d := identities(t)
	for _, name := range []string{"c1", "c2"} {
		caRun(t, "ca", "issue", "--dir", d, "--name", name).want(t, 0)
	}
	r := caRun(t, "ca", "revoke", "--dir", d, "--name", "c1")
	r.want(t, 0)
	if !strings.Contains(r.stdout, `revoked "c1"`) {
		t.Errorf("revoke output %q", r.stdout)
	}

	reload := make(chan os.Signal, 1)
	srv := startNodeEnv(t, nil, reload, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--revoked", filepath.Join(d, "revoked.txt"),
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	srvHTTP := srv.log.wait(t, httpAddrRe)
	client := func(name string) *node {
		return startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
			"--cert", filepath.Join(d, name+".crt"), "--key", filepath.Join(d, name+".key"), "--ca", filepath.Join(d, "ca.crt"))
	}
	c1 := client("c1")
	srv.log.wait(t, `msg="client refused".*c1.*certificate revoked`)
	c1.log.wait(t, `msg="not connected to server".*session refused by server.*certificate revoked`)
	c2 := client("c2")
	c2.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected".* peer=c2`)

	caRun(t, "ca", "revoke", "--dir", d, "--name", "c2").want(t, 0)
	reload <- syscall.SIGHUP
	srv.log.wait(t, `msg="reload: revocation list".* serials=2`)
	srv.log.wait(t, `msg="client dropped: its certificate is no longer accepted".* peer=c2`)
	srv.log.wait(t, `msg="client refused".*c2.*certificate revoked`) // and it stays out
	if status, body := httpGet(t, "http://"+srvHTTP+"/clients"); status != 200 || strings.Contains(body, "c2") {
		t.Errorf("/clients after revoking c2: %d %s", status, body)
	}

	// A list that no longer parses is not applied.
	if err := os.WriteFile(filepath.Join(d, "revoked.txt"), []byte("not hex\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reload <- syscall.SIGHUP
	srv.log.wait(t, `msg="reload: revocation list kept as it was"`)
}

// TestAccessRulesAndReload: --allow rules on both nodes, 403 naming the
// handler and the peer, and a SIGHUP reload of the config file's rules
// under traffic without dropping the connection.
func TestAccessRulesAndReload(t *testing.T) {
	d := identities(t, "c1")
	cfgFile := filepath.Join(d, "server.json")
	writeCfg := func(allow string) {
		t.Helper()
		if err := os.WriteFile(cfgFile, []byte(`{"allow": [`+allow+`]}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(`"c1=get_time"`)
	reload := make(chan os.Signal, 1)
	srv := startNodeEnv(t, nil, reload, "server", "--config", cfgFile, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	srvHTTP := srv.log.wait(t, httpAddrRe)
	// The firewalled client decides what the server may call on it.
	cli := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0", "--allow", "server=get_time",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cliHTTP := cli.log.wait(t, httpAddrRe)
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected"`)

	check := func(url string, status int, contains ...string) {
		t.Helper()
		got, body := httpGet(t, url)
		if got != status {
			t.Errorf("GET %s: %d %s, want %d", url, got, body, status)
		}
		for _, c := range contains {
			if !strings.Contains(body, c) {
				t.Errorf("GET %s: body %s lacks %q", url, body, c)
			}
		}
	}
	check("http://"+cliHTTP+"/server/time", 200)
	check("http://"+cliHTTP+"/server/cat//a", 403, `"code":"forbidden"`, `get_cat`, `\"c1\"`)
	check("http://"+srvHTTP+"/client/c1/time", 200)
	check("http://"+srvHTTP+"/client/c1/cat//a", 403, `get_cat`, `\"server\"`)

	// Reload under traffic: every call answers 200 or 403, never fails.
	stop := make(chan struct{})
	traffic := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				traffic <- nil
				return
			default:
			}
			resp, err := http.Get("http://" + cliHTTP + "/server/cat//x")
			if err != nil {
				traffic <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 && resp.StatusCode != 403 {
				traffic <- fmt.Errorf("during reload: status %d", resp.StatusCode)
				return
			}
		}
	}()
	writeCfg(`"c1=get_time,get_cat"`)
	reload <- syscall.SIGHUP
	srv.log.wait(t, `msg="reload: access control" auth="1 rules"`)
	check("http://"+cliHTTP+"/server/cat//a", 200, `"result":"a"`)
	close(stop)
	if err := <-traffic; err != nil {
		t.Error(err)
	}
	if strings.Contains(srv.log.String(), "client disconnected") {
		t.Error("the reload dropped the client")
	}

	// A broken config file on reload keeps the rules in force.
	if err := os.WriteFile(cfgFile, []byte(`{"allow": ["no equals sign"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- syscall.SIGHUP
	srv.log.wait(t, `msg="reload: access rules kept as they were"`)
	check("http://"+cliHTTP+"/server/cat//a", 200)

	// Bad rules stop the start-up.
	r := caRun(t, "server", "--allow", "nobody", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	if r.code != 2 || !strings.Contains(r.stderr, "PEER=TARGET") {
		t.Errorf("bad --allow: exit %d %q", r.code, r.stderr)
	}
}

// TestExternalAuthFlag: --auth-url asks the service about each event.
func TestExternalAuthFlag(t *testing.T) {
	d := identities(t, "c1")
	authSvc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Restpipe-Peer") == "c1" && r.Header.Get("X-Original-URI") == "/time" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusForbidden)
	}))
	defer authSvc.Close()
	srv := startNode(t, nil, "server", "--auth-url", authSvc.URL, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	cli := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cliHTTP := cli.log.wait(t, httpAddrRe)
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected"`)
	if status, body := httpGet(t, "http://"+cliHTTP+"/server/time"); status != 200 {
		t.Errorf("allowed: %d %s", status, body)
	}
	if status, body := httpGet(t, "http://"+cliHTTP+"/server/cat//a"); status != 403 {
		t.Errorf("denied: %d %s", status, body)
	}
}

// TestHTTPAppFlag: --http-app serves one forward route on a front end of
// its own, whose pages cannot drive the main front end.
func TestHTTPAppFlag(t *testing.T) {
	d := identities(t, "c1")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app saw %s", r.URL.Path)
	}))
	defer up.Close()
	srv := startNode(t, nil, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--http-app", "127.0.0.1:0=/client/c1/web",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	appAddr := srv.log.wait(t, `msg="app front end".* addr=(127\.0\.0\.1:\d+)`)
	cli := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0", "--forward", "web="+up.URL,
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected"`)
	srv.log.wait(t, `(?s)(msg="front end listening").*msg="front end listening"`) // both
	mainAddr := ""
	for _, m := range regexp.MustCompile(`msg="front end listening".* addr=(127\.0\.0\.1:\d+)`).FindAllStringSubmatch(srv.log.String(), -1) {
		if m[1] != appAddr {
			mainAddr = m[1]
		}
	}
	if mainAddr == "" {
		t.Fatalf("no main front end in the log:\n%s", srv.log)
	}
	for path, want := range map[string]string{"/": "app saw /", "/clients": "app saw /clients"} {
		if status, body := httpGet(t, "http://"+appAddr+path); status != 200 || body != want {
			t.Errorf("app %s: %d %q, want %q", path, status, body, want)
		}
	}
	if status, body := httpGet(t, "http://"+mainAddr+"/client/c1/web/x"); status != 200 || body != "app saw /x" {
		t.Errorf("main front end: %d %q", status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+mainAddr+"/clients", nil)
	req.Header.Set("Origin", "http://"+appAddr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("the app's page on /clients: %d, want 403", resp.StatusCode)
	}
}

// The host of --http, when it is a name, is a Host name of the front end.
func TestFrontendHosts(t *testing.T) {
	for _, tc := range []struct {
		http  string
		given []string
		want  string
	}{
		{"127.0.0.1:8080", []string{"a"}, "a"},
		{"localhost:8080", nil, ""},
		{"[::1]:8080", nil, ""},
		{":8080", nil, ""},
		{"unix:/run/x.sock", []string{"a"}, "a"},
		{"myhost.lan:8080", []string{"a"}, "myhost.lan a"},
	} {
		if got := strings.Join(frontendHosts(tc.http, tc.given), " "); got != tc.want {
			t.Errorf("frontendHosts(%q, %q) = %q, want %q", tc.http, tc.given, got, tc.want)
		}
	}
}
