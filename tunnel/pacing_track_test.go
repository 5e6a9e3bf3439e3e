package tunnel

import (
	"testing"

	"github.com/restpipe/restpipe/events"
)

// TestOwnStreamsFreed: a stream's slot comes back once both this node
// has closed it and the peer's FIN (or a RST) has been handled, in any
// order, including a FIN that came before the stream was tracked.
func TestOwnStreamsFreed(t *testing.T) {
	type step int
	const (
		track step = iota
		fin
		rst
		closeHere
	)
	for _, tc := range []struct {
		name  string
		steps []step
		freed []bool // after each step
	}{
		{"answered, then closed here", []step{track, fin, closeHere}, []bool{false, false, true}},
		{"closed here, then the peer's FIN", []step{track, closeHere, fin}, []bool{false, false, true}},
		{"refused before tracked", []step{fin, track, closeHere}, []bool{false, false, true}},
		{"reset before tracked", []step{rst, track, closeHere}, []bool{false, true, true}},
		{"reset while open", []step{track, rst, closeHere}, []bool{false, true, true}},
		{"reset after closed here", []step{track, closeHere, rst}, []bool{false, false, true}},
		{"closed twice", []step{track, closeHere, closeHere, fin}, []bool{false, false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			puts := 0
			own := newOwnStreams(true, func() { puts++ })
			slot := make(chan struct{}, 1)
			slot <- struct{}{}
			var s *ownStream
			for i, st := range tc.steps {
				switch st {
				case track:
					s = own.track(7, slot)
				case fin:
					own.peerClosed(7, false)
				case rst:
					own.peerClosed(7, true)
				case closeHere:
					s.closed()
				}
				if got := puts == 1; got != tc.freed[i] {
					t.Fatalf("after step %d: freed %v, want %v", i, got, tc.freed[i])
				}
				if puts > 1 {
					t.Fatalf("freed %d times", puts)
				}
			}
			if len(slot) != 0 || len(own.open) != 0 || len(own.early) != 0 {
				t.Errorf("slot %d, open %d, early %d: want all 0", len(slot), len(own.open), len(own.early))
			}
		})
	}
}

// TestOwnStreamsPeerOnly: FINs on the peer's own streams are not this
// node's business, and FINs for streams that never exist are bounded.
func TestOwnStreamsPeerOnly(t *testing.T) {
	own := newOwnStreams(false, func() {}) // a server: even ids
	for id := uint32(1); id < 10*maxEarly; id++ {
		own.peerClosed(id, false)
	}
	if len(own.early) != maxEarly {
		t.Errorf("early holds %d, want the bound %d", len(own.early), maxEarly)
	}
	for id := range own.early {
		if id%2 != 0 {
			t.Errorf("early holds the peer's stream %d", id)
		}
	}
}

// FuzzHelloMaxStreams: any hello is accepted or refused without a panic, and
// an accepted one announces a MaxStreams this node can pace to.
func FuzzHelloMaxStreams(f *testing.F) {
	f.Add("server", "v1.2.3", uint32(48))
	f.Add("c1", "", uint32(0))
	f.Add("x", "1", uint32(1<<16+1))
	f.Add("\x1b[2J", "v", uint32(1))
	f.Fuzz(func(t *testing.T, name, version string, maxStreams uint32) {
		h := &events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: name, SoftwareVersion: version, MaxStreams: maxStreams}
		if checkHello(h) != nil {
			return
		}
		if maxStreams > maxAnnouncedStreams {
			t.Errorf("accepted max streams %d", maxStreams)
		}
		if maxStreams == 0 {
			return
		}
		pc := newPacer(int(maxStreams), true) // a client's: one slot for its relay
		total := cap(pc.events)
		if pc.relay != pc.events {
			total += cap(pc.relay)
		}
		if total != int(maxStreams) || cap(pc.events) == 0 {
			t.Errorf("pacer for %d: %d event slots, %d in all", maxStreams, cap(pc.events), total)
		}
	})
}
