package tunnel

import (
	"crypto/tls"
	"crypto/x509"
)

// serverTLS is the server's TLS config: TLS 1.3 only, a client
// certificate from the CA required (crypto/tls checks its ClientAuth
// usage).
func (c Config) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.Certificate},
		ClientCAs:    c.CA,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
}

// clientTLS is the client's TLS config: TLS 1.3 only, the server verified
// against the CA and serverName. Sessions are resumed on reconnect.
//
// The client always presents its certificate, even when it does not chain
// to the CAs the server names, so that the server logs the real reason
// ("signed by unknown authority", "expired") instead of "no certificate".
func (c Config) clientTLS(serverName string) *tls.Config {
	cert := c.Certificate
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
		RootCAs:            c.CA,
		ServerName:         serverName,
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
	}
}

// verifiedChain is the peer's certificate chain as the handshake (whose
// state is cs) verified it, the peer's certificate first (its first
// verified chain, or what the peer sent if none was built).
func verifiedChain(cs tls.ConnectionState) []*x509.Certificate {
	if len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
		return cs.VerifiedChains[0]
	}
	return cs.PeerCertificates
}
