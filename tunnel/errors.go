package tunnel

import "errors"

// Errors a Call returns; the front end maps each to a row of the error
// table (DESIGN.md). Test them with errors.Is.
var (
	// ErrPeerUnavailable: the peer named is not connected (503).
	ErrPeerUnavailable = errors.New("peer not connected")
	// ErrTimeout: the peer did not answer before the deadline (504).
	ErrTimeout = errors.New("deadline passed before the peer answered")
	// ErrTunnelClosed: the tunnel dropped while the event was under way (502).
	ErrTunnelClosed = errors.New("tunnel closed during the event")
	// ErrBodyTooLarge: the request body is over the configured limit (413).
	ErrBodyTooLarge = errors.New("request body over the limit")
	// ErrVersionMismatch: the two ends speak different protocol versions.
	ErrVersionMismatch = errors.New("protocol version mismatch")
	// ErrRefused: the server refused the session in the hello exchange.
	ErrRefused = errors.New("session refused")
)
