package tunnel

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
)

// A session lives no longer than the certificates it rests on, and a node
// that ends one on purpose tells the peer why, in band (a Request whose
// session_close is set, see events.SessionClose), so that the peer's log
// says "replaced by another connection with the same identity from ADDR"
// or "certificate expired" rather than "closed by peer".

// The codes of events.SessionClose.
const (
	codeReplaced = "replaced"
	codeExpired  = "expired"
	codeRefused  = "refused"
)

// noticeWait bounds how long a node ending a session waits for the peer to
// read why (it closes the session on reading it) before it closes anyway.
const noticeWait = time.Second

// maxNoticeReason bounds the reason a peer gives that this node keeps and
// logs: it is untrusted input.
const maxNoticeReason = 512

// peerNotice is the reason a peer gave for ending the session.
type peerNotice struct{ code, reason string }

func (n *peerNotice) Error() string { return "closed by peer: " + n.reason }

// Is makes the notice's code match the error of the same reason.
func (n *peerNotice) Is(target error) bool {
	switch n.code {
	case codeReplaced:
		return target == ErrReplaced
	case codeExpired:
		return target == ErrCertExpired
	case codeRefused:
		return target == ErrNoLongerAccepted
	}
	return false
}

// setWhy records why the session ends; the first reason counts.
func (p *peer) setWhy(reason error) { p.why.CompareAndSwap(nil, &reason) }

// endWith ends the session for reason: it tells the peer why (code is
// one of the SessionClose codes), waits at most noticeWait for the peer
// to read it, and closes. It blocks for that long at most: callers that
// must not wait run it in a goroutine of its own.
func (p *peer) endWith(code string, reason error) {
	p.setWhy(reason)
	if !p.sess.IsClosed() {
		p.tell(code, reason.Error())
	}
	p.close()
}

// tell sends the peer the session-close notice and waits until it has
// read it: a new peer then closes the session, an old one answers 404.
// Closing first could reset the connection under the notice.
func (p *peer) tell(code, reason string) {
	st, err := p.sess.OpenStream()
	if err != nil {
		return
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(noticeWait))
	w := events.NewWriter(st)
	defer w.Release()
	msg := &events.Request{SessionClose: &events.SessionClose{Code: code, Reason: reason}}
	if w.WriteMessage(msg) != nil || w.Flush() != nil {
		return
	}
	_ = st.Close() // half-close: the notice is all there is
	_, _ = io.Copy(io.Discard, st)
}

// noticed handles the peer's session-close notice: the session ends with
// the peer's reason.
func (p *peer) noticed(n *events.SessionClose) {
	reason := n.Reason
	if len(reason) > maxNoticeReason {
		reason = reason[:maxNoticeReason] + "..."
	}
	reason = strings.ToValidUTF8(reason, string(utf8.RuneError))
	if reason == "" {
		reason = n.Code
	}
	code := n.Code
	if len(code) > 32 {
		code = code[:32]
	}
	p.log.Debug("the peer is ending the session", "code", code, "reason", reason)
	p.setWhy(&peerNotice{code: code, reason: reason})
	p.close()
}

// expiring is the certificate whose NotAfter comes first among those a
// session rests on, and whose it is.
type expiring struct {
	whose string // "client", "server" or "CA"
	cert  *x509.Certificate
}

func (e expiring) reason() error {
	return fmt.Errorf("%w: %s %q serial %s, not after %s", ErrCertExpired, e.whose,
		e.cert.Subject.CommonName, e.cert.SerialNumber.Text(16), e.cert.NotAfter.UTC().Format(time.RFC3339))
}

// firstToExpire picks, among this node's certificate, the peer's and the
// rest of the peer's verified chain (the CA), the one that expires first.
func (p *peer) firstToExpire() expiring {
	own := "server"
	if p.role == "server" {
		own = "client"
	}
	first := expiring{p.role, p.chain[0]}
	consider := func(whose string, c *x509.Certificate) {
		if c != nil && c.NotAfter.Before(first.cert.NotAfter) {
			first = expiring{whose, c}
		}
	}
	consider(own, p.cfg.leaf())
	for _, c := range p.chain[1:] {
		consider("CA", c)
	}
	return first
}

// watchExpiry arms the timer that ends the session when the first of its
// certificates expires: a timer, not a goroutine per session.
func (p *peer) watchExpiry() {
	p.expires = p.firstToExpire()
	p.expiry = time.AfterFunc(time.Duration(math.MaxInt64), p.expire)
	p.expiry.Reset(time.Until(p.expires.cert.NotAfter))
}

// expire ends the session once its first certificate has expired. The
// timer counts on the monotonic clock; a certificate's end is wall-clock
// time: a timer early because the wall clock was set back is armed again,
// and keepAlive catches one late because it was set forward.
func (p *peer) expire() {
	if p.sess.IsClosed() {
		return
	}
	e := p.expires
	if d := time.Until(e.cert.NotAfter); d > 0 {
		p.expiry.Reset(d)
		return
	}
	p.log.Warn("session ended: certificate expired", "cert", e.whose, "name", e.cert.Subject.CommonName,
		"serial", e.cert.SerialNumber.Text(16), "not_after", e.cert.NotAfter.UTC().Format(time.RFC3339))
	p.endWith(codeExpired, e.reason())
}

// expired reports whether the session's first certificate has expired by
// the wall clock.
func (p *peer) expired() bool {
	return p.expiry != nil && !time.Now().Before(p.expires.cert.NotAfter)
}

// withOwnExpiry adds to err, why a connection failed, that this node's
// own certificate has expired, when it has: the peer refuses it then, and
// its TLS alert says little ("bad certificate", or nothing at all).
func (c *Config) withOwnExpiry(err error) error {
	leaf := c.Certificate.Leaf
	if leaf == nil || !time.Now().After(leaf.NotAfter) || errors.As(err, new(*certRefused)) {
		return err // certRefused says it already
	}
	return fmt.Errorf("%w (this node's certificate %q serial %s expired at %s)", err,
		leaf.Subject.CommonName, leaf.SerialNumber.Text(16), leaf.NotAfter.UTC().Format(time.RFC3339))
}

// disconnectReason says in words why a session ended.
func disconnectReason(err error) string {
	switch {
	case err == nil:
		return "closed"
	case errors.As(err, new(*peerNotice)):
		return err.Error()
	case errors.Is(err, yamux.ErrKeepAliveTimeout):
		return "keep-alive timeout: nothing received from the peer"
	case errors.Is(err, yamux.ErrSessionShutdown):
		return "closed by this node"
	case errors.Is(err, io.EOF):
		return "closed by peer"
	case errors.Is(err, yamux.ErrRemoteGoAway):
		return "peer is shutting down"
	default:
		return err.Error()
	}
}
