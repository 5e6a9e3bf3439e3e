package tunnel

import (
	"fmt"
	"net/http"
)

// checkReplyStatus decides whether a peer's reply status may become the
// caller's: the status is the peer's claim, untrusted like the rest of
// what it sends (DESIGN.md, security model). A final status is 200 to
// 599; 101 only answers a request that asked to switch protocols
// (upgrade). The wire protocol has no interim replies (a forward route's
// node drops its service's 100 and 103 itself), so any other 1xx would
// reach the caller as a final status, with no body to follow, and is
// refused like a status net/http cannot write (below 100 or over 999,
// which panics WriteHeader) or one no client knows (600 to 999). The
// error wraps ErrBadReply: 502 bad_reply at the front end.
func checkReplyStatus(status int, upgrade bool) error {
	switch {
	case status >= 200 && status <= 599:
		return nil
	case status == http.StatusSwitchingProtocols && upgrade:
		return nil
	case status == http.StatusSwitchingProtocols:
		return fmt.Errorf("%w: status 101 to a request that asked for no upgrade", ErrBadReply)
	case status >= 100 && status <= 199:
		return fmt.Errorf("%w: informational status %d as the final reply", ErrBadReply, status)
	default:
		return fmt.Errorf("%w: status %d is not an HTTP status from 200 to 599", ErrBadReply, status)
	}
}
