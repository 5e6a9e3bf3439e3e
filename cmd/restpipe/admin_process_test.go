//go:build unix

package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAdminProcesses: real server and client processes with --admin
// serve every endpoint, and their /metrics pass promtool check metrics.
func TestAdminProcesses(t *testing.T) {
	p := interopPair(t, []string{"--admin", "127.0.0.1:0", "--metrics-per-peer"}, []string{"--admin", "127.0.0.1:0", "--admin-pprof"})
	srvAdmin := "http://" + p.srvLog.wait(t, adminAddrRe)
	cliAdmin := "http://" + p.cliLog.wait(t, adminAddrRe)

	if status, body := httpGet(t, p.cliURL+"/server/time"); status != 200 {
		t.Fatalf("GET /server/time: %d %s", status, body)
	}
	for _, base := range []string{srvAdmin, cliAdmin} {
		for path, want := range map[string]string{"/healthz": `"status":"ok"`, "/readyz": `"status":"ready"`, "/": `"peers_connected":1`} {
			if status, body := httpGet(t, base+path); status != 200 || !strings.Contains(body, want) {
				t.Errorf("%s%s: %d %s, want 200 with %s", base, path, status, body, want)
			}
		}
	}
	if status, _ := httpGet(t, cliAdmin+"/debug/pprof/"); status != 200 {
		t.Errorf("client /debug/pprof/ with --admin-pprof: %d", status)
	}
	if status, _ := httpGet(t, srvAdmin+"/debug/pprof/"); status != 404 {
		t.Errorf("server /debug/pprof/ without --admin-pprof: %d, want 404", status)
	}
	_, srvBody := httpGet(t, srvAdmin+"/metrics")
	_, cliBody := httpGet(t, cliAdmin+"/metrics")
	if got := metricValue(t, srvBody, `restpipe_events_total{class="2xx",direction="in",handler="get_time"}`); got != 1 {
		t.Errorf("server: events in get_time %v, want 1", got)
	}
	if got := metricValue(t, cliBody, `restpipe_events_total{class="2xx",direction="out",handler="other"}`); got != 1 {
		t.Errorf("client: events out %v, want 1", got)
	}
	if !strings.Contains(srvBody, `restpipe_peer_cert_expiry_timestamp_seconds{peer="c1"}`) {
		t.Error("server with --metrics-per-peer: no series for c1")
	}
	if strings.Contains(cliBody, `restpipe_peer_cert_expiry`) {
		t.Error("client without --metrics-per-peer has a per-peer series")
	}
	promtool := needTool(t, "promtool", "prometheus")
	for name, body := range map[string]string{"server": srvBody, "client": cliBody} {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: promtool check metrics: %v\n%s", name, err, out)
		}
	}
}
