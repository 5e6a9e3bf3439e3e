package tunnel

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/handlers"
)

// How a session bounds the streams its peer holds (Config.MaxStreams).
//
// What a peer's stream costs this node lives in yamux until both sides
// have closed it (or, after this side closed, until StreamCloseTimeout):
// its receive buffer, up to twice the window, whether this node still
// serves the event or has answered it and waits for the peer's close. So
// the count that matters is the session's streams (yamux's NumStreams)
// less those this node opened itself, not the events being served.
//
//   - Up to MaxStreams, an event is served.
//   - Beyond it, the event is answered 503 peer_busy at once, without
//     reading its request (its window is never opened beyond yamux's
//     initial 256 KiB).
//   - From MaxStreams + MaxStreams/2 (a peer that does not close the
//     streams it was refused), this node stops accepting the peer's
//     streams until it has closed some: they wait in yamux's accept
//     backlog (AcceptBacklog, each with at most its initial window), and
//     yamux resets those beyond it.
//
// This node announces MaxStreams in its hello, and an honest peer paces
// its streams to it (pacing.go): only a peer that does not (an older
// version, a hostile one) meets these refusals.

// streamLimits holds a session's count of its own streams and the log
// limiter of its refusals.
type streamLimits struct {
	// own counts the streams this node opened on the session and has not
	// yet closed (calls, the client's channel relay).
	own      atomic.Int64
	refused  logLimiter // events refused over MaxStreams
	tooLarge logLimiter // events refused over MaxEventHeader
	heldOff  logLimiter // times the session stopped accepting
}

// heldByPeer is how many streams the peer holds on the session.
func (p *peer) heldByPeer() int {
	return p.sess.NumStreams() - int(p.limits.own.Load())
}

// holdOff waits while the peer holds more streams than a refusal may add
// to, polling (a peer only gets here by not closing what it was refused).
// It returns false once the session is closed.
func (p *peer) holdOff() bool {
	ceiling := p.cfg.MaxStreams + p.cfg.MaxStreams/2
	if p.heldByPeer() <= ceiling {
		return true
	}
	if n, ok := p.limits.heldOff.allow(time.Now()); ok {
		p.log.Warn("not accepting the peer's streams until it closes some",
			"streams", p.heldByPeer(), "limit", ceiling, "times", n)
	}
	t := time.NewTicker(holdOffPoll)
	defer t.Stop()
	for p.heldByPeer() > ceiling {
		select {
		case <-p.sess.CloseChan():
			return false
		case <-t.C:
		}
	}
	return true
}

// holdOffPoll is how often a held-off session looks at its streams again.
const holdOffPoll = 50 * time.Millisecond

// overLimit reports whether st, just accepted, is beyond MaxStreams.
func (p *peer) overLimit() bool { return p.heldByPeer() > p.cfg.MaxStreams }

// refuseStream answers st 503 peer_busy without reading it, and closes
// it. The refusal is logged at most once a second, with the count of
// those not logged.
func (p *peer) refuseStream(st *yamux.Stream) {
	defer st.Close()
	held := p.heldByPeer()
	if n, ok := p.limits.refused.allow(time.Now()); ok {
		p.log.Warn("event refused: the peer has too many streams in flight",
			"streams", held, "limit", p.cfg.MaxStreams, "refused", n)
	}
	_ = st.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout))
	rep := handlers.ErrorReply(http.StatusServiceUnavailable, handlers.CodePeerBusy,
		fmt.Sprintf("%s has too many events in flight from %s (the limit is %d streams): try again later",
			p.cfg.nodeName(), p.info.Name, p.cfg.MaxStreams))
	if _, err := p.writeReply(st, rep, false); err != nil {
		p.log.Debug("refuse event", "err", err)
	}
}

// refuseDraining answers st 503 peer_unavailable without reading it, and
// closes it: a stream the peer opened before it heard this node's
// go-away, while this node drains. The caller learns why, and that the
// event was not served.
func (p *peer) refuseDraining(st *yamux.Stream) {
	defer st.Close()
	_ = st.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout))
	rep := handlers.ErrorReply(http.StatusServiceUnavailable, handlers.CodePeerUnavailable,
		fmt.Sprintf("%s is shutting down: try again later", p.cfg.nodeName()))
	if _, err := p.writeReply(st, rep, false); err != nil {
		p.log.Debug("refuse event while draining", "err", err)
	}
}

// logLimiter lets a log line through at most once per logEvery, and
// counts those it held back.
type logLimiter struct {
	mu   sync.Mutex
	last time.Time
	held int
}

// logEvery is the shortest interval between two lines of a limiter.
const logEvery = time.Second

// allow reports whether a line may be logged now, and how many were
// counted since the last one (this one included).
func (l *logLimiter) allow(now time.Time) (n int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held++
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		return 0, false
	}
	n, l.held, l.last = l.held, 0, now
	return n, true
}
