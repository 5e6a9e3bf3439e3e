package tunnel

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeAlert stands for crypto/tls's unexported alert type, a uint8.
type fakeAlert uint8

func (a fakeAlert) Error() string { return "tls: alert" }

// TestRefusedByServerWords: the words for each alert, by this node's
// clock; nothing for what is not a TLS alert from the peer.
func TestRefusedByServerWords(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(0xabc),
		Subject:      pkix.Name{CommonName: "c1"},
		Issuer:       pkix.Name{CommonName: "some CA"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	alert := func(code uint8) error { return &net.OpError{Op: "remote error", Err: fakeAlert(code)} }
	for _, tc := range []struct {
		name string
		err  error
		now  time.Time
		want string // "" for no words
	}{
		{"expired", alert(45), now.Add(2 * time.Hour), `"c1" serial abc: it expired at 2026-06-01T13:00:00Z`},
		{"not yet valid", alert(45), now.Add(-2 * time.Hour), `it is not valid until 2026-06-01T11:00:00Z: not yet valid`},
		{"valid here, not there", alert(45), now, "by the server's clock it, or its CA's, is outside its validity period, but it is valid from 2026-06-01T11:00:00Z to 2026-06-01T13:00:00Z by this node's clock"},
		{"unknown CA", alert(48), now, `it does not trust the CA that signed it ("some CA")`},
		{"bad certificate", alert(42), now, "it does not accept it (TLS alert 42, tls: alert)"},
		{"revoked", alert(44), now, "it is revoked"},
		{"another alert", alert(80), now, ""},
		{"EOF", io.EOF, now, ""},
		{"a local error", &net.OpError{Op: "read", Err: fakeAlert(45)}, now, ""},
		{"nil", nil, now, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := refusedByServer(tc.err, leaf, tc.now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("words %q for %v", err, tc.err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "the server refused this node's certificate ") {
				t.Errorf("got %q", err)
			}
			if tc.name != "expired" && strings.Contains(err.Error(), "expired") {
				t.Errorf("says expired: %q", err)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("%v does not wrap the alert", err)
			}
		})
	}
}
