package main

// Measurement 7: callers that read their replies slowly. A stream whose
// caller reads less than the tunnel could send holds data on its way at
// both nodes; the README says how much, and this measures it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/restpipe/restpipe/tunnel"
)

// slowRate is how fast each slow caller reads: 1000 bytes every 100 ms.
const (
	slowPiece = 1000
	slowTick  = 100 * time.Millisecond
)

// slowRecvBuffer is the socket receive buffer of a slow caller.
const slowRecvBuffer = 64 << 10

// slowReaders is measurement 7: -slow-streams callers GET a 1 GiB reply
// (get_blob on the server) through the client node's front end, each
// reading 10 KB/s; after -slow-for, each node's memory against the
// idle pair, per stream. The baseline is the same callers reading the
// same bytes from a plain net/http server: what their connections cost
// a process, tunnel or not.
func (b *bench) slowReaders(ctx context.Context) error {
	defer b.fleet.stopAll()
	n := b.opt.slowStreams
	// Room for every stream on each node: this measures memory, not the
	// stream bound (the default 48 would make the others wait).
	room := strconv.Itoa(max(2*n, 64))
	srv, cl, err := b.startPair(ctx, "-max-streams", room, "-accept-backlog", room)
	if err != nil {
		return err
	}
	base := "http://" + cl.ready.HTTP + "/server/blob//"
	// Warm up: one whole reply, so that pools and the session's buffers
	// are not counted as the streams' cost.
	if err := getAll(ctx, base+strconv.Itoa(4<<20)); err != nil {
		return fmt.Errorf("slow readers warm-up: %w", err)
	}
	idle, err := gcStats(ctx, srv, cl)
	if err != nil {
		return err
	}
	var during []nodeStats
	if err := b.slowCallers(ctx, base, func() (err error) {
		during, err = gcStats(ctx, srv, cl)
		return err
	}); err != nil {
		return err
	}

	direct, err := b.fleet.start(ctx, "direct", roleDirect)
	if err != nil {
		return err
	}
	dbase := "http://" + direct.ready.HTTP + "/server/blob//"
	if err := getAll(ctx, dbase+strconv.Itoa(4<<20)); err != nil {
		return fmt.Errorf("slow readers baseline warm-up: %w", err)
	}
	dIdle, err := direct.stats(ctx, true)
	if err != nil {
		return err
	}
	var dDuring nodeStats
	if err := b.slowCallers(ctx, dbase, func() (err error) {
		dDuring, err = direct.stats(ctx, true)
		return err
	}); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}

	window := float64(tunnel.DefaultConfig().StreamWindow) / 1024
	limit := window + 64 // KiB beyond the baseline
	sec := fmt.Sprintf("7. slow readers: %d callers reading a big reply at 10 KB/s, after %v", n, b.opt.slowFor)
	target := fmt.Sprintf("<= baseline + %s", fmtKiB(limit))
	perStream := func(st0, st nodeStats) float64 {
		return float64(int64(st.HeapInuse+st.StackInuse)-int64(st0.HeapInuse+st0.StackInuse)) / 1024 / float64(n)
	}
	dHeap := perStream(dIdle, dDuring)
	dRSS := float64(dDuring.RSSKiB-dIdle.RSSKiB) / float64(n)
	for i, name := range []string{"server", "client"} {
		st0, st := idle[i], during[i]
		b.note("slow readers, %s node: idle heap in use %s (live %s), stacks %s, %d goroutines; with %d streams %s (live %s), %s, %d goroutines",
			name, fmtBytes64(st0.HeapInuse), fmtBytes64(st0.HeapAlloc), fmtBytes64(st0.StackInuse), st0.Goroutines, n,
			fmtBytes64(st.HeapInuse), fmtBytes64(st.HeapAlloc), fmtBytes64(st.StackInuse), st.Goroutines)
		heap := perStream(idle[i], during[i])
		b.add(row{Section: sec, Name: name + " node heap and stacks per stream", Value: heap, Unit: "KiB", Shown: fmtKiB(heap),
			Baseline: "plain net/http " + fmtKiB(dHeap), Base: dHeap, Ratio: heap / dHeap, Target: target, Met: met(heap-dHeap <= limit)})
		r := row{Section: sec, Name: name + " node RSS per stream", Unit: "KiB", Target: target}
		if !measured(idle[i].RSSKiB, during[i].RSSKiB, dIdle.RSSKiB, dDuring.RSSKiB) {
			b.add(unmeasured(r, "plain net/http n/a"))
			continue
		}
		rss := float64(during[i].RSSKiB-idle[i].RSSKiB) / float64(n)
		r.Value, r.Shown, r.Baseline, r.Base, r.Ratio, r.Met = rss, fmtKiB(rss), "plain net/http "+fmtKiB(dRSS), dRSS, rss/dRSS, met(rss-dRSS <= limit)
		b.add(r)
	}
	return nil
}

// slowCallers runs -slow-streams callers of base+"1073741824", each
// reading 10 KB/s and checking what it reads; once all have their reply
// and have read for -slow-for, it calls measure, then ends them.
func (b *bench) slowCallers(ctx context.Context, base string, measure func() error) error {
	n := b.opt.slowStreams
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	// Each caller's socket has a small receive buffer, as a caller at
	// the end of a slow link has little in flight.
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return setRecvBuffer(c, slowRecvBuffer)
	}}
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: n, DialContext: dialer.DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var (
		wg      sync.WaitGroup
		started sync.WaitGroup
		read    atomic.Int64
		mu      sync.Mutex
		first   error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return first
	}
	started.Add(n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			once := sync.OnceFunc(started.Done)
			defer once()
			req, err := http.NewRequestWithContext(rctx, http.MethodGet, base+strconv.Itoa(1<<30), nil)
			if err != nil {
				fail(err)
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				fail(fmt.Errorf("slow caller %d: %w", i, err))
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				fail(fmt.Errorf("slow caller %d: %s", i, resp.Status))
				return
			}
			once()
			check := patternChecker{}
			buf := make([]byte, slowPiece)
			tick := time.NewTicker(slowTick)
			defer tick.Stop()
			for {
				k, err := io.ReadFull(resp.Body, buf)
				if cerr := check.next(buf[:k]); cerr != nil {
					fail(fmt.Errorf("slow caller %d: %w", i, cerr))
					return
				}
				read.Add(int64(k))
				if err != nil {
					if rctx.Err() == nil {
						fail(fmt.Errorf("slow caller %d: cut after %d bytes: %w", i, check.n, err))
					}
					return
				}
				select {
				case <-rctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	started.Wait()
	if err := failed(); err != nil {
		stop()
		wg.Wait()
		return err
	}
	b.progress("slow      %d callers of %s reading 10 KB/s each; measuring in %v", n, base, b.opt.slowFor)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.opt.slowFor):
	}
	merr := measure()
	got := read.Load()
	stop()
	wg.Wait()
	if err := failed(); err != nil {
		return err
	}
	if merr != nil {
		return merr
	}
	want := float64(n) * float64(slowPiece) * b.opt.slowFor.Seconds() / slowTick.Seconds()
	b.progress("slow      read %s in all (%.0f%% of 10 KB/s each)", fmtBytes(got), 100*float64(got)/want)
	return nil
}

// getAll GETs url and reads the reply to its end.
func getAll(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	_, err = readPattern(resp.Body)
	return err
}
