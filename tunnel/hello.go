package tunnel

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
)

// clientHello runs the client's side of the hello exchange on a new
// session and returns the server's hello.
func clientHello(ctx context.Context, sess *yamux.Session, cfg *Config) (*events.Hello, error) {
	st, err := sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("open hello stream: %w", err)
	}
	defer st.Close()
	setStreamDeadline(ctx, st)
	w := events.NewWriter(st)
	defer w.Release()
	err = w.WriteMessage(&events.Hello{
		ProtocolVersion: events.ProtocolVersion,
		NodeName:        cfg.nodeName(),
		SoftwareVersion: cfg.Version,
	})
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	var h events.Hello
	r := events.NewReader(st)
	defer r.Release()
	if err := r.ReadMessage(&h); err != nil {
		return nil, fmt.Errorf("read server hello: %w", err)
	}
	if h.Error != "" {
		return nil, fmt.Errorf("%w by server: %s", ErrRefused, h.Error)
	}
	if h.ProtocolVersion != events.ProtocolVersion {
		return nil, fmt.Errorf("%w: server speaks protocol %d, this client %d",
			ErrVersionMismatch, h.ProtocolVersion, events.ProtocolVersion)
	}
	return &h, nil
}

// serverHello runs the server's side of the hello exchange for the client
// whose certificate names it certName, and returns the client's hello.
// On a refusal (refuse, if not nil, is one decided already) it answers the
// client with the reason before returning it.
func serverHello(ctx context.Context, sess *yamux.Session, cfg *Config, certName string, refuse error) (*events.Hello, error) {
	st, err := sess.AcceptStreamWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept hello stream: %w", err)
	}
	defer st.Close()
	setStreamDeadline(ctx, st)
	var h events.Hello
	r := events.NewReader(st)
	defer r.Release()
	if err := r.ReadMessage(&h); err != nil {
		return nil, fmt.Errorf("read client hello: %w", err)
	}
	answer := &events.Hello{
		ProtocolVersion: events.ProtocolVersion,
		NodeName:        cfg.nodeName(),
		SoftwareVersion: cfg.Version,
	}
	refusal := refuse
	switch {
	case refusal != nil:
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

func setStreamDeadline(ctx context.Context, st *yamux.Stream) {
	if d, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(d)
	} else {
		_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	}
}
