package muxconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// gate lets a session go without a goroutine waiting in
// yamux.Session.AcceptStream while nobody opens a stream, which is most
// of an idle client's life: on a server with thousands of clients that
// goroutine is a 2 KiB stack and a scheduler entry per client.
//
// The gate reads the session's incoming frames as they pass through
// coalesceConn.Read, before yamux handles them, and counts the frames
// that open a stream (SYN). When the count of streams opened and not yet
// accepted goes from zero to one, it starts an acceptor goroutine when
// the session next reads (yamux has then queued the stream: assumption
// 7); the acceptor takes streams until the count is back to zero and
// then ends, serving the last stream itself.
//
// A stream yamux refuses (the session is going away, or its accept
// backlog is full) is reset at once, never queued (assumption 8): the
// reset goes out through coalesceConn.Write, which tells the gate, and
// the stream is no longer counted. An acceptor that waits for a stream
// the count no longer holds is woken and ends. So the count says exactly
// how many streams wait in yamux's accept queue, and after a go-away it
// goes back to zero with no acceptor left, whatever the peer opens.
//
// A peer may open the same id again once yamux has refused it (yamux
// does not remember refused ids), before the first reset has gone out:
// the gate counts each SYN of an id, and each reset takes one off. A peer
// that opens a stream with an id that is not its own (or zero) ends the
// session with ErrStreamID: such a stream could meet this node's own of
// the same id, whose resets are no refusals.
//
// Until Conn.Serve the gate is held: streams are counted but no acceptor
// starts (the server's hello takes the first stream itself, through
// Conn.AcceptFirst).
type gate struct {
	// own reports whether a stream id is one this node opens.
	own func(id uint32) bool
	// start starts an acceptor (go acceptLoop; tests count them).
	start func()

	// The frame scanner: only the session's reader touches these.
	hdr      [headerSize]byte
	have     int      // bytes of hdr read so far
	skip     uint32   // bytes of a data frame's body still to pass
	startDue bool     // an acceptor is to start at the next read
	syns     []uint32 // the streams opened in the read being scanned
	badSYN   bool     // the read being scanned opens a stream not the peer's

	// Pings the peer asked for in the second since pingSince: yamux
	// answers each from a goroutine of its own that waits up to
	// ConnectionWriteTimeout to send (assumption 9), so a flood from a
	// peer that does not read is a pile of goroutines. Over MaxPings a
	// second, the session ends with ErrPingFlood.
	pings     int
	pingSince time.Time
	// Pings asked for and not yet answered (coalesceConn counts the
	// answers as they are written): on a slow link they wait behind the
	// data queued, and a peer that reads slowly and asks fast would pile
	// up their goroutines, within the rate. Over MaxPings unanswered,
	// the session ends with ErrPingsUnanswered.
	unanswered atomic.Int64

	// Streams before the hello: while helloOpen is set (Conn.Start with
	// a hello phase, until Conn.EndHello), an honest peer opens one
	// stream, its hello's; more SYNs meanwhile are a peer filling yamux's
	// accept backlog (each stream with its first window) before any bound
	// applies, and the session ends with ErrStreamsBeforeHello.
	helloOpen atomic.Bool
	earlySYNs int64

	// violation is the rule the peer broke that ended the session, if
	// any (ErrPingFlood, ErrStreamsBeforeHello).
	violation atomic.Pointer[error]

	// ownClosed, if set, hears of the peer's FINs and RSTs on the streams
	// this node opened, from beforeRead: once yamux has handled them.
	ownClosed atomic.Pointer[func(id uint32, rst bool)]
	closes    []peerClose

	// goneAway is set once the peer's go-away (a normal one) is read,
	// before yamux handles it or any frame after it.
	goneAway atomic.Bool

	// The count, and the acceptor it starts.
	mu       sync.Mutex
	pending  int            // streams queued by yamux, not yet accepted
	refusals int            // streams yamux refused, in all
	waiting  map[uint32]int // their ids, with how many SYNs each
	running  bool           // an acceptor runs, or is due to start
	held     bool           // until Conn.Serve
	sess     *yamux.Session
	acc      Acceptor
	// wake ends an acceptor's wait in AcceptStreamWithContext when the
	// count drops to zero by refusals; made when needed.
	wake       context.Context
	cancelWake context.CancelFunc
}

// peerClose is a FIN or RST the peer sent on a stream.
type peerClose struct {
	id  uint32
	rst bool
}

// MaxPings bounds the pings a peer may ask for in a second; a node that
// pings once per keep-alive interval asks for one.
const MaxPings = 64

// ErrPingFlood ends a session whose peer asks for more than MaxPings
// pings a second.
var ErrPingFlood = fmt.Errorf("ping flood: the peer asked for more than %d pings in a second", MaxPings)

// ErrStreamID ends a session whose peer opens a stream with an id that
// is not its own: yamux opens odd ids on a client and even ones on a
// server, never zero, but takes whatever id a SYN names, this node's own
// included (the ids it opens itself).
var ErrStreamID = errors.New("the peer opened a stream with an id that is not its own")

// ErrStreamsBeforeHello ends a session whose peer opens streams besides
// the hello's before the hello phase is over (Conn.EndHello).
var ErrStreamsBeforeHello = errors.New("the peer opened streams before its hello was answered")

// maxScanCloses bounds the FINs and RSTs kept from one read until the
// next: yamux reads headers through a 4 KiB buffer (assumption 6), 341
// frames at most; beyond the bound only this node's own slots are lost.
const maxScanCloses = 4096

func newGate(own func(id uint32) bool) *gate {
	g := &gate{own: own, held: true, waiting: map[uint32]int{}}
	g.start = func() { go g.acceptLoop() }
	return g
}

// scan follows p, the next bytes the session reads, frame by frame (see
// frame.go), and counts the streams opened. It returns the rule the peer
// broke, if it broke one: the session is to end with it.
func (g *gate) scan(p []byte) error {
	pings := 0
	g.syns = g.syns[:0]
	for len(p) > 0 {
		if g.skip > 0 {
			k := min(uint32(len(p)), g.skip)
			p, g.skip = p[k:], g.skip-k
			continue
		}
		k := copy(g.hdr[g.have:], p)
		p, g.have = p[k:], g.have+k
		if g.have < headerSize {
			break
		}
		g.have = 0
		h := header(g.hdr[:])
		typ, flags := h.typ(), h.flags()
		if h.onStream() && flags&flagSYN != 0 {
			id := h.streamID()
			if id == 0 || g.own(id) {
				g.badSYN = true
			}
			g.syns = append(g.syns, id)
		}
		if typ == typeData {
			g.skip = h.length()
		}
		if typ == typePing && flags&flagSYN != 0 {
			pings++
		}
		if typ == typeGoAway && h.length() == 0 { // yamux's goAwayNormal
			g.goneAway.Store(true)
		}
		if h.onStream() && flags&(flagFIN|flagRST) != 0 && g.ownClosed.Load() != nil {
			if id := h.streamID(); g.own(id) && len(g.closes) < maxScanCloses {
				g.closes = append(g.closes, peerClose{id: id, rst: flags&flagRST != 0})
			}
		}
	}
	if pings > 0 && g.countPings(pings) {
		return g.broke(ErrPingFlood)
	}
	if pings > 0 && g.unanswered.Add(int64(pings)) > MaxPings {
		return g.broke(ErrPingsUnanswered)
	}
	if len(g.syns) == 0 {
		return nil
	}
	if g.badSYN {
		return g.broke(ErrStreamID)
	}
	if g.helloOpen.Load() {
		if g.earlySYNs += int64(len(g.syns)); g.earlySYNs > 1 {
			return g.broke(ErrStreamsBeforeHello)
		}
	}
	g.mu.Lock()
	for _, id := range g.syns {
		g.waiting[id]++
	}
	g.pending += len(g.syns)
	if !g.running && !g.held {
		g.running = true
		g.startDue = true
	}
	g.mu.Unlock()
	return nil
}

// broke records the rule the peer broke and returns it.
func (g *gate) broke(err error) error {
	g.violation.CompareAndSwap(nil, &err)
	return err
}

// ErrPingsUnanswered ends a session whose peer has asked for more than
// MaxPings pings that are not answered yet: it asks faster than it reads.
var ErrPingsUnanswered = fmt.Errorf("ping flood: the peer asked for more than %d pings that it has not read the answers of", MaxPings)

// pingAnswered counts an answer to the peer's ping, written.
func (g *gate) pingAnswered() { g.unanswered.Add(-1) }

// countPings adds n ping requests to the second under way, and reports
// whether they are more than MaxPings.
func (g *gate) countPings(n int) bool {
	if now := time.Now(); now.Sub(g.pingSince) >= time.Second {
		g.pingSince, g.pings = now, 0
	}
	g.pings += n
	return g.pings > MaxPings
}

// beforeRead reports the peer's FINs and RSTs that scan saw and starts
// the acceptor that scan found due, now that yamux has handled the bytes
// scan saw and asks for more (assumption 7): the streams are waiting in
// its accept queue, so the acceptor takes its first one without
// blocking, and it runs on this thread as soon as the reader waits.
func (g *gate) beforeRead() {
	if len(g.closes) > 0 {
		if f := g.ownClosed.Load(); f != nil {
			for _, c := range g.closes {
				(*f)(c.id, c.rst)
			}
		}
		g.closes = g.closes[:0]
	}
	if g.startDue {
		g.startDue = false
		g.start()
	}
}

// refused is told by coalesceConn.Write of a reset yamux sends; if it is
// for a stream the peer opened and nobody accepted, yamux refused it and
// never queued it: it is no longer counted.
func (g *gate) refused(id uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waiting[id] == 0 {
		return
	}
	g.forget(id)
	g.pending--
	g.refusals++
	if g.pending == 0 && g.wake != nil {
		g.cancelWake() // an acceptor may wait for it: nothing will come
		g.wake, g.cancelWake = nil, nil
	}
}

// forget takes one SYN of stream id off waiting.
func (g *gate) forget(id uint32) {
	if g.waiting[id] <= 1 {
		delete(g.waiting, id)
	} else {
		g.waiting[id]--
	}
}

// took counts stream id, just taken from the session, and reports
// whether it was the last one pending: the acceptor that took it is then
// done.
func (g *gate) took(id uint32) (last bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.forget(id)
	g.pending--
	if g.pending <= 0 {
		g.pending = 0
		g.running = false
		return true
	}
	return false
}

// waitCtx returns the context an acceptor waits with, or false (and the
// acceptor ends) if nothing is pending.
func (g *gate) waitCtx() (context.Context, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending == 0 {
		g.running = false
		return nil, false
	}
	if g.wake == nil {
		g.wake, g.cancelWake = context.WithCancel(context.Background())
	}
	return g.wake, true
}

// stop ends the acceptor: the session is over.
func (g *gate) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running = false
}

// acceptLoop is the acceptor: it takes streams until none is pending,
// and serves the last one itself, so that at one event at a time the
// goroutine the gate starts is the one that serves the event.
func (g *gate) acceptLoop() {
	for {
		if !g.acc.Admit() {
			g.stop()
			return
		}
		ctx, ok := g.waitCtx()
		if !ok {
			return
		}
		st, err := g.sess.AcceptStreamWithContext(ctx)
		if err != nil {
			if ctx.Err() != nil && !g.sess.IsClosed() {
				continue // the stream it waited for was refused
			}
			g.stop()
			return // the session is over
		}
		last := g.took(st.StreamID())
		switch {
		case !g.acc.Take(st):
		case last:
			g.acc.Serve(st)
		default:
			go g.acc.Serve(st)
		}
		if last {
			return
		}
	}
}

// serve sets the acceptor and releases the gate: from now on it starts
// one whenever a stream comes, and at once if streams came while it was
// held.
func (g *gate) serve(a Acceptor) {
	g.mu.Lock()
	g.acc = a
	g.held = false
	start := g.pending > 0 && !g.running
	if start {
		g.running = true
	}
	g.mu.Unlock()
	if start {
		g.start()
	}
}

// counts reports the streams pending and whether an acceptor runs.
func (g *gate) counts() (pending int, running bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending, g.running
}
