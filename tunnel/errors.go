package tunnel

import "errors"

// Errors a Call returns; the front end maps each to a row of the error
// table (DESIGN.md). Test them with errors.Is.
var (
	// ErrPeerUnavailable: the peer named is not connected (503).
	ErrPeerUnavailable = errors.New("peer not connected")
	// ErrPeerBusy: the peer's limit of streams in flight from this node
	// (its announced MaxStreams) was reached and no slot came free before
	// the event's deadline; the event was not sent (503 peer_busy).
	ErrPeerBusy = errors.New("peer busy")
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
	// ErrBadReply: the peer's reply header is not one to pass on (a
	// status outside 200-599, or 101 to a request that asked for no
	// upgrade); the reply is dropped and the event ended (502 bad_reply).
	ErrBadReply = errors.New("bad reply from the peer")
)

// Why a node ended a session on purpose (the reason its log, and the
// peer's, gives). Test them with errors.Is on the reason a session ended
// with.
var (
	// ErrReplaced: another connection with the same identity took the
	// session's place on the server.
	ErrReplaced = errors.New("replaced by another connection with the same identity")
	// ErrCertExpired: a certificate the session rests on (either node's,
	// or the CA's) passed its NotAfter.
	ErrCertExpired = errors.New("certificate expired")
	// ErrNoLongerAccepted: Config.VerifyPeer now refuses the peer's
	// certificate (a revocation list was reloaded, say).
	ErrNoLongerAccepted = errors.New("certificate no longer accepted")
)
