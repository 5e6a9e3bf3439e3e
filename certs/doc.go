// Package certs is restpipe's bundled certificate authority: it creates a
// CA, issues node identities signed by it, loads and installs those
// identities, and puts the CA into the system trust store.
//
// Every node of a restpipe network holds three files: the CA certificate
// (ca.crt), its own certificate (NAME.crt, whose Common Name is the node's
// name) and the matching private key (NAME.key). Both ends of a tunnel
// verify the other's certificate against the CA; the server also checks the
// host name of the server certificate, so a server identity carries its DNS
// names and IP addresses as subject alternative names.
//
// Files:
//
//	CA directory (restpipe ca init / issue)   identity directory (restpipe identity set)
//	  ca.crt    CA certificate, 0644            ca.crt    CA certificate, 0644
//	  ca.key    CA private key, 0600            node.crt  node certificate, 0644
//	  NAME.crt  node certificate, 0644          node.key  node private key, 0600
//	  NAME.key  node private key, 0600
//
// Keys are ECDSA P-256, written as PKCS#8 PEM ("PRIVATE KEY") with mode
// 0600 whatever the umask; directories this package creates are 0700.
// Where the OS has no such modes (Windows: see PermissionBits) a file
// takes its directory's ACL.
// Every file is written to a temporary file in the same directory and then
// renamed, so a reader never sees half a key. Nothing here overwrites an
// existing key unless asked to (force), and the CA key is only ever read
// from and written to the CA directory.
//
// The CA is an offline CA for a handful of nodes: no revocation lists, no
// intermediates (MaxPathLen 0). Certificates are issued for a year by
// default and never outlive the CA.
package certs
