package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/tunnel/channels"
	"github.com/restpipe/restpipe/tunnel/internal/hub"
	"github.com/restpipe/restpipe/tunnel/internal/muxconn"
)

// Server is the central node: it accepts clients' mTLS connections, keeps
// a registry of connected clients by certificate name, serves their
// events and sends events to them.
type Server struct {
	cfg  Config
	log  *slog.Logger
	tls  *tls.Config
	ycfg *yamux.Config // shared by every session
	bufs *sync.Pool
	send *sync.Pool // copy buffers of Config.MaxFrame (see peer.sendBufs)
	hub  *hub.Hub   // this node's channel subscribers and clients' relays
	// bytes adds up the sessions' bytes, for Config.Metrics.
	bytes muxconn.Counters
	// listening is set while Serve accepts, for Ready.
	listening atomic.Bool

	mu      sync.Mutex
	peers   map[string]*peer
	closing bool
	conns   sync.WaitGroup
	// hellos are the certificates (by serial number) with a connection
	// in its hello (TLS done, not yet registered), at most one each;
	// guarded by mu.
	hellos map[string]bool
}

// NewServer checks cfg and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	bufs := newBufPool(copyBufSize)
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger,
		tls:    cfg.serverTLS(),
		ycfg:   cfg.yamux(),
		bufs:   bufs,
		send:   cfg.sendBufs(copyBufSize, bufs),
		hub:    hub.NewHub(cfg.hubOptions()),
		peers:  map[string]*peer{},
		hellos: map[string]bool{},
	}
	s.observe()
	return s, nil
}

// Name is the server's own name, from its certificate.
func (s *Server) Name() string { return s.cfg.nodeName() }

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts clients on ln until ctx ends, then shuts down gracefully:
// it stops accepting, lets events in flight finish for at most
// ShutdownTimeout, and closes every session. It returns nil after a
// shutdown, or the error that stopped accepting. Serve is called once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.log.Info("tunnel listening", "addr", ln.Addr().String())
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	s.listening.Store(true)
	defer s.listening.Store(false)
	var tempDelay time.Duration
	var acceptErr error
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || tooManyFiles(err) {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			acceptErr = fmt.Errorf("accept: %w", err)
			break
		}
		tempDelay = 0
		s.conns.Add(1) // done when the session ends, or the handshake fails
		go s.handleConn(ctx, conn)
	}
	s.shutdown()
	s.conns.Wait()
	return acceptErr
}

// handleConn runs the handshake and the hello of one client connection,
// then registers the client and starts its session. The goroutine ends
// there: the session runs on yamux's goroutines, and the stack the
// handshake grew (tens of KiB) goes with it.
func (s *Server) handleConn(ctx context.Context, conn net.Conn) {
	remote := conn.RemoteAddr().String()
	p, err := s.handshake(ctx, conn)
	if err != nil {
		_ = conn.Close()
		if ctx.Err() == nil {
			s.cfg.observeRefused(err)
			s.log.Warn("client refused", "remote", remote, "err", s.cfg.withOwnExpiry(err))
		}
		s.conns.Done()
		return
	}
	if !s.register(p) {
		p.close()
		s.conns.Done()
		return
	}
	p.log.Info("client connected", "version", p.info.Version)
	p.observeConnected()
	p.start(func(reason error) {
		p.observeDisconnected(reason, !s.unregister(p))
		p.log.Info("client disconnected", "reason", disconnectReason(reason),
			"connected_for", time.Since(p.info.ConnectedSince).Round(time.Millisecond))
		s.conns.Done()
	})
}

// handshake runs TLS and the hello exchange, bounded by HandshakeTimeout.
func (s *Server) handshake(ctx context.Context, conn net.Conn) (*peer, error) {
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	mc, err := muxconn.Handshake(hctx, conn, muxconn.Server, s.tls)
	if err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	cs := mc.ConnectionState()
	certs := cs.PeerCertificates
	if len(certs) == 0 || certs[0].Subject.CommonName == "" {
		return nil, errNoCommonName
	}
	name := certs[0].Subject.CommonName
	// Until its hello is done a connection is not bounded by the
	// session's stream limits: yamux would buffer up to AcceptBacklog
	// streams of the peer's, each with its first window. So a name has
	// one connection in its hello at a time (another is closed at once;
	// counted per certificate, so that the holder of a revoked one cannot
	// lock a re-issued one of the same name out),
	// and that connection may open only the hello's stream before it is
	// answered (muxconn's hello phase): its hello stream's window, 512 KiB
	// at most, is all it can make the server hold.
	serial := certs[0].SerialNumber.String() // unique under the one CA
	if !s.enterHello(serial) {
		return nil, mark(fmt.Errorf("client %q: another connection with its certificate (serial %s) is still in its hello: one at a time", name, serial), errHelloBusy)
	}
	defer s.leaveHello(serial)
	// A certificate the hook refuses (revoked) is authentic: the client is
	// told why in the hello, so that its operator can see it.
	var refusal error
	if s.cfg.VerifyPeer != nil {
		if err := s.cfg.VerifyPeer(certs[0]); err != nil {
			refusal = mark(fmt.Errorf("client %q: %w", name, err), errRevoked)
		}
	}
	// Only the hello's stream until it is answered (mc.EndHello).
	mc.WatchWrites(s.cfg.WriteTimeout)
	s.cfg.countBytes(mc, &s.bytes)
	sess, err := mc.Start(s.ycfg, true)
	if err != nil {
		return nil, err
	}
	h, err := serverHello(hctx, mc.AcceptFirst, &s.cfg, name, refusal, mc.EndHello)
	if err != nil {
		_ = sess.Close()
		if v := mc.Violation(); v != nil {
			err = v
		}
		return nil, fmt.Errorf("hello from %q: %w", name, err)
	}
	info := PeerInfo{
		Name:           name,
		RemoteAddr:     conn.RemoteAddr().String(),
		ConnectedSince: time.Now().UTC(),
		Version:        h.SoftwareVersion,
	}
	p := newPeer(&s.cfg, mc, sess, "client", verifiedChain(cs), info, s.bufs, s.send)
	p.onRelay = s.serveRelay
	p.paceTo(h.MaxStreams)
	return p, nil
}

// register adds p, replacing (and closing) an older session of the same
// name. It refuses once the server is shutting down.
func (s *Server) register(p *peer) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	old := s.peers[p.info.Name]
	s.peers[p.info.Name] = p
	if old != nil {
		p.replaced = old.info.RemoteAddr
	}
	s.mu.Unlock()
	if old != nil {
		s.replace(old, p)
	}
	return true
}

// shareWindow is how recently a session must have replaced another for
// its own replacement to mean that two live clients share one identity
// and keep taking the session from each other. A session is replaced
// only when its client connects again while it still looks alive, which
// an honest client does once after its link went half-open; a replaced
// client waits ReconnectMax (30 s by default) before it tries again.
const shareWindow = 5 * time.Minute

// replace closes old, whose place p took, telling its client why; and
// reports two clients that keep replacing each other.
func (s *Server) replace(old, p *peer) {
	s.log.Warn("client replaced by a new connection with the same identity", "peer", p.info.Name,
		"old_remote", old.info.RemoteAddr, "old_serial", old.leaf.SerialNumber.Text(16),
		"new_remote", p.info.RemoteAddr, "new_serial", p.leaf.SerialNumber.Text(16))
	if old.replaced != "" && time.Since(old.info.ConnectedSince) < shareWindow {
		s.log.Error("two live clients share one identity: they keep replacing each other; give each its own (restpipe ca issue)",
			"peer", p.info.Name, "remote_a", old.info.RemoteAddr, "serial_a", old.leaf.SerialNumber.Text(16),
			"remote_b", p.info.RemoteAddr, "serial_b", p.leaf.SerialNumber.Text(16),
			"replaced_for", time.Since(old.info.ConnectedSince).Round(time.Millisecond))
	}
	// The notice waits for the old client to read it: not on the new
	// client's way in.
	go old.endWith(codeReplaced, fmt.Errorf("%w from %s", ErrReplaced, p.info.RemoteAddr))
}

// unregister removes p; it reports whether p was the session registered
// under its name (not one replaced since).
func (s *Server) unregister(p *peer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peers[p.info.Name] == p {
		delete(s.peers, p.info.Name)
		return true
	}
	return false
}

// sessions returns the registered sessions, one per client.
func (s *Server) sessions() []*peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	peers := make([]*peer, 0, len(s.peers))
	for _, p := range s.peers {
		peers = append(peers, p)
	}
	return peers
}

func (s *Server) peer(name string) *peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peers[name]
}

// shutdown drains and closes every session.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	peers := s.sessions()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.shutdown(ctx)
		}()
	}
	wg.Wait()
}

// Call sends req to the client called name and returns its reply, once
// its header has come: the caller reads and closes Response.Body. Its
// errors wrap this package's Err values (ErrPeerUnavailable, ErrTimeout,
// ...), which the front end maps to its error table.
func (s *Server) Call(ctx context.Context, name string, req *Request) (*Response, error) {
	ev, err := req.event(ctx)
	if err != nil {
		return nil, err
	}
	return s.callEvent(ctx, name, ev, req.body())
}

// callEvent sends the event ev, with body (nil for none), to the client
// called name: the front end's Call, which sets fields of the wire header
// that Request does not have.
func (s *Server) callEvent(ctx context.Context, name string, ev *events.Request, body io.Reader) (*Response, error) {
	p := s.peer(name)
	if p == nil {
		return nil, fmt.Errorf("%w: no client %q", ErrPeerUnavailable, name)
	}
	return p.observedCall(ctx, ev, body)
}

// Clients lists the connected clients, by name.
func (s *Server) Clients() []PeerInfo {
	s.mu.Lock()
	out := make([]PeerInfo, 0, len(s.peers))
	for _, p := range s.peers {
		out = append(out, p.info)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Reverify asks Config.VerifyPeer again about every connected client (after
// a revocation list was reloaded, say) and drops those it now refuses. It
// returns the names dropped.
func (s *Server) Reverify() []string {
	if s.cfg.VerifyPeer == nil {
		return nil
	}
	var dropped []string
	for _, p := range s.sessions() {
		if err := s.cfg.VerifyPeer(p.leaf); err != nil {
			p.log.Warn("client dropped: its certificate is no longer accepted", "err", err)
			go p.endWith(codeRefused, fmt.Errorf("%w: %v", ErrNoLongerAccepted, err))
			dropped = append(dropped, p.info.Name)
		}
	}
	sort.Strings(dropped)
	return dropped
}

// Disconnect closes the session of the client called name, if connected.
func (s *Server) Disconnect(name string) bool {
	p := s.peer(name)
	if p != nil {
		p.close()
	}
	return p != nil
}

// Channels is the server's channel bus: what it publishes reaches every
// subscriber of the channel on every node; its subscribers receive what
// is published anywhere. The server puts each channel's messages in order.
func (s *Server) Channels() channels.Bus { return s.hub }

// enterHello reserves the one place in the hello phase of the
// certificate with serial; false if a connection with it holds it.
func (s *Server) enterHello(serial string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hellos[serial] {
		return false
	}
	s.hellos[serial] = true
	return true
}

// leaveHello gives the place in the hello phase back.
func (s *Server) leaveHello(serial string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.hellos, serial)
}
