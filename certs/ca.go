package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// Default validities, used when a validity of 0 is asked for.
const (
	DefaultCAValidity   = 3650 * 24 * time.Hour
	DefaultCertValidity = 365 * 24 * time.Hour
)

// backdate is how far before "now" a certificate starts to be valid, so
// that a peer whose clock is a little behind accepts it at once.
const backdate = 5 * time.Minute

// maxCNLength is the upper bound RFC 5280 puts on a Common Name.
const maxCNLength = 64

// Usage says what a node certificate may be used for: a set of bits.
type Usage int

// Usages. A server identity needs UsageServer (and host names), a client
// identity UsageClient; a node that is both takes both.
const (
	// UsageServer allows TLS server authentication (ExtKeyUsageServerAuth).
	UsageServer Usage = 1 << iota
	// UsageClient allows TLS client authentication (ExtKeyUsageClientAuth).
	UsageClient
)

// String returns "server", "client", "server+client" or "none".
func (u Usage) String() string {
	var parts []string
	if u&UsageServer != 0 {
		parts = append(parts, "server")
	}
	if u&UsageClient != 0 {
		parts = append(parts, "client")
	}
	if u&^(UsageServer|UsageClient) != 0 {
		parts = append(parts, fmt.Sprintf("unknown(%#x)", int(u&^(UsageServer|UsageClient))))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// ParseUsage parses "server", "client" or "both" (also "server+client"
// and "client+server"); "" gives 0, which Issue reads as "by the hosts".
func ParseUsage(s string) (Usage, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return 0, nil
	case "server":
		return UsageServer, nil
	case "client":
		return UsageClient, nil
	case "both", "server+client", "client+server":
		return UsageServer | UsageClient, nil
	}
	return 0, fmt.Errorf("%w usage %q: want server, client or both", ErrInvalidRequest, s)
}

func (u Usage) extKeyUsages() []x509.ExtKeyUsage {
	var eku []x509.ExtKeyUsage
	if u&UsageServer != 0 {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if u&UsageClient != 0 {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	return eku
}

// CA is a certificate authority: its certificate and its signing key.
type CA struct {
	// Cert is the self-signed CA certificate.
	Cert *x509.Certificate
	// Key is the CA's private key. It signs node certificates and is
	// never written anywhere but the CA directory.
	Key crypto.Signer
}

// NewCA creates a CA in memory: an ECDSA P-256 key and a self-signed
// certificate with Common Name name, valid for validity (0 means
// DefaultCAValidity), that may sign end-entity certificates only
// (MaxPathLen 0).
func NewCA(name string, validity time.Duration) (*CA, error) {
	if name == "" || len(name) > maxCNLength {
		return nil, fmt.Errorf("%w CA name %q: want 1 to %d characters", ErrInvalidRequest, name, maxCNLength)
	}
	if validity < 0 {
		return nil, fmt.Errorf("%w CA validity %v: want a positive duration", ErrInvalidRequest, validity)
	}
	if validity == 0 {
		validity = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"restpipe"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// InitCA creates a CA (see NewCA) and writes it to dir/ca.crt (0644) and
// dir/ca.key (0600), creating dir with mode 0700 if needed. It refuses,
// with ErrExists, when dir/ca.key exists, unless force: replacing a CA
// orphans every identity it issued.
func InitCA(dir, name string, validity time.Duration, force bool) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := refuseExisting(force, keyPath); err != nil {
		return nil, err
	}
	ca, err := NewCA(name, validity)
	if err != nil {
		return nil, err
	}
	if err := makeDir(dir); err != nil {
		return nil, err
	}
	kp, err := keyPEM(ca.Key)
	if err != nil {
		return nil, err
	}
	// Key first: a ca.crt without its key would be a CA nobody can use,
	// while a key without ca.crt is refused by the next InitCA.
	if err := writeFile(keyPath, kp, keyMode); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, ca.CertPEM(), certMode); err != nil {
		return nil, err
	}
	// A new CA has revoked nothing; a list from an old CA no longer applies.
	if err := writeFile(filepath.Join(dir, RevokedFile), []byte(revokedHeader), certMode); err != nil {
		return nil, err
	}
	return ca, nil
}

// OpenCA loads the CA in dir: dir/ca.crt and dir/ca.key.
func OpenCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	cert, err := readCACert(certPath)
	if err != nil {
		return nil, err
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, err
	}
	if !keyMatches(key, cert) {
		return nil, fmt.Errorf("CA key %s does not match CA certificate %s: %w", keyPath, certPath, ErrKeyMismatch)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM returns the CA certificate as PEM.
func (ca *CA) CertPEM() []byte { return certPEM(ca.Cert.Raw) }

// Pool returns a new certificate pool holding the CA certificate only.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// IssueRequest describes a node identity to issue.
type IssueRequest struct {
	// Name is the node's name, the certificate's Common Name: 1 to 64
	// characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-', and
	// not "ca" (the CA's own files are ca.crt and ca.key).
	Name string
	// Hosts are the DNS names and IP addresses a server identity answers
	// to, put in the certificate as subject alternative names.
	Hosts []string
	// Usage is what the certificate may do. 0 means UsageServer when Hosts
	// is not empty, else UsageClient.
	Usage Usage
	// Validity is how long the certificate is valid. 0 means
	// DefaultCertValidity. It is cut short to the CA's own end.
	Validity time.Duration
}

// Validate checks the request without issuing anything; every error
// wraps ErrInvalidRequest.
func (r IssueRequest) Validate() error {
	if err := ValidateName(r.Name); err != nil {
		return err
	}
	for _, h := range r.Hosts {
		if err := validateHost(h); err != nil {
			return err
		}
	}
	if r.Usage&^(UsageServer|UsageClient) != 0 {
		return fmt.Errorf("%w usage %d: want UsageServer, UsageClient or both", ErrInvalidRequest, int(r.Usage))
	}
	if r.Validity < 0 {
		return fmt.Errorf("%w validity %v: want a positive duration", ErrInvalidRequest, r.Validity)
	}
	return nil
}

// ValidateName checks a node name (see IssueRequest.Name); the error
// wraps ErrInvalidRequest. A name is also a file name, which is why it is
// so restricted.
func ValidateName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w name %q: %s", ErrInvalidRequest, name, why)
	}
	switch {
	case name == "":
		return bad("empty")
	case len(name) > maxCNLength:
		return bad(fmt.Sprintf("longer than %d characters", maxCNLength))
	case name[0] == '.' || name[0] == '-':
		return bad("starts with '.' or '-'")
	case strings.EqualFold(name, "ca"):
		return bad("reserved for the CA's own files")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return bad(fmt.Sprintf("character %q not allowed (use A-Z a-z 0-9 . _ -)", c))
		}
	}
	return nil
}

// validateHost accepts an IP address or a DNS name (optionally with a
// leading "*." wildcard).
func validateHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	bad := func(why string) error {
		return fmt.Errorf("%w host %q: %s", ErrInvalidRequest, h, why)
	}
	name := strings.TrimPrefix(strings.TrimSuffix(h, "."), "*.")
	if name == "" || len(name) > 253 {
		return bad("not an IP address or a DNS name")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return bad("empty or over-long label")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return bad("label starts or ends with '-'")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return bad(fmt.Sprintf("character %q not allowed in a DNS name", c))
			}
		}
	}
	return nil
}

// Issue creates a node identity signed by the CA, in memory: an ECDSA
// P-256 key and a certificate for req. See IssueToDir to write it.
func (ca *CA) Issue(req IssueRequest) (*Identity, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	usage := req.Usage
	if usage == 0 {
		usage = UsageClient
		if len(req.Hosts) > 0 {
			usage = UsageServer
		}
	}
	validity := req.Validity
	if validity == 0 {
		validity = DefaultCertValidity
	}
	now := time.Now()
	if !now.Before(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("CA %q %w on %s", ca.Cert.Subject.CommonName, ErrExpired, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	notBefore := now.Add(-backdate)
	if notBefore.Before(ca.Cert.NotBefore) {
		notBefore = ca.Cert.NotBefore
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for %s: %w", req.Name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage.extKeyUsages(),
		BasicConstraintsValid: true,
		SubjectKeyId:          skid,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	for _, h := range req.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", req.Name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new certificate for %s: %w", req.Name, err)
	}
	return &Identity{
		Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Leaf:        leaf,
		CA:          ca.Cert,
		Pool:        ca.Pool(),
	}, nil
}

// IssueToDir issues an identity (see Issue) and writes it to dir/NAME.crt
// (0644) and dir/NAME.key (0600). It refuses, with ErrExists, when either
// file exists, unless force. With force, the certificate it replaces stays
// valid: ReissueToDir revokes it.
func (ca *CA) IssueToDir(dir string, req IssueRequest, force bool) (certPath, keyPath string, err error) {
	if err := req.Validate(); err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, req.Name+".crt"), filepath.Join(dir, req.Name+".key")
	if err := refuseExisting(force, keyPath, certPath); err != nil {
		return "", "", err
	}
	id, err := ca.Issue(req)
	if err != nil {
		return "", "", err
	}
	if err := makeDir(dir); err != nil {
		return "", "", err
	}
	if err := WriteIdentity(certPath, keyPath, id); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID derives a key identifier as RFC 7093 method 1 does: the
// leftmost 160 bits of the SHA-256 of the subjectPublicKey bit string.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	var spki struct {
		Algorithm        pkix.AlgorithmIdentifier
		SubjectPublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	sum := sha256.Sum256(spki.SubjectPublicKey.Bytes)
	return sum[:20], nil
}

// ReissueToDir issues an identity for req.Name into dir, replacing
// dir/NAME.crt and dir/NAME.key as IssueToDir with force does, and first
// revokes the certificate it replaces: that certificate's serial number
// goes onto dir/revoked.txt, which nodes given that list refuse. Without
// it, whoever holds the old certificate could go on connecting as NAME.
// revoked is the certificate revoked, nil when dir/NAME.crt is missing,
// unreadable or not signed by this CA (nothing to revoke). If the
// revocation cannot be written, nothing is issued.
//
// The whole of it holds the revocation list's lock (see RevokeCert): two
// re-issues of one name at the same time each revoke the certificate the
// other wrote, and leave a certificate and key that match.
func (ca *CA) ReissueToDir(dir string, req IssueRequest) (certPath, keyPath string, revoked *x509.Certificate, err error) {
	if err := req.Validate(); err != nil {
		return "", "", nil, err
	}
	if err := makeDir(dir); err != nil {
		return "", "", nil, err
	}
	list := filepath.Join(dir, RevokedFile)
	unlock, err := lockList(list)
	if err != nil {
		return "", "", nil, err
	}
	defer unlock()
	_, old, rerr := readCerts("certificate", filepath.Join(dir, req.Name+".crt"))
	if rerr == nil && old.CheckSignatureFrom(ca.Cert) == nil {
		if err := revokeLocked(list, old); err != nil {
			return "", "", nil, fmt.Errorf("revoke the certificate %s replaces (serial %s): %w", req.Name, old.SerialNumber.Text(16), err)
		}
		revoked = old
	}
	certPath, keyPath, err = ca.IssueToDir(dir, req, true)
	return certPath, keyPath, revoked, err
}
