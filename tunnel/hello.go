package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
)

// clientHello runs the client's side of the hello exchange on a new
// session and returns the server's hello.
func clientHello(ctx context.Context, sess *yamux.Session, cfg *Config) (*events.Hello, error) {
	st, err := sess.OpenStream()
	if err != nil {
		return nil, unanswered{fmt.Errorf("open hello stream: %w", err)}
	}
	defer st.Close()
	setStreamDeadline(ctx, st, cfg)
	w := events.NewWriter(st)
	defer w.Release()
	err = w.WriteMessage(cfg.hello())
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return nil, unanswered{fmt.Errorf("send hello: %w", err)}
	}
	var h events.Hello
	r := events.NewReader(st)
	defer r.Release()
	if err := r.ReadMessageMax(&h, maxHello); err != nil {
		return nil, unanswered{fmt.Errorf("read server hello: %w", err)}
	}
	if h.Error != "" {
		return nil, fmt.Errorf("%w by server: %s", ErrRefused, strings.ToValidUTF8(h.Error, "?"))
	}
	if err := checkHello(&h); err != nil {
		return nil, fmt.Errorf("server hello: %w", err)
	}
	if h.ProtocolVersion != events.ProtocolVersion {
		return nil, fmt.Errorf("%w: server speaks protocol %d, this client %d",
			ErrVersionMismatch, h.ProtocolVersion, events.ProtocolVersion)
	}
	return &h, nil
}

// unanswered is the error of a hello that got no answer: the session or
// the connection under it failed first.
type unanswered struct{ error }

func (u unanswered) Unwrap() error { return u.error }

// serverHello runs the server's side of the hello exchange for the client
// whose certificate names it certName, and returns the client's hello.
// On a refusal (refuse, if not nil, is one decided already) it answers the
// client with the reason before returning it. accept takes the hello's
// stream (muxconn.Conn.AcceptFirst). answering is called just before the
// answer is written: from then on the client may open streams.
func serverHello(ctx context.Context, accept func(context.Context) (*yamux.Stream, error), cfg *Config, certName string, refuse error, answering func()) (*events.Hello, error) {
	st, err := accept(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept hello stream: %w", err)
	}
	defer st.Close()
	setStreamDeadline(ctx, st, cfg)
	var h events.Hello
	r := events.NewReader(st)
	defer r.Release()
	err = r.ReadMessageMax(&h, maxHello)
	if err != nil && !errors.Is(err, events.ErrTooLarge) {
		return nil, fmt.Errorf("read client hello: %w", err)
	}
	answer := cfg.hello()
	refusal := refuse
	switch {
	case refusal != nil:
	case err != nil: // too large: the client is told
		refusal = fmt.Errorf("%w: hello: %v", ErrRefused, err)
	case checkHello(&h) != nil:
		refusal = fmt.Errorf("%w: hello: %v", ErrRefused, checkHello(&h))
	case h.ProtocolVersion != events.ProtocolVersion:
		refusal = fmt.Errorf("%w: client speaks protocol %d, this server %d",
			ErrVersionMismatch, h.ProtocolVersion, events.ProtocolVersion)
	case h.NodeName != certName:
		refusal = fmt.Errorf("%w: hello claims name %q but the certificate names %q",
			ErrRefused, h.NodeName, certName)
	}
	if refusal != nil {
		answer.Error = refusal.Error()
	}
	answering() // from now on the client may open streams
	w := events.NewWriter(st)
	defer w.Release()
	err = w.WriteMessage(answer)
	if err == nil {
		err = w.Flush()
	}
	if refusal != nil {
		if err == nil {
			// Let the client read the reason before the connection goes:
			// closing with unread data would reset it and lose the answer.
			_ = st.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = io.Copy(io.Discard, st)
		}
		return nil, refusal
	}
	if err != nil {
		return nil, fmt.Errorf("send server hello: %w", err)
	}
	return &h, nil
}

// Bounds of a hello: the message, and each name in it. A peer's hello is
// kept (PeerInfo) and logged.
const (
	maxHello      = 4 << 10
	maxHelloField = 256
)

// checkHello checks the fields of a peer's hello that this node keeps:
// at most maxHelloField bytes of printable UTF-8 each, and a MaxStreams
// this node can pace to (0: none announced).
func checkHello(h *events.Hello) error {
	if n := h.MaxStreams; n != 0 && (n < minAnnouncedStreams || n > maxAnnouncedStreams) {
		return fmt.Errorf("its max streams is %d, the limit is %d", n, maxAnnouncedStreams)
	}
	for _, f := range []struct{ name, v string }{
		{"node name", h.NodeName},
		{"software version", h.SoftwareVersion},
	} {
		switch {
		case len(f.v) > maxHelloField:
			return fmt.Errorf("its %s is %d bytes, the limit is %d", f.name, len(f.v), maxHelloField)
		case !utf8.ValidString(f.v):
			return fmt.Errorf("its %s is not UTF-8", f.name)
		case strings.IndexFunc(f.v, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0:
			return fmt.Errorf("its %s %q holds a control character", f.name, f.v)
		}
	}
	return nil
}

// hello is this node's hello, the same on both sides.
func (c *Config) hello() *events.Hello {
	return &events.Hello{
		ProtocolVersion: events.ProtocolVersion,
		NodeName:        c.nodeName(),
		SoftwareVersion: c.Version,
		MaxStreams:      uint32(c.MaxStreams),
	}
}

// setStreamDeadline bounds the hello's stream by ctx's deadline, the
// handshake's; by HandshakeTimeout from now if ctx has none.
func setStreamDeadline(ctx context.Context, st *yamux.Stream, cfg *Config) {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(cfg.HandshakeTimeout)
	}
	_ = st.SetDeadline(d)
}
