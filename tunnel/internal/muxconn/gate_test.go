package muxconn

import (
	"bytes"
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

func TestGateScan(t *testing.T) {
	body := bytes.Repeat(flagged(typeWindow, flagSYN, 0), 3) // looks like SYNs, is data
	stream := cat(
		flagged(typeWindow, flagSYN, 256<<10), // opens a stream
		flagged(typeData, 0, uint32(len(body))), body,
		flagged(typeData, flagSYN, 5), []byte("hello"), // opens one, with data
		flagged(typeWindow, flagACK, 0),
		plain(2, 9),                     // ping
		flagged(typeData, flagFIN, 0),   // empty data frame
		flagged(typeWindow, flagSYN, 0), // opens one
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
	syn := flagged(typeWindow, flagSYN, 0)
	g := opened(&starts)
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
	if g.took(7) || g.took(7) {
		t.Fatal("acceptor told it is done with a stream still pending")
	}
	if !g.took(7) {
		t.Fatal("acceptor not told it is done after the last stream")
	}
	g.scan(syn)
	g.beforeRead()
	if starts != 2 {
		t.Fatalf("no new acceptor for a stream after an idle spell (%d starts)", starts)
	}

	// Streams that come while the gate is held (the hello) start an
	// acceptor when it opens.
	g = newGate(func(uint32) bool { return false })
	g.start = func() { starts++ }
	g.scan(cat(syn, syn))
	g.took(7) // the hello
	starts = 0
	g.serve(nil)
	if starts != 1 {
		t.Fatalf("%d acceptors for a stream that came during the hello, want 1", starts)
	}
}

// FuzzGateScan feeds the gate what a peer may send, cut into reads
// at arbitrary places: it must not panic, and it must count the same
// streams as a reading of the whole at once, frame by frame.
func FuzzGateScan(f *testing.F) {
	syn := flagged(typeWindow, flagSYN, 0)
	f.Add(cat(syn, flagged(typeData, flagSYN, 3), []byte("abc"), plain(2, 1)), uint8(5))
	f.Add(cat(flagged(typeData, 0, 1<<31), syn), uint8(1))
	f.Add([]byte{0, 0, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, stream []byte, cut uint8) {
		// The reference: whole frames, read in one go.
		var want int
		for p := stream; len(p) >= headerSize; {
			h := p[:headerSize]
			p = p[headerSize:]
			typ, flags := h[1], uint16(h[2])<<8|uint16(h[3])
			if (typ == typeData || typ == typeWindow) && flags&flagSYN != 0 {
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
		for p := stream; len(p) > 0; {
			n := min(size, len(p))
			g.scan(p[:n])
			p = p[n:]
		}
		if got, _ := g.counts(); got != want {
			t.Fatalf("reads of %d bytes: %d streams counted, want %d", size, got, want)
		}
	})
}
