package certs

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeIssued issues name from ca into dir and returns the paths of its
// certificate and key.
func writeIssued(t *testing.T, ca *CA, dir string, req IssueRequest) (certPath, keyPath string) {
	t.Helper()
	certPath, keyPath, err := ca.IssueToDir(dir, req, false)
	if err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func writeTestFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadIdentity(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "test CA")
	caFile := filepath.Join(dir, "ca.crt")
	writeTestFile(t, caFile, string(ca.CertPEM()))
	c1crt, c1key := writeIssued(t, ca, dir, IssueRequest{Name: "c1"})

	id, err := LoadIdentity(c1crt, c1key, caFile)
	if err != nil {
		t.Fatal(err)
	}
	if id.Name() != "c1" || id.CA.Subject.CommonName != "test CA" || id.Certificate.Leaf != id.Leaf {
		t.Errorf("loaded %q, CA %q", id.Name(), id.CA.Subject.CommonName)
	}
	if !id.Pool.Equal(ca.Pool()) {
		t.Error("Pool does not hold exactly the CA")
	}
	if err := id.Check(time.Now()); err != nil {
		t.Errorf("Check: %v", err)
	}

	// A server-only certificate loads too: LoadIdentity does not restrict
	// key usages.
	scrt, skey := writeIssued(t, ca, dir, IssueRequest{Name: "server", Hosts: []string{"localhost"}})
	if _, err := LoadIdentity(scrt, skey, caFile); err != nil {
		t.Errorf("server identity: %v", err)
	}

	// Keys in the older SEC 1 form, as other tools write them, load.
	other := issue(t, ca, IssueRequest{Name: "sec1"})
	der, _ := x509.MarshalECPrivateKey(other.Certificate.PrivateKey.(*ecdsa.PrivateKey))
	sec1crt := writeTestFile(t, filepath.Join(dir, "sec1.crt"), string(other.CertPEM()))
	sec1key := writeTestFile(t, filepath.Join(dir, "sec1.key"),
		"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"+
			string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})))
	if _, err := LoadIdentity(sec1crt, sec1key, caFile); err != nil {
		t.Errorf("SEC 1 key: %v", err)
	}

	// A certificate file with the CA after the leaf keeps it as the chain.
	chain := writeTestFile(t, filepath.Join(dir, "chain.crt"), string(other.CertPEM())+string(ca.CertPEM()))
	if id, err := LoadIdentity(chain, sec1key, caFile); err != nil || len(id.Certificate.Certificate) != 2 {
		t.Errorf("chain file: %v", err)
	}
}

func TestLoadIdentityErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "test CA")
	caFile := writeTestFile(t, filepath.Join(dir, "ca.crt"), string(ca.CertPEM()))
	c1crt, c1key := writeIssued(t, ca, dir, IssueRequest{Name: "c1"})
	_, c2key := writeIssued(t, ca, dir, IssueRequest{Name: "c2"})
	otherDir := t.TempDir()
	strangerCrt, strangerKey := writeIssued(t, newTestCA(t, "other CA"), otherDir, IssueRequest{Name: "c1"})
	missing := filepath.Join(dir, "missing.crt")
	garbage := writeTestFile(t, filepath.Join(dir, "garbage.pem"), "hello, I am not PEM\n")
	badDER := writeTestFile(t, filepath.Join(dir, "bad-der.pem"),
		"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n")
	badKey := writeTestFile(t, filepath.Join(dir, "bad-key.pem"),
		"-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n")

	tests := []struct {
		name              string
		cert, key, caFile string
		want              string // the message starts with this
		is                error
	}{
		{"missing cert", missing, c1key, caFile, "read cert " + missing + ": no such file or directory", fs.ErrNotExist},
		{"missing key", c1crt, missing, caFile, "read key " + missing + ": no such file or directory", fs.ErrNotExist},
		{"missing CA", c1crt, c1key, missing, "read CA " + missing + ": no such file or directory", fs.ErrNotExist},
		{"wrong key", c1crt, c2key, caFile, "key " + c2key + " does not match certificate " + c1crt, ErrKeyMismatch},
		{"another CA's cert", strangerCrt, strangerKey, caFile, "certificate " + strangerCrt + " is not signed by CA " + caFile + ": x509: ", ErrNotSignedByCA},
		{"garbage cert", garbage, c1key, caFile, "cert " + garbage + ": no PEM CERTIFICATE block found", nil},
		{"garbage key", c1crt, garbage, caFile, "key " + garbage + ": no PEM private key block found", nil},
		{"garbage CA", c1crt, c1key, garbage, "CA " + garbage + ": no PEM CERTIFICATE block found", nil},
		{"bad DER", badDER, c1key, caFile, "parse cert " + badDER + ": x509: ", nil},
		{"bad key DER", c1crt, badKey, caFile, "parse key " + badKey + ": ", nil},
		{"leaf as CA", c1crt, c1key, c1crt, "CA " + c1crt + ` ("c1"): not a CA certificate`, ErrNotCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := LoadIdentity(tt.cert, tt.key, tt.caFile)
			if err == nil {
				t.Fatalf("loaded %q, want an error", id.Name())
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to start with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is more than one line", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

// oldCA makes a CA that has been valid since a year ago, so that it can
// sign certificates that expired in the past.
func oldCA(t *testing.T) *CA {
	t.Helper()
	ca := newTestCA(t, "old CA")
	tmpl := *ca.Cert
	tmpl.NotBefore = time.Now().Add(-365 * 24 * time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, ca.Key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	return ca
}

// signAt issues a client certificate valid from notBefore to notAfter,
// bypassing Issue's own choice of dates.
func signAt(t *testing.T, ca *CA, name string, notBefore, notAfter time.Time) *Identity {
	t.Helper()
	id := issue(t, ca, IssueRequest{Name: name})
	tmpl := *id.Leaf
	tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
	key := id.Certificate.PrivateKey.(*ecdsa.PrivateKey)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, Leaf: leaf, CA: ca.Cert, Pool: ca.Pool()}
}

func TestLoadIdentityOutOfDate(t *testing.T) {
	dir := t.TempDir()
	ca := oldCA(t)
	caFile := writeTestFile(t, filepath.Join(dir, "ca.crt"), string(ca.CertPEM()))
	now := time.Now()
	tests := []struct {
		name                string
		notBefore, notAfter time.Time
		is                  error
		want                string
	}{
		{"expired", now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), ErrExpired, `("old") expired on `},
		{"not yet valid", now.Add(24 * time.Hour), now.Add(48 * time.Hour), ErrNotYetValid, `("old") is not yet valid: it starts on `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := signAt(t, ca, "old", tt.notBefore, tt.notAfter)
			certFile, keyFile := filepath.Join(dir, "old.crt"), filepath.Join(dir, "old.key")
			if err := WriteIdentity(certFile, keyFile, id); err != nil {
				t.Fatal(err)
			}
			loaded, err := LoadIdentity(certFile, keyFile, caFile)
			if err != nil {
				t.Fatalf("an out-of-date identity must still load: %v", err)
			}
			err = loaded.Check(now)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), "certificate "+certFile+" "+tt.want) {
				t.Errorf("Check = %v, want %v naming %s", err, tt.is, certFile)
			}
			if err := loaded.Check(tt.notBefore.Add(time.Hour)); err != nil {
				t.Errorf("Check within its validity: %v", err)
			}
		})
	}

	// An expired CA is reported too.
	id := issue(t, ca, IssueRequest{Name: "c1"})
	if err := id.Check(ca.Cert.NotAfter.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("Check after everything expired = %v, want ErrExpired", err)
	}
}

func TestInstallIdentity(t *testing.T) {
	src := t.TempDir()
	ca := newTestCA(t, "test CA")
	caFile := writeTestFile(t, filepath.Join(src, "ca.crt"), string(ca.CertPEM()))
	c1crt, c1key := writeIssued(t, ca, src, IssueRequest{Name: "c1"})
	c2crt, c2key := writeIssued(t, ca, src, IssueRequest{Name: "c2"})
	dir := filepath.Join(t.TempDir(), "etc", "restpipe")

	if err := InstallIdentity(dir, c1crt, c1key, caFile, false); err != nil {
		t.Fatal(err)
	}
	assertMode(t, dir, 0o700)
	assertMode(t, filepath.Join(dir, "ca.crt"), 0o644)
	assertMode(t, filepath.Join(dir, "node.crt"), 0o644)
	assertMode(t, filepath.Join(dir, "node.key"), 0o600)
	id, err := LoadIdentityDir(dir)
	if err != nil || id.Name() != "c1" {
		t.Fatalf("LoadIdentityDir = %v, %v; want c1", id, err)
	}

	err = InstallIdentity(dir, c2crt, c2key, caFile, false)
	if want := filepath.Join(dir, "node.key") + " exists; use --force to replace it"; !errors.Is(err, ErrExists) || err == nil || err.Error() != want {
		t.Errorf("second install = %v, want %q", err, want)
	}
	if id, _ := LoadIdentityDir(dir); id.Name() != "c1" {
		t.Errorf("refused install changed the identity to %q", id.Name())
	}
	if err := InstallIdentity(dir, c2crt, c2key, caFile, true); err != nil {
		t.Fatalf("install with force: %v", err)
	}
	if id, err := LoadIdentityDir(dir); err != nil || id.Name() != "c2" {
		t.Errorf("after force: %v, %v; want c2", id, err)
	}

	// Nothing is written for an identity that does not load.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := InstallIdentity(empty, c1crt, c2key, caFile, false); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("install with the wrong key = %v, want ErrKeyMismatch", err)
	}
	if _, err := os.Stat(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed install created %s", empty)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("identity dir holds %d entries, want 3 (no temporary files)", len(entries))
	}
}

func TestDefaultIdentityDir(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name   string
		euid   int
		getenv func(string) string
		home   string
		want   string
	}{
		{"root", 0, env(map[string]string{"XDG_CONFIG_HOME": "/x"}), "/root", "/var/lib/restpipe"},
		{"XDG_CONFIG_HOME", 1000, env(map[string]string{"XDG_CONFIG_HOME": "/home/u/cfg"}), "/home/u", "/home/u/cfg/restpipe"},
		{"relative XDG_CONFIG_HOME is ignored", 1000, env(map[string]string{"XDG_CONFIG_HOME": "cfg"}), "/home/u", "/home/u/.config/restpipe"},
		{"home", 1000, env(nil), "/home/u", "/home/u/.config/restpipe"},
		{"no home", 1000, env(nil), "", "/var/lib/restpipe"},
	}
	for _, tt := range tests {
		if got := defaultIdentityDir(tt.euid, tt.getenv, tt.home); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	if DefaultIdentityDir() == "" {
		t.Error("DefaultIdentityDir() is empty")
	}
}

// handshake runs a TLS handshake on loopback between a server with
// server's identity and a client with the given configuration, and
// returns each side's error and the client name the server saw.
func handshake(t *testing.T, server *Identity, client *tls.Config) (serverErr, clientErr error, peer string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)

	type result struct {
		err  error
		peer string
	}
	done := make(chan result, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer raw.Close()
		raw.SetDeadline(deadline)
		conn := tls.Server(raw, server.ServerTLSConfig())
		if err := conn.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		st := conn.ConnectionState()
		if st.Version != tls.VersionTLS13 {
			done <- result{err: errors.New("not TLS 1.3")}
			return
		}
		_, err = io.WriteString(conn, "ok")
		done <- result{err: err, peer: st.PeerCertificates[0].Subject.CommonName}
	}()

	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(deadline)
	conn := tls.Client(raw, client)
	clientErr = conn.Handshake()
	if clientErr == nil {
		// In TLS 1.3 the client learns that the server refused its
		// certificate only when it reads.
		var buf [2]byte
		_, clientErr = io.ReadFull(conn, buf[:])
	}
	conn.Close()
	r := <-done
	return r.err, clientErr, r.peer
}

func TestHandshake(t *testing.T) {
	ca := oldCA(t)
	other := newTestCA(t, "other CA")
	server := issue(t, ca, IssueRequest{Name: "server", Hosts: []string{"localhost", "127.0.0.1"}})
	c1 := issue(t, ca, IssueRequest{Name: "c1"})
	both := issue(t, ca, IssueRequest{Name: "both", Hosts: []string{"127.0.0.1"}, Usage: UsageServer | UsageClient})
	// A node of another network, and an impostor that knows our CA but
	// holds a certificate from another.
	stranger := issue(t, other, IssueRequest{Name: "c1"})
	impostor := *stranger
	impostor.Pool = ca.Pool()
	clientAsServer := issue(t, ca, IssueRequest{Name: "cs", Hosts: []string{"127.0.0.1"}, Usage: UsageClient})
	fakeServer := issue(t, other, IssueRequest{Name: "server", Hosts: []string{"127.0.0.1"}})
	expired := signAt(t, ca, "late", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))

	tests := []struct {
		name           string
		server, client *Identity
		serverName     string
		wantServerErr  string // "" for success
		wantClientErr  string
		push           bool // send the client certificate whatever CAs the server names
	}{
		{"same CA", server, c1, "127.0.0.1", "", "", false},
		{"same CA by DNS name", server, c1, "localhost", "", "", false},
		{"both usages on both ends", both, both, "127.0.0.1", "", "", false},
		{"client of another network", server, stranger, "127.0.0.1", "bad certificate", "certificate signed by unknown authority", false},
		{"client cert from another CA", server, &impostor, "127.0.0.1", "certificate signed by unknown authority", "unknown certificate authority", true},
		{"server from another CA", fakeServer, c1, "127.0.0.1", "bad certificate", "certificate signed by unknown authority", false},
		{"server identity as client", server, server, "127.0.0.1", "incompatible key usage", "bad certificate", false},
		{"client identity as server", clientAsServer, c1, "127.0.0.1", "bad certificate", "incompatible key usage", false},
		{"wrong server name", server, c1, "files.example.com", "bad certificate", "not files.example.com", false},
		{"expired client", server, expired, "127.0.0.1", "expired", "expired certificate", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.client.ClientTLSConfig(tt.serverName)
			if tt.push {
				// Go's client offers only a certificate from a CA the
				// server names; an impostor is not so polite.
				cert := cfg.Certificates[0]
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
			}
			serverErr, clientErr, peer := handshake(t, tt.server, cfg)
			check := func(side string, err error, want string) {
				t.Helper()
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: %v", side, err)
				case want != "" && err == nil:
					t.Errorf("%s: no error, want one with %q", side, want)
				case want != "" && !strings.Contains(err.Error(), want):
					t.Errorf("%s: error %q, want %q in it", side, err, want)
				}
			}
			check("server", serverErr, tt.wantServerErr)
			check("client", clientErr, tt.wantClientErr)
			if tt.wantServerErr == "" && peer != tt.client.Name() {
				t.Errorf("server saw peer %q, want %q", peer, tt.client.Name())
			}
		})
	}
}
