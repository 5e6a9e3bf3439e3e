package certs

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
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
// SIGHUP (and, with RevocationFile, when it changes).
//
// The format, line by line: blank lines and lines whose first non-blank
// character is '#' are ignored; any other line starts with a serial number
// in hexadecimal (upper or lower case, optionally "0x" first, optionally
// with ':' between bytes as openssl prints them), and whatever follows the
// first space or tab, or a '#', is a comment (restpipe writes the name and
// the date). Leading and trailing blanks, a final '\r' and a UTF-8 byte
// order mark are ignored.
const RevokedFile = "revoked.txt"

const revokedHeader = "# restpipe revocation list: one serial number (hex) per line, then a comment; nodes given --revoked re-read it when it changes\n"

// maxSerialDigits bounds a serial number on the list: RFC 5280 allows 20
// octets (40 hex digits); some CAs issue a little more.
const maxSerialDigits = 64

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
	if err := RevokeCert(listPath, leaf); err != nil {
		return nil, err
	}
	return leaf, nil
}

// RevokeCert adds cert's serial number, with its name and the date, to
// the revocation list at listPath (created 0644 if missing). A serial
// already on the list is not added twice. The list is replaced atomically,
// so a node reading it sees the old list or the new one, and under a lock
// (listPath+".lock"), so that writers running at the same time all add
// their serial.
func RevokeCert(listPath string, cert *x509.Certificate) error {
	unlock, err := lockList(listPath)
	if err != nil {
		return err
	}
	defer unlock()
	return revokeLocked(listPath, cert)
}

// revokeLocked is RevokeCert for a caller that holds the list's lock.
func revokeLocked(listPath string, cert *x509.Certificate) error {
	list, err := LoadRevocationList(listPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if list != nil && list.Revoked(cert) {
		return nil
	}
	old, err := os.ReadFile(listPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", listPath, err)
	}
	var b bytes.Buffer
	b.Write(old)
	if len(old) == 0 {
		b.WriteString(revokedHeader)
	} else if old[len(old)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%s %s revoked %s\n", cert.SerialNumber.Text(16), cert.Subject.CommonName, time.Now().UTC().Format(time.RFC3339))
	return writeFile(listPath, b.Bytes(), 0o644)
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
// wrapping fs.ErrNotExist; a line that does not parse is an error naming
// it as path:line.
func LoadRevocationList(path string) (*RevocationList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	defer f.Close()
	return ParseRevocationList(f, path)
}

// ParseRevocationList reads a revocation list (see RevokedFile for the
// format) from r. An error names the line as name:line, name being the
// file's path.
func ParseRevocationList(r io.Reader, name string) (*RevocationList, error) {
	l := &RevocationList{serials: map[string]string{}}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		field, comment := line, ""
		if i := strings.IndexAny(line, " \t\v\f#"); i >= 0 {
			field, comment = line[:i], strings.TrimSpace(line[i:])
		}
		serial, err := parseSerial(field)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		l.serials[serial.Text(16)] = comment
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d KiB", name, n+1, bufio.MaxScanTokenSize>>10)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

// parseSerial parses one serial number of a revocation list.
func parseSerial(field string) (*big.Int, error) {
	bad := func(why string) error {
		return fmt.Errorf("%q is not a hexadecimal serial number (%s): want one serial per line, then an optional comment", field, why)
	}
	hex := strings.ReplaceAll(field, ":", "")
	if len(hex) > 2 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X') {
		hex = hex[2:]
	}
	switch {
	case hex == "":
		return nil, bad("no digits")
	case len(hex) > maxSerialDigits:
		return nil, bad(fmt.Sprintf("more than %d digits", maxSerialDigits))
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return nil, bad(fmt.Sprintf("%q is not a hex digit", c))
		}
	}
	serial, ok := new(big.Int).SetString(hex, 16)
	if !ok {
		return nil, bad("unparsable")
	}
	return serial, nil
}

// Len is how many serial numbers the list holds.
func (l *RevocationList) Len() int {
	if l == nil {
		return 0
	}
	return len(l.serials)
}

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
