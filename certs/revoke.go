package certs

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RevokedFile is the name of the revocation list in a CA directory.
//
// restpipe keeps revocation as a plain list of serial numbers rather than a
// signed CRL: the server reads it locally (nothing is distributed, so
// nothing needs signing), a person can read and edit it, and it reloads on
// SIGHUP. Each line is a serial number in hexadecimal, optionally followed
// by a comment (the name and date); '#' starts a comment line.
const RevokedFile = "revoked.txt"

const revokedHeader = "# restpipe revocation list: one serial number (hex) per line; reload a server with SIGHUP\n"

// ErrRevoked means a certificate's serial number is on the revocation list.
var ErrRevoked = errors.New("certificate revoked")

// Revoke adds the serial number of certFile to the revocation list at
// listPath (created 0644 if missing) and returns it. A serial already on
// the list is not added twice.
func Revoke(listPath, certFile string) (*x509.Certificate, error) {
	_, leaf, err := readCerts("certificate", certFile)
	if err != nil {
		return nil, err
	}
	list, err := LoadRevocationList(listPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if list != nil && list.Revoked(leaf) {
		return leaf, nil
	}
	old, err := os.ReadFile(listPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", listPath, err)
	}
	var b bytes.Buffer
	b.Write(old)
	if len(old) == 0 {
		b.WriteString(revokedHeader)
	} else if old[len(old)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%s %s revoked %s\n", leaf.SerialNumber.Text(16), leaf.Subject.CommonName, time.Now().UTC().Format(time.RFC3339))
	if err := writeFile(listPath, b.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return leaf, nil
}

// RevokeName revokes the identity NAME issued into the CA directory dir:
// it adds dir/NAME.crt's serial to dir/revoked.txt.
func RevokeName(dir, name string) (*x509.Certificate, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	return Revoke(filepath.Join(dir, RevokedFile), filepath.Join(dir, name+".crt"))
}

// RevocationList is a loaded revocation list.
type RevocationList struct {
	serials map[string]string // serial (hex, lower case) -> comment
}

// LoadRevocationList reads a revocation list. A missing file is an error
// wrapping fs.ErrNotExist.
func LoadRevocationList(path string) (*RevocationList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	defer f.Close()
	l := &RevocationList{serials: map[string]string{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		field, comment, _ := strings.Cut(line, " ")
		serial, ok := new(big.Int).SetString(strings.TrimPrefix(strings.ToLower(field), "0x"), 16)
		if !ok || serial.Sign() < 0 {
			return nil, fmt.Errorf("revocation list %s line %d: %q is not a hexadecimal serial number", path, n, field)
		}
		l.serials[serial.Text(16)] = strings.TrimSpace(comment)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("revocation list %s: %w", path, err)
	}
	return l, nil
}

// Len is how many serial numbers the list holds.
func (l *RevocationList) Len() int { return len(l.serials) }

// Revoked reports whether cert's serial number is on the list.
func (l *RevocationList) Revoked(cert *x509.Certificate) bool {
	if l == nil || cert == nil {
		return false
	}
	_, ok := l.serials[cert.SerialNumber.Text(16)]
	return ok
}

// Check returns an error wrapping ErrRevoked if cert is on the list.
func (l *RevocationList) Check(cert *x509.Certificate) error {
	if l.Revoked(cert) {
		return fmt.Errorf("%w: %q serial %s", ErrRevoked, cert.Subject.CommonName, cert.SerialNumber.Text(16))
	}
	return nil
}
