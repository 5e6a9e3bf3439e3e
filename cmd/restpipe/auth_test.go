package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// authPair runs a server and a client c1 from the identities in d, with
// extra flags for each, and returns them with their front ends' addresses
// once connected.
func authPair(t *testing.T, d string, reload chan os.Signal, srvArgs, cliArgs []string) (srv, cli *node, srvHTTP, cliHTTP string) {
	t.Helper()
	srv = startNodeEnv(t, nil, reload, append([]string{"server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt")},
		srvArgs...)...)
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	srvHTTP = srv.log.wait(t, httpAddrRe)
	cli = startNode(t, nil, append([]string{"client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt")},
		cliArgs...)...)
	cliHTTP = cli.log.wait(t, httpAddrRe)
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected"`)
	return srv, cli, srvHTTP, cliHTTP
}

// getWith sends a GET with headers ("Name", "value", ...) and returns the
// status and body.
func getWith(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// tokenAuth is an auth service that allows the tokens it knows, naming
// their owner, and counts how often it is asked.
func tokenAuth(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var asked atomic.Int32
	owners := map[string]string{"Bearer alice-token": "alice", "Bearer bob-token": "bob"}
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if who, ok := owners[r.Header.Get("Authorization")]; ok {
			w.Header().Set("X-Restpipe-Identity", who)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(svc.Close)
	return svc, &asked
}

// TestAuthCacheCredentials: with --auth-ttl, a cached decision is reused
// only for a caller who sends the same credentials: no token or another
// token is asked anew, an early 403 locks nobody out, and identities do
// not cross. --auth-cache-key narrows the key to the headers it names.
func TestAuthCacheCredentials(t *testing.T) {
	d := identities(t, "c1")
	svc, asked := tokenAuth(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "identity=%s", r.Header.Get("X-Restpipe-Identity"))
	}))
	defer backend.Close()
	_, _, _, cliHTTP := authPair(t, d, nil,
		[]string{"--auth-url", svc.URL, "--auth-ttl", "30s", "--forward", "who=" + backend.URL}, nil)
	url := "http://" + cliHTTP + "/server/who/me"
	steps := []struct {
		token  string
		status int
		body   string
		asks   int32 // total so far
	}{
		{"", 403, "", 1}, // an early 403 ...
		{"Bearer alice-token", 200, "identity=alice", 2}, // ... does not lock Alice out
		{"Bearer alice-token", 200, "identity=alice", 2}, // cached
		{"", 403, "", 2}, // cached 403 for no token
		{"Bearer mallory-token", 403, "", 3},
		{"Bearer bob-token", 200, "identity=bob", 4}, // not Alice's identity
		{"Bearer alice-token", 200, "identity=alice", 4},
		{"Bearer bob-token", 200, "identity=bob", 4},
	}
	for i, s := range steps {
		var hdr []string
		if s.token != "" {
			hdr = []string{"Authorization", s.token}
		}
		status, body := getWith(t, url, append(hdr, "X-Request-Id", fmt.Sprintf("step-%d", i))...)
		if status != s.status || (s.body != "" && body != s.body) {
			t.Errorf("step %d (%q): %d %s, want %d %s", i, s.token, status, body, s.status, s.body)
		}
		if n := asked.Load(); n != s.asks {
			t.Errorf("step %d (%q): the auth service was asked %d times, want %d", i, s.token, n, s.asks)
		}
	}
	// Any other header changes the key too, unless --auth-cache-key names
	// the ones that count.
	before := asked.Load()
	getWith(t, url, "Authorization", "Bearer alice-token", "X-Trace", "1")
	getWith(t, url, "Authorization", "Bearer alice-token", "X-Trace", "2")
	if n := asked.Load() - before; n != 2 {
		t.Errorf("other headers: asked %d times, want 2", n)
	}

	svc2, asked2 := tokenAuth(t)
	_, _, _, cliHTTP2 := authPair(t, d, nil, []string{"--auth-url", svc2.URL, "--auth-ttl", "30s",
		"--auth-cache-key", "Authorization, cookie", "--forward", "who=" + backend.URL}, nil)
	url2 := "http://" + cliHTTP2 + "/server/who/me"
	for i := range 3 {
		if status, body := getWith(t, url2, "Authorization", "Bearer alice-token", "X-Trace", fmt.Sprint(i)); status != 200 || body != "identity=alice" {
			t.Errorf("--auth-cache-key: %d %s", status, body)
		}
	}
	if status, body := getWith(t, url2, "Authorization", "Bearer bob-token"); status != 200 || body != "identity=bob" {
		t.Errorf("--auth-cache-key, Bob: %d %s", status, body)
	}
	if status, _ := getWith(t, url2, "Authorization", "Bearer alice-token", "Cookie", "s=1"); status != 200 {
		t.Errorf("--auth-cache-key, cookie: %d", status)
	}
	if n := asked2.Load(); n != 3 {
		t.Errorf("--auth-cache-key Authorization,Cookie: asked %d times, want 3", n)
	}
	// A list the service's headers could never match is refused.
	r := caRun(t, "server", "--auth-url", svc.URL, "--auth-cache-key", "Authorization Cookie", "--listen", "127.0.0.1:0",
		"--http", "127.0.0.1:0", "--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	if r.code != 2 || !strings.Contains(r.stderr, "not a header name") {
		t.Errorf("bad --auth-cache-key: exit %d %q", r.code, r.stderr)
	}
}

// TestAuthRewriteAskedAgain: with --allow naming what the server may call
// on c1 and an auth service that rewrites /rewriteme to a forward route
// no rule allows, the call is refused and the route's service never sees
// it; a rewrite that escapes the route's path is a bad_path.
func TestAuthRewriteAskedAgain(t *testing.T) {
	d := identities(t, "c1")
	var backendHits atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		backendHits.Add(1)
		fmt.Fprintf(w, "service saw %s", r.RequestURI)
	}))
	defer backend.Close()
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-Original-URI") {
		case "/rewriteme":
			w.Header().Set("X-Rewrite", "/files/secret.txt")
		case "/sneaky":
			w.Header().Set("X-Rewrite", "/echo/../files/secret.txt")
		case "/time":
			w.Header().Set("X-Rewrite", "/echo/hi")
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer svc.Close()
	_, _, srvHTTP, _ := authPair(t, d, nil, nil, []string{"--allow", "server=get_time,get_rewriteme,get_sneaky,forward:echo",
		"--auth-url", svc.URL, "--forward", "files=" + backend.URL + "/files", "--forward", "echo=" + backend.URL + "/echo"})
	base := "http://" + srvHTTP + "/client/c1"
	if status, body := httpGet(t, base+"/rewriteme"); status != 403 || !strings.Contains(body, "forward:files") {
		t.Errorf("rewrite to forward:files: %d %s, want 403 naming forward:files", status, body)
	}
	if status, body := httpGet(t, base+"/sneaky"); status != 400 || !strings.Contains(body, `"code":"bad_path"`) {
		t.Errorf("rewrite out of forward:echo: %d %s, want 400 bad_path", status, body)
	}
	if n := backendHits.Load(); n != 0 {
		t.Errorf("the service was reached %d times", n)
	}
	if status, body := httpGet(t, base+"/time"); status != 200 || body != "service saw /echo/hi" {
		t.Errorf("allowed rewrite: %d %s", status, body)
	}
}

// TestAuthSecretsStayHome: a password in --auth-url appears in no log
// line (start-up, reload, errors) and no reply; neither do the auth
// service's address or its errors. The log has the details with the
// request id.
func TestAuthSecretsStayHome(t *testing.T) {
	d := identities(t, "c1")
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "stack trace from the auth service")
	}))
	defer broken.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downAddr := strings.TrimPrefix(down.URL, "http://")
	down.Close() // nothing listens there now
	brokenAddr := strings.TrimPrefix(broken.URL, "http://")

	cfgFile := filepath.Join(d, "server.json")
	writeCfg := func(addr string) {
		t.Helper()
		cfg := fmt.Sprintf(`{"auth-url": "http://svc:S3cretPw@%s/check"}`, addr)
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(brokenAddr)
	reload := make(chan os.Signal, 1)
	srv, _, _, cliHTTP := authPair(t, d, reload, []string{"--config", cfgFile}, nil)
	srv.log.wait(t, `msg="access control"`)

	check := func(what, reqID string) {
		t.Helper()
		status, body := getWith(t, "http://"+cliHTTP+"/server/time", "X-Request-Id", reqID)
		if status != 503 || !strings.Contains(body, `"code":"auth_unavailable"`) || !strings.Contains(body, "the auth service could not decide") {
			t.Errorf("%s: %d %s, want 503 auth_unavailable", what, status, body)
		}
		for _, secret := range []string{"S3cretPw", "svc", brokenAddr, downAddr, "stack trace", "500", "connect"} {
			if strings.Contains(body, secret) {
				t.Errorf("%s: the reply holds %q: %s", what, secret, body)
			}
		}
		srv.log.wait(t, `msg="auth: could not decide" req=`+reqID)
	}
	check("service answers 500", "req-broken")
	writeCfg(downAddr)
	reload <- syscall.SIGHUP
	srv.log.wait(t, `msg="reload: access control" auth=http://svc:xxxxx@`+downAddr)
	check("service down", "req-down")
	srv.log.wait(t, `req=req-down .*connection refused`)

	if log := srv.log.String(); strings.Contains(log, "S3cretPw") {
		t.Errorf("the server's log holds the password:\n%s", log)
	}
	if log := srv.log.String(); !strings.Contains(log, "svc:xxxxx@"+brokenAddr) {
		t.Errorf("the start-up line does not name the redacted URL:\n%s", log)
	}
	// A URL the parser refuses is not echoed either.
	r := caRun(t, "server", "--auth-url", "http://svc:S3cretPw@[bad/", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	if r.code != 2 || strings.Contains(r.stderr, "S3cretPw") || !strings.Contains(r.stderr, "--auth-url") {
		t.Errorf("bad --auth-url: exit %d %q", r.code, r.stderr)
	}
}

// TestForwardTargetPasswordNotEchoed: a --forward URL with a password is
// refused (a route's service gets no credentials from restpipe), and the
// one-line error names it without the password, however it is malformed.
func TestForwardTargetPasswordNotEchoed(t *testing.T) {
	d := identities(t, "c1")
	for _, fw := range []string{
		"files=http://u:S3cretPw@127.0.0.1:9/x",
		"files=http://u:S3cretPw@127.0.0.1:badport/x",
		"files=ftp://u:S3cretPw@127.0.0.1/x",
		"files=http://u:S3cret%zzPw@127.0.0.1/x",
		"files:http://u:S3cretPw@127.0.0.1/x",
	} {
		r := caRun(t, "client", "--server", "127.0.0.1:1", "--http", "127.0.0.1:0", "--forward", fw,
			"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
		if r.code != 2 || strings.Contains(r.stderr, "S3cret") || !strings.Contains(r.stderr, "--forward") {
			t.Errorf("--forward %s: exit %d %q, want 2 and no password", fw, r.code, r.stderr)
		}
	}
}
