//go:build unix

package main

import (
	"bufio"
	"io"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// shutdownMargin is how long a node may take to exit past its
// --shutdown-timeout after SIGTERM with events in flight that never end
// (README, Configuration, says 0.5 s): the drain and the front end's
// shutdown run at once, each bounded by the timeout, and closing the
// sessions (close_notify: 100 ms at most, muxconn's closeNotifyWait) and
// the process's exit take the rest. Measured: 3-30 ms past 1 s and 5 s
// on loopback; the bound here is generous for a loaded machine.
const shutdownMargin = 1500 * time.Millisecond

// TestShutdownTimeoutBound: a server process with events in flight that
// never end, both ways (served by it and sent by it: replies streaming,
// uploads open, channel subscribers), and
// --shutdown-timeout 1s exits within the timeout plus shutdownMargin of
// SIGTERM, and not before the timeout.
func TestShutdownTimeoutBound(t *testing.T) {
	d := identities(t, "c1")
	const timeout = time.Second
	srv, srvLog := startProcess(t, nil, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--shutdown-timeout", timeout.String(),
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srvLog.wait(t, tunnelAddrRe)
	srvHTTP := srvLog.wait(t, httpAddrRe)
	cli := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cliHTTP := cli.log.wait(t, httpAddrRe)
	cli.log.wait(t, `msg="connected to server"`)
	srvLog.wait(t, `msg="client connected".* peer=c1`)

	// get_stream//100000 sends a line every 100 ms for hours: each event
	// is in flight once its first line has come.
	for _, url := range []string{
		"http://" + cliHTTP + "/server/stream//100000",    // served by the server
		"http://" + srvHTTP + "/client/c1/stream//100000", // sent by the server
	} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", url, resp.StatusCode)
		}
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatalf("GET %s: first line: %v", url, err)
		}
	}

	// And uploads that never end, both ways: post_echo answers at once
	// and echoes what comes.
	for _, url := range []string{
		"http://" + cliHTTP + "/server/echo",
		"http://" + srvHTTP + "/client/c1/echo",
	} {
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		go func() { _, _ = pw.Write([]byte("first\n")) }()
		resp, err := http.Post(url, "text/plain", pr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d", url, resp.StatusCode)
		}
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatalf("POST %s: first line: %v", url, err)
		}
	}

	// And channel subscribers on both front ends (SSE), each with the
	// relay between the nodes under it.
	for _, url := range []string{"http://" + srvHTTP + "/channels/news", "http://" + cliHTTP + "/channels/news"} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", url, resp.StatusCode)
		}
	}

	start := time.Now()
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = srv.Wait()
	took := time.Since(start)
	t.Logf("exited %v after SIGTERM, --shutdown-timeout %v", took.Round(time.Millisecond), timeout)
	if took < timeout {
		t.Errorf("exited after %v, before the %v the events in flight had to finish", took, timeout)
	}
	if took > timeout+shutdownMargin {
		t.Errorf("exited %v after SIGTERM, want within %v + %v\n%s", took, timeout, shutdownMargin, srvLog.String())
	}
}
