package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// newTestCA makes an in-memory CA or fails the test.
func newTestCA(t *testing.T, name string) *CA {
	t.Helper()
	ca, err := NewCA(name, 0)
	if err != nil {
		t.Fatalf("NewCA(%q): %v", name, err)
	}
	return ca
}

// issue issues an identity or fails the test.
func issue(t *testing.T, ca *CA, req IssueRequest) *Identity {
	t.Helper()
	id, err := ca.Issue(req)
	if err != nil {
		t.Fatalf("Issue(%+v): %v", req, err)
	}
	return id
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %#o, want %#o", path, got, want)
	}
}

func TestNewCA(t *testing.T) {
	before := time.Now()
	ca, err := NewCA("restpipe CA", 10*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if c.Subject.CommonName != "restpipe CA" {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if !c.BasicConstraintsValid || !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("constraints: valid=%v isCA=%v maxPathLen=%d zero=%v", c.BasicConstraintsValid, c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("KeyUsage = %v", c.KeyUsage)
	}
	if len(c.SubjectKeyId) != 20 {
		t.Errorf("SubjectKeyId = %x, want 20 bytes", c.SubjectKeyId)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v: want positive, at most 128 bits", c.SerialNumber)
	}
	if d := c.NotAfter.Sub(before); d < 10*24*time.Hour-time.Minute || d > 10*24*time.Hour+time.Minute {
		t.Errorf("NotAfter %v is %v from now, want 10 days", c.NotAfter, d)
	}
	if !c.NotBefore.Before(before) {
		t.Errorf("NotBefore %v not backdated", c.NotBefore)
	}

	for _, bad := range []string{"", strings.Repeat("x", 65)} {
		if _, err := NewCA(bad, 0); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("NewCA(%q) = %v, want ErrInvalidRequest", bad, err)
		}
	}
	if _, err := NewCA("x", -time.Hour); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("NewCA with negative validity = %v, want ErrInvalidRequest", err)
	}
}

func TestIssueFields(t *testing.T) {
	ca := newTestCA(t, "test CA")
	server := x509.ExtKeyUsageServerAuth
	client := x509.ExtKeyUsageClientAuth
	tests := []struct {
		name    string
		req     IssueRequest
		wantEKU []x509.ExtKeyUsage
		wantDNS []string
		wantIPs []string
	}{
		{"client by default", IssueRequest{Name: "c1"}, []x509.ExtKeyUsage{client}, nil, nil},
		{"server by hosts", IssueRequest{Name: "server", Hosts: []string{"localhost", "127.0.0.1", "::1", "files.example.com"}},
			[]x509.ExtKeyUsage{server}, []string{"localhost", "files.example.com"}, []string{"127.0.0.1", "::1"}},
		{"explicit client with hosts", IssueRequest{Name: "c2", Hosts: []string{"c2.example.com"}, Usage: UsageClient},
			[]x509.ExtKeyUsage{client}, []string{"c2.example.com"}, nil},
		{"explicit server without hosts", IssueRequest{Name: "s", Usage: UsageServer}, []x509.ExtKeyUsage{server}, nil, nil},
		{"both", IssueRequest{Name: "node_1.a-b", Hosts: []string{"*.example.com"}, Usage: UsageServer | UsageClient},
			[]x509.ExtKeyUsage{server, client}, []string{"*.example.com"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := issue(t, ca, tt.req)
			c := id.Leaf
			if id.Name() != tt.req.Name || c.Subject.CommonName != tt.req.Name {
				t.Errorf("Name() = %q, CN = %q, want %q", id.Name(), c.Subject.CommonName, tt.req.Name)
			}
			if !slices.Equal(c.ExtKeyUsage, tt.wantEKU) {
				t.Errorf("ExtKeyUsage = %v, want %v", c.ExtKeyUsage, tt.wantEKU)
			}
			if got, want := id.Usage(), tt.req.Usage; want != 0 && got != want {
				t.Errorf("Usage() = %v, want %v", got, want)
			}
			if !slices.Equal(c.DNSNames, tt.wantDNS) {
				t.Errorf("DNSNames = %q, want %q", c.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("IPAddresses = %q, want %q", ips, tt.wantIPs)
			}
			if c.IsCA || !c.BasicConstraintsValid {
				t.Errorf("IsCA = %v, BasicConstraintsValid = %v", c.IsCA, c.BasicConstraintsValid)
			}
			if c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("KeyUsage = %v, want DigitalSignature", c.KeyUsage)
			}
			if !bytes.Equal(c.AuthorityKeyId, ca.Cert.SubjectKeyId) {
				t.Errorf("AuthorityKeyId %x, CA SubjectKeyId %x", c.AuthorityKeyId, ca.Cert.SubjectKeyId)
			}
			if err := c.CheckSignatureFrom(ca.Cert); err != nil {
				t.Errorf("not signed by the CA: %v", err)
			}
			if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
				t.Errorf("public key %T, want ECDSA", c.PublicKey)
			}
			if id.Certificate.Leaf != c || len(id.Certificate.Certificate) != 1 || id.CA != ca.Cert {
				t.Errorf("tls.Certificate not filled in: %+v", id.Certificate)
			}
			if err := id.Check(time.Now()); err != nil {
				t.Errorf("Check: %v", err)
			}
			for _, h := range tt.req.Hosts {
				if strings.HasPrefix(h, "*.") {
					h = "x" + h[1:]
				}
				if err := c.VerifyHostname(h); err != nil {
					t.Errorf("VerifyHostname(%q): %v", h, err)
				}
			}
		})
	}
}

func TestIssueSerialsDiffer(t *testing.T) {
	ca := newTestCA(t, "test CA")
	seen := map[string]bool{ca.Cert.SerialNumber.String(): true}
	for range 20 {
		s := issue(t, ca, IssueRequest{Name: "c1"}).Leaf.SerialNumber
		if s.Sign() <= 0 || s.BitLen() > 128 {
			t.Errorf("serial %v: want positive, at most 128 bits", s)
		}
		if seen[s.String()] {
			t.Fatalf("serial %v issued twice", s)
		}
		seen[s.String()] = true
	}
}

func TestIssueValidity(t *testing.T) {
	shortCA, err := NewCA("short CA", 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	tests := []struct {
		name     string
		ca       *CA
		validity time.Duration
		want     time.Duration // from now
	}{
		{"default is a year", newTestCA(t, "ca"), 0, 365 * day},
		{"asked for", newTestCA(t, "ca"), 7 * day, 7 * day},
		{"cut to the CA's end", shortCA, 365 * day, 30 * day},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Now()
			c := issue(t, tt.ca, IssueRequest{Name: "c1", Validity: tt.validity}).Leaf
			if d := c.NotAfter.Sub(now) - tt.want; d < -time.Minute || d > time.Minute {
				t.Errorf("NotAfter %v, want about now + %v", c.NotAfter, tt.want)
			}
			if c.NotAfter.After(tt.ca.Cert.NotAfter) {
				t.Errorf("NotAfter %v outlives the CA (%v)", c.NotAfter, tt.ca.Cert.NotAfter)
			}
			if d := now.Sub(c.NotBefore); d < 4*time.Minute || d > 6*time.Minute {
				t.Errorf("NotBefore %v is %v before now, want 5m", c.NotBefore, d)
			}
		})
	}
}

func TestIssueRejectsBadRequests(t *testing.T) {
	ca := newTestCA(t, "test CA")
	tests := []struct {
		name string
		req  IssueRequest
		want string // in the message
	}{
		{"empty name", IssueRequest{}, "empty"},
		{"long name", IssueRequest{Name: strings.Repeat("a", 65)}, "longer than 64"},
		{"leading dot", IssueRequest{Name: ".hidden"}, "starts with"},
		{"leading dash", IssueRequest{Name: "-rf"}, "starts with"},
		{"ca", IssueRequest{Name: "ca"}, "reserved"},
		{"CA", IssueRequest{Name: "CA"}, "reserved"},
		{"slash", IssueRequest{Name: "../x"}, "starts with"},
		{"inner slash", IssueRequest{Name: "a/b"}, `'/'`},
		{"space", IssueRequest{Name: "a b"}, `' '`},
		{"unicode", IssueRequest{Name: "café"}, `'é'`},
		{"bad host", IssueRequest{Name: "s", Hosts: []string{"a b"}}, `host "a b"`},
		{"empty host", IssueRequest{Name: "s", Hosts: []string{""}}, `host ""`},
		{"bad usage", IssueRequest{Name: "s", Usage: 8}, "usage 8"},
		{"negative validity", IssueRequest{Name: "s", Validity: -time.Hour}, "validity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.Issue(tt.req)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("Issue(%+v) = %v, want ErrInvalidRequest", tt.req, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	if err := ValidateName("node"); err != nil {
		t.Errorf(`ValidateName("node") = %v, want nil`, err)
	}
	if err := ValidateName(strings.Repeat("a", 64)); err != nil {
		t.Errorf("64-character name: %v", err)
	}
}

func TestParseUsage(t *testing.T) {
	tests := []struct {
		in   string
		want Usage
		str  string
	}{
		{"", 0, "none"},
		{"server", UsageServer, "server"},
		{"Client", UsageClient, "client"},
		{"both", UsageServer | UsageClient, "server+client"},
		{"client+server", UsageServer | UsageClient, "server+client"},
	}
	for _, tt := range tests {
		got, err := ParseUsage(tt.in)
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseUsage(%q) = %v (%q), %v; want %v (%q)", tt.in, got, got, err, tt.want, tt.str)
		}
	}
	if _, err := ParseUsage("peer"); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("ParseUsage(peer) = %v, want ErrInvalidRequest", err)
	}
}

func TestInitOpenCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := InitCA(dir, "restpipe CA", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, dir, 0o700)
	assertMode(t, filepath.Join(dir, "ca.crt"), 0o644)
	assertMode(t, filepath.Join(dir, "ca.key"), 0o600)
	if d := time.Until(ca.Cert.NotAfter); d < 3649*24*time.Hour {
		t.Errorf("default CA validity %v, want 3650 days", d)
	}

	opened, err := OpenCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !opened.Cert.Equal(ca.Cert) || !keyMatches(opened.Key, ca.Cert) {
		t.Error("OpenCA returned a different CA")
	}
	// An identity issued by the reopened CA verifies against the original.
	id := issue(t, opened, IssueRequest{Name: "c1"})
	if err := id.Leaf.CheckSignatureFrom(ca.Cert); err != nil {
		t.Error(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("CA dir holds %d entries, want ca.crt, ca.key and revoked.txt (no temporary files)", len(entries))
	}

	_, err = InitCA(dir, "other", 0, false)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second InitCA = %v, want ErrExists", err)
	}
	if want := filepath.Join(dir, "ca.key") + " exists; use --force to replace it"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if again, _ := OpenCA(dir); !again.Cert.Equal(ca.Cert) {
		t.Error("refused InitCA changed the CA")
	}

	replaced, err := InitCA(dir, "other", 0, true)
	if err != nil {
		t.Fatalf("InitCA with force: %v", err)
	}
	if replaced.Cert.Equal(ca.Cert) {
		t.Error("force did not replace the CA")
	}
	assertMode(t, filepath.Join(dir, "ca.key"), 0o600)
}

func TestOpenCAErrors(t *testing.T) {
	base := t.TempDir()
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	if _, err := InitCA(a, "A", 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := InitCA(b, "B", 0, false); err != nil {
		t.Fatal(err)
	}
	mixed := filepath.Join(base, "mixed")
	copyFile(t, filepath.Join(a, "ca.crt"), filepath.Join(mixed, "ca.crt"))
	copyFile(t, filepath.Join(b, "ca.key"), filepath.Join(mixed, "ca.key"))
	leafDir := filepath.Join(base, "leaf")
	ca, _ := OpenCA(a)
	if _, _, err := ca.IssueToDir(leafDir, IssueRequest{Name: "c1"}, false); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(leafDir, "c1.crt"), filepath.Join(leafDir, "ca.crt"))
	copyFile(t, filepath.Join(leafDir, "c1.key"), filepath.Join(leafDir, "ca.key"))

	tests := []struct {
		dir  string
		want string
		is   error
	}{
		{filepath.Join(base, "none"), "read CA " + filepath.Join(base, "none", "ca.crt") + ": no such file or directory", fs.ErrNotExist},
		{mixed, "CA key " + filepath.Join(mixed, "ca.key") + " does not match CA certificate " + filepath.Join(mixed, "ca.crt"), ErrKeyMismatch},
		{leafDir, "CA " + filepath.Join(leafDir, "ca.crt") + ` ("c1"): not a CA certificate`, ErrNotCA},
	}
	for _, tt := range tests {
		_, err := OpenCA(tt.dir)
		if !errors.Is(err, tt.is) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("OpenCA(%s) = %v, want %q (%v)", tt.dir, err, tt.want, tt.is)
		}
	}
}

func TestIssueToDir(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "test CA")
	req := IssueRequest{Name: "c1"}
	certPath, keyPath, err := ca.IssueToDir(dir, req, false)
	if err != nil {
		t.Fatal(err)
	}
	if certPath != filepath.Join(dir, "c1.crt") || keyPath != filepath.Join(dir, "c1.key") {
		t.Errorf("paths %s %s", certPath, keyPath)
	}
	assertMode(t, certPath, 0o644)
	assertMode(t, keyPath, 0o600)
	keyPEM, _ := os.ReadFile(keyPath)
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Errorf("key is not PKCS#8 PEM: %.40q", keyPEM)
	}
	first, err := LoadIdentity(certPath, keyPath, writeCA(t, ca))
	if err != nil {
		t.Fatal(err)
	}

	// Refused while either file is there, and nothing is changed.
	_, _, err = ca.IssueToDir(dir, req, false)
	if want := keyPath + " exists; use --force to replace it"; !errors.Is(err, ErrExists) || err.Error() != want {
		t.Errorf("second IssueToDir = %v, want %q", err, want)
	}
	os.Remove(keyPath)
	_, _, err = ca.IssueToDir(dir, req, false)
	if want := certPath + " exists; use --force to replace it"; !errors.Is(err, ErrExists) || err.Error() != want {
		t.Errorf("IssueToDir with only the cert there = %v, want %q", err, want)
	}

	// Replaced with force.
	if _, _, err := ca.IssueToDir(dir, req, true); err != nil {
		t.Fatalf("IssueToDir with force: %v", err)
	}
	second, err := LoadIdentity(certPath, keyPath, writeCA(t, ca))
	if err != nil {
		t.Fatal(err)
	}
	if second.Leaf.Equal(first.Leaf) {
		t.Error("force did not replace the certificate")
	}
	assertMode(t, keyPath, 0o600)

	// Bad names never touch the file system.
	if _, _, err := ca.IssueToDir(dir, IssueRequest{Name: "../escape"}, true); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("IssueToDir(../escape) = %v, want ErrInvalidRequest", err)
	}
}

func TestIssueWithExpiredCA(t *testing.T) {
	ca := newTestCA(t, "old CA")
	old := *ca.Cert
	old.NotAfter = time.Now().Add(-time.Hour)
	ca.Cert = &old
	_, err := ca.Issue(IssueRequest{Name: "c1"})
	if !errors.Is(err, ErrExpired) {
		t.Errorf("Issue with an expired CA = %v, want ErrExpired", err)
	}
}

// writeCA writes ca.crt into a new temporary directory and returns its path.
func writeCA(t *testing.T, ca *CA) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
