package main

// Measurement 6: a burst of small events in flight. N callers each POST a
// small body to /server/hold on a client node's front end, on N
// connections of their own; the server's post_hold handler holds every
// event until the server node is told "release" on its stdin. The memory
// each node holds per event in flight, after a collection, is what a
// burst costs; the time until the heap is back near idle after the
// release is what it leaves behind.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// holdBody is what post_hold answers once released.
const holdBody = `{"released":true}`

// holder is the server node's post_hold handler: it holds each event
// until release.
type holder struct {
	held atomic.Int64 // events held now

	mu      sync.Mutex
	release chan struct{} // closed by releaseAll
}

func newHolder() *holder { return &holder{release: make(chan struct{})} }

func (h *holder) register(reg *handlers.Registry) {
	reg.MustHandle("post_hold", func(ctx context.Context, req *handlers.Request) (any, error) {
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return nil, err
		}
		h.mu.Lock()
		release := h.release
		h.mu.Unlock()
		h.held.Add(1)
		defer h.held.Add(-1)
		select {
		case <-release:
			return map[string]bool{"released": true}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}

// releaseAll answers every event held, and holds the next ones again.
func (h *holder) releaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.release)
	h.release = make(chan struct{})
}

// heldCount is the count /stats reports; 0 for a node without a holder.
func (h *holder) heldCount() int64 {
	if h == nil {
		return 0
	}
	return h.held.Load()
}

// applyLimits sets the stream limits the node was given (-max-streams,
// -accept-backlog) on cfg; 0 leaves the default.
func (nc nodeConfig) applyLimits(cfg *tunnel.Config) {
	if nc.maxStreams > 0 {
		cfg.MaxStreams = nc.maxStreams
	}
	if nc.acceptBacklog > 0 {
		cfg.AcceptBacklog = nc.acceptBacklog
	}
}

// burstSpare is how many streams over the burst's size the nodes allow.
const burstSpare = 64

// burstDials bounds the connections the bench dials at once, under the
// kernel's listen backlog (somaxconn, 4096 on Linux), so that no SYN is
// dropped and retried a second later.
const burstDials = 128

// burst is measurement 6.
func (b *bench) burst(ctx context.Context) error {
	defer b.fleet.stopAll()
	n := b.opt.burst
	// A little over n: a client's own streams (its channel relay) count
	// too, and the warm-up's may not all be closed yet.
	streams := min(n+burstSpare, 65536)
	limits := []string{"-max-streams", strconv.Itoa(streams), "-accept-backlog", strconv.Itoa(streams)}
	srv, err := b.fleet.start(ctx, "server", roleServer, append([]string{"-dir", b.dir}, limits...)...)
	if err != nil {
		return err
	}
	cl, err := b.fleet.start(ctx, "client", roleClients, append([]string{"-dir", b.dir, "-n", "1", "-frontend",
		"-server", srv.ready.Tunnel, "-reconnect-max", b.opt.reconnectMax.String()}, limits...)...)
	if err != nil {
		return err
	}
	if err := cl.send("start"); err != nil {
		return err
	}
	if _, got, err := waitConnected(ctx, srv, 1, 30*time.Second); err != nil || got != 1 {
		return srv.errorf("client did not connect: %v", err)
	}
	addr := cl.ready.HTTP

	// Warm up: the pools and the sessions' first buffers are not the
	// events' cost.
	if _, err := b.holdBurst(ctx, srv, addr, min(n, 64)); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	idle, err := gcStats(ctx, srv, cl)
	if err != nil {
		return err
	}

	start := time.Now()
	calls, err := b.holdAll(ctx, srv, addr, n)
	if err != nil {
		return err
	}
	inFlight := time.Since(start)
	during, err := gcStats(ctx, srv, cl)
	if err != nil {
		calls.abort()
		return err
	}
	b.progress("burst     %d events in flight after %s; server heap+stacks %s -> %s, client %s -> %s",
		n, fmtDur(inFlight), fmtBytes64(idle[0].heapStacks()), fmtBytes64(during[0].heapStacks()),
		fmtBytes64(idle[1].heapStacks()), fmtBytes64(during[1].heapStacks()))
	if err := srv.send("release"); err != nil {
		calls.abort()
		return err
	}
	released := time.Now()
	back, err := waitBack(ctx, idle, during, released, calls.done, srv, cl)
	if err != nil {
		calls.abort()
		return err
	}
	ok, firstErr := calls.wait()
	answered := calls.end.Sub(released)
	b.progress("burst     %d of %d answered 200 %s after the release; back within 2x of idle: server heap %s RSS %s, client heap %s RSS %s",
		ok, n, fmtDur(answered), back[0].heap, back[0].rss, back[1].heap, back[1].rss)

	sec := fmt.Sprintf("6. burst: %d small events in flight (POST /server/hold, held until released; -max-streams and -accept-backlog %d on both nodes)", n, streams)
	ans := row{Section: sec, Name: "events answered 200 with their body", Value: float64(ok), Unit: "events",
		Shown: fmt.Sprintf("%d of %d", ok, n), Target: "all", Met: met(ok == n)}
	b.add(ans)
	if firstErr != nil {
		b.note("burst: %d of %d events failed (first: %v)", n-ok, n, firstErr)
	}
	for i, name := range []string{"server", "client"} {
		perHeap := float64(during[i].heapStacks()-idle[i].heapStacks()) / 1024 / float64(n)
		b.add(row{Section: sec, Name: name + " node: heap in use + stacks per event in flight (after GC)", Value: perHeap, Unit: "KiB",
			Shown: fmtKiB(perHeap), Target: "<= 32 KiB", Met: met(perHeap <= 32)})
		rr := row{Section: sec, Name: name + " node: RSS per event in flight (after GC)", Unit: "KiB", Target: "<= 32 KiB"}
		if measured(idle[i].RSSKiB, during[i].RSSKiB) {
			rr.Value = float64(during[i].RSSKiB-idle[i].RSSKiB) / float64(n)
			rr.Shown, rr.Met = fmtKiB(rr.Value), met(rr.Value <= 32)
			b.add(rr)
		} else {
			b.add(unmeasured(rr, ""))
		}
		g := float64(during[i].Goroutines-idle[i].Goroutines) / float64(n)
		b.note("burst, %s node: idle heap in use %s, stacks %s, RSS %s; with %d in flight %s, %s, %s (%.1f goroutines per event; live heap %s per event)",
			name, fmtBytes64(idle[i].HeapInuse), fmtBytes64(idle[i].StackInuse), kib(idle[i].RSSKiB), n,
			fmtBytes64(during[i].HeapInuse), fmtBytes64(during[i].StackInuse), kib(during[i].RSSKiB), g,
			fmtKiB(float64(during[i].HeapAlloc-idle[i].HeapAlloc)/1024/float64(n)))
		bk := back[i]
		r := row{Section: sec, Name: name + " node: heap + stacks back within 2x of idle after the release (RSS)", Value: bk.heapTime.Seconds(),
			Unit: "s", Shown: bk.heap + " (RSS " + bk.rss + ")", Target: "<= 30 s", Met: met(bk.heapOK && bk.rssOK)}
		b.add(r)
		g9 := row{Section: sec, Name: name + " node: 9/10 of the burst's heap + stacks given back after the release", Value: bk.givenTime.Seconds(),
			Unit: "s", Shown: bk.given, Target: "<= 30 s", Met: met(bk.givenOK)}
		b.add(g9)
		// What stays: the runtime keeps the descriptor of every goroutine
		// it has made (about 0.5 KiB each, golang/go#9869), so a burst
		// leaves that much for each goroutine alive at its peak.
		keptHeap := (float64(bk.last.heapStacks()) - float64(idle[i].heapStacks())) / 1024 / float64(n)
		kr := row{Section: sec, Name: name + " node: left per event of the burst at the end, heap + stacks (RSS)", Value: keptHeap, Unit: "KiB",
			Shown: fmtKiB(keptHeap)}
		if measured(idle[i].RSSKiB, bk.last.RSSKiB) {
			kr.Shown += " (" + fmtKiB(float64(bk.last.RSSKiB-idle[i].RSSKiB)/float64(n)) + ")"
		}
		b.add(kr)
		b.note("burst, %s node, at the end (%s after the release): heap in use %s, stacks %s, RSS %s, %d goroutines",
			name, fmtDur(bk.lastAt), fmtBytes64(bk.last.HeapInuse), fmtBytes64(bk.last.StackInuse), kib(bk.last.RSSKiB), bk.last.Goroutines)
	}
	// The same burst again, on nodes that have had one: what the runtime
	// keeps from the first (its goroutine descriptors) is part of their
	// idle now, and a second burst must leave nothing more.
	idle2, err := gcStats(ctx, srv, cl)
	if err != nil {
		return err
	}
	calls2, err := b.holdAll(ctx, srv, addr, n)
	if err != nil {
		return err
	}
	during2, err := gcStats(ctx, srv, cl)
	if err != nil {
		calls2.abort()
		return err
	}
	if err := srv.send("release"); err != nil {
		calls2.abort()
		return err
	}
	back2, err := waitBack(ctx, idle2, during2, time.Now(), calls2.done, srv, cl)
	if err != nil {
		calls2.abort()
		return err
	}
	ok2, firstErr2 := calls2.wait()
	if firstErr2 != nil {
		b.note("burst, second: %d of %d events failed (first: %v)", n-ok2, n, firstErr2)
	}
	for i, name := range []string{"server", "client"} {
		bk := back2[i]
		b.add(row{Section: sec, Name: name + " node, second burst: heap + stacks back within 2x of idle after the first (RSS)", Value: bk.heapTime.Seconds(),
			Unit: "s", Shown: bk.heap + " (RSS " + bk.rss + ")", Target: "<= 30 s", Met: met(bk.heapOK && bk.rssOK && ok2 == n)})
		left := (float64(bk.last.heapStacks()) - float64(idle2[i].heapStacks())) / 1024 / float64(n)
		b.add(row{Section: sec, Name: name + " node, second burst: left per event at the end, heap + stacks", Value: left, Unit: "KiB",
			Shown: fmtKiB(left), Target: "<= 0.5 KiB", Met: met(left <= 0.5)})
		b.note("burst, %s node, second burst: idle after the first %s of heap + stacks, at the end %s",
			name, fmtBytes64(idle2[i].heapStacks()), fmtBytes64(bk.last.heapStacks()))
	}
	if (!back[0].heapOK && back[0].givenOK) || (!back[1].heapOK && back[1].givenOK) {
		b.note("burst: what a burst leaves (the \"left per event\" rows) is mostly the Go runtime's goroutine descriptors, " +
			"about 0.5 KiB for each goroutine alive at the burst's peak (2 per event in flight on each node, more as they end), " +
			"which the runtime keeps for good (golang/go#9869): with an idle heap of a few MiB, within 2x of idle leaves no room for them")
	}
	b.note("burst: memory per event is (figure with %d in flight - idle figure) / %d, both after debug.FreeOSMemory (twice) in the node; "+
		"after the release the nodes' /stats are read once a second without it (the nodes trim their own memory, as restpipe does: cmd/internal/memtrim)", n, n)
	return nil
}

// heapStacks is the heap in use and the goroutine stacks.
func (s nodeStats) heapStacks() uint64 { return s.HeapInuse + s.StackInuse }

func fmtBytes64(n uint64) string { return fmtKiB(float64(n) / 1024) }

// gcStats asks each node for its stats after debug.FreeOSMemory, twice:
// the buffers the sync.Pools hold outlive one collection (in their victim
// caches), and would count in one figure and not in the other.
func gcStats(ctx context.Context, nodes ...*child) ([]nodeStats, error) {
	out := make([]nodeStats, len(nodes))
	for i, c := range nodes {
		if _, err := c.stats(ctx, true); err != nil {
			return nil, err
		}
		st, err := c.stats(ctx, true)
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

// holdCalls are callers of post_hold in flight.
type holdCalls struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when every call has ended
	end    time.Time     // when they had, set before done is closed
	ok     atomic.Int64
	errc   chan error // the first error
}

func (h *holdCalls) abort() { h.cancel(); <-h.done }

// wait waits for every call to end, and returns how many were answered
// 200 with holdBody and the first error.
func (h *holdCalls) wait() (int, error) {
	<-h.done
	select {
	case err := <-h.errc:
		return int(h.ok.Load()), err
	default:
		return int(h.ok.Load()), nil
	}
}

// holdAll starts n callers of POST /server/hold on the front end at addr,
// each on a connection of its own, and returns once the server holds
// them all.
func (b *bench) holdAll(ctx context.Context, srv *child, addr string, n int) (*holdCalls, error) {
	cctx, cancel := context.WithCancel(ctx)
	h := &holdCalls{cancel: cancel, done: make(chan struct{}), errc: make(chan error, 1)}
	dials := make(chan struct{}, burstDials)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := holdCall(cctx, addr, dials); err != nil {
				select {
				case h.errc <- err:
				default:
				}
				return
			}
			h.ok.Add(1)
		}()
	}
	go func() { wg.Wait(); h.end = time.Now(); close(h.done) }()
	began := time.Now()
	deadline := began.Add(60*time.Second + time.Duration(n)*5*time.Millisecond)
	for {
		st, err := srv.stats(ctx, false)
		if err != nil {
			h.abort()
			return nil, err
		}
		if st.Held >= int64(n) {
			return h, nil
		}
		if time.Now().After(deadline) {
			h.abort()
			return nil, srv.errorf("%d of %d events held after %v", st.Held, n, time.Since(began).Round(time.Millisecond))
		}
		select {
		case err := <-h.errc:
			h.abort()
			return nil, fmt.Errorf("%d of %d events held when one failed: %w", st.Held, n, err)
		case <-srv.exited:
			h.abort()
			return nil, srv.errorf("server node exited")
		case <-ctx.Done():
			h.abort()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// holdBurst holds n events, releases them, and checks their answers.
func (b *bench) holdBurst(ctx context.Context, srv *child, addr string, n int) (int, error) {
	calls, err := b.holdAll(ctx, srv, addr, n)
	if err != nil {
		return 0, err
	}
	if err := srv.send("release"); err != nil {
		calls.abort()
		return 0, err
	}
	ok, err := calls.wait()
	if err == nil && ok != n {
		err = fmt.Errorf("%d of %d events answered", ok, n)
	}
	return ok, err
}

// holdCall POSTs a small body to /server/hold on a connection of its
// own (dialled while holding a slot of dials), and checks that the
// answer is 200 with holdBody.
func holdCall(ctx context.Context, addr string, dials chan struct{}) error {
	select {
	case dials <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", addr)
	<-dials
	if err != nil {
		return fmt.Errorf("dial front end %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	const body = `{"small":"event"}`
	req := "POST /server/hold HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" + tunnel.HeaderTimeout + ": 10m\r\nConnection: close\r\n\r\n" + body
	if _, err := io.WriteString(conn, req); err != nil {
		return fmt.Errorf("POST /server/hold: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil {
		return fmt.Errorf("POST /server/hold: %w", err)
	}
	got, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("POST /server/hold: read the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(got)) != holdBody {
		return fmt.Errorf("POST /server/hold: %s %q, want 200 %s", resp.Status, got, holdBody)
	}
	return nil
}

// backAt is how long a node's memory took to come back within 2x of
// idle after the release: shown as a duration, or "> 30 s".
type backAt struct {
	heap, rss     string
	heapTime      time.Duration
	heapOK, rssOK bool
	// given: when heap + stacks were back to idle plus a tenth of what
	// the burst added: nine tenths of it given back.
	given     string
	givenTime time.Duration
	givenOK   bool
	last      nodeStats // the last figures read
	lastAt    time.Duration
}

// burstBackWithin is how long waitBack watches the nodes after the
// release.
const burstBackWithin = 30 * time.Second

// waitBack reads each node's stats (no collection) once a second from
// released, until its heap in use + stacks and its RSS are at most twice
// idle, and its heap + stacks at most idle plus a tenth of what the burst
// added (during), and the calls are done (done closed), or for
// burstBackWithin.
func waitBack(ctx context.Context, idle, during []nodeStats, released time.Time, done <-chan struct{}, nodes ...*child) ([]backAt, error) {
	out := make([]backAt, len(nodes))
	for i := range out {
		out[i].heap, out[i].rss = "> 30 s", "> 30 s"
		out[i].given = "> 30 s"
		if !measured(idle[i].RSSKiB) {
			out[i].rss, out[i].rssOK = "n/a", true
		}
	}
	// tenth is idle plus a tenth of what the burst added.
	tenth := func(idle, during int64) int64 { return idle + max(during-idle, 0)/10 }
	for tick := time.Duration(0); tick <= burstBackWithin; tick += time.Second {
		select {
		case <-time.After(time.Until(released.Add(tick))):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		all := true
		for i, c := range nodes {
			st, err := c.stats(ctx, false)
			if err != nil {
				return nil, err
			}
			since := time.Since(released)
			out[i].last, out[i].lastAt = st, since
			if !out[i].heapOK && st.heapStacks() <= 2*idle[i].heapStacks() {
				out[i].heapOK, out[i].heapTime, out[i].heap = true, since, fmtDur(since)
			}
			if !out[i].rssOK && st.RSSKiB <= 2*idle[i].RSSKiB {
				out[i].rssOK, out[i].rss = true, fmtDur(since)
			}
			if !out[i].givenOK && int64(st.heapStacks()) <= tenth(int64(idle[i].heapStacks()), int64(during[i].heapStacks())) {
				out[i].givenOK, out[i].givenTime, out[i].given = true, since, fmtDur(since)
			}
			all = all && out[i].heapOK && out[i].rssOK && out[i].givenOK
		}
		select {
		case <-done:
			if all {
				return out, nil
			}
		default:
		}
	}
	for i := range out {
		if !out[i].heapOK {
			out[i].heapTime = burstBackWithin
		}
		if !out[i].givenOK {
			out[i].givenTime = burstBackWithin
		}
	}
	return out, nil
}
