package muxconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// The tests of this file's siblings drive real yamux sessions over real
// TLS 1.3 on loopback (kernel-chosen ports), through the stack that
// tunnel builds.

// testTLS returns a server and a client TLS config for 127.0.0.1, on a
// self-signed certificate.
func testTLS(t testing.TB) (srv, cli *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "muxconn test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	cli = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "127.0.0.1"}
	return srv, cli
}

// tapConn is a TCP connection that counts its writes, and whose reads
// can be paused: while paused, what it reads is held back.
type tapConn struct {
	net.Conn
	writes atomic.Int64

	mu     sync.Mutex
	resume chan struct{} // non-nil while paused
	held   chan struct{} // a token once a read is held back (see heldBack)
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	ch, held := c.resume, c.held
	c.mu.Unlock()
	if ch != nil {
		select {
		case held <- struct{}{}:
		default:
		}
		<-ch
	}
	return n, err
}

// pause holds back what is read from now on until unpause.
func (c *tapConn) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resume = make(chan struct{})
	c.held = make(chan struct{}, 1)
}

// heldBack gets a token once a read is held back since the last pause:
// the reader is then parked in Read, after its last use of what lies
// above the tap, until unpause.
func (c *tapConn) heldBack() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

func (c *tapConn) unpause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resume != nil {
		close(c.resume)
		c.resume = nil
	}
}

// pair is the two ends of one connection, each a Conn with its session
// started (no hello phase), the client's and server's sockets tapped.
type pair struct {
	srv, cli       *Conn
	srvSess        *yamux.Session
	cliSess        *yamux.Session
	srvTap, cliTap *tapConn
}

// testYamux is the yamux config of the tests: no keep-alive of yamux's
// own (its pings would count as writes), no log.
func testYamux() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = false
	c.LogOutput = io.Discard
	return c
}

// loopbackTCP returns the two ends of a new TCP connection on loopback
// (a kernel-chosen port): the one accepted and the one dialled.
func loopbackTCP(t testing.TB) (accepted, dialled net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		done <- result{c, err}
	}()
	dialled, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		_ = dialled.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { _ = dialled.Close(); _ = r.c.Close() })
	return r.c, dialled
}

// newPair connects a server and a client over loopback; tweak, if set,
// changes the server's yamux config.
func newPair(t testing.TB, tweak func(*yamux.Config)) *pair {
	t.Helper()
	srvTLS, cliTLS := testTLS(t)
	srvRaw, cliRaw := loopbackTCP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		c   *Conn
		err error
	}
	srvTap, cliTap := &tapConn{Conn: srvRaw}, &tapConn{Conn: cliRaw}
	done := make(chan result, 1)
	go func() {
		c, err := Handshake(ctx, srvTap, Server, srvTLS)
		done <- result{c, err}
	}()
	cli, err := Handshake(ctx, cliTap, Client, cliTLS)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	p := &pair{srv: r.c, cli: cli, srvTap: srvTap, cliTap: cliTap}
	scfg := testYamux()
	if tweak != nil {
		tweak(scfg)
	}
	if p.srvSess, err = p.srv.Start(scfg, false); err != nil {
		t.Fatal(err)
	}
	if p.cliSess, err = p.cli.Start(testYamux(), false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cliTap.unpause()
		_ = p.cli.Close()
		_ = p.srv.Close()
	})
	return p
}

// acceptor is an Acceptor from functions; nil ones admit, take and close.
type acceptor struct {
	admit func() bool
	serve func(st *yamux.Stream)
}

func (a acceptor) Admit() bool {
	if a.admit == nil {
		return true
	}
	return a.admit()
}

func (a acceptor) Take(*yamux.Stream) bool { return true }

func (a acceptor) Serve(st *yamux.Stream) {
	if a.serve == nil {
		_ = st.Close()
		return
	}
	a.serve(st)
}

// waitFor polls cond until it holds, or fails the test after 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// goroutinesIn counts the goroutines whose stack holds fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}
