package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestChannelRulesFlag runs the server, --allow for c1 and a
// --channel-prefix, with a real client node: c1 may use tenantA-*
// channels only once a rule says so, and is refused tenantB-orders (403
// forbidden on its own front end); the server's own front end is not
// checked.
func TestChannelRulesFlag(t *testing.T) {
	d := identities(t, "c1")
	srv := startNode(t, nil, "server", "--allow", "c1=get_time,channel:tenantA-*", "--channel-prefix", "tenantA-",
		"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	srvHTTP := srv.log.wait(t, httpAddrRe)
	cli := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cliHTTP := cli.log.wait(t, httpAddrRe)
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected"`)

	client := &http.Client{Timeout: 5 * time.Second} // a subscription that is not refused stays open
	call := func(method, url, body string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: status %d, then %v: served, not refused", method, url, resp.StatusCode, err)
		}
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, method, url, body string
		hdr                     []string
		status                  int
		contains                string
	}{
		{"c1 publishes tenantA-x", "POST", "http://" + cliHTTP + "/channels/tenantA-x", "hi", nil, 200, `"published":1`},
		{"c1 publishes tenantB-orders", "POST", "http://" + cliHTTP + "/channels/tenantB-orders", "hi", nil, 403, `"code":"forbidden"`},
		{"c1 reads tenantB-orders", "GET", "http://" + cliHTTP + "/channels/tenantB-orders", "", []string{"Accept", "text/event-stream"}, 403,
			`may not subscribe to channel \"tenantB-orders\"`},
		{"c1 GRIP into tenantB-", "POST", "http://" + cliHTTP + "/publish/", `{"items":[{"channel":"tenantB-orders","formats":{"ws-message":{"content":"x"}}}]}`,
			[]string{"Content-Type", "application/json"}, 403, `"refused":[{"item":0,"channel":"tenantB-orders"`},
		{"the server publishes anywhere", "POST", "http://" + srvHTTP + "/channels/tenantB-orders", "hi", nil, 200, `"published":1`},
		{"the server's GRIP gets its prefix", "POST", "http://" + srvHTTP + "/publish/", `{"items":[{"channel":"orders","formats":{"ws-message":{"content":"x"}}}]}`,
			[]string{"Content-Type", "application/json"}, 200, `"published":1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(tc.method, tc.url, tc.body, tc.hdr...)
			if status != tc.status || !strings.Contains(body, tc.contains) {
				t.Errorf("%d %s, want %d holding %s", status, body, tc.status, tc.contains)
			}
		})
	}
}

// TestChannelRulesReload: a SIGHUP that takes a channel away from c1 ends
// c1's live subscription of it, with the reason.
func TestChannelRulesReload(t *testing.T) {
	d := identities(t, "c1")
	cfgFile := filepath.Join(d, "server.json")
	writeCfg := func(allow string) {
		t.Helper()
		if err := os.WriteFile(cfgFile, []byte(`{"allow": [`+allow+`]}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(`"c1=channel:*"`)
	reload := make(chan os.Signal, 1)
	srv := startNodeEnv(t, nil, reload, "server", "--config", cfgFile, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	cli := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cliHTTP := cli.log.wait(t, httpAddrRe)
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected"`)

	req, _ := http.NewRequest(http.MethodGet, "http://"+cliHTTP+"/channels/tenantB-orders", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe before the reload: %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "retry: 2000\n" {
		t.Fatalf("SSE: %q, %v; want the retry first", line, err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != ": subscribed\n" {
		t.Fatalf("SSE: %q, %v", line, err)
	}
	writeCfg(`"c1=channel:tenantA-*"`)
	reload <- syscall.SIGHUP
	srv.log.wait(t, `msg="reload: channel subscriptions the rules no longer allow ended" subscriptions=1`)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "event: close") || !strings.Contains(string(rest), `may not subscribe to channel "tenantB-orders"`) {
		t.Fatalf("SSE after the reload: %q, want a close event saying why", rest)
	}
}
