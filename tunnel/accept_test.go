package tunnel

import (
	"bytes"
	"testing"
)

func TestAcceptGateScan(t *testing.T) {
	body := bytes.Repeat(flagged(yamuxTypeWindow, yamuxFlagSYN, 0), 3) // looks like SYNs, is data
	stream := cat(
		flagged(yamuxTypeWindow, yamuxFlagSYN, 256<<10), // opens a stream
		flagged(yamuxTypeData, 0, uint32(len(body))), body,
		flagged(yamuxTypeData, yamuxFlagSYN, 5), []byte("hello"), // opens one, with data
		flagged(yamuxTypeWindow, yamuxFlagACK, 0),
		header(2, 9),                              // ping
		flagged(yamuxTypeData, yamuxFlagFIN, 0),   // empty data frame
		flagged(yamuxTypeWindow, yamuxFlagSYN, 0), // opens one
		flagged(yamuxTypeData, 0, 4), []byte("tail"),
	)
	const want = 3
	// The same bytes, cut into reads of every size: the count must not
	// depend on where the reads fall.
	for size := 1; size <= len(stream); size++ {
		g := newAcceptGate()
		starts := 0
		g.open(func() { starts++ })
		for p := stream; len(p) > 0; {
			n := min(size, len(p))
			g.beforeRead()
			g.scan(p[:n])
			p = p[n:]
		}
		g.beforeRead()
		if got := g.pending.Load(); got != want {
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

func TestAcceptGateStartsOnePerBusySpell(t *testing.T) {
	g := newAcceptGate()
	starts := 0
	syn := flagged(yamuxTypeWindow, yamuxFlagSYN, 0)
	g.open(func() { starts++ })
	if starts != 0 {
		t.Fatal("acceptor started with nothing pending")
	}
	g.scan(cat(syn, syn))
	if starts != 0 {
		t.Fatal("acceptor started before yamux has handled the frames (at the next read)")
	}
	g.beforeRead()
	g.scan(syn)
	g.beforeRead()
	if starts != 1 {
		t.Fatalf("%d acceptors for one busy spell, want 1", starts)
	}
	if g.accepted() || g.accepted() {
		t.Fatal("acceptor told it is done with a stream still pending")
	}
	if !g.accepted() {
		t.Fatal("acceptor not told it is done after the last stream")
	}
	g.scan(syn)
	g.beforeRead()
	if starts != 2 {
		t.Fatalf("no new acceptor for a stream after an idle spell (%d starts)", starts)
	}

	// Streams that come while the gate is held (the hello) start an
	// acceptor when it opens.
	g = newAcceptGate()
	g.scan(cat(syn, syn))
	g.accepted() // the hello
	starts = 0
	g.open(func() { starts++ })
	if starts != 1 {
		t.Fatalf("%d acceptors for a stream that came during the hello, want 1", starts)
	}
}

// FuzzAcceptGateScan feeds the gate what a peer may send, cut into reads
// at arbitrary places: it must not panic, and it must count the same
// streams as a reading of the whole at once, frame by frame.
func FuzzAcceptGateScan(f *testing.F) {
	syn := flagged(yamuxTypeWindow, yamuxFlagSYN, 0)
	f.Add(cat(syn, flagged(yamuxTypeData, yamuxFlagSYN, 3), []byte("abc"), header(2, 1)), uint8(5))
	f.Add(cat(flagged(yamuxTypeData, 0, 1<<31), syn), uint8(1))
	f.Add([]byte{0, 0, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, stream []byte, cut uint8) {
		// The reference: whole frames, read in one go.
		var want int64
		for p := stream; len(p) >= yamuxHeaderSize; {
			h := p[:yamuxHeaderSize]
			p = p[yamuxHeaderSize:]
			typ, flags := h[1], uint16(h[2])<<8|uint16(h[3])
			if (typ == yamuxTypeData || typ == yamuxTypeWindow) && flags&yamuxFlagSYN != 0 {
				want++
			}
			if typ == yamuxTypeData {
				n := uint64(h[8])<<24 | uint64(h[9])<<16 | uint64(h[10])<<8 | uint64(h[11])
				if n >= uint64(len(p)) {
					break
				}
				p = p[n:]
			}
		}
		g := newAcceptGate()
		g.open(func() {})
		size := int(cut)%64 + 1
		for p := stream; len(p) > 0; {
			n := min(size, len(p))
			g.scan(p[:n])
			p = p[n:]
		}
		if got := g.pending.Load(); got != want {
			t.Fatalf("reads of %d bytes: %d streams counted, want %d", size, got, want)
		}
	})
}
