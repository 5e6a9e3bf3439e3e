package tunnel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// How a node paces the streams it opens to its peer (the sending side of
// Config.MaxStreams; streams.go is the receiving side).
//
// Each node announces its MaxStreams in its hello. The other node then
// keeps the streams it opens on the session within that number: an event
// (a call, an upgrade through a forward route) takes a slot before its
// stream is opened, waiting for one until the event's deadline, so that
// an honest node's callers wait instead of being refused 503 peer_busy
// by the peer. A client keeps one of the server's slots for its channel
// relay, so that events cannot starve the relay nor the relay events. A
// peer that announced nothing (an older node) is not paced.
//
// The receiving node counts a stream from its SYN until yamux frees it:
// when the receiver has closed the stream and handled the sender's FIN,
// whichever comes last, or when either side resets it. Frames on one
// connection are handled in order, so once this node's FIN is queued
// (Close has returned), the peer sees it before any SYN this node sends
// later. A slot is therefore given back when this node has closed the
// stream and has handled the peer's FIN (or a RST) for it:
//
//   - an event answered and read: the peer closes after its reply, this
//     node when the reply body is closed;
//   - an event given up (deadline, caller gone): this node half-closes
//     at once, which cancels the peer's handler, but the slot stays taken
//     until the peer's FIN says the peer no longer counts the stream;
//   - a peer that never closes: yamux resets the stream after
//     streamCloseTimeout, and so frees it at the peer too.
//
// The session's frame scanner (muxconn.Conn.OnOwnClosed) reports the
// peer's FINs and RSTs on the streams this node opened. The same
// bookkeeping keeps streamLimits.own exact: a stream this node opened
// counts as its own until yamux frees it, never as the peer's.

// Bounds of the MaxStreams a peer may announce.
const (
	minAnnouncedStreams = 1
	maxAnnouncedStreams = 1 << 16
)

// pacer holds the slots of the streams this node may hold at the peer.
type pacer struct {
	limit  int           // the peer's MaxStreams; 0 if it announced none
	events chan struct{} // a token per event stream; nil: not paced
	relay  chan struct{} // the channel relay's slot; nil: not paced
}

// newPacer paces to limit, as the peer announced it (0: not paced);
// relay keeps one slot for a channel relay (a client's, when limit > 1).
func newPacer(limit int, relay bool) *pacer {
	pc := &pacer{limit: limit}
	if limit <= 0 {
		return pc
	}
	n := limit
	if relay && limit > 1 {
		n--
		pc.relay = make(chan struct{}, 1)
	}
	pc.events = make(chan struct{}, n)
	if pc.relay == nil {
		pc.relay = pc.events
	}
	return pc
}

// openOwn opens a stream of this node's on slot, a slot of the peer's
// MaxStreams from take (nil: none needed). The stream counts in
// limits.own from before it exists, so that it is never taken for one of
// the peer's, and is tracked until yamux frees it (ownStream.closed gives
// the slot and the count back). If the stream cannot be opened, both are
// given back at once.
func (p *peer) openOwn(slot chan struct{}) (*yamux.Stream, *ownStream, error) {
	p.limits.own.Add(1)
	st, err := p.sess.OpenStream()
	if err != nil {
		p.limits.own.Add(-1)
		if slot != nil {
			<-slot
		}
		return nil, nil, err
	}
	return st, p.own.track(st.StreamID(), slot), nil
}

// take waits for a slot of sem (nil: none needed) until ctx ends, wait
// passes (0: no bound besides ctx) or the session ends. It returns the
// slot's semaphore, for release, and how long it waited.
func (p *peer) take(ctx context.Context, sem chan struct{}, wait time.Duration) (chan struct{}, time.Duration, error) {
	if sem == nil {
		return nil, 0, nil
	}
	select {
	case sem <- struct{}{}:
		return sem, 0, nil
	default:
	}
	start := time.Now()
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	busy := func() error {
		return fmt.Errorf("%w: %d events in flight to %s, its limit; waited %v for a slot",
			ErrPeerBusy, cap(sem), p.info.Name, time.Since(start).Round(time.Millisecond))
	}
	select {
	case sem <- struct{}{}:
		return sem, time.Since(start), nil
	case <-timeout:
		return nil, 0, busy()
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, 0, busy()
		}
		return nil, 0, fmt.Errorf("event to %s: waiting for a slot: %w", p.info.Name, context.Cause(ctx))
	case <-p.ctx.Done():
		return nil, 0, fmt.Errorf("%w: %s: the session ended while waiting for a slot", ErrTunnelClosed, p.info.Name)
	}
}

// ownStreams tracks the streams this node opened on a session until
// yamux frees them at both ends (see above).
type ownStreams struct {
	odd bool   // this node opens the odd stream ids (a client)
	put func() // called once per stream freed: streamLimits.own

	mu   sync.Mutex
	open map[uint32]*ownStream
	// early holds the peer's FINs and RSTs seen for streams of this
	// node's not yet tracked (the peer refused the stream at once, before
	// track ran). Bounded: a peer that sends FINs for streams that do not
	// exist only loses slots of its own.
	early map[uint32]bool // true: a RST
}

// maxEarly bounds ownStreams.early.
const maxEarly = 256

// ownStream is one stream this node opened.
type ownStream struct {
	t      *ownStreams
	id     uint32
	slot   chan struct{} // given back when freed; nil if none
	local  bool          // this node has closed it
	remote bool          // the peer's FIN has been handled
	freed  bool
	timer  *time.Timer
}

func newOwnStreams(odd bool, put func()) *ownStreams {
	return &ownStreams{odd: odd, put: put, open: map[uint32]*ownStream{}, early: map[uint32]bool{}}
}

// track starts tracking the stream id, which holds slot (nil: none).
func (t *ownStreams) track(id uint32, slot chan struct{}) *ownStream {
	s := &ownStream{t: t, id: id, slot: slot}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rst, ok := t.early[id]; ok {
		delete(t.early, id)
		s.remote = true
		if rst {
			s.freeLocked()
			return s
		}
	}
	t.open[id] = s
	return s
}

// mine reports whether id is a stream this node opens.
func (t *ownStreams) mine(id uint32) bool { return id != 0 && (id%2 == 1) == t.odd }

// peerClosed records the peer's FIN (rst: RST) on stream id, once yamux
// has handled it.
func (t *ownStreams) peerClosed(id uint32, rst bool) {
	if !t.mine(id) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.open[id]
	if s == nil {
		if len(t.early) < maxEarly {
			t.early[id] = t.early[id] || rst
		}
		return
	}
	s.remote = true
	if rst || s.local {
		s.freeLocked()
	}
}

// closed records that this node has closed the stream: its FIN is queued
// (or was never sent, and then yamux resets the stream at its close
// timeout, which frees it at the peer too).
func (s *ownStream) closed() {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.freed || s.local {
		return
	}
	s.local = true
	if s.remote {
		s.freeLocked()
		return
	}
	// yamux resets a stream closed here whose FIN the peer does not
	// answer within its StreamCloseTimeout; the margin lets its RST be
	// queued first.
	s.timer = time.AfterFunc(streamCloseTimeout+time.Second, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		s.freeLocked()
	})
}

// freeLocked gives the stream's slot back, once; t.mu is held.
func (s *ownStream) freeLocked() {
	if s.freed {
		return
	}
	s.freed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	delete(s.t.open, s.id)
	if s.slot != nil {
		<-s.slot
	}
	s.t.put()
}
