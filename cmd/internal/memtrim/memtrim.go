// Package memtrim gives a quiet Go process's memory back to the OS after
// a burst of work has ended.
//
// The Go runtime collects garbage when the heap has grown by GOGC percent
// since the last collection, so a process that has just finished a burst
// (10,000 events in flight, each with its buffers and goroutine) and then
// allocates next to nothing runs no collection at all: the burst's memory
// stays in use until the runtime forces a collection, every 2 minutes,
// and only then does the background scavenger start to return it to the
// OS, a little at a time. A Trimmer looks at the runtime's figures every
// few seconds and, when the process is quiet (no collection since its
// last look) and either the work has fallen off (half the goroutines it
// saw at their peak are gone) or the heap has doubled since its last
// trim, collects (twice: sync.Pools keep what they hold for one
// collection) and calls debug.FreeOSMemory, which returns the free memory
// at once.
//
// Each trim needs a change since the previous one (goroutines halved from
// a peak, or the heap doubled), so a process that stays quiet is trimmed
// once, not every few seconds, and a busy one, which collects on its own,
// never. It is for a process's owner (a main package) to start: a library
// must not force collections behind its caller.
package memtrim

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Config configures a Trimmer. Start from DefaultConfig.
type Config struct {
	// Interval is how often the Trimmer looks at the runtime's figures. A
	// burst's memory is back within about two of them after the work
	// ended. Default 5 s.
	Interval time.Duration
	// MinHeap is the memory the heap holds (objects, the free space in
	// their spans, free spans not yet returned, goroutine stacks) below
	// which the Trimmer never trims: collecting a small heap gives back
	// too little to be worth it. Default 4 MiB.
	MinHeap uint64
	// MinDrop is how many goroutines must have ended since their peak, as
	// well as half of them, for the work to count as fallen off, so that
	// a process with a handful of goroutines is not trimmed as they come
	// and go. Default 64.
	MinDrop int
	// Logger gets a Debug line per trim with what it gave back. Default:
	// a logger that discards.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		Interval: 5 * time.Second,
		MinHeap:  4 << 20,
		MinDrop:  64,
		Logger:   slog.New(slog.DiscardHandler),
	}
}

// Trimmer watches the runtime and trims; see the package doc.
type Trimmer struct {
	cfg     Config
	samples []metrics.Sample
	state   state
	trim    func() // fullTrim; a test counts the calls
}

// New returns a Trimmer with cfg (zero fields from DefaultConfig).
func New(cfg Config) *Trimmer {
	d := DefaultConfig()
	if cfg.Interval <= 0 {
		cfg.Interval = d.Interval
	}
	if cfg.MinHeap == 0 {
		cfg.MinHeap = d.MinHeap
	}
	if cfg.MinDrop <= 0 {
		cfg.MinDrop = d.MinDrop
	}
	if cfg.Logger == nil {
		cfg.Logger = d.Logger
	}
	t := &Trimmer{cfg: cfg, trim: fullTrim}
	for _, name := range metricNames {
		t.samples = append(t.samples, metrics.Sample{Name: name})
	}
	return t
}

// The runtime/metrics read at each look (all there since Go 1.16).
var metricNames = []string{
	"/gc/cycles/total:gc-cycles",
	"/sched/goroutines:goroutines",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/stacks:bytes",
}

// Run looks every Interval until ctx ends.
func (t *Trimmer) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	t.Look()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.Look()
		}
	}
}

// Look reads the runtime's figures once, trims if it should, and reports
// whether it did. Run calls it every Interval; it is not safe for
// concurrent use.
func (t *Trimmer) Look() bool {
	s := t.read()
	if !t.state.decide(s, t.cfg) {
		return false
	}
	start := time.Now()
	t.trim()
	after := t.read()
	t.state.trimmed(s, after)
	t.cfg.Logger.Debug("memory trimmed after a burst",
		"heap_before", s.heap, "heap_after", after.heap,
		"goroutines", s.goroutines, "took", time.Since(start))
	return true
}

func (t *Trimmer) read() sample {
	metrics.Read(t.samples)
	u := func(i int) uint64 {
		if t.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0 // a metric this runtime does not have
		}
		return t.samples[i].Value.Uint64()
	}
	return sample{
		cycles:     u(0),
		goroutines: int(u(1)),
		heap:       u(2) + u(3) + u(4) + u(5),
	}
}

// sample is what one look sees.
type sample struct {
	cycles     uint64 // collections so far
	goroutines int
	heap       uint64 // bytes the heap holds and has not returned to the OS
}

// state is what a Trimmer remembers between looks.
type state struct {
	started bool
	cycles  uint64 // collections at the last look
	peak    int    // most goroutines seen at a look since the last trim decided
	floor   uint64 // heap right after the last trim (or at the first look)
}

// decide records s and reports whether to trim now.
func (st *state) decide(s sample, cfg Config) bool {
	if !st.started {
		*st = state{started: true, cycles: s.cycles, peak: s.goroutines, floor: s.heap}
		return false
	}
	quiet := s.cycles == st.cycles
	st.cycles = s.cycles
	st.peak = max(st.peak, s.goroutines)
	if !quiet || s.heap < cfg.MinHeap {
		// A process that collects returns its memory on its own.
		return false
	}
	drop := st.peak - s.goroutines
	fellOff := drop >= cfg.MinDrop && s.goroutines <= st.peak/2
	grew := s.heap > 2*st.floor
	return fellOff || grew
}

// trimmed records a trim: before is the look that decided it, after the
// figures right after it. The peak starts again from the goroutines the
// trim was decided at, not those after it: work that ended during the
// trim (its collection saw it live) still counts as fallen off.
func (st *state) trimmed(before, after sample) {
	st.cycles, st.peak, st.floor = after.cycles, before.goroutines, after.heap
}

// fullTrim collects twice and returns the free memory to the OS. A burst
// leaves its buffers in sync.Pools, which a collection only moves to
// their victim caches; the second collection frees them.
func fullTrim() {
	runtime.GC()
	debug.FreeOSMemory()
}
