package tunnel_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/tunnel"
)

// TestHostileHelloPhase: a connection whose TLS handshake is done but
// whose hello is not (a peer that opens the hello stream and says
// nothing) is not yet bounded by the session's stream limits: yamux
// buffers up to its accept backlog of streams, each with its first
// window, for up to HandshakeTimeout. A peer holding a valid certificate
// made 20 such connections at once and took a real server from 14 MB to
// 800 MB RSS. So a certificate has one connection in its hello at a
// time: while one is, another with the same certificate is closed at
// once, logged, and a different name is not affected.
func TestHostileHelloPhase(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = warnLogs(logs) })
	mallory := p.client(t, "mallory")

	// The first connection: TLS, yamux, a hello stream with no hello.
	stuck := silentHello(t, s.tunnelAddr, mallory)

	// A second connection of the same name, with an honest hello, is
	// refused without a hello answer; the first keeps its place.
	conn, err := tls.Dial("tcp", s.tunnelAddr, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: mallory.Pool,
		ServerName: "localhost", Certificates: []tls.Certificate{mallory.Certificate}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	sess, err := yamux.Client(conn, quietYamux())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	// The server may have closed it before the stream is even open.
	if st, err := sess.OpenStream(); err == nil {
		w := events.NewWriter(st)
		if err := w.WriteMessage(&events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: "mallory"}); err == nil {
			_ = w.Flush()
		}
		w.Release()
		var answer events.Hello
		if err := events.NewReader(st).ReadMessage(&answer); err == nil {
			t.Fatalf("a second connection of mallory while one is in its hello was answered: %+v", &answer)
		}
	}
	logs.wait(t, "client refused", "another connection with its certificate", "mallory", "in its hello")

	// Another name is not affected.
	honest := startClient(t, p, "honest", s.tunnelAddr, nil)
	waitConnected(t, honest, s)
	if r := get(t, honest.httpURL+"/server/time"); r.status != 200 {
		t.Errorf("honest client: %d %s", r.status, r.body)
	}
	// Once the first connection ends, mallory may connect again.
	stuck.Close()
	h, answer2 := dialHostile(t, s.tunnelAddr, mallory, nil)
	defer h.sess.Close()
	if answer2.Error != "" || !strings.Contains(answer2.NodeName, "server") {
		t.Errorf("mallory after its stuck connection ended: %+v", answer2)
	}
}

// silentHello dials addr as id, opens the hello stream and sends nothing
// on it; it returns once the server's session is up (it answered a ping).
func silentHello(t *testing.T, addr string, id *certs.Identity) *yamux.Session {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: id.Pool,
		ServerName: "localhost", Certificates: []tls.Certificate{id.Certificate}})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := yamux.Client(conn, quietYamux())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	if _, err := sess.OpenStream(); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Ping(); err != nil {
		t.Fatalf("ping the server: %v", err)
	}
	return sess
}

func quietYamux() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = false
	c.LogOutput = io.Discard
	c.StreamOpenTimeout = 0
	return c
}

// TestHostileStreamsBeforeHello: an honest client opens no stream but the
// hello's until the server has answered it, so streams opened before
// then are a peer filling yamux's backlog (64 streams of 256 KiB each)
// before any bound applies: the server ends such a connection at once,
// with the reason in its log, rather than at the handshake timeout.
func TestHostileStreamsBeforeHello(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = warnLogs(logs) })
	sess := silentHello(t, s.tunnelAddr, p.client(t, "mallory"))
	junk := make([]byte, 64<<10)
	for range 4 {
		st, err := sess.OpenStream()
		if err != nil {
			break
		}
		_ = st.SetWriteDeadline(time.Now().Add(3 * time.Second))
		go st.Write(junk)
	}
	select {
	case <-sess.CloseChan():
	case <-time.After(3 * time.Second): // the handshake timeout is 10 s
		t.Fatal("a connection that opened streams before its hello was kept")
	}
	logs.wait(t, "client refused", "mallory", "before its hello")
	honest := startClient(t, p, "honest", s.tunnelAddr, nil)
	waitConnected(t, honest, s)
}

// TestRevokedHelloDoesNotLockOut: the one place in the hello phase
// belongs to a certificate, not to its name: the holder of a revoked
// certificate (which passes TLS and is refused in the hello) who keeps a
// silent hello open, again and again, must not lock the re-issued
// certificate of the same name out.
func TestRevokedHelloDoesNotLockOut(t *testing.T) {
	p := newPKI(t)
	old := p.client(t, "c2")
	s := startServer(t, p, func(cfg *tunnel.Config) {
		cfg.VerifyPeer = func(c *x509.Certificate) error {
			if c.SerialNumber.Cmp(old.Leaf.SerialNumber) == 0 {
				return errors.New("certificate revoked")
			}
			return nil
		}
	})
	stuck := silentHello(t, s.tunnelAddr, old)
	defer stuck.Close()
	start := time.Now()
	c2 := startClientWith(t, p.client(t, "c2"), s.tunnelAddr, nil)
	waitConnected(t, c2, s)
	if d := time.Since(start); d > 5*time.Second { // the handshake timeout is 10 s
		t.Errorf("the re-issued c2 connected after %v: locked out while the revoked one's hello was open", d.Round(time.Second))
	}
	if r := get(t, c2.httpURL+"/server/time"); r.status != 200 {
		t.Errorf("the re-issued c2: %d %s", r.status, r.body)
	}
}
