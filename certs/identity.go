package certs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Identity is a node's TLS identity: its certificate and key, and the CA
// that it and its peers are verified against.
type Identity struct {
	// Certificate is the leaf certificate (and any chain after it) with
	// its private key, Leaf set, ready for tls.Config.Certificates.
	Certificate tls.Certificate
	// Leaf is the node's parsed certificate; its Common Name is the
	// node's name.
	Leaf *x509.Certificate
	// CA is the CA certificate.
	CA *x509.Certificate
	// Pool holds the CA certificate only, for tls.Config.RootCAs and
	// ClientCAs.
	Pool *x509.CertPool

	// certFile and caFile name the files the identity was loaded from,
	// for messages; empty for an identity issued in memory.
	certFile, caFile string
}

// Name returns the node's name: the Common Name of its certificate.
func (id *Identity) Name() string { return id.Leaf.Subject.CommonName }

// Usage returns what the certificate may be used for, read from its
// extended key usages. ExtKeyUsageAny, or no extended key usage at all,
// counts as both, as crypto/x509 reads it.
func (id *Identity) Usage() Usage {
	if len(id.Leaf.ExtKeyUsage) == 0 && len(id.Leaf.UnknownExtKeyUsage) == 0 {
		return UsageServer | UsageClient
	}
	var u Usage
	for _, e := range id.Leaf.ExtKeyUsage {
		switch e {
		case x509.ExtKeyUsageServerAuth:
			u |= UsageServer
		case x509.ExtKeyUsageClientAuth:
			u |= UsageClient
		case x509.ExtKeyUsageAny:
			u |= UsageServer | UsageClient
		}
	}
	return u
}

// LoadIdentity loads a node identity from PEM files: the certificate
// (the leaf first; any more certificates are sent as its chain), the
// private key and the CA certificate. It checks that the key matches the
// certificate and that the certificate chains to the CA, whatever its
// extended key usages. It does not reject a certificate that has expired
// or is not valid yet: Check reports that, so that a caller can warn.
func LoadIdentity(certFile, keyFile, caFile string) (*Identity, error) {
	ders, leaf, err := readCerts("cert", certFile)
	if err != nil {
		return nil, err
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, err
	}
	if !keyMatches(key, leaf) {
		return nil, fmt.Errorf("key %s does not match certificate %s: %w", keyFile, certFile, ErrKeyMismatch)
	}
	ca, err := readCACert(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	inter := x509.NewCertPool()
	for i, der := range ders[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("parse cert %s (certificate %d): %w", certFile, i+2, err)
		}
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		CurrentTime:   verifyTime(time.Now(), leaf, ca),
	}
	if _, err := leaf.Verify(opts); err != nil {
		return nil, fmt.Errorf("certificate %s is %w %s: %w", certFile, ErrNotSignedByCA, caFile, err)
	}
	return &Identity{
		Certificate: tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: leaf},
		Leaf:        leaf,
		CA:          ca,
		Pool:        pool,
		certFile:    certFile,
		caFile:      caFile,
	}, nil
}

// verifyTime picks the time to verify a chain at: now if the leaf and the
// CA are both valid then, else the nearest moment at which both are, so
// that an expired identity still loads (Check reports it).
func verifyTime(now time.Time, leaf, ca *x509.Certificate) time.Time {
	start, end := leaf.NotBefore, leaf.NotAfter
	if ca.NotBefore.After(start) {
		start = ca.NotBefore
	}
	if ca.NotAfter.Before(end) {
		end = ca.NotAfter
	}
	switch {
	case end.Before(start):
		return now // no common window: let Verify say why
	case now.Before(start):
		return start
	case now.After(end):
		return end
	}
	return now
}

// Check reports whether the certificate and the CA are valid at now:
// an error wrapping ErrExpired or ErrNotYetValid, naming which, if not.
func (id *Identity) Check(now time.Time) error {
	if err := checkValidity(now, id.Leaf, "certificate", id.certFile); err != nil {
		return err
	}
	return checkValidity(now, id.CA, "CA", id.caFile)
}

func checkValidity(now time.Time, c *x509.Certificate, what, file string) error {
	subject := fmt.Sprintf("%s %q", what, c.Subject.CommonName)
	if file != "" {
		subject = fmt.Sprintf("%s %s (%q)", what, file, c.Subject.CommonName)
	}
	switch {
	case now.After(c.NotAfter):
		return fmt.Errorf("%s %w on %s", subject, ErrExpired, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Errorf("%s is %w: it starts on %s", subject, ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// CertPEM returns the node's certificate (and any chain) as PEM.
func (id *Identity) CertPEM() []byte { return certPEM(id.Certificate.Certificate...) }

// KeyPEM returns the node's private key as PKCS#8 PEM.
func (id *Identity) KeyPEM() ([]byte, error) {
	key, ok := id.Certificate.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("identity %s: private key of type %T cannot sign", id.Name(), id.Certificate.PrivateKey)
	}
	return keyPEM(key)
}

// ServerTLSConfig returns the TLS configuration of a server node: TLS 1.3
// only, this identity, and a client certificate required and verified
// against the CA (with the ClientAuth usage).
func (id *Identity) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Certificate},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    id.Pool,
	}
}

// ClientTLSConfig returns the TLS configuration of a client node: TLS 1.3
// only, this identity as client certificate, and the server verified
// against the CA and serverName.
func (id *Identity) ClientTLSConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Certificate},
		RootCAs:      id.Pool,
		ServerName:   serverName,
	}
}

// WriteIdentity writes an identity's certificate (0644) and private key
// (PKCS#8 PEM, 0600) to the given paths, replacing what is there.
func WriteIdentity(certPath, keyPath string, id *Identity) error {
	kp, err := id.KeyPEM()
	if err != nil {
		return err
	}
	// Key last: IssueToDir and InstallIdentity refuse to replace a key, so
	// a run that fails before writing it can simply be run again.
	if err := writeFile(certPath, id.CertPEM(), certMode); err != nil {
		return err
	}
	return writeFile(keyPath, kp, keyMode)
}

// Identity directory file names.
const (
	identityCA   = "ca.crt"
	identityCert = "node.crt"
	identityKey  = "node.key"
)

// DefaultIdentityDir returns where a node keeps its identity by default:
// /var/lib/restpipe for root, else $XDG_CONFIG_HOME/restpipe or
// ~/.config/restpipe.
func DefaultIdentityDir() string {
	home, _ := os.UserHomeDir()
	return defaultIdentityDir(os.Geteuid(), os.Getenv, home)
}

func defaultIdentityDir(euid int, getenv func(string) string, home string) string {
	if euid == 0 {
		return "/var/lib/restpipe"
	}
	if x := getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "restpipe")
	}
	if home == "" {
		// No home to keep it in: the system directory fails with a clear
		// "permission denied" rather than scattering keys in the cwd.
		return "/var/lib/restpipe"
	}
	return filepath.Join(home, ".config", "restpipe")
}

// IdentityFiles returns the paths of the certificate, key and CA files of
// the identity in dir.
func IdentityFiles(dir string) (certFile, keyFile, caFile string) {
	return filepath.Join(dir, identityCert), filepath.Join(dir, identityKey), filepath.Join(dir, identityCA)
}

// LoadIdentityDir loads the identity installed in dir: dir/node.crt,
// dir/node.key and dir/ca.crt (see LoadIdentity).
func LoadIdentityDir(dir string) (*Identity, error) {
	return LoadIdentity(IdentityFiles(dir))
}

// InstallIdentity checks an identity (see LoadIdentity) and copies it into
// dir as ca.crt and node.crt (0644) and node.key (0600), creating dir
// with mode 0700 if needed. It refuses, with ErrExists, when dir/node.key
// exists, unless force.
func InstallIdentity(dir, certFile, keyFile, caFile string, force bool) error {
	id, err := LoadIdentity(certFile, keyFile, caFile)
	if err != nil {
		return err
	}
	dstCert, dstKey, dstCA := IdentityFiles(dir)
	if err := refuseExisting(force, dstKey); err != nil {
		return err
	}
	if err := makeDir(dir); err != nil {
		return err
	}
	if err := writeFile(dstCA, certPEM(id.CA.Raw), certMode); err != nil {
		return err
	}
	// The key goes last: until it is there, a retry is not refused.
	return WriteIdentity(dstCert, dstKey, id)
}
