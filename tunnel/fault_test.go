package tunnel_test

// Fault tests: the tunnel under the network faults it is built to survive,
// injected by a faultproxy between client and server (client -> proxy ->
// server), and under load: a reconnect storm, stuck handlers, churn.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
	"github.com/restpipe/restpipe/tunnel/faultproxy"
)

// Keep-alive timings for the tests that need a dead link found quickly:
// a dead peer is detected within keepAliveBound.
const (
	faultKeepAlive = 200 * time.Millisecond
	faultWrite     = 300 * time.Millisecond
	keepAliveBound = faultKeepAlive + faultWrite
)

// fastDetect makes a node find a dead link within keepAliveBound and
// retry quickly; a handshake into a dead link gives up after 1 s.
func fastDetect(cfg *tunnel.Config) {
	cfg.KeepAliveInterval = faultKeepAlive
	cfg.WriteTimeout = faultWrite
	cfg.HandshakeTimeout = time.Second
	cfg.ReconnectMin = 10 * time.Millisecond
	cfg.ReconnectMax = 150 * time.Millisecond
}

func newFaultProxy(t testing.TB, target string) *faultproxy.Proxy {
	t.Helper()
	fp, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fp.Close() })
	return fp
}

// fetch is do for goroutines other than the test's: it returns its error.
func fetch(hc *http.Client, method, url string, body io.Reader, hdr ...string) (result, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return result{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// timedResult is an answer and how long it took since a moment the test
// chose.
type timedResult struct {
	result
	err  error
	took time.Duration
}

// hangHandler registers get_hang on reg: it reports its start on started
// and its end on ended, and returns only when its context ends.
func hangHandler(reg *handlers.Registry, started, ended chan<- string) {
	reg.MustHandle("get_hang", func(ctx context.Context, req *handlers.Request) (any, error) {
		started <- req.Peer
		<-ctx.Done()
		ended <- req.Peer
		return nil, ctx.Err()
	})
}

// inFlight starts a GET of url that hangs, and returns where its answer
// will arrive; begin is read when the answer comes, to time it.
func inFlight(url string, begin *atomic.Int64) <-chan timedResult {
	ch := make(chan timedResult, 1)
	go func() {
		r, err := fetch(http.DefaultClient, http.MethodGet, url, nil, "X-Restpipe-Timeout", "1m")
		ch <- timedResult{result: r, err: err, took: time.Duration(time.Now().UnixNano() - begin.Load())}
	}()
	return ch
}

// wantTunnelClosed checks that an event in flight when the link failed
// got 502 tunnel_closed, within limit.
func wantTunnelClosed(t *testing.T, what string, tr timedResult, limit time.Duration) {
	t.Helper()
	if tr.err != nil {
		t.Fatalf("%s: %v", what, tr.err)
	}
	if tr.took > limit {
		t.Errorf("%s: answered after %v, want under %v", what, tr.took, limit)
	}
	wantError(t, tr.result, http.StatusBadGateway, "tunnel_closed")
}

func wantOK(t testing.TB, r result, what string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d %s", what, r.status, r.body)
	}
}

// recv waits for a value on ch, at most limit.
func recv[T any](t *testing.T, ch <-chan T, limit time.Duration, what string) T {
	t.Helper()
	tm := time.NewTimer(limit)
	defer tm.Stop()
	select {
	case v := <-ch:
		return v
	case <-tm.C:
		t.Fatalf("no %s within %v", what, limit)
		var zero T
		return zero
	}
}

// hanging is a client connected through a fault proxy, with one event in
// flight each way, held by handlers that end only with their context.
type hanging struct {
	s         *serverNode
	fp        *faultproxy.Proxy
	c         *clientNode
	oldRemote string             // the client's address as the server saw it
	up, down  <-chan timedResult // the answers of the two events
	ended     chan string        // each handler's end
	begin     atomic.Int64       // when the fault began, for the answers' timing
}

func hangingBothWays(t *testing.T, tweak func(*tunnel.Config)) *hanging {
	t.Helper()
	p := newPKI(t)
	h := &hanging{ended: make(chan string, 2)}
	h.s = startServer(t, p, tweak)
	h.fp = newFaultProxy(t, h.s.tunnelAddr)
	h.c = startClient(t, p, "c1", h.fp.Addr(), tweak)
	waitConnected(t, h.c, h.s)
	h.oldRemote = h.s.Clients()[0].RemoteAddr
	started := make(chan string, 2)
	hangHandler(h.s.reg, started, h.ended)
	hangHandler(h.c.reg, started, h.ended)
	h.up = inFlight(h.c.httpURL+"/server/hang", &h.begin)
	h.down = inFlight(h.s.httpURL+"/client/c1/hang", &h.begin)
	recv(t, started, 10*time.Second, "first handler start")
	recv(t, started, 10*time.Second, "second handler start")
	return h
}

// TestCutMidEvent: the network resets the connection while events are
// under way both ways: both callers get 502 at once, the handlers are
// cancelled, and the client comes back through the proxy.
func TestCutMidEvent(t *testing.T) {
	h := hangingBothWays(t, nil)
	s, fp, c, up, down, ended, begin := h.s, h.fp, h.c, h.up, h.down, h.ended, &h.begin

	prev, _ := c.Server()
	begin.Store(time.Now().UnixNano())
	fp.Cut()
	const limit = 5 * time.Second // the callers' deadline is 1 minute
	wantTunnelClosed(t, "client->server event", recv(t, up, 20*time.Second, "answer up"), limit)
	wantTunnelClosed(t, "server->client event", recv(t, down, 20*time.Second, "answer down"), limit)
	// Both handlers saw their context end.
	recv(t, ended, limit, "first handler cancelled")
	recv(t, ended, limit, "second handler cancelled")

	waitReconnected(t, c, s, prev)
	wantOK(t, get(t, c.httpURL+"/server/time"), "client->server after reconnect")
	wantOK(t, get(t, s.httpURL+"/client/c1/time"), "server->client after reconnect")
	if n := fp.Conns(); n != 1 {
		t.Errorf("proxy holds %d connections, want 1", n)
	}
}

// TestBlackHole: the link goes silent without being closed (a half-open
// connection). Keep-alives must find it dead within KeepAliveInterval +
// WriteTimeout on both ends, events in flight must fail rather than hang,
// and once the network is back the client reconnects on a new connection.
func TestBlackHole(t *testing.T) {
	h := hangingBothWays(t, fastDetect)
	s, fp, c, up, down, ended, begin := h.s, h.fp, h.c, h.up, h.down, h.ended, &h.begin
	oldRemote := h.oldRemote

	prev, _ := c.Server()
	start := time.Now()
	begin.Store(start.UnixNano())
	fp.BlackHole(true)

	// Each end finds out by itself: nothing at all crosses the link.
	limit := 3 * keepAliveBound
	var clientDetect, serverDetect time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, ctx, func() bool {
		if _, ok := c.Server(); !ok && clientDetect == 0 {
			clientDetect = time.Since(start)
		}
		if len(s.Clients()) == 0 && serverDetect == 0 {
			serverDetect = time.Since(start)
		}
		return clientDetect > 0 && serverDetect > 0
	}, "both ends to drop the black-holed session")
	t.Logf("black hole detected after %v (client), %v (server); bound KeepAliveInterval+WriteTimeout = %v, limit %v",
		clientDetect.Round(time.Millisecond), serverDetect.Round(time.Millisecond), keepAliveBound, limit)
	if clientDetect > limit || serverDetect > limit {
		t.Errorf("dead link detected after %v (client) and %v (server), want under %v", clientDetect, serverDetect, limit)
	}

	// The events in flight failed with the session, not at their deadline.
	wantTunnelClosed(t, "client->server event", recv(t, up, 20*time.Second, "answer up"), limit)
	wantTunnelClosed(t, "server->client event", recv(t, down, 20*time.Second, "answer down"), limit)
	recv(t, ended, limit, "first handler cancelled")
	recv(t, ended, limit, "second handler cancelled")

	// While the hole lasts, new events find no peer.
	wantError(t, get(t, c.httpURL+"/server/time"), http.StatusServiceUnavailable, "peer_unavailable")
	wantError(t, get(t, s.httpURL+"/client/c1/time"), http.StatusServiceUnavailable, "peer_unavailable")

	fp.BlackHole(false)
	waitReconnected(t, c, s, prev)
	if cl := s.Clients(); len(cl) != 1 || cl[0].RemoteAddr == oldRemote {
		t.Errorf("clients after the hole: %+v; want c1 on a new connection (not %s)", cl, oldRemote)
	}
	wantOK(t, get(t, c.httpURL+"/server/time"), "client->server after the hole")
	wantOK(t, get(t, s.httpURL+"/client/c1/time"), "server->client after the hole")
	// The dead connection is gone from the proxy: both ends closed it.
	waitFor(t, ctx, func() bool { return fp.Conns() == 1 }, "the proxy to hold only the new connection")
}

// retryLine matches the client's log of a failed connection attempt.
var retryLine = regexp.MustCompile(`msg="not connected to server".* failures=(\d+) retry_in=(\S+)`)

// retries parses the retry lines logged so far.
func retries(t *testing.T, logs *logCapture) (failures []int, delays []time.Duration) {
	t.Helper()
	logs.mu.Lock()
	text := logs.buf.String()
	logs.mu.Unlock()
	for _, m := range retryLine.FindAllStringSubmatch(text, -1) {
		n, err := strconv.Atoi(m[1])
		if err != nil {
			t.Fatalf("failures=%q: %v", m[1], err)
		}
		d, err := time.ParseDuration(m[2])
		if err != nil {
			t.Fatalf("retry_in=%q: %v", m[2], err)
		}
		failures, delays = append(failures, n), append(delays, d)
	}
	return failures, delays
}

// waitLogs waits, at most limit, until cond holds of what logs holds; it
// wakes on each new log line.
func waitLogs(t *testing.T, logs *logCapture, limit time.Duration, cond func() bool, what string) {
	t.Helper()
	tm := time.NewTimer(limit)
	defer tm.Stop()
	for {
		logs.mu.Lock()
		ch := logs.changed
		logs.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-tm.C:
			t.Fatalf("waiting %v for %s", limit, what)
		}
	}
}

// TestServerDownLong: the server is down for long (minutes without
// -short): the client keeps retrying, its backoff capped at ReconnectMax
// (plus jitter), and comes back as soon as the server does.
func TestServerDownLong(t *testing.T) {
	const wantFailures = 30
	rmin, rmax, downFor := 10*time.Millisecond, 100*time.Millisecond, time.Duration(0)
	if !testing.Short() {
		rmin, rmax, downFor = 50*time.Millisecond, 5*time.Second, 2*time.Minute
	}
	p := newPKI(t)
	addr := fixedPort(t)
	logs := newLogCapture()
	s1 := startServerAt(t, p, addr, nil)
	c := startClient(t, p, "patient", addr, func(cfg *tunnel.Config) {
		cfg.Logger = logs.logger()
		cfg.ReconnectMin, cfg.ReconnectMax = rmin, rmax
	})
	waitConnected(t, c, s1)
	prev, _ := c.Server()

	s1.stop()
	down := time.Now()
	var fails []int
	var delays []time.Duration
	waitLogs(t, logs, downFor+time.Minute, func() bool {
		fails, delays = retries(t, logs)
		return len(fails) >= wantFailures && time.Since(down) >= downFor
	}, fmt.Sprintf("%d failed attempts and %v of downtime", wantFailures, downFor))
	downtime := time.Since(down)

	// The count runs 1, 2, 3... without a gap: it never gave up.
	for i, n := range fails {
		if n != i+1 {
			t.Fatalf("attempt %d logged failures=%d; log:\n%s", i+1, n, logs.buf.String())
		}
	}
	// RandomizationFactor 0.5: at most 1.5 x ReconnectMax (+ rounding).
	ceiling := rmax + rmax/2 + time.Millisecond
	var longest time.Duration
	for i, d := range delays {
		if d > ceiling {
			t.Errorf("attempt %d: retry_in=%v, over ReconnectMax %v plus jitter", i+1, d, rmax)
		}
		longest = max(longest, d)
	}
	// And it did back off: the delays grew towards the cap.
	if longest < rmax/2 {
		t.Errorf("longest retry_in %v: the backoff never grew towards ReconnectMax %v", longest, rmax)
	}
	t.Logf("server down %v: %d failed attempts, longest retry_in %v (cap %v)", downtime.Round(time.Millisecond), len(fails), longest, rmax)

	s2 := startServerAt(t, p, addr, nil)
	back := time.Now()
	waitReconnected(t, c, s2, prev)
	t.Logf("reconnected %v after the server came back", time.Since(back).Round(time.Millisecond))
	if d := time.Since(back); d > ceiling+10*time.Second {
		t.Errorf("reconnect took %v after the server came back", d)
	}
	wantOK(t, get(t, c.httpURL+"/server/time"), "client->server after the outage")
	wantOK(t, get(t, s2.httpURL+"/client/patient/time"), "server->client after the outage")
}

// TestReconnectStorm: 200 clients, each with its own identity, connect at
// once, as after a server restart; all are connected within a generous
// bound, and the server's front end keeps answering meanwhile.
func TestReconnectStorm(t *testing.T) {
	n := 200
	const limit = 60 * time.Second
	p := newPKI(t)
	ids := make([]*certs.Identity, n)
	for i := range ids {
		ids[i] = p.client(t, fmt.Sprintf("storm-%03d", i))
	}
	s := startServer(t, p, nil)

	start := time.Now()
	for _, id := range ids {
		startClientWith(t, id, s.tunnelAddr, nil)
	}
	// Meanwhile, the front end answers: the list, and a call to a client
	// that is connected already.
	var probes int
	var slowest time.Duration
	for len(s.Clients()) < n {
		if time.Since(start) > limit {
			t.Fatalf("after %v only %d of %d clients connected", limit, len(s.Clients()), n)
		}
		t0 := time.Now()
		r := get(t, s.httpURL+"/clients")
		wantOK(t, r, "GET /clients during the storm")
		var list struct {
			Clients []tunnel.PeerInfo `json:"clients"`
		}
		if err := json.Unmarshal([]byte(r.body), &list); err != nil {
			t.Fatalf("/clients: %v: %s", err, r.body)
		}
		if len(list.Clients) > 0 {
			name := list.Clients[probes%len(list.Clients)].Name
			wantOK(t, get(t, s.httpURL+"/client/"+name+"/time"), "get_time on "+name+" during the storm")
		}
		slowest = max(slowest, time.Since(t0))
		probes++
	}
	took := time.Since(start)
	t.Logf("%d clients connected in %v; %d front-end probes meanwhile, slowest %v", n, took.Round(time.Millisecond), probes, slowest.Round(time.Millisecond))
	if slowest > 5*time.Second {
		t.Errorf("the front end took %v to answer during the storm", slowest)
	}
	// Every one of them answers, too.
	for _, id := range []string{ids[0].Name(), ids[n/2].Name(), ids[n-1].Name()} {
		wantOK(t, get(t, s.httpURL+"/client/"+id+"/time"), "get_time on "+id)
	}
}

// TestStuckHandler: a handler that never returns and one that is slow do
// not hold up other events on the same tunnel, either way.
func TestStuckHandler(t *testing.T) {
	_, s, c := pair(t)
	const slowFor = 2 * time.Second
	release := make(chan struct{})
	started := make(chan string, 4)
	for _, reg := range []*handlers.Registry{s.reg, c.reg} {
		reg.MustHandle("get_stuck", func(_ context.Context, req *handlers.Request) (any, error) {
			started <- "stuck from " + req.Peer
			<-release // deaf to its context
			return "unstuck", nil
		})
		reg.MustHandle("get_slow", func(ctx context.Context, req *handlers.Request) (any, error) {
			started <- "slow from " + req.Peer
			select {
			case <-time.After(slowFor):
				return "slow", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	}
	var callers sync.WaitGroup
	t.Cleanup(callers.Wait)                       // then the callers have their answers
	t.Cleanup(func() { close(release) })          // first the stuck handlers return
	call := func(url string) <-chan timedResult { // answered in the background
		ch := make(chan timedResult, 1)
		callers.Add(1)
		go func() {
			defer callers.Done()
			t0 := time.Now()
			r, err := fetch(http.DefaultClient, http.MethodGet, url, nil, "X-Restpipe-Timeout", "1m")
			ch <- timedResult{result: r, err: err, took: time.Since(t0)}
		}()
		return ch
	}
	call(c.httpURL + "/server/stuck")
	call(s.httpURL + "/client/c1/stuck")
	slowUp := call(c.httpURL + "/server/slow")
	slowDown := call(s.httpURL + "/client/c1/slow")
	for range 4 {
		recv(t, started, 10*time.Second, "a stuck or slow handler to start")
	}

	// 50 calls each way, the two directions at once.
	const calls = 50
	var wg sync.WaitGroup
	errs := make(chan error, 2*calls)
	run := func(base string) {
		defer wg.Done()
		for i := range calls {
			url := fmt.Sprintf("%s/cat//%d", base, i)
			t0 := time.Now()
			r, err := fetch(http.DefaultClient, http.MethodGet, url, nil)
			took := time.Since(t0)
			switch {
			case err != nil:
				errs <- err
			case r.status != http.StatusOK || !strings.Contains(r.body, fmt.Sprintf(`"result":"%d"`, i)):
				errs <- fmt.Errorf("%s: %d %s", url, r.status, r.body)
			case took > time.Second:
				errs <- fmt.Errorf("%s took %v with stuck handlers around", url, took)
			}
		}
	}
	wg.Add(2)
	go run(c.httpURL + "/server")
	go run(s.httpURL + "/client/c1")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The slow ones answer in their time; the stuck ones still hang.
	for _, ch := range []<-chan timedResult{slowUp, slowDown} {
		r := recv(t, ch, 20*time.Second, "the slow handler's answer")
		if r.err != nil || r.status != 200 || r.took < slowFor {
			t.Errorf("slow call: %d %q %v after %v", r.status, r.body, r.err, r.took)
		}
	}
	wantOK(t, get(t, c.httpURL+"/server/time"), "client->server with stuck handlers")
	wantOK(t, get(t, s.httpURL+"/client/c1/time"), "server->client with stuck handlers")
}

// TestDelayAndThrottle: over a link with 20 ms of latency each way and
// 2 MB/s each way, small calls work and a 1 MiB echo arrives intact.
func TestDelayAndThrottle(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	fp := newFaultProxy(t, s.tunnelAddr)
	const delay, rate = 20 * time.Millisecond, 2_000_000
	fp.Delay(delay)
	fp.Throttle(rate)
	c := startClient(t, p, "c1", fp.Addr(), nil)
	waitConnected(t, c, s)

	for _, url := range []string{c.httpURL + "/server/time", s.httpURL + "/client/c1/cat//a/b"} {
		t0 := time.Now()
		wantOK(t, get(t, url), url)
		// The event crosses the proxy, and its answer crosses back.
		if took := time.Since(t0); took < 2*delay {
			t.Errorf("%s took %v, under the link's round trip of %v", url, took, 2*delay)
		}
	}
	const size = 1 << 20
	minTime := time.Duration(size-rate/50) * time.Second / rate
	for _, url := range []string{c.httpURL + "/server/echo", s.httpURL + "/client/c1/echo"} {
		t0 := time.Now()
		echoThrough(t, url, size)
		took := time.Since(t0)
		t.Logf("1 MiB echo via %s over 20 ms + 2 MB/s: %v", url, took.Round(time.Millisecond))
		if took < minTime {
			t.Errorf("1 MiB echo took %v: faster than the link's %d B/s allows (%v)", took, rate, minTime)
		}
	}
	wantOK(t, get(t, s.httpURL+"/client/c1/time"), "small call after the echoes")
}

// countFDs counts this process's open file descriptors (Linux only).
func countFDs(t *testing.T) (int, bool) {
	if runtime.GOOS != "linux" {
		return 0, false
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Logf("no fd count: %v", err)
		return 0, false
	}
	return len(ents), true
}

// TestNoLeaks: after 1,000 connect/disconnect cycles and 10,000 events
// (100 and 1,000 under -short), goroutines and file descriptors come back
// to where they were.
func TestNoLeaks(t *testing.T) {
	cycles, events := 1000, 10000
	if testing.Short() {
		cycles, events = 100, 1000
	}
	p := newPKI(t)
	s := startServer(t, p, nil)
	steady := startClient(t, p, "steady", s.tunnelAddr, nil)
	waitConnected(t, steady, s)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer hc.CloseIdleConnections()
	// Warm up whatever starts lazily, then measure.
	for _, url := range []string{steady.httpURL + "/server/time", s.httpURL + "/client/steady/time"} {
		r, err := fetch(hc, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantOK(t, r, url)
	}
	hc.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	baseG := runtime.NumGoroutine()
	baseFD, haveFD := countFDs(t)

	churn := func(cfg *tunnel.Config) {
		cfg.ReconnectMin, cfg.ReconnectMax = 5*time.Millisecond, 20*time.Millisecond
		cfg.StableAfter = time.Millisecond // each reconnect starts from ReconnectMin
	}
	// A tenth of the cycles are client nodes that live briefly, one after
	// the other; the rest are sessions the server drops, on 4 clients
	// that reconnect each time.
	const churners = 4
	nodeCycles := cycles / 10
	dropCycles := (cycles - nodeCycles) / churners
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var totalDropped atomic.Int64
	clients := make([]*clientNode, churners)
	for i := range clients {
		clients[i] = startClient(t, p, fmt.Sprint("churn-", i), s.tunnelAddr, churn)
		wg.Add(1)
		go func(c *clientNode) {
			defer wg.Done()
			for dropped := 0; dropped < dropCycles; {
				if err := c.WaitConnected(ctx); err != nil {
					report(fmt.Errorf("%s: %w", c.Name(), err))
					return
				}
				prev, ok := c.Server()
				if !ok || !s.Disconnect(c.Name()) {
					// Connected, but the server has not listed it yet.
					time.Sleep(time.Millisecond) // polling: no event to wait on
					continue
				}
				for {
					if info, ok := c.Server(); ok && info.ConnectedSince.After(prev.ConnectedSince) {
						break
					}
					if ctx.Err() != nil {
						report(fmt.Errorf("%s did not reconnect", c.Name()))
						return
					}
					time.Sleep(time.Millisecond) // polling: no event to wait on
				}
				dropped++
				totalDropped.Add(1)
			}
		}(clients[i])
	}
	// Events both ways, 8 at a time, on the steady client.
	const workers = 8
	var failed atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range events / workers {
				url := steady.httpURL + "/server/time"
				if (w+i)%2 == 1 {
					url = fmt.Sprintf("%s/client/steady/cat//%d", s.httpURL, i)
				}
				r, err := fetch(hc, http.MethodGet, url, nil)
				if err == nil && r.status != http.StatusOK {
					err = fmt.Errorf("%s: %d %s", url, r.status, r.body)
				}
				if err != nil {
					failed.Add(1)
					report(err)
				}
			}
		}()
	}
	id := p.client(t, "brief")
	for range nodeCycles {
		c := startClientWith(t, id, s.tunnelAddr, churn)
		waitConnected(t, c, s)
		c.stop()
		waitFor(t, ctx, func() bool {
			for _, ci := range s.Clients() {
				if ci.Name == "brief" {
					return false
				}
			}
			return true
		}, "the server to drop the stopped node")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if failed.Load() > 0 {
		t.Fatalf("%d of %d events failed", failed.Load(), events)
	}
	t.Logf("%d node cycles, %d dropped sessions, %d events", nodeCycles, totalDropped.Load(), workers*(events/workers))
	if got := int64(nodeCycles) + totalDropped.Load(); got < int64(nodeCycles+churners*dropCycles) {
		t.Errorf("only %d connect/disconnect cycles of %d", got, cycles)
	}

	for _, c := range clients {
		c.stop()
	}
	hc.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for {
		g := runtime.NumGoroutine()
		fd, _ := countFDs(t)
		if g <= baseG+10 && (!haveFD || fd <= baseFD+5) {
			t.Logf("goroutines %d (baseline %d), fds %d (baseline %d)", g, baseG, fd, baseFD)
			break
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("after 20 s: goroutines %d (baseline %d), fds %d (baseline %d)\n%s", g, baseG, fd, baseFD, b.String())
		}
		time.Sleep(10 * time.Millisecond) // polling: no event to wait on
	}
}
