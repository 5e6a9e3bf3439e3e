package main

// The load generator: the same code calls the tunnel and its baselines.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/restpipe/restpipe/certs"
)

// cellResult is one load cell: concurrency workers calling for a while.
type cellResult struct {
	Concurrency int           `json:"concurrency"`
	Requests    int           `json:"requests"` // answered 200 within the measured window
	Errors      int           `json:"errors"`
	FirstError  string        `json:"first_error,omitempty"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	RPS         float64       `json:"rps"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
}

// runCell runs conc workers, each calling GET url(n) (n counts requests
// across all workers) on kept-alive connections, one request after
// another, for warmup and then for dur; requests started within dur are
// measured. Every request is bounded by 10 s.
func runCell(ctx context.Context, conc int, warmup, dur time.Duration, url func(n uint64) string) (cellResult, error) {
	tr := &http.Transport{
		MaxIdleConns:        conc * 2,
		MaxIdleConnsPerHost: conc * 2,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var (
		counter  atomic.Uint64
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		errs     int
		firstErr error
		lastEnd  time.Time
	)
	begin := time.Now()
	mStart := begin.Add(warmup)
	mEnd := mStart.Add(dur)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1024)
			var myErrs int
			var myFirst error
			var myEnd time.Time
			for ctx.Err() == nil {
				start := time.Now()
				if !start.Before(mEnd) {
					break
				}
				err := get(ctx, client, url(counter.Add(1)-1))
				end := time.Now()
				if start.Before(mStart) {
					continue
				}
				if err != nil {
					myErrs++
					if myFirst == nil {
						myFirst = err
					}
					continue
				}
				lat = append(lat, end.Sub(start))
				myEnd = end
			}
			mu.Lock()
			all = append(all, lat...)
			errs += myErrs
			if firstErr == nil {
				firstErr = myFirst
			}
			if myEnd.After(lastEnd) {
				lastEnd = myEnd
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return cellResult{}, err
	}
	res := cellResult{Concurrency: conc, Requests: len(all), Errors: errs}
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	if len(all) == 0 {
		return res, fmt.Errorf("no request succeeded in %v (%d errors, first: %v)", dur, errs, firstErr)
	}
	res.Elapsed = max(lastEnd.Sub(mStart), dur)
	res.RPS = float64(len(all)) / res.Elapsed.Seconds()
	sortDurations(all)
	res.P50 = percentile(all, 50)
	res.P99 = percentile(all, 99)
	return res, nil
}

// get does one GET and reads the body; anything but 200 is an error.
func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return err
}

// pattern is 1 MiB of random bytes: every streamed body is this,
// repeated, so that the receiver can check each byte it gets back.
var pattern = func() []byte {
	b := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{'r', 'e', 's', 't', 'p', 'i', 'p', 'e'})
	_, _ = rng.Read(b)
	return b
}()

// patternReader yields n bytes of pattern, repeated. It has no WriteTo,
// so that a copy uses 32 KiB buffers as it would with a real body.
type patternReader struct {
	n   int64
	off int
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	k := copy(p, pattern[r.off:])
	r.off = (r.off + k) % len(pattern)
	r.n -= int64(k)
	return k, nil
}

// readPattern reads r to its end with a 32 KiB buffer, checks that it is
// pattern repeated, and returns how many bytes it read.
func readPattern(r io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	var check patternChecker
	for {
		k, err := r.Read(buf)
		if cerr := check.next(buf[:k]); cerr != nil {
			return check.n, cerr
		}
		if err == io.EOF {
			return check.n, nil
		}
		if err != nil {
			return check.n, err
		}
	}
}

// patternChecker checks, piece by piece, that a body is pattern
// repeated; n counts the bytes checked.
type patternChecker struct {
	n   int64
	off int
}

func (c *patternChecker) next(got []byte) error {
	for len(got) > 0 {
		m := min(len(got), len(pattern)-c.off)
		if !bytes.Equal(got[:m], pattern[c.off:c.off+m]) {
			return fmt.Errorf("byte %d: got back other bytes than were sent", c.n)
		}
		got, c.off, c.n = got[m:], (c.off+m)%len(pattern), c.n+int64(m)
	}
	return nil
}

// echoHTTP POSTs size bytes to url (post_echo through a front end),
// reads the echo back while it sends, checks it, and returns how long the
// whole exchange took.
func echoHTTP(ctx context.Context, url string, size int64) (time.Duration, error) {
	tr := &http.Transport{DisableCompression: true, WriteBufferSize: 32 << 10, ReadBufferSize: 32 << 10}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &patternReader{n: size})
	if err != nil {
		return 0, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return 0, fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	n, err := readPattern(resp.Body)
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("POST %s: reading the echo: %w", url, err)
	}
	if n != size {
		return 0, fmt.Errorf("POST %s: echo has %d of %d bytes (trailer %q)", url, n, size, resp.Trailer.Get("X-Restpipe-Error"))
	}
	return elapsed, nil
}

// echoTLS sends size bytes over one new mutually authenticated TLS 1.3
// connection to an echo server at addr, reads them back while it sends,
// checks them, and returns how long the exchange took (handshake not
// included).
func echoTLS(ctx context.Context, addr string, id *certs.Identity, size int64) (time.Duration, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: id.ClientTLSConfig("127.0.0.1")}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("dial raw TLS %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := io.CopyBuffer(conn, &patternReader{n: size}, make([]byte, 32<<10))
		werr <- err
	}()
	n, err := readPattern(io.LimitReader(conn, size))
	elapsed := time.Since(start)
	if err == nil && n != size {
		err = fmt.Errorf("echo has %d of %d bytes", n, size)
	}
	if err != nil {
		_ = conn.Close()
		<-werr
		return 0, fmt.Errorf("raw TLS echo %s: %w", addr, err)
	}
	if err := <-werr; err != nil && !errors.Is(err, net.ErrClosed) {
		return 0, fmt.Errorf("raw TLS echo %s: send: %w", addr, err)
	}
	return elapsed, nil
}
