package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/restpipe/restpipe/certs"
)

// serial returns the serial number (hex) of the certificate file path.
func serial(t *testing.T, path string) string {
	t.Helper()
	id, err := certs.LoadIdentity(path, strings.TrimSuffix(path, ".crt")+".key", filepath.Join(filepath.Dir(path), "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return id.Leaf.SerialNumber.Text(16)
}

// writeAtomically replaces path as "restpipe ca revoke" does, so that a
// node looking at it never reads it half-written.
func writeAtomically(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestForcedReissueRevokes: "ca issue --force" revokes the certificate it
// replaces and says so; a server given the CA's revoked.txt drops the live
// session of the old certificate within a second, without a SIGHUP, and
// refuses it from then on, while the new certificate connects.
func TestForcedReissueRevokes(t *testing.T) {
	d := identities(t, "c2")
	// The old identity, as a node that holds it keeps it.
	oldDir := t.TempDir()
	for _, f := range []string{"c2.crt", "c2.key", "ca.crt"} {
		b, err := os.ReadFile(filepath.Join(d, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(oldDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	oldSerial := serial(t, filepath.Join(oldDir, "c2.crt"))
	list := filepath.Join(d, "revoked.txt")

	srv := startNode(t, nil, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--revoked", list,
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	srvHTTP := srv.log.wait(t, httpAddrRe)
	client := func(dir string) *node {
		return startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
			"--cert", filepath.Join(dir, "c2.crt"), "--key", filepath.Join(dir, "c2.key"), "--ca", filepath.Join(dir, "ca.crt"))
	}
	old := client(oldDir)
	old.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected".* peer=c2`)

	r := caRun(t, "ca", "issue", "--dir", d, "--name", "c2", "--force")
	r.want(t, 0)
	want := `revoked the certificate it replaces: "c2" serial ` + oldSerial + ", in " + list
	if !strings.Contains(r.stdout, want) {
		t.Errorf("ca issue --force says:\n%s\nwant a line %q", r.stdout, want)
	}
	if b, _ := os.ReadFile(list); !regexp.MustCompile(`(?m)^` + oldSerial + ` c2 revoked `).Match(b) {
		t.Errorf("%s lacks the old serial %s:\n%s", list, oldSerial, b)
	}
	newSerial := serial(t, filepath.Join(d, "c2.crt"))
	if newSerial == oldSerial {
		t.Fatal("--force kept the serial")
	}

	// No SIGHUP: the server sees the list change.
	srv.log.wait(t, `msg="revocation list changed: reloaded".* serials=1`)
	srv.log.wait(t, `msg="client dropped: its certificate is no longer accepted".* peer=c2.*serial `+oldSerial)
	old.log.wait(t, `msg="disconnected from server".*closed by peer: certificate no longer accepted: certificate revoked: \\"c2\\" serial `+oldSerial)
	srv.log.wait(t, `msg="client refused".*c2.*certificate revoked.*`+oldSerial)
	old.stop()

	c2 := client(d)
	c2.log.wait(t, `msg="connected to server"`)
	// The client is connected once its hello is answered, a moment before
	// the server registers it: wait for the server's second such line.
	srv.log.wait(t, `(?s)msg="client connected".* peer=c2.*msg="client connected".* peer=c2`)
	if status, body := httpGet(t, "http://"+srvHTTP+"/client/c2/time"); status != 200 || !strings.Contains(body, `"node":"c2"`) {
		t.Errorf("the new c2: %d %s", status, body)
	}

	// A re-issue with nothing to replace revokes nothing.
	r = caRun(t, "ca", "issue", "--dir", d, "--name", "c3", "--force")
	r.want(t, 0)
	if strings.Contains(r.stdout, "revoked") {
		t.Errorf("issuing a new name with --force says %q", r.stdout)
	}
}

// TestRevocationListFormat: a hand-edited revoked.txt (tabs, runs of
// blanks, comments) is read; one that no longer parses is an ERROR
// naming the file and line, on SIGHUP and when the file changes, and the
// old list stays in force.
func TestRevocationListFormat(t *testing.T) {
	d := identities(t, "c1", "c2")
	list := filepath.Join(d, "revoked.txt")
	c1, c2 := serial(t, filepath.Join(d, "c1.crt")), serial(t, filepath.Join(d, "c2.crt"))
	writeAtomically(t, list, "# by hand\n\n"+strings.ToUpper(c1)+"\t\tc1  lost laptop\n   # indented comment\n")

	reload := make(chan os.Signal, 1)
	srv := startNodeEnv(t, nil, reload, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--revoked", list,
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	srv.log.wait(t, `msg="revocation list loaded".* serials=1`)
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	client := func(name string) *node {
		return startNode(t, nil, "client", "--server", tunnelAddr, "--http", "127.0.0.1:0",
			"--cert", filepath.Join(d, name+".crt"), "--key", filepath.Join(d, name+".key"), "--ca", filepath.Join(d, "ca.crt"))
	}
	client("c1")
	srv.log.wait(t, `msg="client refused".*c1.*certificate revoked`)
	cl2 := client("c2")
	cl2.log.wait(t, `msg="connected to server"`)

	// Line 3 is wrong: neither the change nor the reload applies it.
	writeAtomically(t, list, c1+" c1\n"+c2+"  c2\nserial-of-c3 c3\n")
	bad := regexp.QuoteMeta(list) + `:3: \\"serial-of-c3\\" is not a hexadecimal serial number`
	srv.log.wait(t, `level=ERROR msg="revocation list changed but cannot be used: the old list stays in force".*`+bad)
	reload <- syscall.SIGHUP
	srv.log.wait(t, `level=ERROR msg="reload: revocation list kept as it was".*`+bad)
	if strings.Contains(srv.log.String(), `peer=c2 remote`) && strings.Contains(srv.log.String(), "client dropped") {
		t.Error("a list that does not parse dropped c2")
	}
	if status, body := httpGet(t, "http://"+srv.log.wait(t, httpAddrRe)+"/clients"); status != 200 || !strings.Contains(body, `"c2"`) {
		t.Errorf("/clients: %d %s", status, body)
	}
}

// TestClientRevokedServer: a client given --revoked re-checks the server's
// certificate on SIGHUP, drops the session when the server is on the list
// (here a new list from the config file), and is refused at reconnect
// with the reason in its log.
func TestClientRevokedServer(t *testing.T) {
	d := identities(t, "c1")
	empty, list := filepath.Join(d, "revoked.txt"), filepath.Join(d, "client-revoked.txt")
	cfg := filepath.Join(d, "client.json")
	writeAtomically(t, cfg, `{"revoked": "`+empty+`"}`)

	srv := startNode(t, nil, "server", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	tunnelAddr := srv.log.wait(t, tunnelAddrRe)
	reload := make(chan os.Signal, 1)
	cli := startNodeEnv(t, nil, reload, "client", "--config", cfg, "--server", tunnelAddr, "--http", "127.0.0.1:0",
		"--cert", filepath.Join(d, "c1.crt"), "--key", filepath.Join(d, "c1.key"), "--ca", filepath.Join(d, "ca.crt"))
	cli.log.wait(t, `msg="connected to server"`)
	srv.log.wait(t, `msg="client connected".* peer=c1`)

	srvSerial := serial(t, filepath.Join(d, "server.crt"))
	writeAtomically(t, list, srvSerial+" server\n")
	writeAtomically(t, cfg, `{"revoked": "`+list+`"}`)
	reload <- syscall.SIGHUP
	cli.log.wait(t, `msg="reload: revocation list" .*client-revoked.txt serials=1`)
	cli.log.wait(t, `msg="session dropped: the server's certificate is no longer accepted".*serial `+srvSerial)
	cli.log.wait(t, `msg="dropped the server: its certificate is revoked"`)
	srv.log.wait(t, `msg="client disconnected".* peer=c1.*closed by peer: certificate no longer accepted: certificate revoked: \\"server\\" serial `+srvSerial)
	cli.log.wait(t, `msg="not connected to server".*err="server 127\.0\.0\.1:\d+: certificate revoked: \\"server\\" serial `+srvSerial)
}

// TestParallelReissuesAllRevoke: "ca issue --force" run for many names
// at once (a script re-issuing a fleet) revokes every certificate it
// replaces, as each run says; and re-issues of one name at once each
// revoke the certificate the one before wrote, leaving a certificate and
// key that match and are not revoked.
func TestParallelReissuesAllRevoke(t *testing.T) {
	const n = 12
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	d := identities(t, names...)
	list := filepath.Join(d, "revoked.txt")
	old := map[string]string{}
	for _, name := range names {
		old[name] = serial(t, filepath.Join(d, name+".crt"))
	}
	var wg sync.WaitGroup
	results := make([]caResult, n)
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = caRun(t, "ca", "issue", "--dir", d, "--name", name, "--force")
		}()
	}
	wg.Wait()
	rl, err := certs.LoadRevocationList(list)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		results[i].want(t, 0)
		if !strings.Contains(results[i].stdout, "serial "+old[name]) {
			t.Errorf("ca issue --name %s --force says %q", name, results[i].stdout)
		}
		id, err := certs.LoadIdentity(filepath.Join(d, name+".crt"), filepath.Join(d, name+".key"), filepath.Join(d, "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if rl.Revoked(id.Leaf) {
			t.Errorf("the new %s is revoked", name)
		}
	}
	b, _ := os.ReadFile(list)
	for _, name := range names {
		if !regexp.MustCompile(`(?m)^` + old[name] + ` ` + name + ` revoked `).Match(b) {
			t.Errorf("%s lacks %s's old serial %s, which its ca issue said it revoked", list, name, old[name])
		}
	}

	// One name, re-issued by several runs at once.
	first := serial(t, filepath.Join(d, "n0.crt"))
	for i := range results[:6] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = caRun(t, "ca", "issue", "--dir", d, "--name", "n0", "--force")
		}()
	}
	wg.Wait()
	revoked := map[string]bool{}
	re := regexp.MustCompile(`"n0" serial ([0-9a-f]+)`)
	for _, r := range results[:6] {
		r.want(t, 0)
		m := re.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("ca issue --force says %q", r.stdout)
		}
		if revoked[m[1]] {
			t.Errorf("two runs revoked %s: a certificate one of them wrote was never revoked", m[1])
		}
		revoked[m[1]] = true
	}
	final, err := certs.LoadIdentity(filepath.Join(d, "n0.crt"), filepath.Join(d, "n0.key"), filepath.Join(d, "ca.crt"))
	if err != nil {
		t.Fatalf("n0's certificate and key after the runs: %v", err)
	}
	if !revoked[first] || revoked[final.Leaf.SerialNumber.Text(16)] {
		t.Errorf("revoked %v: want the first (%s) and not the final (%s)", revoked, first, final.Leaf.SerialNumber.Text(16))
	}
}
