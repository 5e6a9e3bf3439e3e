package tunnel_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// cutPart is what the serving side sends of a reply before it is cut off.
const cutPart = "partial "

// cutReplies registers get_cut on c: a reply that sends cutPart and then
// waits, with its stream open, until its event ends.
func cutReplies(c *clientNode) {
	c.reg.MustHandle("get_cut", func(ctx context.Context, _ *handlers.Request) (any, error) {
		return &handlers.Reply{ContentType: "text/plain",
			Body: io.MultiReader(strings.NewReader(cutPart), ctxReader{ctx})}, nil
	})
}

// ctxReader blocks until ctx ends, then fails with its error.
type ctxReader struct{ ctx context.Context }

func (r ctxReader) Read([]byte) (int, error) {
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

// cutMidReply drops the session of c while a reply of it streams, once
// the caller has its first bytes (started returns), and waits for c to
// be back.
func cutMidReply(t *testing.T, s *serverNode, c *clientNode, started func()) {
	t.Helper()
	prev, ok := c.Server()
	if !ok {
		t.Fatal("client not connected")
	}
	started()
	if !s.Disconnect(c.Name()) {
		t.Fatal("Disconnect: client not connected")
	}
	waitReconnected(t, c, s, prev)
}

// TestReplyCutShortIsAnError: a reply whose serving node goes away after
// its status and part of its body went out is aborted, never ended with
// a last chunk: Go's client, curl and Python's requests each report an
// error, and the front end logs why under the request id.
func TestReplyCutShortIsAnError(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = logs.logger() })
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	cutReplies(c)
	url := s.httpURL + "/client/c1/cut"

	t.Run("go", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("X-Request-Id", "cut-go")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		head := make([]byte, len(cutPart))
		cutMidReply(t, s, c, func() {
			if _, err := io.ReadFull(resp.Body, head); err != nil || string(head) != cutPart {
				t.Fatalf("first bytes %q: %v", head, err)
			}
		})
		rest, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("body after the cut: %q, %v; want io.ErrUnexpectedEOF", rest, err)
		}
		logs.wait(t, "reply cut short", "req=cut-go")
	})

	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("no curl")
		}
		cmd := exec.Command("curl", "-sS", "-N", "-H", "X-Request-Id: cut-curl", url)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cutMidReply(t, s, c, func() {
			head := make([]byte, len(cutPart))
			if _, err := io.ReadFull(out, head); err != nil || string(head) != cutPart {
				t.Fatalf("curl's first bytes %q: %v", head, err)
			}
		})
		rest, _ := io.ReadAll(out)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 18 {
			t.Errorf("curl: %v (output after the cut %q, stderr %q); want exit status 18", err, rest, stderr.String())
		}
		logs.wait(t, "reply cut short", "req=cut-curl")
	})

	t.Run("python", func(t *testing.T) {
		if exec.Command("python3", "-c", "import requests").Run() != nil {
			t.Skip("no python3 with requests")
		}
		const script = `
import sys, requests
r = requests.get(sys.argv[1], stream=True, headers={"X-Request-Id": "cut-python"}, timeout=20)
it = r.iter_content(chunk_size=None)
print("status", r.status_code, repr(next(it)), flush=True)
try:
    for _ in it:
        pass
except Exception as e:
    print("raised", type(e).__name__, flush=True)
    sys.exit(3)
print("no error", flush=True)
`
		cmd := exec.Command("python3", "-c", script, url)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		cutMidReply(t, s, c, func() {
			if !lines.Scan() || lines.Text() != "status 200 b'"+cutPart+"'" {
				t.Fatalf("python's first line %q (stderr %q)", lines.Text(), stderr.String())
			}
		})
		lines.Scan()
		last := lines.Text()
		err = cmd.Wait()
		if last != "raised ChunkedEncodingError" {
			t.Errorf("python: %q, %v (stderr %q); want requests' ChunkedEncodingError", last, err, stderr.String())
		}
		logs.wait(t, "reply cut short", "req=cut-python")
	})

	// The front end still answers on the same server.
	if r := get(t, s.httpURL+"/client/c1/time"); r.status != 200 {
		t.Errorf("after: %d %s", r.status, r.body)
	}
}

// TestReplyCutShortHTTP11Framing: on the wire, the aborted reply has its
// chunks but no last chunk: the connection closes instead.
func TestReplyCutShortHTTP11Framing(t *testing.T) {
	_, s, c := pair(t)
	cutReplies(c)
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.httpURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, "GET /client/c1/cut HTTP/1.1\r\nHost: "+strings.TrimPrefix(s.httpURL, "http://")+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var got strings.Builder
	cutMidReply(t, s, c, func() {
		for !strings.Contains(got.String(), cutPart) {
			line, err := br.ReadString('\n')
			got.WriteString(line)
			if err != nil {
				t.Fatalf("before the cut: %q: %v", got.String(), err)
			}
		}
	})
	rest, err := io.ReadAll(br)
	got.Write(rest)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if s := got.String(); !strings.Contains(s, "Transfer-Encoding: chunked") || strings.HasSuffix(s, "0\r\n\r\n") || strings.Contains(s, "X-Restpipe-Error") {
		t.Errorf("reply, to the closed connection:\n%s\nwant chunks without the last chunk or a trailer", s)
	}
}

// TestForwardShortBodyIsAnError: a forward route's service that sends
// fewer bytes than its Content-Length, or dies mid-body, cuts the
// caller's reply short: an error, not a clean end.
func TestForwardShortBodyIsAnError(t *testing.T) {
	_, s, c := pair(t)
	short := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, cutPart) // 8 of 100, then the handler returns
	}))
	t.Cleanup(short.Close)
	dies := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, cutPart)
		http.NewResponseController(w).Flush() // chunked, under way
		panic(http.ErrAbortHandler)           // the service dies mid-body
	}))
	t.Cleanup(dies.Close)
	if err := c.reg.Forward("short", short.URL); err != nil {
		t.Fatal(err)
	}
	if err := c.reg.Forward("dies", dies.URL); err != nil {
		t.Fatal(err)
	}
	for _, route := range []string{"short", "dies"} {
		t.Run(route, func(t *testing.T) {
			resp, err := http.Get(s.httpURL + "/client/c1/" + route)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != cutPart || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%d %q, %v; want 200 %q then io.ErrUnexpectedEOF", resp.StatusCode, b, err, cutPart)
			}
		})
	}
}

// TestStreamingEchoOverMaxBody: a handler that streams its answer while
// the upload runs over --max-body never gives a clean 200 (it ended
// cleanly, with the limit's error only in a trailer): once the reply has
// started, it is aborted.
func TestStreamingEchoOverMaxBody(t *testing.T) {
	const limit = 100 << 10 // above the 64 KiB the front end reads ahead
	p := newPKI(t)
	s := startServer(t, p, nil)
	c := startClient(t, p, "small", s.tunnelAddr, func(cfg *tunnel.Config) { cfg.MaxBodyBytes = limit })
	waitConnected(t, c, s)
	pr, pw := io.Pipe()
	defer pr.Close()
	more := make(chan struct{})
	go func() {
		chunk := strings.Repeat("x", 4<<10)
		for n := 0; n < 2*limit; n += len(chunk) {
			if n == 80<<10 {
				<-more // under the limit until the reply streams
			}
			if _, err := io.WriteString(pw, chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	resp, err := http.Post(c.httpURL+"/server/echo", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d before the upload was over the limit", resp.StatusCode)
	}
	head := make([]byte, 4<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	close(more)
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("a clean 200 with %d bytes for an upload of %d over a limit of %d", len(head)+len(b), 2*limit, limit)
	}
	if n := len(head) + len(b); n > limit {
		t.Errorf("%d bytes echoed, over the limit of %d", n, limit)
	}
}
