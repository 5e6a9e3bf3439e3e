package certs

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRevoke(t *testing.T) {
	dir := t.TempDir()
	ca, err := InitCA(dir, "test CA", time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, RevokedFile)
	empty, err := LoadRevocationList(list)
	if err != nil || empty.Len() != 0 {
		t.Fatalf("a new CA's list: %v, %v", empty, err)
	}
	var ids []*Identity
	for _, name := range []string{"c1", "c2"} {
		if _, _, err := ca.IssueToDir(dir, IssueRequest{Name: name}, false); err != nil {
			t.Fatal(err)
		}
		id, err := LoadIdentity(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(dir, "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	leaf, err := RevokeName(dir, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if leaf.SerialNumber.Cmp(ids[0].Leaf.SerialNumber) != 0 {
		t.Errorf("revoked serial %v, want c1's", leaf.SerialNumber)
	}
	if _, err := RevokeName(dir, "c1"); err != nil { // again: no duplicate line
		t.Fatal(err)
	}
	b, _ := os.ReadFile(list)
	if n := strings.Count(string(b), ids[0].Leaf.SerialNumber.Text(16)); n != 1 {
		t.Errorf("c1's serial listed %d times:\n%s", n, b)
	}
	l, err := LoadRevocationList(list)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Revoked(ids[0].Leaf) || l.Revoked(ids[1].Leaf) || l.Len() != 1 {
		t.Errorf("revoked c1 %v c2 %v len %d", l.Revoked(ids[0].Leaf), l.Revoked(ids[1].Leaf), l.Len())
	}
	if err := l.Check(ids[0].Leaf); !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "c1") {
		t.Errorf("Check(c1) = %v", err)
	}
	if err := l.Check(ids[1].Leaf); err != nil {
		t.Errorf("Check(c2) = %v", err)
	}
	if _, err := RevokeName(dir, "nobody"); err == nil {
		t.Error("revoked an identity that does not exist")
	}
	if _, err := RevokeName(dir, "../x"); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("bad name: %v", err)
	}
}

func TestLoadRevocationList(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		text string
		ok   bool
		n    int
	}{
		{"# comment\n\nABCDEF c1 revoked today\n0x12\n", true, 2},
		{"zz not hex\n", false, 0},
		{"-5\n", false, 0},
		{"", true, 0},
	} {
		p := filepath.Join(dir, "list.txt")
		if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := LoadRevocationList(p)
		if (err == nil) != tc.ok || (err == nil && l.Len() != tc.n) {
			t.Errorf("%q: %v %v", tc.text, l, err)
		}
	}
	if _, err := LoadRevocationList(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing list: %v", err)
	}
}

// TestParseRevocationList: serials split from their comments on any
// blank, comments and odd spellings are read, and an error names the line.
func TestParseRevocationList(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		serials    []string // in force, lower-case hex
		err        string   // the error, if any, holds this
	}{
		{"written by ca revoke", revokedHeader + "abcdef c1 revoked 2026-01-01T00:00:00Z\n", []string{"abcdef"}, ""},
		{"tab", "abcdef\tc1\n", []string{"abcdef"}, ""},
		{"several spaces and tabs", "  abcdef  \t  c1 revoked by hand  \n", []string{"abcdef"}, ""},
		{"comment right after the serial", "abcdef# c1\n12 #c2\n", []string{"abcdef", "12"}, ""},
		{"comment lines", "# one\n   # two\n\t#three\n\n", nil, ""},
		{"upper case, 0x, leading zeros", "0XABCDEF\n0x0012\n", []string{"abcdef", "12"}, ""},
		{"openssl colons", "AB:CD:EF c1\n", []string{"abcdef"}, ""},
		{"CRLF", "abcdef c1\r\n12\r\n", []string{"abcdef", "12"}, ""},
		{"byte order mark", "\ufeffabcdef c1\n", []string{"abcdef"}, ""},
		{"no final newline", "abcdef", []string{"abcdef"}, ""},
		{"not hex", "abcdef\nzz top\n", nil, `list.txt:2: "zz" is not a hexadecimal serial number`},
		{"sign", "# x\n\n-5\n", nil, `list.txt:3: "-5"`},
		{"plus", "+5\n", nil, `list.txt:1: "+5"`},
		{"bare 0x", "0x\n", nil, `list.txt:1: "0x"`},
		{"too long", strings.Repeat("a", 65) + "\n", nil, "list.txt:1: " + `"` + strings.Repeat("a", 65) + `" is not a hexadecimal serial number (more than 64 digits)`},
		{"line over 64 KiB", "ab\n" + strings.Repeat("c", 70<<10) + "\n", nil, "list.txt:2: line longer than 64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ParseRevocationList(strings.NewReader(tc.text), "list.txt")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one holding %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Len() != len(tc.serials) {
				t.Errorf("%d serials, want %v", l.Len(), tc.serials)
			}
			for _, s := range tc.serials {
				if _, ok := l.serials[s]; !ok {
					t.Errorf("serial %s not on the list", s)
				}
			}
		})
	}
}

// FuzzParseRevocationList: any input parses or fails with an error that
// names the file and a line, and never panics.
func FuzzParseRevocationList(f *testing.F) {
	for _, s := range []string{revokedHeader + "abcdef c1 revoked 2026\n", "0xAB:CD\tx\r\n", "\ufeff# c\n-1\n", "zz\n", "1#\n#\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		l, err := ParseRevocationList(strings.NewReader(text), "f")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for s := range l.serials {
			if _, ok := new(big.Int).SetString(s, 16); !ok || strings.HasPrefix(s, "-") {
				t.Fatalf("serial %q on the list", s)
			}
		}
	})
}

// TestRevocationFile: a list kept in step with its file sees a change at
// the next look after Interval, keeps the old list on a change that does
// not parse (reporting it once), and Reload re-reads at once.
func TestRevocationFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, RevokedFile)
	write := func(text string) {
		t.Helper()
		// As ca revoke does: a new file renamed into place.
		if err := writeFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cert := func(serial int64) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "c"}}
	}
	if _, err := OpenRevocationFile(path, RevocationFileOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing list opened: %v", err)
	}
	write("a\n")
	var changes []int
	var errs []error
	f, err := OpenRevocationFile(path, RevocationFileOptions{
		Interval: time.Nanosecond, // every look looks
		OnChange: func(l *RevocationList) { changes = append(changes, l.Len()) },
		OnError:  func(err error) { errs = append(errs, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Check(cert(0xa)); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check(a) = %v", err)
	}
	if f.Refresh() {
		t.Error("an unchanged file counted as a change")
	}

	write("a\nb\tx\n")
	if err := f.Check(cert(0xb)); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after adding b: Check(b) = %v", err)
	}
	if len(changes) != 1 || changes[0] != 2 {
		t.Errorf("OnChange calls %v, want [2]", changes)
	}

	write("a\nb\nnot-hex\n")
	f.Refresh()
	f.Refresh()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), path+`:3: "not-hex"`) {
		t.Errorf("OnError calls %v, want one naming %s:3", errs, path)
	}
	if err := f.Check(cert(0xb)); !errors.Is(err, ErrRevoked) {
		t.Errorf("a bad change replaced the list: Check(b) = %v", err)
	}
	if _, err := f.Reload(); err == nil || !strings.Contains(err.Error(), ":3:") {
		t.Errorf("Reload of a bad list: %v", err)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	f.Refresh()
	f.Refresh()
	if len(errs) != 2 || !errors.Is(errs[1], fs.ErrNotExist) {
		t.Errorf("OnError calls %v, want a second for the missing file", errs)
	}
	if f.List().Len() != 2 {
		t.Errorf("a missing file replaced the list: %d serials", f.List().Len())
	}

	write("c\n")
	if l, err := f.Reload(); err != nil || l.Len() != 1 || f.Check(cert(0xa)) != nil || f.Check(cert(0xc)) == nil {
		t.Errorf("Reload: %v %v", l, err)
	}

	// With the default interval, a change shows at the first look a
	// second after the last one, not before.
	slow, err := OpenRevocationFile(path, RevocationFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write("c\nd\n")
	if slow.Check(cert(0xd)) != nil {
		t.Error("looked again within the interval")
	}
	slow.mu.Lock()
	slow.checked = time.Now().Add(-DefaultRevocationInterval)
	slow.mu.Unlock()
	if !errors.Is(slow.Check(cert(0xd)), ErrRevoked) {
		t.Error("did not look again after the interval")
	}
}

// TestReissueToDir: re-issuing a name revokes the certificate it replaces
// when this CA signed it, and only then.
func TestReissueToDir(t *testing.T) {
	dir := t.TempDir()
	ca, err := InitCA(dir, "test CA", time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, RevokedFile)
	// Nothing to replace: nothing revoked.
	certPath, _, revoked, err := ca.ReissueToDir(dir, IssueRequest{Name: "c1"})
	if err != nil || revoked != nil {
		t.Fatalf("first issue: revoked %v, err %v", revoked, err)
	}
	_, first, err := readCerts("certificate", certPath)
	if err != nil {
		t.Fatal(err)
	}
	_, _, revoked, err = ca.ReissueToDir(dir, IssueRequest{Name: "c1"})
	if err != nil || revoked == nil || revoked.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("re-issue: revoked %v, err %v; want serial %x", revoked, err, first.SerialNumber)
	}
	l, err := LoadRevocationList(list)
	if err != nil || !l.Revoked(first) || l.Len() != 1 {
		t.Fatalf("list after re-issue: %v %v", l, err)
	}
	_, second, _ := readCerts("certificate", certPath)
	if l.Revoked(second) {
		t.Error("the new certificate is revoked")
	}

	// A certificate another CA signed is not this CA's to revoke.
	other, err := NewCA("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.IssueToDir(dir, IssueRequest{Name: "c2"}, false); err != nil {
		t.Fatal(err)
	}
	if _, _, revoked, err := ca.ReissueToDir(dir, IssueRequest{Name: "c2"}); err != nil || revoked != nil {
		t.Errorf("re-issue over another CA's certificate: revoked %v, err %v", revoked, err)
	}

	// If the revocation cannot be written, nothing is issued.
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if os.Geteuid() != 0 {
		before, _ := os.ReadFile(certPath)
		if _, _, _, err := ca.ReissueToDir(dir, IssueRequest{Name: "c1"}); err == nil || !strings.Contains(err.Error(), "revoke") {
			t.Errorf("re-issue with an unwritable list: %v", err)
		}
		if after, _ := os.ReadFile(certPath); string(after) != string(before) {
			t.Error("the certificate was replaced although its revocation failed")
		}
	}
}
