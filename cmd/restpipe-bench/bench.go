package main

// The four measurements. Each starts its own nodes and stops them when it
// is done, so that one's memory and connections do not weigh on the next.

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"time"

	"github.com/restpipe/restpipe/certs"
)

// row is one line of the table.
type row struct {
	Section  string  `json:"section"`
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Shown    string  `json:"shown"`              // Value as printed
	Baseline string  `json:"baseline,omitempty"` // its name and value as printed
	Base     float64 `json:"baseline_value,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"` // Value / Base
	Target   string  `json:"target,omitempty"`
	Met      string  `json:"met,omitempty"` // "yes", "NO", "n/a" (not measured) or ""
	// NotMeasured: this OS does not give the bench the figure (see
	// notMeasured); Value, Base and Ratio are then 0.
	NotMeasured bool `json:"not_measured,omitempty"`
}

// unmeasured makes r the row of a figure this OS does not give the
// bench: shown as "n/a", no ratio, no verdict on its target; baseline
// is the baseline's name as shown.
func unmeasured(r row, baseline string) row {
	r.Value, r.Base, r.Ratio, r.Shown, r.Baseline, r.NotMeasured = 0, 0, 0, "n/a", baseline, true
	if r.Target != "" {
		r.Met = "n/a"
	}
	return r
}

// measured reports whether none of v is notMeasured.
func measured[T int64 | float64](v ...T) bool {
	for _, x := range v {
		if x == notMeasured {
			return false
		}
	}
	return true
}

// kib shows a memory figure in KiB, or "n/a".
func kib(v int64) string {
	if v == notMeasured {
		return "n/a"
	}
	return fmtKiB(float64(v))
}

// bench runs the measurements and collects the rows.
type bench struct {
	opt   options
	fleet *fleet
	dir   string // identities
	log   io.Writer
	rows  []row
	notes []string

	proxyRPS64 float64 // proxy hop at concurrency 64, the event-rate baseline
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.log, "restpipe-bench: "+format+"\n", args...)
}

func (b *bench) add(r row) { b.rows = append(b.rows, r) }

func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

// met is "yes" or "NO".
func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// startPair starts a server node and a clients node of one client with a
// front end, connected to it; both nodes get the flags extra.
func (b *bench) startPair(ctx context.Context, extra ...string) (srv, cl *child, err error) {
	srv, err = b.fleet.start(ctx, "server", roleServer, append([]string{"-dir", b.dir}, extra...)...)
	if err != nil {
		return nil, nil, err
	}
	cl, err = b.fleet.start(ctx, "client", roleClients, append([]string{"-dir", b.dir, "-n", "1", "-frontend",
		"-server", srv.ready.Tunnel, "-reconnect-max", b.opt.reconnectMax.String()}, extra...)...)
	if err != nil {
		return nil, nil, err
	}
	if err := cl.send("start"); err != nil {
		return nil, nil, err
	}
	if _, got, err := waitConnected(ctx, srv, 1, 30*time.Second); err != nil || got != 1 {
		return nil, nil, srv.errorf("client did not connect: %v", err)
	}
	return srv, cl, nil
}

// waitConnected polls node until it counts want connections or timeout
// passes; it returns how long that took and the count it last saw.
// connectClients starts n clients of srv, lets them connect, and returns
// their processes and how long it took until the server counted them all.
func (b *bench) connectClients(ctx context.Context, srv *child, n int) ([]*child, time.Duration, error) {
	nodes, err := b.startClients(ctx, srv.ready.Tunnel, n)
	if err != nil {
		return nil, 0, err
	}
	for _, c := range nodes {
		if err := c.send("start"); err != nil {
			return nil, 0, err
		}
	}
	took, got, err := waitConnected(ctx, srv, n, 30*time.Second+time.Duration(n)*10*time.Millisecond)
	if err != nil {
		return nil, took, err
	}
	if got < n {
		return nil, took, srv.errorf("only %d of %d clients connected after %v", got, n, took.Round(time.Millisecond))
	}
	return nodes, took, nil
}

func waitConnected(ctx context.Context, node *child, want int, timeout time.Duration) (time.Duration, int, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	seen := 0
	for {
		st, err := node.stats(ctx, false)
		if err == nil {
			seen = st.Connected
			if seen >= want {
				return time.Since(start), seen, nil
			}
		}
		if ctx.Err() != nil {
			return time.Since(start), seen, ctx.Err()
		}
		if time.Now().After(deadline) {
			return time.Since(start), seen, nil
		}
		select {
		case <-node.exited:
			return time.Since(start), seen, node.errorf("node %s exited", node.name)
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// roundTrip is measurement 1: GET /server/time through a client node's
// front end, the tunnel and the server's get_time, against the same
// handler on a plain net/http server ("direct") and behind one plain
// ReverseProxy hop ("proxy hop").
func (b *bench) roundTrip(ctx context.Context) error {
	defer b.fleet.stopAll()
	_, cl, err := b.startPair(ctx)
	if err != nil {
		return err
	}
	direct, err := b.fleet.start(ctx, "direct", roleDirect)
	if err != nil {
		return err
	}
	proxy, err := b.fleet.start(ctx, "proxy", roleProxy, "-target", "http://"+direct.ready.HTTP)
	if err != nil {
		return err
	}
	targets := []struct{ name, url string }{
		{"direct", "http://" + direct.ready.HTTP + "/server/time"},
		{"proxy hop", "http://" + proxy.ready.HTTP + "/server/time"},
		{"restpipe", "http://" + cl.ready.HTTP + "/server/time"},
	}
	for _, conc := range []int{1, 64} {
		res := map[string]cellResult{}
		for _, t := range targets {
			r, err := runCell(ctx, conc, b.opt.warmup(), b.opt.duration, func(uint64) string { return t.url })
			if err != nil {
				return fmt.Errorf("round trip %s c=%d: %w", t.name, conc, err)
			}
			b.progress("round trip %-9s c=%-2d %8.0f req/s  p50 %-8s p99 %s", t.name, conc, r.RPS, fmtDur(r.P50), fmtDur(r.P99))
			if r.Errors > 0 {
				b.note("round trip %s c=%d: %d of %d requests failed (first: %s)", t.name, conc, r.Errors, r.Errors+r.Requests, r.FirstError)
			}
			res[t.name] = r
		}
		if conc == 64 {
			b.proxyRPS64 = res["proxy hop"].RPS
		}
		tun := res["restpipe"]
		sec := "1. small event (get_time) round trip"
		for _, base := range []string{"direct", "proxy hop"} {
			br := res[base]
			r := row{Section: sec, Name: fmt.Sprintf("c=%d requests/s", conc), Value: tun.RPS, Unit: "req/s",
				Shown: fmt.Sprintf("%.0f", tun.RPS), Baseline: fmt.Sprintf("%s %.0f", base, br.RPS), Base: br.RPS, Ratio: tun.RPS / br.RPS}
			if conc == 64 && base == "proxy hop" {
				r.Target, r.Met = ">= 1.0x", met(r.Ratio >= 1.0)
			}
			b.add(r)
		}
		for _, q := range []struct {
			name string
			pick func(cellResult) time.Duration
		}{{"p50", func(c cellResult) time.Duration { return c.P50 }}, {"p99", func(c cellResult) time.Duration { return c.P99 }}} {
			for _, base := range []string{"direct", "proxy hop"} {
				v, bv := q.pick(tun), q.pick(res[base])
				r := row{Section: sec, Name: fmt.Sprintf("c=%d latency %s", conc, q.name), Value: float64(v.Microseconds()), Unit: "µs",
					Shown: fmtDur(v), Baseline: base + " " + fmtDur(bv), Base: float64(bv.Microseconds()), Ratio: float64(v) / float64(bv)}
				if conc == 1 && q.name == "p50" && base == "proxy hop" {
					r.Target, r.Met = "<= 1.0x", met(r.Ratio <= 1.0)
				}
				b.add(r)
			}
		}
	}
	return nil
}

// stream is measurement 2: stream-size bytes POSTed through post_echo
// and back, against the same bytes echoed over one raw TLS 1.3
// connection; and the peak RSS of each node.
func (b *bench) stream(ctx context.Context) error {
	defer b.fleet.stopAll()
	size := b.opt.streamSize
	srv, cl, err := b.startPair(ctx)
	if err != nil {
		return err
	}
	url := "http://" + cl.ready.HTTP + "/server/echo"
	if _, err := echoHTTP(ctx, url, min(size, 1<<20)); err != nil {
		return fmt.Errorf("stream warm-up: %w", err)
	}
	st0, err := allStats(ctx, srv, cl)
	if err != nil {
		return err
	}
	self0 := cpuSeconds()
	tunTime, err := echoHTTP(ctx, url, size)
	if err != nil {
		return cl.errorf("stream through the tunnel: %v", err)
	}
	selfTun := cpuSince(self0)
	st1, err := allStats(ctx, srv, cl)
	if err != nil {
		return err
	}
	srv0, cl0, srvSt, clSt := st0[0], st0[1], st1[0], st1[1]
	b.progress("stream    restpipe  %s echoed in %s", fmtBytes(size), fmtDur(tunTime))

	echo, err := b.fleet.start(ctx, "tlsecho", roleTLSEcho, "-dir", b.dir)
	if err != nil {
		return err
	}
	c, k := identityFiles(b.dir, clientName(0))
	id, err := certs.LoadIdentity(c, k, caFile(b.dir))
	if err != nil {
		return fmt.Errorf("load identity for raw TLS: %w", err)
	}
	if _, err := echoTLS(ctx, echo.ready.Tunnel, id, min(size, 1<<20)); err != nil {
		return fmt.Errorf("raw TLS warm-up: %w", err)
	}
	echo0, err := echo.stats(ctx, false)
	if err != nil {
		return err
	}
	self0 = cpuSeconds()
	rawTime, err := echoTLS(ctx, echo.ready.Tunnel, id, size)
	if err != nil {
		return echo.errorf("stream over raw TLS: %v", err)
	}
	selfRaw := cpuSince(self0)
	echoSt, err := echo.stats(ctx, false)
	if err != nil {
		return err
	}
	b.progress("stream    raw TLS   %s echoed in %s", fmtBytes(size), fmtDur(rawTime))

	mbs := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
	tun, raw := mbs(tunTime), mbs(rawTime)
	sec := "2. streaming: " + fmtBytes(size) + " POST through post_echo and back"
	b.add(row{Section: sec, Name: "throughput, MB/s each way", Value: tun, Unit: "MB/s", Shown: fmt.Sprintf("%.0f", tun),
		Baseline: fmt.Sprintf("raw TLS 1.3 %.0f", raw), Base: raw, Ratio: tun / raw, Target: ">= 0.70x", Met: met(tun/raw >= 0.70)})
	// Where the CPU goes: every process shares the same cores, so the
	// throughput follows the CPU all of them spend per byte.
	gib := float64(size) / (1 << 30)
	if !measured(selfTun, selfRaw, cl0.CPUSeconds, clSt.CPUSeconds, srv0.CPUSeconds, srvSt.CPUSeconds, echo0.CPUSeconds, echoSt.CPUSeconds) {
		b.add(unmeasured(row{Section: sec, Name: "CPU seconds per GiB, all processes", Unit: "s"}, "raw TLS n/a"))
		b.note("CPU seconds are not measured on %s", runtime.GOOS)
	} else {
		b.cpuPerGiB(sec, gib, []float64{selfTun, clSt.CPUSeconds - cl0.CPUSeconds, srvSt.CPUSeconds - srv0.CPUSeconds},
			[]float64{selfRaw, echoSt.CPUSeconds - echo0.CPUSeconds})
	}
	const limitKiB = 64 << 10
	for _, n := range []struct {
		name string
		st   nodeStats
	}{{"server node peak RSS", srvSt}, {"client node peak RSS", clSt}} {
		r := row{Section: sec, Name: n.name, Value: float64(n.st.HWMKiB), Unit: "KiB", Shown: fmtKiB(float64(n.st.HWMKiB)),
			Baseline: "raw TLS echo process " + fmtKiB(float64(echoSt.HWMKiB)), Base: float64(echoSt.HWMKiB),
			Ratio: float64(n.st.HWMKiB) / float64(echoSt.HWMKiB), Target: "< 64 MiB", Met: met(n.st.HWMKiB < limitKiB)}
		if !measured(n.st.HWMKiB, echoSt.HWMKiB) {
			r = unmeasured(r, "raw TLS echo process "+kib(echoSt.HWMKiB))
		}
		b.add(r)
	}
	if !measured(srvSt.HWMKiB, clSt.HWMKiB, echoSt.HWMKiB) {
		b.note("peak RSS is not measured on %s", runtime.GOOS)
	}
	return nil
}

// cpuPerGiB adds the row and the note of the CPU seconds per GiB echoed:
// tunCPU is the load generator's, the client node's and the server
// node's, rawCPU the load generator's and the echo process's.
func (b *bench) cpuPerGiB(sec string, gib float64, tunCPU, rawCPU []float64) {
	sum := func(v []float64) (t float64) {
		for _, x := range v {
			t += x
		}
		return t
	}
	tunTotal, rawTotal := sum(tunCPU)/gib, sum(rawCPU)/gib
	b.add(row{Section: sec, Name: "CPU seconds per GiB, all processes", Value: tunTotal, Unit: "s", Shown: fmt.Sprintf("%.2f", tunTotal),
		Baseline: fmt.Sprintf("raw TLS %.2f", rawTotal), Base: rawTotal, Ratio: tunTotal / rawTotal})
	b.note("CPU per GiB echoed: restpipe %.2f s (load generator %.2f, client node %.2f, server node %.2f); "+
		"raw TLS %.2f s (load generator %.2f, echo process %.2f). Each byte crosses the client node's HTTP "+
		"connection twice and its tunnel connection twice; the raw baseline has no HTTP leg",
		tunTotal, tunCPU[0]/gib, tunCPU[1]/gib, tunCPU[2]/gib, rawTotal, rawCPU[0]/gib, rawCPU[1]/gib)
}

// allStats asks each node for its stats (no GC first), in order.
func allStats(ctx context.Context, nodes ...*child) ([]nodeStats, error) {
	out := make([]nodeStats, len(nodes))
	for i, c := range nodes {
		st, err := c.stats(ctx, false)
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

// startClients starts n clients of the server at addr, in nodes of at
// most opt.perProcess clients each, and returns the nodes (not started:
// send "start").
func (b *bench) startClients(ctx context.Context, addr string, n int) ([]*child, error) {
	var nodes []*child
	for first := 0; first < n; first += b.opt.perProcess {
		k := min(b.opt.perProcess, n-first)
		c, err := b.fleet.start(ctx, fmt.Sprintf("clients-%d", len(nodes)), roleClients, "-dir", b.dir,
			"-first", strconv.Itoa(first), "-n", strconv.Itoa(k),
			"-server", addr, "-reconnect-max", b.opt.reconnectMax.String())
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, c)
	}
	return nodes, nil
}

// scale is measurement 3: N idle clients on one server: the server's
// memory and goroutines per client, how long they take to connect, and
// how long to come back after the server process is killed and started
// again on the same port.
func (b *bench) scale(ctx context.Context) error {
	defer b.fleet.stopAll()
	n := b.opt.clients
	srv, err := b.fleet.start(ctx, "server", roleServer, "-dir", b.dir)
	if err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	before, err := srv.stats(ctx, true)
	if err != nil {
		return err
	}
	nodes, connectTime, err := b.connectClients(ctx, srv, n)
	if err != nil {
		return err
	}
	b.progress("scale     %d clients connected in %s", n, fmtDur(connectTime))
	time.Sleep(500 * time.Millisecond) // let the handshakes' garbage become garbage
	raw, err := srv.stats(ctx, false)
	if err != nil {
		return err
	}
	after, err := srv.stats(ctx, true)
	if err != nil {
		return err
	}
	var clientKiB int64
	for _, c := range nodes {
		st, err := c.stats(ctx, true)
		if err != nil {
			return err
		}
		if st.RSSKiB == notMeasured || clientKiB == notMeasured {
			clientKiB = notMeasured
		} else {
			clientKiB += st.RSSKiB
		}
	}
	perClient := float64(after.RSSKiB-before.RSSKiB) / float64(n)
	perClientRaw := float64(raw.RSSKiB-before.RSSKiB) / float64(n)
	goroutines := float64(after.Goroutines-before.Goroutines) / float64(n)
	b.progress("scale     server RSS %s -> %s (%s before GC), %d -> %d goroutines",
		kib(before.RSSKiB), kib(after.RSSKiB), kib(raw.RSSKiB), before.Goroutines, after.Goroutines)

	// Restart: kill the server, start a new one on the same port, and
	// wait for every client to be back.
	addr := srv.ready.Tunnel
	restartTimeout := 60*time.Second + time.Duration(n)*5*time.Millisecond
	start := time.Now()
	srv.stop()
	srv2, err := b.fleet.start(ctx, "server-2", roleServer, "-dir", b.dir, "-listen", addr)
	if err != nil {
		return fmt.Errorf("restart server on %s: %w", addr, err)
	}
	_, back, err := waitConnected(ctx, srv2, n, restartTimeout-time.Since(start))
	if err != nil {
		return err
	}
	restart := time.Since(start)
	b.progress("scale     %d of %d clients back %s after the server was killed", back, n, fmtDur(restart))

	sec := fmt.Sprintf("3. scale: %d idle clients on one server", n)
	rssRow := row{Section: sec, Name: "server RSS per idle client", Value: perClient, Unit: "KiB", Shown: fmtKiB(perClient),
		Target: "<= 40 KiB", Met: met(perClient <= 40)}
	if measured(before.RSSKiB, after.RSSKiB, raw.RSSKiB, clientKiB) {
		b.add(rssRow)
		b.note("server RSS per idle client is measured after debug.FreeOSMemory in the server (%s before it); "+
			"RSS %s with no client, %s with %d; the client processes hold %s per client",
			fmtKiB(perClientRaw), fmtKiB(float64(before.RSSKiB)), fmtKiB(float64(after.RSSKiB)), n, fmtKiB(float64(clientKiB)/float64(n)))
	} else {
		b.add(unmeasured(rssRow, ""))
		b.note("current RSS is not measured on %s", runtime.GOOS)
	}
	per := func(a, b uint64) string { return fmtKiB((float64(a) - float64(b)) / 1024 / float64(n)) }
	b.note("of the server's memory per idle client: live heap %s, free space in heap spans in use %s, goroutine stacks %s",
		per(after.HeapAlloc, before.HeapAlloc), per(after.HeapInuse-after.HeapAlloc, before.HeapInuse-before.HeapAlloc),
		per(after.StackInuse, before.StackInuse))
	b.add(row{Section: sec, Name: "server goroutines per idle client", Value: goroutines, Unit: "goroutines", Shown: fmt.Sprintf("%.1f", goroutines)})
	b.add(row{Section: sec, Name: "time to connect them all", Value: connectTime.Seconds(), Unit: "s", Shown: fmtDur(connectTime)})
	r := row{Section: sec, Name: "all back after a server restart", Value: restart.Seconds(), Unit: "s", Shown: fmtDur(restart),
		Target: "<= 20 s", Met: met(back >= n && restart <= 20*time.Second)}
	if back < n {
		r.Shown = fmt.Sprintf("%d of %d after %s", back, n, fmtDur(restart))
	}
	b.add(r)
	return nil
}

// events is measurement 4: the server calling into many clients at once,
// GET /client/<name>/time through its front end, 64 workers taking the
// clients in turn.
func (b *bench) events(ctx context.Context) error {
	defer b.fleet.stopAll()
	n := b.opt.eventClients
	srv, err := b.fleet.start(ctx, "server", roleServer, "-dir", b.dir)
	if err != nil {
		return err
	}
	if _, _, err := b.connectClients(ctx, srv, n); err != nil {
		return err
	}
	urls := make([]string, n)
	for i := range urls {
		urls[i] = "http://" + srv.ready.HTTP + "/client/" + clientName(i) + "/time"
	}
	const workers = 64
	r, err := runCell(ctx, workers, b.opt.warmup(), b.opt.duration, func(k uint64) string { return urls[k%uint64(n)] })
	if err != nil {
		return fmt.Errorf("event rate: %w", err)
	}
	b.progress("events    %d clients, %d workers: %.0f events/s, p50 %s, p99 %s", n, workers, r.RPS, fmtDur(r.P50), fmtDur(r.P99))
	if r.Errors > 0 {
		b.note("event rate: %d of %d events failed (first: %s)", r.Errors, r.Errors+r.Requests, r.FirstError)
	}
	sec := fmt.Sprintf("4. server calling %d clients in turn, %d workers", n, workers)
	rw := row{Section: sec, Name: "events/s", Value: r.RPS, Unit: "events/s", Shown: fmt.Sprintf("%.0f", r.RPS)}
	if b.proxyRPS64 > 0 {
		rw.Baseline, rw.Base, rw.Ratio = fmt.Sprintf("proxy hop c=64 %.0f", b.proxyRPS64), b.proxyRPS64, r.RPS/b.proxyRPS64
	}
	b.add(rw)
	b.add(row{Section: sec, Name: "latency p50 / p99", Value: float64(r.P50.Microseconds()), Unit: "µs",
		Shown: fmtDur(r.P50) + " / " + fmtDur(r.P99)})
	return nil
}
