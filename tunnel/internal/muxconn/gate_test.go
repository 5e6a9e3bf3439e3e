package muxconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// opened is a gate released with its acceptors counted in starts, not
// run.
func opened(starts *int) *gate {
	g := newGate(func(uint32) bool { return false })
	g.start = func() { *starts++ }
	g.serve(nil)
	return g
}

// onStream is a frame header on stream id.
func onStream(typ byte, flags uint16, id, length uint32) []byte {
	h := flagged(typ, flags, length)
	binary.BigEndian.PutUint32(h[4:8], id)
	return h
}

// synner returns the SYNs a peer opens its streams with, in turn.
func synner() func() []byte {
	id := uint32(1)
	return func() []byte {
		id += 2
		return onStream(typeWindow, flagSYN, id, 0)
	}
}

func TestGateScan(t *testing.T) {
	body := bytes.Repeat(flagged(typeWindow, flagSYN, 0), 3) // looks like SYNs, is data
	stream := cat(
		onStream(typeWindow, flagSYN, 1, 256<<10), // opens a stream
		flagged(typeData, 0, uint32(len(body))), body,
		onStream(typeData, flagSYN, 3, 5), []byte("hello"), // opens one, with data
		flagged(typeWindow, flagACK, 0),
		plain(2, 9),                         // ping
		flagged(typeData, flagFIN, 0),       // empty data frame
		onStream(typeWindow, flagSYN, 5, 0), // opens one
		flagged(typeData, 0, 4), []byte("tail"),
	)
	const want = 3
	// The same bytes, cut into reads of every size: the count must not
	// depend on where the reads fall.
	for size := 1; size <= len(stream); size++ {
		starts := 0
		g := opened(&starts)
		for p := stream; len(p) > 0; {
			n := min(size, len(p))
			g.beforeRead()
			if err := g.scan(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		g.beforeRead()
		if got, _ := g.counts(); got != want {
			t.Fatalf("reads of %d bytes: %d streams pending, want %d", size, got, want)
		}
		if starts != 1 {
			t.Fatalf("reads of %d bytes: %d acceptors started, want 1 (nothing was accepted)", size, starts)
		}
		if g.have != 0 || g.skip != 0 {
			t.Fatalf("reads of %d bytes: scanner not at a frame boundary at the end (have %d, skip %d)", size, g.have, g.skip)
		}
	}
}

func TestGateStartsOnePerBusySpell(t *testing.T) {
	starts := 0
	syn := synner()
	g := opened(&starts)
	if starts != 0 {
		t.Fatal("acceptor started with nothing pending")
	}
	g.scan(cat(syn(), syn()))
	if starts != 0 {
		t.Fatal("acceptor started before yamux has handled the frames (at the next read)")
	}
	g.beforeRead()
	g.scan(syn())
	g.beforeRead()
	if starts != 1 {
		t.Fatalf("%d acceptors for one busy spell, want 1", starts)
	}
	if g.took(7) || g.took(7) {
		t.Fatal("acceptor told it is done with a stream still pending")
	}
	if !g.took(7) {
		t.Fatal("acceptor not told it is done after the last stream")
	}
	g.scan(syn())
	g.beforeRead()
	if starts != 2 {
		t.Fatalf("no new acceptor for a stream after an idle spell (%d starts)", starts)
	}

	// Streams that come while the gate is held (the hello) start an
	// acceptor when it opens.
	g = newGate(func(uint32) bool { return false })
	g.start = func() { starts++ }
	syn = synner()
	g.scan(cat(syn(), syn()))
	g.took(7) // the hello
	starts = 0
	g.serve(nil)
	if starts != 1 {
		t.Fatalf("%d acceptors for a stream that came during the hello, want 1", starts)
	}
}

// FuzzGateScan feeds the gate what a peer may send, cut into reads
// at arbitrary places: it must not panic, and it must count the same
// streams as a reading of the whole at once, frame by frame, or end the
// session with ErrStreamID if the peer opens a stream with id 0 (not
// its own: the gate's own ids are none).
func FuzzGateScan(f *testing.F) {
	f.Add(cat(onStream(typeWindow, flagSYN, 1, 0), onStream(typeData, flagSYN, 3, 3), []byte("abc"), plain(2, 1)), uint8(5))
	f.Add(cat(flagged(typeData, 0, 1<<31), onStream(typeWindow, flagSYN, 1, 0)), uint8(1))
	f.Add(cat(onStream(typeWindow, flagSYN, 5, 0), onStream(typeWindow, flagSYN, 5, 0)), uint8(3))
	f.Add(cat(onStream(typeWindow, flagSYN, 5, 0), onStream(typeData, flagSYN, 0, 1), []byte("x")), uint8(7))
	f.Add([]byte{0, 0, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, stream []byte, cut uint8) {
		// The reference: whole frames, read in one go.
		var want int
		outOfTurn := false
		for p := stream; len(p) >= headerSize && !outOfTurn; {
			h := p[:headerSize]
			p = p[headerSize:]
			typ, flags := h[1], uint16(h[2])<<8|uint16(h[3])
			if (typ == typeData || typ == typeWindow) && flags&flagSYN != 0 {
				id := binary.BigEndian.Uint32(h[4:8])
				if id == 0 {
					outOfTurn = true
				}
				want++
			}
			if typ == typeData {
				n := uint64(h[8])<<24 | uint64(h[9])<<16 | uint64(h[10])<<8 | uint64(h[11])
				if n >= uint64(len(p)) {
					break
				}
				p = p[n:]
			}
		}
		starts := 0
		g := opened(&starts)
		size := int(cut)%64 + 1
		var err error
		for p := stream; len(p) > 0 && err == nil; {
			n := min(size, len(p))
			err = g.scan(p[:n])
			p = p[n:]
		}
		if errors.Is(err, ErrPingFlood) {
			return // more than MaxPings in the bytes: not this test's matter
		}
		if outOfTurn {
			if !errors.Is(err, ErrStreamID) {
				t.Fatalf("reads of %d bytes: a stream opened with id 0, scan says %v, want %v", size, err, ErrStreamID)
			}
			return
		}
		if err != nil {
			t.Fatalf("reads of %d bytes: %v", size, err)
		}
		if got, _ := g.counts(); got != want {
			t.Fatalf("reads of %d bytes: %d streams counted, want %d", size, got, want)
		}
	})
}
