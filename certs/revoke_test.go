package certs

import (
	"errors"
	"io/fs"
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
