package certs

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/smallstep/truststore"
)

// TrustStore is a store of trusted root certificates. SystemTrustStore is
// the operating system's; tests use a fake.
type TrustStore interface {
	// Install adds cert to the store.
	Install(cert *x509.Certificate) error
	// Uninstall removes cert from the store.
	Uninstall(cert *x509.Certificate) error
}

// SystemTrustStore returns the operating system's trust store, changed
// through github.com/smallstep/truststore. On Unix that takes root: it
// runs the store's tools through sudo when not root.
func SystemTrustStore() TrustStore {
	return systemStore{euid: os.Geteuid, lookPath: exec.LookPath}
}

// systemStore holds the two things it asks the system, so that tests can
// answer for it.
type systemStore struct {
	euid     func() int
	lookPath func(string) (string, error)
}

func (s systemStore) Install(cert *x509.Certificate) error {
	if err := s.checkRoot("installing into"); err != nil {
		return err
	}
	if err := truststore.Install(cert); err != nil {
		return fmt.Errorf("install %q into the system trust store (it needs root or sudo): %w", cert.Subject.CommonName, cmdError(err))
	}
	return nil
}

func (s systemStore) Uninstall(cert *x509.Certificate) error {
	if err := s.checkRoot("removing from"); err != nil {
		return err
	}
	if err := truststore.Uninstall(cert); err != nil {
		return fmt.Errorf("remove %q from the system trust store (it needs root or sudo): %w", cert.Subject.CommonName, cmdError(err))
	}
	return nil
}

// checkRoot fails early, and clearly, where truststore would run the
// store's tools without the rights to change the store.
func (s systemStore) checkRoot(doing string) error {
	if runtime.GOOS == "windows" || s.euid() == 0 {
		return nil
	}
	if _, err := s.lookPath("sudo"); err == nil {
		return nil
	}
	return fmt.Errorf("%s the system trust store %w: run again as root (or install sudo)", doing, ErrNeedRoot)
}

// cmdError adds the first line of a failed command's output, which says
// why, to truststore's "failed to execute X: exit status 1".
func cmdError(err error) error {
	var ce *truststore.CmdError
	if !errors.As(err, &ce) {
		return err
	}
	out := bytes.TrimSpace(ce.Out())
	if i := bytes.IndexByte(out, '\n'); i >= 0 {
		out = out[:i]
	}
	if len(out) == 0 {
		return err
	}
	return fmt.Errorf("%w: %s", err, out)
}

// InstallCA adds the CA certificate dir/ca.crt to store. Only the
// certificate is read, so dir may be an identity directory as well as a
// CA directory.
func InstallCA(dir string, store TrustStore) error {
	path := filepath.Join(dir, "ca.crt")
	cert, err := readCACert(path)
	if err != nil {
		return err
	}
	if err := store.Install(cert); err != nil {
		return fmt.Errorf("install CA %s: %w", path, err)
	}
	return nil
}

// UninstallCA removes the CA certificate dir/ca.crt from store.
func UninstallCA(dir string, store TrustStore) error {
	path := filepath.Join(dir, "ca.crt")
	cert, err := readCACert(path)
	if err != nil {
		return err
	}
	if err := store.Uninstall(cert); err != nil {
		return fmt.Errorf("uninstall CA %s: %w", path, err)
	}
	return nil
}
