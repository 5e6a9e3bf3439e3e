package certs

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeStore is a TrustStore in memory.
type fakeStore struct {
	certs map[string]*x509.Certificate // by serial
	err   error                        // returned by every call when set
}

func (f *fakeStore) Install(c *x509.Certificate) error {
	if f.err != nil {
		return f.err
	}
	f.certs[c.SerialNumber.String()] = c
	return nil
}

func (f *fakeStore) Uninstall(c *x509.Certificate) error {
	if f.err != nil {
		return f.err
	}
	delete(f.certs, c.SerialNumber.String())
	return nil
}

func TestInstallUninstallCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := InitCA(dir, "restpipe CA", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	store := &fakeStore{certs: map[string]*x509.Certificate{}}
	if err := InstallCA(dir, store); err != nil {
		t.Fatal(err)
	}
	if got := store.certs[ca.Cert.SerialNumber.String()]; got == nil || !got.Equal(ca.Cert) {
		t.Fatalf("store holds %v, want the CA", store.certs)
	}
	if err := UninstallCA(dir, store); err != nil {
		t.Fatal(err)
	}
	if len(store.certs) != 0 {
		t.Errorf("store still holds %d certificates", len(store.certs))
	}

	// An identity directory has ca.crt but no ca.key: that is enough.
	idDir := t.TempDir()
	id := issue(t, ca, IssueRequest{Name: "c1"})
	crt, key := filepath.Join(idDir, "c1.crt"), filepath.Join(idDir, "c1.key")
	if err := WriteIdentity(crt, key, id); err != nil {
		t.Fatal(err)
	}
	nodeDir := filepath.Join(idDir, "node")
	if err := InstallIdentity(nodeDir, crt, key, filepath.Join(dir, "ca.crt"), false); err != nil {
		t.Fatal(err)
	}
	if err := InstallCA(nodeDir, store); err != nil || len(store.certs) != 1 {
		t.Errorf("InstallCA from an identity dir = %v, store holds %d", err, len(store.certs))
	}

	// The store's failure is reported with the file.
	store.err = errors.New("permission denied")
	err = InstallCA(dir, store)
	if want := "install CA " + filepath.Join(dir, "ca.crt") + ": permission denied"; err == nil || err.Error() != want {
		t.Errorf("InstallCA = %v, want %q", err, want)
	}
	err = UninstallCA(dir, store)
	if want := "uninstall CA " + filepath.Join(dir, "ca.crt") + ": permission denied"; err == nil || err.Error() != want {
		t.Errorf("UninstallCA = %v, want %q", err, want)
	}

	// No CA, no call to the store.
	store = &fakeStore{certs: map[string]*x509.Certificate{}}
	missing := filepath.Join(t.TempDir(), "none")
	if err := InstallCA(missing, store); !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "read CA ") {
		t.Errorf("InstallCA(missing) = %v", err)
	}
	if err := UninstallCA(missing, store); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("UninstallCA(missing) = %v", err)
	}
}

func TestSystemStoreNeedsRoot(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no euid and no sudo")
	}
	found := func(string) (string, error) { return "/usr/bin/sudo", nil }
	notFound := func(string) (string, error) { return "", exec.ErrNotFound }
	tests := []struct {
		name     string
		euid     int
		lookPath func(string) (string, error)
		wantErr  bool
	}{
		{"root", 0, notFound, false},
		{"user with sudo", 1000, found, false},
		{"user without sudo", 1000, notFound, true},
	}
	for _, tt := range tests {
		s := systemStore{euid: func() int { return tt.euid }, lookPath: tt.lookPath}
		err := s.checkRoot("installing into")
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: checkRoot = %v, want error %v", tt.name, err, tt.wantErr)
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrNeedRoot) {
			t.Errorf("%s: %v is not ErrNeedRoot", tt.name, err)
		}
		if want := "installing into the system trust store needs root: run again as root (or install sudo)"; err.Error() != want {
			t.Errorf("%s: error %q, want %q", tt.name, err, want)
		}
		// And the store is not touched at all.
		if err := s.Install(&x509.Certificate{}); !errors.Is(err, ErrNeedRoot) {
			t.Errorf("%s: Install = %v, want ErrNeedRoot", tt.name, err)
		}
		if err := s.Uninstall(&x509.Certificate{}); !errors.Is(err, ErrNeedRoot) || !strings.HasPrefix(err.Error(), "removing from the system trust store needs root") {
			t.Errorf("%s: Uninstall = %v, want ErrNeedRoot", tt.name, err)
		}
	}
	if SystemTrustStore() == nil {
		t.Error("SystemTrustStore() is nil")
	}
}
