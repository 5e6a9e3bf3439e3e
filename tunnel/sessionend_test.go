package tunnel_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/tunnel"
)

// shortLived issues an identity from ca that expires within 1 to 2
// seconds (NotAfter is kept to the second): a server identity for
// localhost and 127.0.0.1, or a client one.
func shortLived(t *testing.T, ca *certs.CA, name string, server bool) *certs.Identity {
	t.Helper()
	now := time.Now()
	notAfter := now.Truncate(time.Second).Add(2 * time.Second)
	if !server {
		return craft(t, ca, name, now.Add(-time.Hour), notAfter, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	}
	return craftWith(t, ca, name, now.Add(-time.Hour), notAfter, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		func(tmpl *x509.Certificate) {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		})
}

// TestSessionEndsAtCertExpiry: a session ends when the client's or the
// server's certificate expires, on both nodes, each saying which
// certificate (whose, name, serial, NotAfter); the client's next attempt
// is refused at the handshake.
func TestSessionEndsAtCertExpiry(t *testing.T) {
	for _, whose := range []string{"client", "server"} {
		t.Run(whose, func(t *testing.T) {
			t.Parallel()
			p := newPKI(t)
			clientID := p.client(t, "c1")
			var short *certs.Identity
			if whose == "client" {
				short = shortLived(t, p.ca, "c1", false)
				clientID = short
			} else {
				short = shortLived(t, p.ca, "server", true)
				p.server = short
			}
			srvLogs, cliLogs := newLogCapture(), newLogCapture()
			s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = srvLogs.logger() })
			c := startClientWith(t, clientID, s.tunnelAddr, func(cfg *tunnel.Config) { cfg.Logger = cliLogs.logger() })
			waitConnected(t, c, s)
			if time.Now().After(short.Leaf.NotAfter) {
				t.Skip("the machine is too slow: the certificate expired before the session began")
			}

			serial := short.Leaf.SerialNumber.Text(16)
			notAfter := short.Leaf.NotAfter.UTC().Format(time.RFC3339)
			which := fmt.Sprintf(`certificate expired: %s \"%s\" serial %s, not after %s`, whose, short.Leaf.Subject.CommonName, serial, notAfter)
			srvLogs.wait(t, `msg="client disconnected"`, which)
			cliLogs.wait(t, `msg="disconnected from server"`, which)
			// The node whose timer ended it logged the certificate too.
			line := []string{`msg="session ended: certificate expired"`, fmt.Sprintf(`cert=%s name=%s serial=%s not_after=%s`,
				whose, short.Leaf.Subject.CommonName, serial, notAfter)}
			if !hasLine(srvLogs.all(), line) && !hasLine(cliLogs.all(), line) {
				t.Errorf("no node logged %q\nserver:\n%s\nclient:\n%s", line, srvLogs.all(), cliLogs.all())
			}
			// And the client is refused from now on.
			cliLogs.wait(t, `msg="not connected to server"`, "expired")
			// The node whose certificate expired says so, as the peer's
			// TLS alert may not.
			own := `this node's certificate \"` + short.Leaf.Subject.CommonName + `\" serial ` + serial
			if whose == "client" {
				srvLogs.wait(t, `msg="client refused"`, "expired")
				cliLogs.wait(t, `msg="not connected to server"`, own)
			} else {
				srvLogs.wait(t, `msg="client refused"`, own)
			}
		})
	}
}

func hasLine(log string, parts []string) bool {
	for _, l := range strings.Split(log, "\n") {
		if containsAll(l, parts) {
			return true
		}
	}
	return false
}

// TestSharedIdentity: a connection with the identity of a connected
// client replaces its session; the server warns with both addresses and
// serials, the replaced client's log says by whom, and it waits
// ReconnectMax before trying again. Two clients that keep replacing each
// other are reported as sharing one identity.
func TestSharedIdentity(t *testing.T) {
	p := newPKI(t)
	srvLogs, aLogs, bLogs := newLogCapture(), newLogCapture(), newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = srvLogs.logger() })
	id := p.client(t, "c1")
	a := startClientWith(t, id, s.tunnelAddr, func(cfg *tunnel.Config) { cfg.Logger = aLogs.logger() })
	waitConnected(t, a, s)
	aInfo := s.Clients()[0]

	b := startClientWith(t, id, s.tunnelAddr, func(cfg *tunnel.Config) { cfg.Logger = bLogs.logger() })
	serial := id.Leaf.SerialNumber.Text(16)
	warn := srvLogs.wait(t, `level=WARN msg="client replaced by a new connection with the same identity" peer=c1`,
		"old_remote="+aInfo.RemoteAddr, "old_serial="+serial, "new_serial="+serial)
	bAddr := regexp.MustCompile(`new_remote=(\S+)`).FindStringSubmatch(warn)[1]
	aLogs.wait(t, `msg="disconnected from server"`, `reason="closed by peer: replaced by another connection with the same identity from `+bAddr+`"`)
	aLogs.wait(t, `msg="not connected to server"`, "replaced by another connection", "retry_in=100ms") // ReconnectMax
	srvLogs.wait(t, `msg="client disconnected"`, "remote="+aInfo.RemoteAddr, `reason="replaced by another connection with the same identity from `+bAddr+`"`)

	// a comes back and takes the session from b, which was put there by
	// a replacement moments ago: two live clients.
	srvLogs.wait(t, `level=ERROR msg="two live clients share one identity`, "peer=c1", "remote_a="+bAddr, "remote_b=")
	bLogs.wait(t, `msg="disconnected from server"`, "replaced by another connection with the same identity from")
	_ = b
}

// TestClientReverify: a client whose check of the server's certificate
// fails on Reverify (a reloaded revocation list) drops the session,
// telling the server why, and is refused at the handshake from then on.
func TestClientReverify(t *testing.T) {
	p := newPKI(t)
	srvLogs, cliLogs := newLogCapture(), newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = srvLogs.logger() })
	var refuse atomic.Bool
	c := startClient(t, p, "c1", s.tunnelAddr, func(cfg *tunnel.Config) {
		cfg.Logger = cliLogs.logger()
		cfg.VerifyPeer = func(leaf *x509.Certificate) error {
			if refuse.Load() {
				return fmt.Errorf("server %q is on the test's list", leaf.Subject.CommonName)
			}
			return nil
		}
	})
	waitConnected(t, c, s)
	if c.Reverify() {
		t.Fatal("Reverify dropped an accepted server")
	}
	refuse.Store(true)
	if !c.Reverify() {
		t.Fatal("Reverify kept a refused server")
	}
	cliLogs.wait(t, `msg="session dropped: the server's certificate is no longer accepted"`, "on the test's list")
	srvLogs.wait(t, `msg="client disconnected"`, `reason="closed by peer: certificate no longer accepted: server \"server\" is on the test's list"`)
	cliLogs.wait(t, `msg="not connected to server"`, `err="server 127.0.0.1:`, "on the test's list")
}

// TestReplacedNoticeOnTheWire: the notice a replaced client gets is a
// stream whose Request has session_close set; a peer that ignores it (one
// that predates it) is closed by the server anyway, within about a second.
func TestReplacedNoticeOnTheWire(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	id := p.client(t, "c1")
	sess := rawSession(t, s.tunnelAddr, id)
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	w := events.NewWriter(st)
	if err := w.WriteMessage(&events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: "c1"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var answer events.Hello
	if err := events.NewReader(st).ReadMessage(&answer); err != nil || answer.Error != "" {
		t.Fatalf("hello: %v %q", err, answer.Error)
	}
	st.Close()
	waitFor(t, context.Background(), func() bool { return len(s.Clients()) == 1 }, "the server to list c1")

	c := startClientWith(t, id, s.tunnelAddr, nil)
	notice, err := sess.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	_ = notice.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ev events.Request
	if err := events.NewReader(notice).ReadMessage(&ev); err != nil {
		t.Fatal(err)
	}
	sc := ev.GetSessionClose()
	if sc.GetCode() != "replaced" || !strings.HasPrefix(sc.GetReason(), "replaced by another connection with the same identity from 127.0.0.1:") {
		t.Errorf("notice %v", sc)
	}
	// Ignored, as by an old peer: the server closes the session anyway.
	start := time.Now()
	select {
	case <-sess.CloseChan():
	case <-time.After(10 * time.Second):
		t.Fatal("the replaced session stayed open")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v, want about a second", d)
	}
	waitConnected(t, c, s)
}
