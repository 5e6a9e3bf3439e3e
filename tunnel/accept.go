package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// acceptGate lets a session go without a goroutine waiting in
// yamux.Session.AcceptStream while nobody opens a stream, which is most
// of an idle client's life: on a server with thousands of clients that
// goroutine is a 2 KiB stack and a scheduler entry per client.
//
// The gate reads the session's incoming frames as they pass through
// coalesceConn.Read, before yamux handles them, and counts the frames
// that open a stream (SYN). When the count of streams opened and not yet
// accepted goes from zero to one, it starts an acceptor goroutine
// (peer.acceptStreams) when the session next reads; the acceptor takes
// streams until the count is back to zero and then ends, serving the last
// stream itself.
//
// A stream yamux refuses (it was going away, or its accept backlog was
// full) stays counted: the acceptor then waits in AcceptStream, as a
// session without the gate would, until the next stream or the session's
// end. The count never says zero while a stream waits to be accepted.
//
// Until open is called the gate is held, as by an acceptor that does not
// end (pending starts at one): the server's hello takes the first stream
// itself.
type acceptGate struct {
	// pending is the streams opened and not yet accepted, plus one while
	// an acceptor runs or the gate is held.
	pending atomic.Int64
	// start runs an acceptor; set by open, before the gate opens.
	start func()

	// The frame scanner; only the session's reader touches it.
	hdr      [yamuxHeaderSize]byte
	have     int    // bytes of hdr read so far
	skip     uint32 // bytes of a data frame's body still to pass
	startDue bool   // an acceptor is to start at the next read

	// Pings the peer asked for in the second since pingSince: yamux
	// answers each from a goroutine of its own that waits up to
	// WriteTimeout to send, so a flood from a peer that does not read is
	// a pile of goroutines. Over maxPings a second, pingFlood is set and
	// the session ends.
	pings     int
	pingSince time.Time
	pingFlood bool

	// Streams before the hello: on a server, helloOpen is set from the
	// connection's start until the server is about to answer the hello.
	// An honest client opens the hello's stream only until it has that
	// answer, so more SYNs meanwhile are a peer filling yamux's accept
	// backlog (each stream with its first window) before any bound
	// applies: earlyFlood is set and the session ends.
	helloOpen  atomic.Bool
	earlySYNs  int64
	earlyFlood atomic.Bool // read by the handshake too

	// own, once the peer is made, hears of the peer's FINs and RSTs on
	// the streams this node opened (pacing.go), from beforeRead: once
	// yamux has handled them.
	own    atomic.Pointer[ownStreams]
	closes []peerClose
}

// peerClose is a FIN or RST the peer sent on a stream.
type peerClose struct {
	id  uint32
	rst bool
}

// maxPings bounds the pings a peer may ask for in a second; restpipe
// pings once per KeepAliveInterval.
const maxPings = 64

// errPingFlood ends a session whose peer asks for more than maxPings
// pings a second.
var errPingFlood = fmt.Errorf("ping flood: the peer asked for more than %d pings in a second", maxPings)

// errStreamsBeforeHello ends a session whose peer opens streams besides
// the hello's before the server has answered the hello.
var errStreamsBeforeHello = errors.New("the peer opened streams before its hello was answered")

func newAcceptGate() *acceptGate {
	g := &acceptGate{}
	g.pending.Store(1)
	return g
}

// scan follows p, the next bytes the session reads, frame by frame (see
// the header layout in coalesce.go), and counts the streams opened.
func (g *acceptGate) scan(p []byte) {
	var syns int64
	pings := 0
	for len(p) > 0 {
		if g.skip > 0 {
			k := min(uint32(len(p)), g.skip)
			p, g.skip = p[k:], g.skip-k
			continue
		}
		k := copy(g.hdr[g.have:], p)
		p, g.have = p[k:], g.have+k
		if g.have < yamuxHeaderSize {
			break
		}
		g.have = 0
		typ, flags := g.hdr[1], binary.BigEndian.Uint16(g.hdr[2:4])
		if (typ == yamuxTypeData || typ == yamuxTypeWindow) && flags&yamuxFlagSYN != 0 {
			syns++
		}
		if typ == yamuxTypeData {
			g.skip = binary.BigEndian.Uint32(g.hdr[8:12])
		}
		if typ == yamuxTypePing && flags&yamuxFlagSYN != 0 {
			pings++
		}
		if (typ == yamuxTypeData || typ == yamuxTypeWindow) && flags&(yamuxFlagFIN|yamuxFlagRST) != 0 {
			if own := g.own.Load(); own != nil {
				if id := binary.BigEndian.Uint32(g.hdr[4:8]); own.mine(id) && len(g.closes) < maxScanCloses {
					g.closes = append(g.closes, peerClose{id: id, rst: flags&yamuxFlagRST != 0})
				}
			}
		}
	}
	if pings > 0 {
		g.countPings(pings)
	}
	if syns > 0 && g.helloOpen.Load() {
		if g.earlySYNs += syns; g.earlySYNs > 1 {
			g.earlyFlood.Store(true)
		}
	}
	if syns > 0 && g.pending.Add(syns) == syns {
		g.startDue = true
	}
}

// maxScanCloses bounds the FINs and RSTs kept from one read until the
// next: yamux reads headers through a 4 KiB buffer, 341 frames at most;
// beyond the bound only this node's own slots are lost.
const maxScanCloses = 4096

// countPings adds n ping requests to the second under way.
func (g *acceptGate) countPings(n int) {
	if now := time.Now(); now.Sub(g.pingSince) >= time.Second {
		g.pingSince, g.pings = now, 0
	}
	g.pings += n
	if g.pings > maxPings {
		g.pingFlood = true
	}
}

// beforeRead reports the peer's FINs and RSTs that scan saw and starts
// the acceptor that scan found due, now that yamux has handled the bytes
// scan saw and asks for more: the streams are waiting
// in its accept queue, so the acceptor takes its first one without
// blocking, and it runs on this thread as soon as the reader waits.
func (g *acceptGate) beforeRead() {
	if len(g.closes) > 0 {
		own := g.own.Load()
		for _, c := range g.closes {
			own.peerClosed(c.id, c.rst)
		}
		g.closes = g.closes[:0]
	}
	if g.startDue {
		g.startDue = false
		g.start()
	}
}

// accepted counts a stream taken from the session and reports whether
// the acceptor that took it is done (nothing else is pending).
func (g *acceptGate) accepted() bool { return g.pending.Add(-1) == 0 }

// open sets how acceptors start and releases the gate: from now on the
// gate starts one whenever a stream comes, and at once if streams came
// while it was held.
func (g *acceptGate) open(start func()) {
	g.start = start
	if !g.accepted() {
		start()
	}
}
