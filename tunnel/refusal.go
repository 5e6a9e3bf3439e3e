package tunnel

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"time"
)

// Why a server refused this client, in words. With TLS 1.3 the client's
// handshake is done before the server has looked at the client's
// certificate: a certificate the server refuses comes back as a TLS alert
// on the client's first read, inside the session (the hello only sees
// the connection end). The alert says little, and says "expired
// certificate" for one not yet valid too (crypto/tls sends
// certificate_expired for x509.Expired, which is both): the client tells
// them apart by its own certificate's validity period against its clock.

// TLS alerts a server sends about the client's certificate (RFC 8446
// 6.2).
const (
	alertBadCertificate         = 42
	alertUnsupportedCertificate = 43
	alertCertificateRevoked     = 44
	alertCertificateExpired     = 45
	alertCertificateUnknown     = 46
	alertUnknownCA              = 48
	alertCertificateRequired    = 116
)

// certRefused is the error of a connection whose server refused this
// node's certificate with a TLS alert: the alert (a *net.OpError) and why,
// in words.
type certRefused struct {
	alert error
	words string
	name  string // the alert's, as told: crypto/tls's words for 45 say "expired"
}

func (e *certRefused) Error() string {
	return "the server refused this node's certificate " + e.words + " (TLS alert " + e.name + ")"
}

func (e *certRefused) Unwrap() error { return e.alert }

// remoteAlert is the code of the TLS alert the peer sent, if err is one
// (crypto/tls makes it a *net.OpError whose Op is "remote error" and whose
// Err is its unexported alert type, a uint8).
func remoteAlert(err error) (code uint8, text string, ok bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return 0, "", false
	}
	v := reflect.ValueOf(op.Err)
	if v.Kind() != reflect.Uint8 {
		return 0, "", false
	}
	return uint8(v.Uint()), op.Err.Error(), true
}

// refusedByServer says in words why the server refused this node, if
// alertErr, what the connection's first read got, is a TLS alert about
// its certificate; nil if it is not. leaf is this node's certificate and
// now the time by this node's clock.
func refusedByServer(alertErr error, leaf *x509.Certificate, now time.Time) error {
	code, text, ok := remoteAlert(alertErr)
	if !ok || leaf == nil {
		return nil
	}
	which := fmt.Sprintf("%q serial %s", leaf.Subject.CommonName, leaf.SerialNumber.Text(16))
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	var words string
	name := fmt.Sprintf("%d, %s", code, text)
	switch code {
	case alertCertificateExpired:
		name = "45, certificate outside its validity period" // crypto/tls sends it for both
		switch {
		case now.Before(leaf.NotBefore):
			words = fmt.Sprintf("it is not valid until %s: not yet valid", at(leaf.NotBefore))
		case now.After(leaf.NotAfter):
			words = fmt.Sprintf("it expired at %s", at(leaf.NotAfter))
		default:
			words = fmt.Sprintf("by the server's clock it, or its CA's, is outside its validity period, "+
				"but it is valid from %s to %s by this node's clock: check the clocks of both nodes",
				at(leaf.NotBefore), at(leaf.NotAfter))
		}
	case alertUnknownCA:
		words = fmt.Sprintf("it does not trust the CA that signed it (%q): issue this node's certificate from the server's CA",
			leaf.Issuer.CommonName)
	case alertCertificateRevoked:
		words = "it is revoked"
	case alertCertificateRequired:
		words = "it needs one and got none"
	case alertBadCertificate, alertUnsupportedCertificate, alertCertificateUnknown:
		words = "it does not accept it"
		if !clientUsage(leaf) {
			words += ": it is not for client use (extended key usage)"
		}
	default:
		return nil
	}
	return &certRefused{alert: alertErr, words: which + ": " + words, name: name}
}

// clientUsage reports whether leaf may be used by a client (no extended
// key usage says any use).
func clientUsage(leaf *x509.Certificate) bool {
	if len(leaf.ExtKeyUsage) == 0 {
		return true
	}
	for _, u := range leaf.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// quietAlerts is yamux's log handler: it lowers to Debug yamux's line
// about a TLS alert from the peer ("Failed to read header: remote error:
// tls: expired certificate"), which the node logs itself, in words (the
// connection's error, or the session's end reason); yamux's would say
// "expired" for a certificate not yet valid.
type quietAlerts struct{ slog.Handler }

func (h quietAlerts) Handle(ctx context.Context, r slog.Record) error {
	if r.Level > slog.LevelDebug && strings.Contains(r.Message, "remote error: tls: ") {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietAlerts) WithAttrs(as []slog.Attr) slog.Handler {
	return quietAlerts{h.Handler.WithAttrs(as)}
}

func (h quietAlerts) WithGroup(name string) slog.Handler {
	return quietAlerts{h.Handler.WithGroup(name)}
}
