package tunnel_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// randomReader yields n deterministic pseudo-random bytes.
type randomReader struct {
	rng *rand.ChaCha8
	n   int64
}

func newRandomReader(seed byte, n int64) *randomReader {
	var s [32]byte
	s[0] = seed
	return &randomReader{rng: rand.NewChaCha8(s), n: n}
}

func (r *randomReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, _ := r.rng.Read(p)
	r.n -= int64(n)
	return n, nil
}

// echoThrough POSTs size random bytes to url (a post_echo) with chunked
// encoding and checks the SHA-256 of what comes back.
func echoThrough(t *testing.T, url string, size int64) {
	t.Helper()
	sent := sha256.New()
	body := io.TeeReader(newRandomReader(byte(size), size), sent)
	req, err := http.NewRequest(http.MethodPost, url, io.NopCloser(body)) // no length: chunked
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	if err != nil {
		t.Fatalf("read echo after %d bytes: %v", n, err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-test" {
		t.Errorf("echo: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if n != size || string(got.Sum(nil)) != string(sent.Sum(nil)) {
		t.Errorf("echoed %d bytes, sent %d; SHA-256 match: %v", n, size, string(got.Sum(nil)) == string(sent.Sum(nil)))
	}
	if e := resp.Trailer.Get("X-Restpipe-Error"); e != "" {
		t.Errorf("trailer error %q", e)
	}
}

// TestStreamedEcho sends 64 MiB through post_echo each way and checks the
// bytes; the 1 GiB run is skipped under -short.
func TestStreamedEcho(t *testing.T) {
	_, s, c := pair(t)
	size := int64(64 << 20)
	if !testing.Short() {
		size = 1 << 30
	}
	t.Run("client to server", func(t *testing.T) { echoThrough(t, c.httpURL+"/server/echo", size) })
	t.Run("server to client", func(t *testing.T) { echoThrough(t, s.httpURL+"/client/c1/echo", size) })
}

// TestMaxFrame: bodies stream whole both ways with the smallest frames
// allowed, and a MaxFrame out of bounds is refused.
func TestMaxFrame(t *testing.T) {
	p := newPKI(t)
	small := func(c *tunnel.Config) { c.MaxFrame = 16 << 10 }
	s := startServer(t, p, small)
	c := startClient(t, p, "c1", s.tunnelAddr, small)
	waitConnected(t, c, s)
	t.Run("client to server", func(t *testing.T) { echoThrough(t, c.httpURL+"/server/echo", 8<<20) })
	t.Run("server to client", func(t *testing.T) { echoThrough(t, s.httpURL+"/client/c1/echo", 8<<20) })

	for _, bad := range []int{1 << 10, 16<<10 - 1, 1<<20 + 1, -1} {
		cfg := nodeConfig(t, p.server, nil)
		cfg.MaxFrame = bad
		if _, err := tunnel.NewServer(cfg); err == nil || !strings.Contains(err.Error(), "MaxFrame") {
			t.Errorf("NewServer with MaxFrame %d: %v, want an error about MaxFrame", bad, err)
		}
		if _, err := tunnel.NewClient(cfg); err == nil || !strings.Contains(err.Error(), "MaxFrame") {
			t.Errorf("NewClient with MaxFrame %d: %v, want an error about MaxFrame", bad, err)
		}
	}
}

// TestRepliesStreamAsProduced: a Server-Sent Events reply reaches the
// caller event by event, while the handler is still producing it.
func TestRepliesStreamAsProduced(t *testing.T) {
	_, s, c := pair(t)
	next := make(chan struct{})
	c.reg.MustHandle("get_events", func(_ context.Context, req *handlers.Request) (any, error) {
		pr, pw := io.Pipe()
		go func() {
			for i := 1; i <= 3; i++ {
				fmt.Fprintf(pw, "id: %d\ndata: event %d\n\n", i, i)
				if i < 3 {
					select {
					case <-next: // the test got event i
					case <-req.Context().Done():
						pw.CloseWithError(req.Context().Err())
						return
					}
				}
			}
			pw.Close()
		}()
		return &handlers.Reply{ContentType: "text/event-stream", Body: pr}, nil
	})
	resp, err := http.Get(s.httpURL + "/client/c1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	for i := 1; i <= 3; i++ {
		// Event i must arrive before the handler may write event i+1.
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("event %d: %v (got %q)", i, err, ev.String())
			}
			if line == "\n" {
				break
			}
			ev.WriteString(line)
		}
		if want := fmt.Sprintf("id: %d\ndata: event %d\n", i, i); ev.String() != want {
			t.Errorf("event %d: %q, want %q", i, ev.String(), want)
		}
		if i < 3 {
			next <- struct{}{}
		}
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the last event: %q %v", rest, err)
	}
}

// TestCallerGoneCancelsHandler: a caller that goes away mid-reply cancels
// the handler's context on the other node, in both directions.
func TestCallerGoneCancelsHandler(t *testing.T) {
	_, s, c := pair(t)
	for _, dir := range []struct {
		name string
		reg  *handlers.Registry
		url  string
	}{
		{"server calls client", c.reg, s.httpURL + "/client/c1/forever"},
		{"client calls server", s.reg, c.httpURL + "/server/forever"},
	} {
		t.Run(dir.name, func(t *testing.T) {
			cancelled := make(chan error, 1)
			dir.reg.MustHandle("get_forever", func(_ context.Context, req *handlers.Request) (any, error) {
				pr, pw := io.Pipe()
				go func() {
					fmt.Fprintln(pw, "first line")
					<-req.Context().Done()
					cancelled <- req.Context().Err()
					pw.CloseWithError(req.Context().Err())
				}()
				return &handlers.Reply{ContentType: "text/plain", Body: pr}, nil
			})
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, dir.url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			if err != nil || line != "first line\n" {
				t.Fatalf("first line %q %v", line, err)
			}
			cancel() // the caller goes away
			resp.Body.Close()
			select {
			case err := <-cancelled:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("handler context ended with %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("handler context not cancelled after the caller left")
			}
		})
	}
}

// TestBodyEndsEarly: a reply body that fails part way is aborted (no
// last chunk, so no X-Restpipe-Error trailer can be sent any more): the
// caller reads what was sent and then an error, never a clean EOF, and
// the front end logs the reason under the request id.
func TestBodyEndsEarly(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = logs.logger() })
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	c.reg.MustHandle("get_broken", func(context.Context, *handlers.Request) (any, error) {
		return &handlers.Reply{ContentType: "text/plain",
			Body: io.MultiReader(strings.NewReader("partial "), errReader{errors.New("disk unplugged")})}, nil
	})
	req, _ := http.NewRequest(http.MethodGet, s.httpURL+"/client/c1/broken", nil)
	req.Header.Set("X-Request-Id", "broken-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read: %v, want io.ErrUnexpectedEOF", err)
	}
	if string(b) != "partial " {
		t.Errorf("body %q", b)
	}
	if e := resp.Trailer.Get("X-Restpipe-Error"); e != "" {
		t.Errorf("trailer X-Restpipe-Error %q on an aborted reply", e)
	}
	logs.wait(t, "reply cut short", "req=broken-1", "disk unplugged")
	// The node is fine afterwards.
	if r := get(t, s.httpURL+"/client/c1/time"); r.status != 200 {
		t.Errorf("after: %d", r.status)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
