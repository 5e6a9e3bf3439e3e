package certs

import "errors"

// Sentinel errors, wrapped with the file or name they concern; test for
// them with errors.Is.
var (
	// ErrExists means a file that would be replaced already exists and
	// replacing it was not asked for (force).
	ErrExists = errors.New("exists")

	// ErrInvalidRequest means an IssueRequest (a name, a host, a usage or
	// a validity) or a CA name is not acceptable. Its message is the word
	// "invalid", which reads well in front of what is: `invalid name "-x"`.
	ErrInvalidRequest = errors.New("invalid")

	// ErrKeyMismatch means a private key is not the key of the certificate
	// it is paired with.
	ErrKeyMismatch = errors.New("key does not match certificate")

	// ErrNotSignedByCA means a certificate does not chain to the CA it was
	// loaded with.
	ErrNotSignedByCA = errors.New("not signed by CA")

	// ErrNotCA means a certificate given as a CA is not a CA certificate.
	ErrNotCA = errors.New("not a CA certificate")

	// ErrExpired means a certificate's NotAfter is in the past.
	ErrExpired = errors.New("expired")

	// ErrNotYetValid means a certificate's NotBefore is in the future.
	ErrNotYetValid = errors.New("not yet valid")

	// ErrNeedRoot means the system trust store can only be changed by root
	// and there is no sudo to become root.
	ErrNeedRoot = errors.New("needs root")
)
