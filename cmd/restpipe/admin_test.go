package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const adminAddrRe = `msg="admin listening".* addr=(127\.0\.0\.1:\d+)`

// TestAdminAddress: --admin is loopback unless --admin-public says
// otherwise; anything but host:port is refused.
func TestAdminAddress(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
		ok     bool
	}{
		{"127.0.0.1:9100", false, true},
		{"localhost:9100", false, true},
		{"[::1]:9100", false, true},
		{"", false, true}, // no admin listener
		{"0.0.0.0:9100", false, false},
		{"192.0.2.1:9100", false, false},
		{"example.com:9100", false, false},
		{"0.0.0.0:9100", true, true},
		{"9100", true, false},
		{"unix:/tmp/admin", false, false},
	} {
		a := adminFlags{addr: tc.addr, public: tc.public}
		err := a.check()
		if (err == nil) != tc.ok {
			t.Errorf("--admin %q public=%v: %v, want ok=%v", tc.addr, tc.public, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--admin") {
			t.Errorf("--admin %q: error %q does not name the flag", tc.addr, err)
		}
	}
	d := identities(t)
	r := caRun(t, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--admin", "0.0.0.0:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	if r.code != 2 || !strings.Contains(r.stderr, "--admin-public") {
		t.Errorf("--admin 0.0.0.0:0: exit %d %q, want 2 naming --admin-public", r.code, r.stderr)
	}
}

// metricValue is the sample of series (name{labels} as Prometheus writes
// it, labels sorted) in body, -1 if absent.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAdminNodeMetrics: a server started as the CLI does counts access
// decisions, refusals of a revoked client and reloads, ok and failed.
func TestAdminNodeMetrics(t *testing.T) {
	d := identities(t, "c1", "c2")
	caRun(t, "ca", "revoke", "--dir", d, "--name", "c2").want(t, 0)
	cfgFile := filepath.Join(d, "server.json")
	if err := os.WriteFile(cfgFile, []byte(`{"allow": ["c1=get_time"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	reload := make(chan os.Signal, 1)
	srv := startNodeEnv(t, nil, reload, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--config", cfgFile, "--revoked", filepath.Join(d, "revoked.txt"),
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	admin := "http://" + srv.log.wait(t, adminAddrRe)
	client := func(name string) *node {
		return startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
			"--cert", filepath.Join(d, name+".crt"), "--key", filepath.Join(d, name+".key"), "--ca", filepath.Join(d, "ca.crt"))
	}
	c1 := client("c1")
	cliHTTP := c1.log.wait(t, httpAddrRe)
	c1.log.wait(t, `msg="connected to server"`)
	scrape := func() string {
		t.Helper()
		status, body := httpGet(t, admin+"/metrics")
		if status != 200 {
			t.Fatalf("/metrics: %d %s", status, body)
		}
		return body
	}

	if status, body := httpGet(t, "http://"+cliHTTP+"/server/time"); status != 200 {
		t.Fatalf("allowed call: %d %s", status, body)
	}
	if status, body := httpGet(t, "http://"+cliHTTP+"/server/cat//x"); status != 403 {
		t.Fatalf("denied call: %d %s", status, body)
	}
	// The serving node counts an event once its reply has gone out, which
	// may be just after the caller has read it: scrape until both events
	// are counted (or 10 s have passed, and the checks below say what is
	// missing).
	body := scrape()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); body = scrape() {
		if metricValue(t, body, `restpipe_events_total{class="2xx",direction="in",handler="get_time"}`) == 1 &&
			metricValue(t, body, `restpipe_events_total{class="4xx",direction="in",handler="get_cat"}`) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for series, want := range map[string]float64{
		`restpipe_auth_decisions_total{decision="allow"}`:                                                       1,
		`restpipe_auth_decisions_total{decision="deny"}`:                                                        1,
		`restpipe_auth_decisions_total{decision="error"}`:                                                       0,
		`restpipe_events_total{class="2xx",direction="in",handler="get_time"}`:                                  1,
		`restpipe_events_total{class="4xx",direction="in",handler="get_cat"}`:                                   1,
		`restpipe_peers_connected`:                                                                              1,
		`restpipe_connects_total`:                                                                               1,
		`restpipe_reloads_total{result="ok"}`:                                                                   0,
		`restpipe_build_info{goversion="` + goVersionOf(t, body) + `",role="server",version="` + version + `"}`: 1,
	} {
		if got := metricValue(t, body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if metricValue(t, body, `restpipe_cert_expiry_timestamp_seconds{cert="own",name="server"}`) < float64(time.Now().Unix()) {
		t.Errorf("no own certificate expiry to come:\n%s", body)
	}
	if !strings.Contains(body, `restpipe_cert_expiry_timestamp_seconds{cert="ca",`) {
		t.Errorf("no CA certificate expiry:\n%s", body)
	}

	client("c2")
	srv.log.wait(t, `msg="client refused".*c2`)
	if got := metricValue(t, scrape(), `restpipe_handshake_refusals_total{reason="revoked"}`); got < 1 {
		t.Errorf("revoked refusals %v, want >= 1", got)
	}

	reload <- syscall.SIGHUP
	srv.log.wait(t, `msg="reload: access control"`)
	if err := os.WriteFile(cfgFile, []byte(`{"allow": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- syscall.SIGHUP
	srv.log.wait(t, `msg="reload: settings kept as they were"`)
	body = scrape()
	if got := metricValue(t, body, `restpipe_reloads_total{result="ok"}`); got != 1 {
		t.Errorf("reloads ok %v, want 1", got)
	}
	if got := metricValue(t, body, `restpipe_reloads_total{result="failed"}`); got != 1 {
		t.Errorf("reloads failed %v, want 1", got)
	}
}

// goVersionOf is the goversion label restpipe_build_info has in body.
func goVersionOf(t *testing.T, body string) string {
	m := regexp.MustCompile(`restpipe_build_info\{goversion="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no restpipe_build_info:\n%s", body)
	}
	return m[1]
}

// TestAdminAuthCache: with --auth-ttl, the first call asks the service
// (a miss) and the same call again is answered from the cache (a hit).
func TestAdminAuthCache(t *testing.T) {
	d := identities(t, "c1")
	var asked atomic.Int32
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer svc.Close()
	srv := startNode(t, nil, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--auth-url", svc.URL, "--auth-ttl", "1m",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	admin := "http://" + srv.log.wait(t, adminAddrRe)
	c1 := startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cliHTTP := c1.log.wait(t, httpAddrRe)
	c1.log.wait(t, `msg="connected to server"`)
	for range 2 {
		if status, body := httpGet(t, "http://"+cliHTTP+"/server/time"); status != 200 {
			t.Fatalf("GET /server/time: %d %s", status, body)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("the auth service was asked %d times, want 1", n)
	}
	_, body := httpGet(t, admin+"/metrics")
	for series, want := range map[string]float64{
		`restpipe_auth_cache_lookups_total{result="miss"}`: 1,
		`restpipe_auth_cache_lookups_total{result="hit"}`:  1,
		`restpipe_auth_decisions_total{decision="allow"}`:  2,
	} {
		if got := metricValue(t, body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}
