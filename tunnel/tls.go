package tunnel

import (
	"crypto/tls"
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
func (c Config) clientTLS(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{c.Certificate},
		RootCAs:            c.CA,
		ServerName:         serverName,
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
	}
}
