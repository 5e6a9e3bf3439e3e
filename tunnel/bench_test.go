package tunnel_test

// Benchmarks of the tunnel over real TLS, yamux and HTTP on 127.0.0.1.
//
//	go test -run='^$' -bench=Stream -benchtime=5x ./tunnel/
//	go test -run='^$' -bench=StreamRatio -benchtime=5x ./tunnel/
//	go test -run='^$' -bench=WindowSweep -benchtime=3x ./tunnel/
//	go test -run='^$' -bench=RoundTrip ./tunnel/
//
// BenchmarkStreamRatio is the figure to track: tunnel throughput divided
// by the throughput of a raw TLS 1.3 loopback copy of the same bytes,
// measured in the same run, so that a noisy machine affects both.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// benchSize is how many bytes one streaming iteration moves.
const benchSize = 64 << 20

// repeatBuf is 1 MiB of random bytes that repeatReader serves over and
// over: a body source that costs nothing to produce.
var repeatBuf = func() []byte {
	b := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{42})
	_, _ = rng.Read(b)
	return b
}()

// repeatReader yields n bytes of repeatBuf, repeated. It deliberately has
// no WriteTo, so that io.Copy uses its 32 KiB buffer as it would with a
// real body.
type repeatReader struct {
	n   int64
	off int
}

func newRepeatReader(n int64) *repeatReader { return &repeatReader{n: n} }

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	k := copy(p, repeatBuf[r.off:])
	r.off = (r.off + k) % len(repeatBuf)
	r.n -= int64(k)
	return k, nil
}

// discard reads r to its end with a 32 KiB buffer and returns the count.
// (io.Discard's ReadFrom would use 8 KiB reads.)
func discard(r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// benchTunnel is a connected server and client with the benchmark
// handlers registered on the server, and an HTTP client for the client's
// front end.
type benchTunnel struct {
	s    *serverNode
	c    *clientNode
	http *http.Client
}

// startBenchTunnel starts a pair with tweak applied to both ends (a
// stream window is a receive window: each end sets its own).
func startBenchTunnel(b *testing.B, tweak func(*tunnel.Config)) *benchTunnel {
	b.Helper()
	p := newPKI(b)
	s := startServer(b, p, tweak)
	c := startClient(b, p, "bench", s.tunnelAddr, tweak)
	waitConnected(b, c, s)
	s.reg.MustHandle("post_sink", func(_ context.Context, req *handlers.Request) (any, error) {
		buf := make([]byte, 32<<10)
		n, err := discard(req.Body, buf)
		if err != nil {
			return nil, err
		}
		return map[string]int64{"bytes": n}, nil
	})
	s.reg.MustHandle("get_source", func(_ context.Context, req *handlers.Request) (any, error) {
		if len(req.Args) != 1 {
			return nil, handlers.Errorf(http.StatusBadRequest, handlers.CodeBadRequest, "get_source//N")
		}
		n, err := strconv.ParseInt(req.Args[0], 10, 64)
		if err != nil || n < 0 {
			return nil, handlers.Errorf(http.StatusBadRequest, handlers.CodeBadRequest, "bad N %q", req.Args[0])
		}
		return &handlers.Reply{ContentType: "application/octet-stream", Body: newRepeatReader(n)}, nil
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	return &benchTunnel{s: s, c: c, http: &http.Client{Transport: tr}}
}

// upload POSTs size bytes to the server's post_sink through the client's
// front end and checks the count the sink saw.
func (bt *benchTunnel) upload(b *testing.B, size int64) {
	req, err := http.NewRequest(http.MethodPost, bt.c.httpURL+"/server/sink", newRepeatReader(size))
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := bt.http.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	var got struct{ Bytes int64 }
	if err == nil {
		err = json.Unmarshal(body, &got)
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("sink: status %d, body %q, trailer %q: %v", resp.StatusCode, body, resp.Trailer.Get(tunnel.HeaderError), err)
	}
	if got.Bytes != size {
		b.Fatalf("sink got %d bytes, sent %d", got.Bytes, size)
	}
}

// download GETs size bytes from the server's get_source through the
// client's front end and discards them.
func (bt *benchTunnel) download(b *testing.B, size int64, buf []byte) {
	resp, err := bt.http.Get(fmt.Sprintf("%s/server/source//%d", bt.c.httpURL, size))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := discard(resp.Body, buf)
	if err != nil || n != size || resp.StatusCode != http.StatusOK {
		b.Fatalf("source: status %d, %d of %d bytes, %v", resp.StatusCode, n, size, err)
	}
	if e := resp.Trailer.Get(tunnel.HeaderError); e != "" {
		b.Fatalf("source: trailer error %q", e)
	}
}

// rawTLS is one TLS 1.3 loopback connection with mutual authentication,
// as the tunnel uses, and a reader goroutine that discards what it gets.
type rawTLS struct {
	conn net.Conn
	want chan int64 // how many bytes the reader must take next
	done chan error // the reader took them
	buf  []byte
}

func startRawTLS(b *testing.B) *rawTLS {
	b.Helper()
	p := newPKI(b)
	cli := p.client(b, "raw")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{p.server.Certificate},
		ClientCAs:    p.server.Pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		if err := c.(*tls.Conn).Handshake(); err != nil {
			c.Close()
			accepted <- nil
			return
		}
		accepted <- c
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cli.Certificate},
		RootCAs:      cli.Pool,
		ServerName:   "127.0.0.1",
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := <-accepted
	if srv == nil {
		conn.Close()
		b.Fatal("raw TLS: accept or handshake failed")
	}
	r := &rawTLS{conn: conn, want: make(chan int64), done: make(chan error), buf: make([]byte, 32<<10)}
	go func() {
		buf := make([]byte, 32<<10)
		for n := range r.want {
			got, err := discard(io.LimitReader(srv, n), buf)
			if err == nil && got != n {
				err = fmt.Errorf("raw TLS: read %d of %d bytes", got, n)
			}
			r.done <- err
		}
		srv.Close()
	}()
	b.Cleanup(func() { close(r.want); conn.Close() })
	return r
}

// copy sends size bytes and waits until the reader has them all.
func (r *rawTLS) copy(b *testing.B, size int64) {
	r.want <- size
	if _, err := io.CopyBuffer(r.conn, newRepeatReader(size), r.buf); err != nil {
		b.Fatal(err)
	}
	if err := <-r.done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStreamTunnel uploads benchSize bytes per iteration from an HTTP
// caller, through the client's front end and the tunnel, to a handler on
// the server that discards them.
func BenchmarkStreamTunnel(b *testing.B) {
	bt := startBenchTunnel(b, nil)
	b.ReportAllocs()
	b.SetBytes(benchSize)
	sc := startSyscalls()
	b.ResetTimer()
	for range b.N {
		bt.upload(b, benchSize)
	}
	b.StopTimer()
	sc.report(b)
}

// BenchmarkStreamTunnelDownload streams benchSize bytes per iteration from
// a handler on the server to an HTTP caller of the client's front end.
func BenchmarkStreamTunnelDownload(b *testing.B) {
	bt := startBenchTunnel(b, nil)
	buf := make([]byte, 32<<10)
	b.ReportAllocs()
	b.SetBytes(benchSize)
	sc := startSyscalls()
	b.ResetTimer()
	for range b.N {
		bt.download(b, benchSize, buf)
	}
	b.StopTimer()
	sc.report(b)
}

// BenchmarkStreamRawTLS is the baseline: the same bytes over one raw TLS
// 1.3 loopback connection, 32 KiB writes, the reader discarding.
func BenchmarkStreamRawTLS(b *testing.B) {
	r := startRawTLS(b)
	b.ReportAllocs()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		r.copy(b, benchSize)
	}
}

// BenchmarkStreamRatio measures tunnel uploads and raw TLS copies of the
// same bytes in one run, alternating, and reports tunnel_MB/s, raw_MB/s
// and their ratio (the median of the per-round ratios, so that one noisy
// round does not decide it).
func BenchmarkStreamRatio(b *testing.B) {
	benchRatio(b, nil)
}

// BenchmarkWindowSweep is BenchmarkStreamRatio for each StreamWindow in
// turn, both ends set alike.
func BenchmarkWindowSweep(b *testing.B) {
	for _, w := range []uint32{256 << 10, 1 << 20, 4 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("window=%dKiB", w>>10), func(b *testing.B) {
			benchRatio(b, func(c *tunnel.Config) { c.StreamWindow = w })
		})
	}
}

func benchRatio(b *testing.B, tweak func(*tunnel.Config)) {
	bt := startBenchTunnel(b, tweak)
	raw := startRawTLS(b)
	// Warm both paths up once: connections, buffers, yamux windows.
	bt.upload(b, 4<<20)
	raw.copy(b, 4<<20)
	b.ReportAllocs()
	b.ResetTimer()
	var tunnelTime, rawTime time.Duration
	ratios := make([]float64, 0, b.N)
	for i := range b.N {
		var dt, dr time.Duration
		run := func(first bool) {
			start := time.Now()
			if first {
				bt.upload(b, benchSize)
				dt = time.Since(start)
			} else {
				raw.copy(b, benchSize)
				dr = time.Since(start)
			}
		}
		// Alternate which goes first, so that neither always gets the
		// machine warm or cold.
		run(i%2 == 0)
		run(i%2 != 0)
		tunnelTime += dt
		rawTime += dr
		ratios = append(ratios, dr.Seconds()/dt.Seconds())
	}
	b.StopTimer()
	total := float64(benchSize) * float64(b.N)
	b.ReportMetric(total/tunnelTime.Seconds()/1e6, "tunnel_MB/s")
	b.ReportMetric(total/rawTime.Seconds()/1e6, "raw_MB/s")
	sort.Float64s(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "ratio")
}

// BenchmarkRoundTripSmall is one small call, GET /server/time, through
// the client's front end on a kept-alive connection.
func BenchmarkRoundTripSmall(b *testing.B) {
	bt := startBenchTunnel(b, nil)
	url := bt.c.httpURL + "/server/time"
	roundTrip(b, bt.http, url) // warm the connection up
	b.ReportAllocs()
	sc := startSyscalls()
	b.ResetTimer()
	for range b.N {
		roundTrip(b, bt.http, url)
	}
	b.StopTimer()
	sc.report(b)
}

// BenchmarkRoundTripSmallParallel is BenchmarkRoundTripSmall from
// GOMAXPROCS (times -cpu) callers at once, over one tunnel session.
func BenchmarkRoundTripSmallParallel(b *testing.B) {
	bt := startBenchTunnel(b, nil)
	url := bt.c.httpURL + "/server/time"
	roundTrip(b, bt.http, url)
	b.ReportAllocs()
	sc := startSyscalls()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			roundTrip(b, bt.http, url)
		}
	})
	b.StopTimer()
	sc.report(b)
}

// syscalls counts this process's read and write system calls (Linux's
// /proc/self/io) and the goroutines it started, to report them per
// operation: both nodes, the caller and the handler all run in the test
// process, so it is the whole cost.
type syscalls struct{ r, w, g int64 }

func startSyscalls() syscalls { return readSyscalls() }

func readSyscalls() syscalls {
	var s syscalls
	m := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(m)
	if m[0].Value.Kind() == metrics.KindUint64 {
		s.g = int64(m[0].Value.Uint64())
	}
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return s
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "syscr":
			s.r = n
		case "syscw":
			s.w = n
		}
	}
	return s
}

// report adds reads/op and writes/op to b's results (nothing where
// /proc/self/io is missing).
func (s syscalls) report(b *testing.B) {
	now := readSyscalls()
	if now.r == 0 || b.N == 0 {
		return
	}
	b.ReportMetric(float64(now.r-s.r)/float64(b.N), "reads/op")
	b.ReportMetric(float64(now.w-s.w)/float64(b.N), "writes/op")
	b.ReportMetric(float64(now.g-s.g)/float64(b.N), "goroutines/op")
}

func roundTrip(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("GET %s: %d", url, resp.StatusCode)
	}
}
