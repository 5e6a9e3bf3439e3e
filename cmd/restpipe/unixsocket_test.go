//go:build unix

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const unixAddrRe = `msg="front end listening".* addr=(/\S+)`

// runRefused runs a command that should fail at start-up; one that runs
// instead is stopped after a few seconds and reported.
func runRefused(t *testing.T, args ...string) caResult {
	t.Helper()
	n := startNode(t, nil, args...)
	select {
	case code := <-n.code:
		n.code <- code // for n.stop
		return caResult{code, n.out.String(), n.log.String()}
	case <-time.After(5 * time.Second):
		n.stop()
		t.Fatalf("%v kept running:\n%s", args, n.log.String())
		return caResult{}
	}
}

// unixGet is curl --unix-socket PATH http://restpipe/URLPATH.
func unixGet(t *testing.T, sock, path string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://restpipe" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestUnixSocketFrontend: a front end on unix:PATH is a 0600 socket that
// serves calls both ways; a second node does not take it over; a clean
// stop removes it, and a stale one left behind is replaced.
func TestUnixSocketFrontend(t *testing.T) {
	d := identities(t, "c1")
	sock := filepath.Join(t.TempDir(), "front.sock")
	serverArgs := []string{"server", "--listen", "127.0.0.1:0", "--http", "unix:" + sock,
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt")}
	srv := startNode(t, nil, serverArgs...)
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	if got := srv.log.wait(t, unixAddrRe); got != sock {
		t.Errorf("front end listening on %s, want %s", got, sock)
	}
	assertSocketMode(t, sock)
	cli := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected"`)
	if status, body := unixGet(t, sock, "/client/c1/time"); status != 200 || !strings.Contains(body, `"node":"c1"`) {
		t.Errorf("GET /client/c1/time over the socket: %d %s", status, body)
	}
	if status, body := unixGet(t, sock, "/clients"); status != 200 || !strings.Contains(body, `"name":"c1"`) {
		t.Errorf("GET /clients over the socket: %d %s", status, body)
	}

	// A second node on the same path is refused, and the first keeps it.
	r := runRefused(t, serverArgs...)
	r.want(t, 1)
	if want := "restpipe server: front end: unix:" + sock + ": another process is listening on it\n"; r.stderr != want {
		t.Errorf("second server: stderr %q, want %q", r.stderr, want)
	}
	if status, _ := unixGet(t, sock, "/clients"); status != 200 {
		t.Errorf("the first server lost its socket: %d", status)
	}
	if entries, _ := os.ReadDir(filepath.Dir(sock)); len(entries) != 1 {
		t.Errorf("left behind next to the socket: %v", entries)
	}

	if code := srv.stop(); code != 0 {
		t.Errorf("server exit %d", code)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("after a clean stop the socket is still there: %v", err)
	}

	// A stale socket (its process died) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	again := startNode(t, nil, serverArgs...)
	again.log.wait(t, unixAddrRe)
	assertSocketMode(t, sock)
	if status, _ := unixGet(t, sock, "/clients"); status != 200 {
		t.Errorf("over the socket that replaced a stale one: %d", status)
	}
}

func assertSocketMode(t *testing.T, sock string) {
	t.Helper()
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want a socket with 0600", sock, fi.Mode())
	}
}

// TestUnixSocketNotASocket: a path that holds something other than a
// socket is refused with one line and left as it was.
func TestUnixSocketNotASocket(t *testing.T) {
	d := identities(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, kind string }{{file, "a regular file"}, {sub, "a directory"}, {link, "a symbolic link"}} {
		r := runRefused(t, "server", "--listen", "127.0.0.1:0", "--http", "unix:"+tc.path,
			"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
		r.want(t, 1)
		if want := "restpipe server: front end: unix:" + tc.path + " exists and is not a socket (" + tc.kind + "); remove it or choose another path\n"; r.stderr != want {
			t.Errorf("stderr %q, want %q", r.stderr, want)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the regular file: %q, %v", b, err)
	}
	if fi, err := os.Lstat(sub); err != nil || !fi.IsDir() {
		t.Errorf("the directory: %v, %v", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("left behind: %v", entries)
	}
	caRun(t, "server", "--http", "unix:").want(t, 2)
	if r := caRun(t, "server", "--http", "unix:@front"); r.code != 2 || !strings.Contains(r.stderr, "abstract socket has no permissions") {
		t.Errorf("abstract socket: exit %d %q", r.code, r.stderr)
	}
}

// TestUnixSocketSharedDirWarns: a socket in a directory that group or
// others can write (and that is not sticky) can be renamed away and
// replaced by another user's socket, which then receives the callers'
// requests, credentials included: the node warns at start-up, naming the
// directory and the fix. A sticky directory (like /tmp) and a private one
// are quiet.
func TestUnixSocketSharedDirWarns(t *testing.T) {
	d := identities(t)
	for _, tc := range []struct {
		name string
		mode os.FileMode
		warn bool
	}{
		{"others can write", 0o777, true},
		{"group can write", 0o770, true},
		{"sticky", 0o777 | os.ModeSticky, false},
		{"private", 0o700, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(dir, "front.sock")
			srv := startNode(t, nil, "server", "--listen", "127.0.0.1:0", "--http", "unix:"+sock,
				"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
			srv.log.wait(t, unixAddrRe)
			if status, _ := unixGet(t, sock, "/clients"); status != 200 {
				t.Errorf("GET /clients over the socket: %d", status)
			}
			srv.stop()
			logs := srv.log.String()
			warned := strings.Contains(logs, "another user can replace the front end's socket") &&
				strings.Contains(logs, "dir="+dir) && strings.Contains(logs, "chmod go-w")
			if warned != tc.warn {
				t.Errorf("directory %v: warned %v, want %v:\n%s", tc.mode, warned, tc.warn, logs)
			}
		})
	}
}
