package tunnel_test

import (
	"context"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// TestMemoryPerSmallEvent: a small event waiting for its handler holds
// no big buffer on either node: 500 of them in flight at once, both nodes
// in this process, cost at most 64 KiB of heap each (32 KiB per node).
func TestMemoryPerSmallEvent(t *testing.T) {
	const n = 500
	p := newPKI(t)
	more := func(c *tunnel.Config) { c.MaxStreams = 2 * n; c.AcceptBacklog = 2 * n }
	s := startServer(t, p, more)
	c := startClient(t, p, "c1", s.tunnelAddr, more)
	waitConnected(t, c, s)
	release := make(chan struct{})
	var in atomic.Int64
	arrived := make(chan struct{})
	s.reg.MustHandle("post_wait", func(ctx context.Context, req *handlers.Request) (any, error) {
		if _, err := io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		if in.Add(1) == n {
			close(arrived)
		}
		<-release
		return map[string]string{"ok": "yes"}, nil
	})
	call := func() error {
		resp, err := c.Call(context.Background(), &tunnel.Request{Method: "POST", Noun: []string{"wait"},
			Body: strings.NewReader(`{"small":"event"}`)})
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
	// Warm up: the pools and the sessions' first buffers are not the
	// events' cost.
	in.Store(-1)
	close(release)
	if err := call(); err != nil {
		t.Fatal(err)
	}
	release = make(chan struct{})
	in.Store(0)

	var before, during runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := call(); err != nil {
				errs <- err
			}
		}()
	}
	select {
	case <-arrived:
	case err := <-errs:
		close(release)
		t.Fatal(err)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&during)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	per := (int64(during.HeapInuse) - int64(before.HeapInuse)) / n
	t.Logf("%d small events in flight: %.1f KiB of heap each, both nodes", n, float64(per)/1024)
	if per > 64<<10 {
		t.Errorf("a small event in flight costs %d bytes of heap (both nodes); want at most %d", per, 64<<10)
	}
}
