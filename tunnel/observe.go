package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel/internal/hub"
	"github.com/restpipe/restpipe/tunnel/internal/muxconn"
	"github.com/restpipe/restpipe/tunnel/metrics"
)

// This file tells Config.Metrics what the tunnel knows: the code that
// knows a fact calls one function here, so that the hot files carry one
// line each.

// observedCall is p.call, counted as an event out (handler "other": the
// handlers are the peer's, a set this node does not bound).
func (p *peer) observedCall(ctx context.Context, ev *events.Request, body io.Reader) (*Response, error) {
	m := p.cfg.Metrics
	if m == nil {
		return p.call(ctx, ev, body)
	}
	start := time.Now()
	resp, err := p.call(ctx, ev, body)
	status := http.StatusBadGateway
	switch {
	case err == nil:
		status = resp.Status
	case errors.Is(err, ErrPeerUnavailable), errors.Is(err, ErrPeerBusy):
		status = http.StatusServiceUnavailable
	case errors.Is(err, ErrTimeout):
		status = http.StatusGatewayTimeout
	case errors.Is(err, ErrBodyTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, events.ErrTooLarge):
		status = http.StatusRequestHeaderFieldsTooLarge
	}
	m.Event(metrics.Out, metrics.Other, status, time.Since(start))
	return resp, err
}

// lookup is what a Dispatcher that knows its handlers (a
// *handlers.Registry) has, for the handler label.
type lookup interface {
	Lookup(name string) (handlers.Func, bool)
}

// observeIn counts an event the peer sent, served with status from start
// on: its handler label is the forward route ("forward:files") or the
// handler's name when registered, else "other".
func (p *peer) observeIn(req *handlers.Request, status int, start time.Time) {
	m := p.cfg.Metrics
	if m == nil {
		return
	}
	label := metrics.Other
	if req.Route != "" {
		label = "forward:" + req.Route
	} else if l, ok := p.cfg.Dispatcher.(lookup); ok {
		if _, ok := l.Lookup(req.Name); ok {
			label = req.Name
		}
	}
	m.Event(metrics.In, label, status, time.Since(start))
}

// observeRTT records a keep-alive ping's round trip, when answered.
func (p *peer) observeRTT(rtt time.Duration, err error) {
	if err == nil {
		p.cfg.Metrics.RTT(rtt)
	}
}

// observeConnected counts p's session as established.
func (p *peer) observeConnected() { p.cfg.Metrics.Connected(p.info.Name, p.leaf) }

// observeDisconnected counts p's session as ended for reason; still says
// whether another session of the same name is up.
func (p *peer) observeDisconnected(reason error, still bool) {
	p.cfg.Metrics.Disconnected(p.info.Name, disconnectClass(reason), still)
}

// disconnectClass is the reason label of a session that ended with err
// (see disconnectReason, its words).
func disconnectClass(err error) string {
	switch {
	case err == nil, errors.Is(err, yamux.ErrSessionShutdown):
		return metrics.ReasonClosed
	case errors.Is(err, ErrReplaced):
		return metrics.ReasonReplaced
	case errors.Is(err, ErrCertExpired):
		return metrics.ReasonExpired
	case errors.Is(err, ErrNoLongerAccepted):
		return metrics.ReasonRevoked
	case errors.Is(err, yamux.ErrKeepAliveTimeout):
		return metrics.ReasonKeepAlive
	case errors.Is(err, yamux.ErrRemoteGoAway):
		return metrics.ReasonGoAway
	case errors.As(err, new(*peerNotice)), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return metrics.ReasonPeer
	default:
		return metrics.ReasonError
	}
}

// observeRefused counts a connection refused at its handshake (on a
// server) or a connection to the server that failed (on a client).
func (c *Config) observeRefused(err error) { c.Metrics.Refused(refusalClass(err)) }

// refusalClass is the reason label of a failed handshake.
func refusalClass(err error) string {
	var opErr *net.OpError
	var ve *tls.CertificateVerificationError
	var cr *certRefused
	switch {
	case errors.As(err, &cr):
		return metrics.RefusedServer
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return metrics.RefusedTimeout
	case errors.Is(err, errHelloBusy):
		return metrics.RefusedBusy
	case errors.Is(err, errNoCommonName):
		return metrics.RefusedNoName
	case errors.Is(err, ErrNoLongerAccepted), errors.Is(err, errRevoked):
		return metrics.RefusedRevoked
	case errors.As(err, &ve), strings.HasPrefix(err.Error(), "tls handshake:"):
		return metrics.RefusedTLS
	case errors.As(err, &opErr) && opErr.Op == "dial", strings.HasPrefix(err.Error(), "dial "):
		return metrics.RefusedDial
	default:
		return metrics.RefusedHello
	}
}

// errHelloBusy, errNoCommonName and errRevoked mark the server's
// refusals that are not TLS's or the hello's, for refusalClass.
var (
	errHelloBusy    = errors.New("another connection with its certificate is still in its hello")
	errNoCommonName = errors.New("client certificate has no Common Name")
	errRevoked      = errors.New("certificate refused")
)

// observeBytes counts the bytes of mc's session into k, and makes the
// metrics read k.
func (c *Config) countBytes(mc *muxconn.Conn, k *muxconn.Counters) {
	if c.Metrics != nil {
		mc.CountInto(k)
	}
}

// registerFuncs points the metrics read at each scrape at what a node
// has: its sessions, their events in flight, its hub and its byte
// counters.
func (c *Config) registerFuncs(peers func() []*peer, k *muxconn.Counters, h *hub.Hub) {
	m := c.Metrics
	if m == nil {
		return
	}
	st := h.Stats()
	m.SetFunc("restpipe_peers_connected", func() float64 { return float64(len(peers())) })
	m.SetFunc("restpipe_streams_in_flight", func() float64 {
		n := 0
		for _, p := range peers() {
			n += p.inflight.count()
		}
		return float64(n)
	})
	m.SetFunc("restpipe_received_bytes_total", func() float64 { return float64(k.In.Load()) })
	m.SetFunc("restpipe_sent_bytes_total", func() float64 { return float64(k.Out.Load()) })
	m.SetFunc("restpipe_channel_subscribers", func() float64 { return float64(h.Count()) })
	m.SetFunc("restpipe_channel_messages_published_total", func() float64 { return float64(st.Messages.Load()) })
	m.SetFunc("restpipe_channel_messages_delivered_total", func() float64 { return float64(st.Delivered.Load()) })
	m.SetFunc("restpipe_channel_messages_dropped_total", func() float64 { return float64(st.Dropped.Load()) })
	m.SetFunc("restpipe_channel_slow_disconnects_total", func() float64 { return float64(st.Dropped.Load()) })
}

// observe gives the metrics the server's sessions, hub and counters.
func (s *Server) observe() { s.cfg.registerFuncs(s.sessions, &s.bytes, s.hub) }

// observe gives the metrics the client's session, hub and counters.
func (c *Client) observe() {
	c.cfg.registerFuncs(func() []*peer {
		if p := c.peer(); p != nil {
			return []*peer{p}
		}
		return nil
	}, &c.bytes, c.hub)
}

// ErrNotReady is what Ready returns while a node cannot serve: a server
// not listening, a client without its tunnel, or a certificate out of its
// validity.
var ErrNotReady = errors.New("not ready")

// Ready says whether the server serves: nil while Serve accepts
// connections and its certificate is valid, else an error wrapping
// ErrNotReady that says why (for /readyz).
func (s *Server) Ready() error {
	if !s.listening.Load() {
		return fmt.Errorf("%w: the tunnel is not listening", ErrNotReady)
	}
	return s.cfg.identityReady()
}

// Ready says whether the client serves: nil while its tunnel to the
// server is up, else an error wrapping ErrNotReady that says why.
func (c *Client) Ready() error {
	if c.peer() == nil {
		return fmt.Errorf("%w: no tunnel to the server", ErrNotReady)
	}
	return c.cfg.identityReady()
}

// identityReady is nil while the node's certificate is within its
// validity.
func (c *Config) identityReady() error {
	leaf := c.leaf()
	now := time.Now()
	switch {
	case leaf == nil:
		return fmt.Errorf("%w: no certificate", ErrNotReady)
	case now.After(leaf.NotAfter):
		return fmt.Errorf("%w: this node's certificate expired at %s", ErrNotReady, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("%w: this node's certificate is valid only from %s", ErrNotReady, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// marked is err, unchanged in its words, that also matches mark
// (errors.Is), for refusalClass.
type marked struct {
	error
	mark error
}

func (m marked) Unwrap() error        { return m.error }
func (m marked) Is(target error) bool { return target == m.mark }
func mark(err, as error) error        { return marked{err, as} }
