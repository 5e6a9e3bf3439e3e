package memtrim

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestDecide: when a look trims, and that a quiet process is trimmed once
// per change, not at every look.
func TestDecide(t *testing.T) {
	cfg := DefaultConfig()
	const mib = 1 << 20
	type look struct {
		s    sample
		trim bool
	}
	for _, tc := range []struct {
		name  string
		looks []look
	}{
		{"first look only records", []look{
			{sample{cycles: 5, goroutines: 10000, heap: 900 * mib}, false},
		}},
		{"burst held then released: trimmed when quiet, and again when the goroutines go", []look{
			{sample{cycles: 1, goroutines: 20, heap: 8 * mib}, false},
			{sample{cycles: 9, goroutines: 20020, heap: 300 * mib}, false}, // collecting: busy
			{sample{cycles: 9, goroutines: 20020, heap: 300 * mib}, true},  // quiet, heap grew
			{sample{cycles: 10, goroutines: 20020, heap: 290 * mib}, false},
			{sample{cycles: 10, goroutines: 20020, heap: 290 * mib}, false}, // quiet, nothing changed
			{sample{cycles: 10, goroutines: 25, heap: 295 * mib}, true},     // released
			{sample{cycles: 11, goroutines: 25, heap: 9 * mib}, false},
			{sample{cycles: 11, goroutines: 25, heap: 9 * mib}, false},
		}},
		{"short burst between looks: the heap doubled", []look{
			{sample{cycles: 1, goroutines: 20, heap: 8 * mib}, false},
			{sample{cycles: 4, goroutines: 22, heap: 200 * mib}, false},
			{sample{cycles: 4, goroutines: 22, heap: 200 * mib}, true},
			{sample{cycles: 5, goroutines: 22, heap: 8 * mib}, false},
			{sample{cycles: 5, goroutines: 22, heap: 8 * mib}, false},
		}},
		{"busy process that collects is left alone", []look{
			{sample{cycles: 1, goroutines: 20000, heap: 8 * mib}, false},
			{sample{cycles: 3, goroutines: 20, heap: 400 * mib}, false},
			{sample{cycles: 7, goroutines: 20, heap: 400 * mib}, false},
		}},
		{"work that ends during the trim still counts as fallen off", []look{
			{sample{cycles: 1, goroutines: 20, heap: 8 * mib}, false},
			{sample{cycles: 6, goroutines: 1020, heap: 70 * mib}, false},
			{sample{cycles: 6, goroutines: 1020, heap: 70 * mib}, true},
			{sample{cycles: 8, goroutines: 20, heap: 70 * mib}, true}, // right after it: ended meanwhile
			{sample{cycles: 10, goroutines: 20, heap: 8 * mib}, false},
		}},
		{"small heap is never trimmed", []look{
			{sample{cycles: 1, goroutines: 2000, heap: 1 * mib}, false},
			{sample{cycles: 1, goroutines: 20, heap: 3 * mib}, false},
		}},
		{"a few goroutines coming and going are not a burst", []look{
			{sample{cycles: 1, goroutines: 60, heap: 8 * mib}, false},
			{sample{cycles: 1, goroutines: 5, heap: 10 * mib}, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st state
			for i, l := range tc.looks {
				got := st.decide(l.s, cfg)
				if got != l.trim {
					t.Fatalf("look %d (%+v): trim %v, want %v", i, l.s, got, l.trim)
				}
				if got {
					st.trimmed(l.s, tc.looks[i+1].s)
				}
			}
		})
	}
}

// burst holds n buffers of size bytes, each in a goroutine of its own,
// as n events in flight would; release ends them and waits until they
// have. Each puts its buffer in a sync.Pool as it ends, as the tunnel's
// events do with theirs.
func burst(n, size int) (release func()) {
	pool := &sync.Pool{}
	var ready, done sync.WaitGroup
	stop := make(chan struct{})
	for range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			buf := make([]byte, size)
			for i := range buf {
				buf[i] = 1 // touched: resident
			}
			ready.Done()
			<-stop
			pool.Put(&buf)
		}()
	}
	ready.Wait()
	return func() { close(stop); done.Wait() }
}

func heapAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestTrimAfterBurst: 1,000 goroutines holding 64 KiB each end, in a
// process that then allocates nothing, and leave their buffers in a
// sync.Pool. The runtime would keep their 64 MiB until its 2-minute
// forced collection (and the pool's until the one after); the Trimmer's
// next look gives it back. Each look is called by hand: no timing.
func TestTrimAfterBurst(t *testing.T) {
	tr := New(Config{})
	trims := 0
	tr.trim = func() { trims++; fullTrim() }
	tr.Look()
	release := burst(1000, 64<<10)
	// Collections ran while the burst grew; the first quiet look trims
	// (the heap grew), later ones while it is held do not.
	for i := 0; i < 3 && trims == 0; i++ {
		tr.Look()
	}
	if trims != 1 {
		t.Fatalf("%d trims while the burst is held, want 1", trims)
	}
	if tr.Look() || tr.Look() {
		t.Fatal("trimmed again with nothing changed")
	}
	release()
	held := heapAlloc()
	if held < 48<<20 {
		t.Fatalf("heap %d MiB after the burst ended, before any trim: the runtime collected on its own, the test shows nothing", held>>20)
	}
	for i := 0; i < 3 && trims == 1; i++ {
		tr.Look()
	}
	if got := heapAlloc(); trims != 2 || got > 16<<20 {
		t.Fatalf("after the burst ended: %d trims (want 2), heap %d MiB -> %d MiB (want <= 16)", trims, held>>20, got>>20)
	}
}

// TestRunTrims: Run, as a main package starts it, gives a burst's memory
// back within a few looks of its end.
func TestRunTrims(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := New(Config{Interval: 20 * time.Millisecond})
	// Its first look, before the burst, as at a process's start (Run's
	// goroutine may first run after it).
	tr.Look()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Run(ctx)
	}()
	burst(1000, 64<<10)()
	deadline := time.Now().Add(5 * time.Second)
	for heapAlloc() > 16<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("heap still %d MiB 5 s after the burst ended", heapAlloc()>>20)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}
