package tunnel_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/tunnel"
	"github.com/restpipe/restpipe/tunnel/admin"
	"github.com/restpipe/restpipe/tunnel/channels"
	"github.com/restpipe/restpipe/tunnel/metrics"
)

// adminOf serves the admin listener of a node with m and ready on
// loopback until the test ends, and returns its URL.
func adminOf(t *testing.T, m *metrics.Metrics, ready func() error, pprof bool) string {
	t.Helper()
	h, err := admin.Handler(admin.Options{Metrics: m, Ready: ready, Pprof: pprof,
		Summary: func() any { return map[string]string{"name": "test"} }})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	runUntilStopped(t, func(ctx context.Context) { _ = admin.Serve(ctx, ln, h, testLogger(t)) })
	return "http://" + ln.Addr().String()
}

// scrape reads /metrics at base.
func scrape(t *testing.T, base string) string {
	t.Helper()
	r := get(t, base+"/metrics")
	if r.status != 200 {
		t.Fatalf("/metrics: %d %s", r.status, r.body)
	}
	return r.body
}

// value is the sample of name with labels (name, value pairs) in the
// text exposition body; -1 if there is none.
func value(t *testing.T, body, name string, labels ...string) float64 {
	t.Helper()
	var pairs []string
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	sort.Strings(pairs)
	series := name
	if len(pairs) > 0 {
		series += "{" + strings.Join(pairs, ",") + "}"
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// metered is a server and a client, each with metrics and an admin
// listener.
type metered struct {
	srv        *serverNode
	cli        *clientNode
	srvM, cliM *metrics.Metrics
	srvAdmin   string
	cliAdmin   string
}

func startMetered(t *testing.T, p *pki, serverAddr string, tweak func(*tunnel.Config)) *metered {
	t.Helper()
	m := &metered{
		srvM: metrics.New(metrics.Options{Version: "test", Role: "server"}),
		cliM: metrics.New(metrics.Options{Version: "test", Role: "client"}),
	}
	m.srv = startServerAt(t, p, serverAddr, func(c *tunnel.Config) {
		c.Metrics = m.srvM
		if tweak != nil {
			tweak(c)
		}
	})
	m.cli = startClient(t, p, "c1", m.srv.tunnelAddr, func(c *tunnel.Config) { c.Metrics = m.cliM })
	waitConnected(t, m.cli, m.srv)
	m.srvAdmin = adminOf(t, m.srvM, m.srv.Ready, false)
	m.cliAdmin = adminOf(t, m.cliM, m.cli.Ready, false)
	return m
}

// TestMetricsEvents: each event moves the counters by exactly one, with
// the handler it ran (registered) or "other", its direction and class.
func TestMetricsEvents(t *testing.T) {
	p := newPKI(t)
	m := startMetered(t, p, "127.0.0.1:0", nil)

	in := func(body, handler, class string) float64 {
		return value(t, body, "restpipe_events_total", "direction", "in", "handler", handler, "class", class)
	}
	out := func(body, class string) float64 {
		return value(t, body, "restpipe_events_total", "direction", "out", "handler", "other", "class", class)
	}
	s0, c0 := scrape(t, m.srvAdmin), scrape(t, m.cliAdmin)

	if r := get(t, m.cli.httpURL+"/server/time"); r.status != 200 {
		t.Fatalf("GET /server/time: %d %s", r.status, r.body)
	}
	s1, c1 := scrape(t, m.srvAdmin), scrape(t, m.cliAdmin)
	if got := in(s1, "get_time", "2xx") - max(in(s0, "get_time", "2xx"), 0); got != 1 {
		t.Errorf("server: events in get_time 2xx went up by %v, want 1\n%s", got, s1)
	}
	if got := out(c1, "2xx") - max(out(c0, "2xx"), 0); got != 1 {
		t.Errorf("client: events out 2xx went up by %v, want 1", got)
	}

	// A handler nobody registered is "other": a path never is a label.
	wantError(t, get(t, m.cli.httpURL+"/server/no/such/thing"), 404, "no_handler")
	s2, c2 := scrape(t, m.srvAdmin), scrape(t, m.cliAdmin)
	if got := in(s2, "other", "4xx") - max(in(s1, "other", "4xx"), 0); got != 1 {
		t.Errorf("server: events in other 4xx went up by %v, want 1", got)
	}
	if got := out(c2, "4xx") - max(out(c1, "4xx"), 0); got != 1 {
		t.Errorf("client: events out 4xx went up by %v, want 1", got)
	}
	if strings.Contains(s2, "no_such") || strings.Contains(s2, "/no/") {
		t.Errorf("a path became a label:\n%s", s2)
	}
	if got := value(t, s2, "restpipe_event_duration_seconds_count", "direction", "in"); got < 2 {
		t.Errorf("server: latency histogram count %v, want >= 2", got)
	}

	// Events the other way: server to client.
	if r := get(t, m.srv.httpURL+"/client/c1/time"); r.status != 200 {
		t.Fatalf("GET /client/c1/time: %d %s", r.status, r.body)
	}
	c3 := scrape(t, m.cliAdmin)
	if got := in(c3, "get_time", "2xx") - max(in(c2, "get_time", "2xx"), 0); got != 1 {
		t.Errorf("client: events in get_time 2xx went up by %v, want 1", got)
	}

	for _, body := range []string{s2, c3} {
		if v := value(t, body, "restpipe_peers_connected"); v != 1 {
			t.Errorf("peers connected %v, want 1", v)
		}
		if v := value(t, body, "restpipe_connects_total"); v != 1 {
			t.Errorf("connects %v, want 1", v)
		}
		if v := value(t, body, "restpipe_received_bytes_total"); v <= 0 {
			t.Errorf("received bytes %v, want > 0", v)
		}
		if v := value(t, body, "restpipe_sent_bytes_total"); v <= 0 {
			t.Errorf("sent bytes %v, want > 0", v)
		}
		if v := value(t, body, "restpipe_build_info", "version", "test", "goversion", runtime.Version(), "role", map[bool]string{true: "server", false: "client"}[body == s2]); v != 1 {
			t.Errorf("build info %v, want 1", v)
		}
	}
	checkPromtool(t, s2)
	checkPromtool(t, c3)
}

// TestMetricsKeepAliveRTT: answered keep-alive pings are timed.
func TestMetricsKeepAliveRTT(t *testing.T) {
	p := newPKI(t)
	m := startMetered(t, p, "127.0.0.1:0", func(c *tunnel.Config) { c.KeepAliveInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitFor(t, ctx, func() bool {
		return value(t, scrape(t, m.srvAdmin), "restpipe_keepalive_rtt_seconds_count") >= 1
	}, "a keep-alive round trip to be timed")
}

// TestMetricsRefusals: a handshake the server refuses is counted by its
// reason.
func TestMetricsRefusals(t *testing.T) {
	p := newPKI(t)
	m := startMetered(t, p, "127.0.0.1:0", func(c *tunnel.Config) {
		c.VerifyPeer = func(leaf *x509.Certificate) error {
			if leaf.Subject.CommonName == "revoked" {
				return errors.New("revoked")
			}
			return nil
		}
	})
	refusals := func(reason string) float64 {
		return value(t, scrape(t, m.srvAdmin), "restpipe_handshake_refusals_total", "reason", reason)
	}
	if v := refusals("tls"); v != 0 {
		t.Fatalf("tls refusals before any: %v, want 0", v)
	}
	// One connection with a certificate of another CA: one refusal.
	stranger := newPKI(t).client(t, "stranger")
	roots := p.server.Pool
	conn, err := tls.Dial("tcp", m.srv.tunnelAddr, &tls.Config{Certificates: []tls.Certificate{stranger.Certificate},
		RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	if err == nil {
		_, _ = conn.Read(make([]byte, 1)) // the server's alert
		conn.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitFor(t, ctx, func() bool { return refusals("tls") >= 1 }, "the TLS refusal to be counted")
	if v := refusals("tls"); v != 1 {
		t.Errorf("tls refusals %v, want exactly 1", v)
	}

	// A revoked certificate: refused in the hello, by reason revoked (its
	// client keeps trying, so at least once).
	startClient(t, p, "revoked", m.srv.tunnelAddr, nil)
	waitFor(t, ctx, func() bool { return refusals("revoked") >= 1 }, "the revoked refusal to be counted")
	body := scrape(t, m.srvAdmin)
	if v := value(t, body, "restpipe_connects_total"); v != 1 {
		t.Errorf("connects %v after refusals, want 1 (c1 only)", v)
	}
	checkPromtool(t, body)
}

// TestMetricsDisconnects: a session that ends is counted on both sides,
// by reason.
func TestMetricsDisconnects(t *testing.T) {
	p := newPKI(t)
	m := startMetered(t, p, "127.0.0.1:0", nil)
	prev, _ := m.cli.Server()
	if !m.srv.Disconnect("c1") {
		t.Fatal("Disconnect: c1 not connected")
	}
	waitReconnected(t, m.cli, m.srv, prev)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	disc := func(base, reason string) float64 {
		return value(t, scrape(t, base), "restpipe_disconnects_total", "reason", reason)
	}
	waitFor(t, ctx, func() bool { return disc(m.srvAdmin, "closed") == 1 }, "the server to count its close")
	waitFor(t, ctx, func() bool { return disc(m.cliAdmin, "peer_closed") == 1 }, "the client to count the peer's close")
	s := scrape(t, m.srvAdmin)
	if v := value(t, s, "restpipe_connects_total"); v != 2 {
		t.Errorf("server connects %v, want 2", v)
	}
	for _, r := range metrics.DisconnectReasons {
		if want := map[bool]float64{true: 1}[r == "closed"]; value(t, s, "restpipe_disconnects_total", "reason", r) != want {
			t.Errorf("server disconnects %s = %v, want %v", r, value(t, s, "restpipe_disconnects_total", "reason", r), want)
		}
	}
}

// TestAdminReadyz: a client's /readyz is 503 while its tunnel is down
// and 200 once it is back; /healthz stays 200.
func TestAdminReadyz(t *testing.T) {
	p := newPKI(t)
	addr := fixedPort(t)
	m := startMetered(t, p, addr, nil)
	for _, base := range []string{m.cliAdmin, m.srvAdmin} {
		if r := get(t, base+"/readyz"); r.status != 200 || r.json(t)["status"] != "ready" {
			t.Fatalf("%s/readyz: %d %s, want 200 ready", base, r.status, r.body)
		}
	}
	prev, _ := m.cli.Server()
	m.srv.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, ctx, func() bool { return get(t, m.cliAdmin+"/readyz").status == 503 }, "client /readyz to turn 503")
	r := get(t, m.cliAdmin+"/readyz")
	if body := r.json(t); body["status"] != "not_ready" || !strings.Contains(fmt.Sprint(body["reason"]), "no tunnel") {
		t.Errorf("/readyz while down: %s", r.body)
	}
	if r := get(t, m.srvAdmin+"/readyz"); r.status != 503 {
		t.Errorf("stopped server's /readyz: %d %s, want 503", r.status, r.body)
	}
	if r := get(t, m.cliAdmin+"/healthz"); r.status != 200 || r.json(t)["status"] != "ok" {
		t.Errorf("/healthz while the tunnel is down: %d %s, want 200", r.status, r.body)
	}
	if v := value(t, scrape(t, m.cliAdmin), "restpipe_peers_connected"); v != 0 {
		t.Errorf("client peers connected while down: %v, want 0", v)
	}

	srv2 := startServerAt(t, p, addr, nil)
	waitReconnected(t, m.cli, srv2, prev)
	waitFor(t, ctx, func() bool { return get(t, m.cliAdmin+"/readyz").status == 200 }, "client /readyz to turn 200 again")
}

// TestAdminEndpoints: the summary, the guard, methods and pprof.
func TestAdminEndpoints(t *testing.T) {
	m := metrics.New(metrics.Options{Version: "test", Role: "server"})
	base := adminOf(t, m, nil, false)
	if r := get(t, base+"/"); r.status != 200 || r.json(t)["node"] == nil {
		t.Errorf("/: %d %s", r.status, r.body)
	}
	wantError(t, get(t, base+"/debug/pprof/"), 404, "bad_path")
	wantError(t, get(t, base+"/nothing"), 404, "bad_path")
	wantError(t, do(t, "POST", base+"/metrics", nil), 405, "method_not_allowed")
	// DNS rebinding: a page of evil.example that resolves to loopback.
	req, err := http.NewRequest("GET", base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "evil.example:" + req.URL.Port()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 421 {
		t.Errorf("Host evil.example: %d, want 421", resp.StatusCode)
	}
	wantError(t, get(t, base+"/metrics", "Origin", "http://evil.example"), 403, "forbidden")

	withPprof := adminOf(t, m, nil, true)
	if r := get(t, withPprof+"/debug/pprof/"); r.status != 200 {
		t.Errorf("/debug/pprof/ with pprof: %d", r.status)
	}
	if r := get(t, withPprof+"/debug/pprof/goroutine?debug=1"); r.status != 200 || !strings.Contains(r.body, "goroutine") {
		t.Errorf("/debug/pprof/goroutine: %d", r.status)
	}
}

// TestMetricsPerPeer: per-peer series exist only when asked for, and go
// with the peer.
func TestMetricsPerPeer(t *testing.T) {
	p := newPKI(t)
	srvM := metrics.New(metrics.Options{Version: "test", Role: "server", PerPeer: true})
	srv := startServer(t, p, func(c *tunnel.Config) { c.Metrics = srvM })
	base := adminOf(t, srvM, srv.Ready, false)
	cli := startClient(t, p, "c1", srv.tunnelAddr, nil)
	waitConnected(t, cli, srv)
	body := scrape(t, base)
	if v := value(t, body, "restpipe_peer_cert_expiry_timestamp_seconds", "peer", "c1"); v < float64(time.Now().Unix()) {
		t.Errorf("c1's expiry %v, want a time to come\n%s", v, body)
	}
	cli.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitFor(t, ctx, func() bool {
		return value(t, scrape(t, base), "restpipe_peer_cert_expiry_timestamp_seconds", "peer", "c1") == -1
	}, "c1's series to go with it")

	// Without the option there is no such series.
	if strings.Contains(scrape(t, adminOf(t, metrics.New(metrics.Options{}), nil, false)), "restpipe_peer_cert") {
		t.Error("a per-peer series without PerPeer")
	}
}

// checkPromtool runs promtool check metrics on body, when promtool is
// installed (Debian's prometheus package).
func checkPromtool(t *testing.T, body string) {
	t.Helper()
	tool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian package prometheus): check metrics skipped")
		return
	}
	f := filepath.Join(t.TempDir(), "metrics.txt")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestMetricsChannels: subscribers, messages published, delivered and
// dropped, and slow subscribers disconnected, by count.
func TestMetricsChannels(t *testing.T) {
	p := newPKI(t)
	srvM := metrics.New(metrics.Options{Version: "test", Role: "server"})
	srv := startServer(t, p, func(c *tunnel.Config) { c.Metrics = srvM; c.ChannelQueue = 1 })
	base := adminOf(t, srvM, srv.Ready, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fast, err := srv.Channels().Subscribe(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	slow, err := srv.Channels().Subscribe(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	body := scrape(t, base)
	if v := value(t, body, "restpipe_channel_subscribers"); v != 2 {
		t.Errorf("subscribers %v, want 2", v)
	}
	if err := srv.Channels().Publish(ctx, &channels.Message{Channel: "news", Text: "one"}); err != nil {
		t.Fatal(err)
	}
	if _, err := fast.Next(ctx); err != nil {
		t.Fatal(err)
	}
	// The slow one's queue holds one message: the second drops it.
	for _, text := range []string{"a", "b"} {
		if err := srv.Channels().Publish(ctx, &channels.Message{Channel: "slow", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	body = scrape(t, base)
	for name, want := range map[string]float64{
		"restpipe_channel_messages_published_total": 3,
		"restpipe_channel_messages_delivered_total": 2,
		"restpipe_channel_messages_dropped_total":   1,
		"restpipe_channel_slow_disconnects_total":   1,
		"restpipe_channel_subscribers":              1,
	} {
		if v := value(t, body, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if strings.Contains(body, "news") || strings.Contains(body, `"slow"`) {
		t.Errorf("a channel name became a label:\n%s", body)
	}
}
