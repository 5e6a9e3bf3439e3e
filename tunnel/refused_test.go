package tunnel_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/tunnel"
)

// TestClientLogsWhyRefused: a client the server refuses logs why in
// words, for each reason: its certificate expired, not yet valid, signed
// by a CA the server does not know, revoked, or its session taken by
// another connection with the same identity. None gets a session.
func TestClientLogsWhyRefused(t *testing.T) {
	p := newPKI(t)
	revoked := p.client(t, "revoked")
	list := filepath.Join(t.TempDir(), "revoked.txt")
	if err := os.WriteFile(list, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := certs.RevokeCert(list, revoked.Leaf); err != nil {
		t.Fatal(err)
	}
	rf, err := certs.OpenRevocationFile(list, certs.RevocationFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.VerifyPeer = rf.Check })
	other, err := certs.NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	notYet := craft(t, p.ca, "early", now.Add(time.Hour), now.Add(2*time.Hour), client)
	expired := craft(t, p.ca, "late", now.Add(-48*time.Hour), now.Add(-24*time.Hour), client)
	for _, tc := range []struct {
		name string
		id   *certs.Identity
		want []string
		not  []string
	}{
		{"expired", expired,
			[]string{"refused this node's certificate", "it expired at " + expired.Leaf.NotAfter.UTC().Format(time.RFC3339)},
			[]string{"not valid until", "EOF"}},
		{"not yet valid", notYet,
			[]string{"refused this node's certificate", "it is not valid until " + notYet.Leaf.NotBefore.UTC().Format(time.RFC3339)},
			[]string{"expired", "EOF"}},
		{"other CA", craft(t, other, "stranger", now.Add(-time.Hour), now.Add(time.Hour), client),
			[]string{"refused this node's certificate", `it does not trust the CA that signed it (\"other CA\")`},
			[]string{"expired", "EOF"}},
		{"no ClientAuth usage", craft(t, p.ca, "serveronly", now.Add(-time.Hour), now.Add(time.Hour), []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}),
			[]string{"refused this node's certificate", "it is not for client use"},
			[]string{"expired", "EOF"}},
		{"revoked", revoked,
			[]string{"session refused by server", "revoked"},
			[]string{"EOF"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.id.Pool = p.server.Pool // the client trusts the right CA
			logs := newLogCapture()
			c := startClientWith(t, tc.id, s.tunnelAddr, func(cfg *tunnel.Config) { cfg.Logger = logs.logger() })
			line := logs.wait(t, `msg="not connected to server"`, "failures=2")
			for _, w := range tc.want {
				if !strings.Contains(logs.all(), w) {
					t.Errorf("client log lacks %q:\n%s", w, logs.all())
				}
			}
			t.Log(line)
			for _, n := range tc.not {
				if strings.Contains(line, n) {
					t.Errorf("client log says %q: %s", n, line)
				}
			}
			// yamux's own line about the alert is Debug: the words above
			// say it, and it says "expired" for one not yet valid.
			for _, l := range strings.Split(logs.all(), "\n") {
				if strings.Contains(l, "part=yamux") && strings.Contains(l, "remote error") && !strings.Contains(l, "level=DEBUG") {
					t.Errorf("yamux logs: %s", l)
				}
			}
			if _, ok := c.Server(); ok {
				t.Error("client got a session")
			}
			c.stop()
		})
	}
	// Another connection with the same certificate is in its hello: the
	// server closes this one at once, without a word the client could
	// read; the client says so, and the server's log says why.
	t.Run("another in its hello", func(t *testing.T) {
		id := p.client(t, "held")
		sess := rawSession(t, s.tunnelAddr, id)
		if _, err := sess.Ping(); err != nil { // the server's session is up: its hello holds the place
			t.Fatal(err)
		}
		logs := newLogCapture()
		c := startClientWith(t, id, s.tunnelAddr, func(cfg *tunnel.Config) { cfg.Logger = logs.logger() })
		line := logs.wait(t, `msg="not connected to server"`)
		t.Log(line)
		if !strings.Contains(line, "the server closed the connection without answering it; its log says why") {
			t.Errorf("client log: %s", line)
		}
		c.stop()
	})
	// Another connection with the same identity takes the session: the
	// client that had it says so.
	t.Run("replaced", func(t *testing.T) {
		id := p.client(t, "twin")
		logs := newLogCapture()
		a := startClientWith(t, id, s.tunnelAddr, func(cfg *tunnel.Config) { cfg.Logger = logs.logger() })
		waitConnected(t, a, s)
		b := startClientWith(t, id, s.tunnelAddr, nil)
		line := logs.wait(t, `msg="not connected to server"`)
		if !strings.Contains(line, "replaced by another connection with the same identity from 127.0.0.1:") {
			t.Errorf("client log: %s", line)
		}
		b.stop()
		a.stop()
	})
}
