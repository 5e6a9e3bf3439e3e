package tunnel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// gate is a handler that holds every event until released, and counts
// how many it holds at once.
type gate struct {
	release chan struct{}
	now     atomic.Int32
	peak    atomic.Int32
	arrived chan struct{} // a token per event arrived
}

func newGate(reg *handlers.Registry, name string, callers int) *gate {
	g := &gate{release: make(chan struct{}), arrived: make(chan struct{}, callers)}
	reg.MustHandle(name, func(ctx context.Context, req *handlers.Request) (any, error) {
		n := g.now.Add(1)
		defer g.now.Add(-1)
		for {
			p := g.peak.Load()
			if n <= p || g.peak.CompareAndSwap(p, n) {
				break
			}
		}
		g.arrived <- struct{}{}
		select {
		case <-g.release:
			return "released", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	return g
}

// waitArrived waits until n events have reached the handler.
func (g *gate) waitArrived(t *testing.T, n int) {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for range n {
		select {
		case <-g.arrived:
		case <-timeout.C:
			t.Fatalf("only some of %d events reached the handler (%d held)", n, g.now.Load())
		}
	}
}

// callAll makes n concurrent GETs of url and returns each one's status
// and body, once all are answered.
func callAll(t *testing.T, url string, n int) (statuses map[int]int, firstErr string) {
	t.Helper()
	var mu sync.Mutex
	statuses = map[int]int{}
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: n}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Get(url)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				statuses[-1]++
				if firstErr == "" {
					firstErr = err.Error()
				}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[resp.StatusCode]++
			if resp.StatusCode != 200 && firstErr == "" {
				firstErr = fmt.Sprintf("%d %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	return statuses, firstErr
}

// TestHonestClientManyCallers: 300 callers of a client node's front end
// at once, to a handler that holds them until released, at the default
// limits: the client holds no more of them at the server than the
// server's MaxStreams (less the slot kept for its channel relay), the
// rest wait, and all 300 are answered 200 once released; the server
// refuses none.
func TestHonestClientManyCallers(t *testing.T) {
	const callers = 300
	logs := newLogCapture()
	p := newPKI(t)
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = logs.logger() })
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	g := newGate(s.reg, "get_held", callers)
	limit := tunnel.DefaultConfig().MaxStreams

	done := make(chan struct{})
	var statuses map[int]int
	var first string
	go func() {
		defer close(done)
		statuses, first = callAll(t, c.httpURL+"/server/held", callers)
	}()
	g.waitArrived(t, limit-1)
	close(g.release)
	<-done
	if statuses[200] != callers {
		t.Errorf("statuses %v, want %d × 200; first other: %s", statuses, callers, first)
	}
	if peak := int(g.peak.Load()); peak != limit-1 {
		t.Errorf("the server held %d of the client's events at once, want %d (MaxStreams %d less the relay's slot)",
			peak, limit-1, limit)
	}
	if l := logs.all(); strings.Contains(l, "event refused") {
		t.Errorf("the server refused an honest client's event:\n%s", l)
	}
}

// TestPacingFollowsAnnounced: each node paces its events to the
// MaxStreams its peer announced, whatever its own; a client keeps one of
// the server's slots for its channel relay.
func TestPacingFollowsAnnounced(t *testing.T) {
	const callers = 20
	for _, tc := range []struct {
		name                 string
		serverMax, clientMax int
		down                 bool // the server calls the client
		want                 int  // events at the receiver at once
	}{
		{"client to server at 4", 4, 0, false, 3},
		{"server to client at 4", 0, 4, true, 4},
		{"client to server at 2", 2, 100, false, 1},
		{"server to client at 1", 100, 1, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := newLogCapture()
			p := newPKI(t)
			s := startServer(t, p, func(cfg *tunnel.Config) {
				cfg.Logger = logs.logger()
				cfg.MaxStreams = tc.serverMax
			})
			c := startClient(t, p, "c1", s.tunnelAddr, func(cfg *tunnel.Config) {
				cfg.Logger = logs.logger()
				cfg.MaxStreams = tc.clientMax
			})
			waitConnected(t, c, s)
			reg, url := s.reg, c.httpURL+"/server/held"
			if tc.down {
				reg, url = c.reg, s.httpURL+"/client/c1/held"
			}
			g := newGate(reg, "get_held", callers)
			done := make(chan struct{})
			var statuses map[int]int
			var first string
			go func() {
				defer close(done)
				statuses, first = callAll(t, url, callers)
			}()
			g.waitArrived(t, tc.want)
			close(g.release)
			<-done
			if statuses[200] != callers {
				t.Errorf("statuses %v, want %d × 200; first other: %s", statuses, callers, first)
			}
			if peak := int(g.peak.Load()); peak != tc.want {
				t.Errorf("%d events at the receiver at once, want %d", peak, tc.want)
			}
			if l := logs.all(); strings.Contains(l, "event refused") {
				t.Errorf("an honest peer's event was refused:\n%s", l)
			}
		})
	}
}

// TestPacingDeadline: a caller whose deadline passes while it waits for
// a slot gets 503 peer_busy, saying so; the event never reached the peer.
func TestPacingDeadline(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.MaxStreams = 1 })
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	g := newGate(s.reg, "get_held", 2)
	defer close(g.release)

	first := make(chan int, 1)
	go func() {
		resp, err := http.Get(c.httpURL + "/server/held")
		if err != nil {
			first <- -1
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	g.waitArrived(t, 1)

	req, _ := http.NewRequest("GET", c.httpURL+"/server/held", nil)
	req.Header.Set(tunnel.HeaderTimeout, "200ms")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error, Code string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || body.Code != handlers.CodePeerBusy ||
		!strings.Contains(body.Error, "1 events in flight to server, its limit; waited 2") {
		t.Errorf("got %d %+v, want 503 peer_busy saying it waited 200ms for a slot", resp.StatusCode, body)
	}
	if n := g.now.Load(); n != 1 {
		t.Errorf("the handler holds %d events, want 1: the one that timed out was sent", n)
	}
	g.release <- struct{}{} // the first one
	if st := <-first; st != 200 {
		t.Errorf("the first caller got %d", st)
	}
}

// TestHostileHelloMaxStreams: a peer announcing a MaxStreams this node
// will not pace to is refused, and says why.
func TestHostileHelloMaxStreams(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	id := p.client(t, "mallory")
	_, answer := dialHostile(t, s.tunnelAddr, id, &events.Hello{ProtocolVersion: events.ProtocolVersion,
		NodeName: "mallory", MaxStreams: 1 << 20})
	if want := "max streams is 1048576, the limit is 65536"; !strings.Contains(answer.Error, want) {
		t.Errorf("answer %q, want it to hold %q", answer.Error, want)
	}
}

// stubborn answers "held" only when released, whatever its context says
// (a handler that does not watch for its caller going away), and passes
// everything else to reg.
type stubborn struct {
	reg     *handlers.Registry
	arrived chan struct{}
	release chan struct{}
}

func (d *stubborn) Serve(ctx context.Context, req *handlers.Request, answer func(*handlers.Reply)) {
	if req.Name != "get_held" {
		d.reg.Serve(ctx, req, answer)
		return
	}
	d.arrived <- struct{}{}
	<-d.release
	answer(&handlers.Reply{Status: 200})
}

// TestPacingAbandoned: an event its caller gave up on keeps its slot for
// as long as the peer counts its stream (here, until its handler, which
// ignores the cancellation, returns): the next event waits for the slot
// and is not refused by the peer; once the handler has returned, it goes.
func TestPacingAbandoned(t *testing.T) {
	logs := newLogCapture()
	p := newPKI(t)
	d := &stubborn{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	s := startServer(t, p, func(cfg *tunnel.Config) {
		cfg.Logger = logs.logger()
		cfg.MaxStreams = 1
		d.reg = cfg.Dispatcher.(*handlers.Registry)
		cfg.Dispatcher = d
	})
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)

	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		req, _ := http.NewRequestWithContext(ctx, "GET", c.httpURL+"/server/held", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-d.arrived
	cancel()
	<-gone

	r := get(t, c.httpURL+"/server/time", tunnel.HeaderTimeout, "200ms")
	wantError(t, r, http.StatusServiceUnavailable, handlers.CodePeerBusy)
	if !strings.Contains(r.body, "1 events in flight to server, its limit; waited") {
		t.Errorf("the event after one given up: %s, want it to have waited for the slot", r.body)
	}
	close(d.release)
	if r := get(t, c.httpURL+"/server/time"); r.status != 200 {
		t.Errorf("once the handler returned: %d %s", r.status, r.body)
	}
	if l := logs.all(); strings.Contains(l, "event refused") {
		t.Errorf("the server refused an honest client's event:\n%s", l)
	}
}
