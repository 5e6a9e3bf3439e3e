//go:build unix

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// interopDoc is what the backend's /doc serves, with its length.
const interopDoc = "a document of known length\n"

// interopBackend is a service behind a forward route: POST /sha256
// answers the SHA-256 and length of what it received, GET /bytes streams
// data in 64 KiB writes of unknown total length, GET /doc is interopDoc
// (HEAD too, with its Content-Length), /ws echoes WebSocket messages.
func interopBackend(t *testing.T, data []byte) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sha256", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%x %d", h.Sum(nil), n)
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 64<<10)
			if _, err := w.Write(rest[:n]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			rest = rest[n:]
		}
	})
	mux.HandleFunc("GET /doc", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "doc.txt", time.Time{}, strings.NewReader(interopDoc))
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})
	up := httptest.NewServer(mux)
	t.Cleanup(up.Close)
	return up
}

// TestInteropBasics: a server (--max-body in MiB) and a client with a
// forward route to interopBackend, driven by curl and python3-requests
// (and python3-websockets): GET, POST, streamed uploads and downloads
// checked by SHA-256 at both ends, HEAD, SSE line timing and a WebSocket
// through the route.
func TestInteropBasics(t *testing.T) {
	data := make([]byte, 4<<20) // exactly --max-body
	rng := rand.New(rand.NewPCG(1, 15))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	sum := sha256.Sum256(data)
	wantSum := hex.EncodeToString(sum[:])
	dir := t.TempDir()
	file, over := filepath.Join(dir, "data"), filepath.Join(dir, "over")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(over, append(data, 'x'), 0o600); err != nil {
		t.Fatal(err)
	}

	up := interopBackend(t, data)
	p := interopPair(t, []string{"--max-body", "4MiB"}, []string{"--forward", "svc=" + up.URL})
	svc := p.srvURL + "/client/c1/svc" // the route on c1, from the server's front end

	t.Run("GET", func(t *testing.T) {
		if r := curlRun(t, "--fail", p.cliURL+"/server/time").ok(t); !strings.Contains(r.stdout, `"node":"server"`) {
			t.Errorf("curl: %s", r.stdout)
		}
		r := pythonRun(t, `
import sys, requests
r = requests.get(sys.argv[1] + "/client/c1/cat//caf%C3%A9/%20x", timeout=10)
print(r.status_code, r.headers["Content-Type"], r.json()["result"])`, p.srvURL).ok(t)
		if want := "200 application/json café x\n"; r.stdout != want {
			t.Errorf("requests: %q, want %q", r.stdout, want)
		}
	})

	t.Run("POST", func(t *testing.T) {
		r := curlRun(t, "--fail", "-H", "Content-Type: text/plain", "--data-binary", "hello\nworld", p.cliURL+"/server/echo").ok(t)
		if r.stdout != "hello\nworld" {
			t.Errorf("curl: %q", r.stdout)
		}
		r = pythonRun(t, `
import sys, requests
r = requests.post(sys.argv[1] + "/client/c1/echo", json={"a": [1, 2]}, timeout=10)
print(r.status_code, r.headers["Content-Type"], r.json())`, p.srvURL).ok(t)
		if want := "200 application/json {'a': [1, 2]}\n"; r.stdout != want {
			t.Errorf("requests: %q, want %q", r.stdout, want)
		}
	})

	t.Run("upload", func(t *testing.T) {
		// curl sends the file with its Content-Length, requests a generator
		// chunked: the service hashes what arrived.
		want := fmt.Sprintf("%s %d", wantSum, len(data))
		if r := curlRun(t, "--fail", "--data-binary", "@"+file, "-H", "Content-Type: application/octet-stream", svc+"/sha256").ok(t); r.stdout != want {
			t.Errorf("curl upload: service got %q, want %q", r.stdout, want)
		}
		r := pythonRun(t, `
import sys, requests
data = open(sys.argv[2], "rb").read()
def chunks():
    for i in range(0, len(data), 100000):
        yield data[i:i + 100000]
r = requests.post(sys.argv[1] + "/sha256", data=chunks(), timeout=20)
print(r.status_code, r.text)`, svc, file).ok(t)
		if r.stdout != "200 "+want+"\n" {
			t.Errorf("requests upload: %q, want 200 %q", r.stdout, want)
		}
		// One byte over --max-body 4MiB.
		r = curlRun(t, "--data-binary", "@"+over, "-w", " %{http_code}", svc+"/sha256").ok(t)
		if !strings.HasSuffix(r.stdout, " 413") || !strings.Contains(r.stdout, `"code":"too_large"`) {
			t.Errorf("upload of 4MiB+1: %s", r.stdout)
		}
	})

	t.Run("download", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "got")
		curlRun(t, "--fail", "-o", out, svc+"/bytes").ok(t)
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if s := sha256.Sum256(got); hex.EncodeToString(s[:]) != wantSum || len(got) != len(data) {
			t.Errorf("curl download: %d bytes, SHA-256 %x, want %d, %s", len(got), s, len(data), wantSum)
		}
		r := pythonRun(t, `
import sys, hashlib, requests
h, n = hashlib.sha256(), 0
with requests.get(sys.argv[1] + "/bytes", stream=True, timeout=20) as r:
    for chunk in r.iter_content(65536):
        h.update(chunk)
        n += len(chunk)
print(r.status_code, h.hexdigest(), n)`, svc).ok(t)
		if want := fmt.Sprintf("200 %s %d\n", wantSum, len(data)); r.stdout != want {
			t.Errorf("requests download: %q, want %q", r.stdout, want)
		}
	})

	t.Run("HEAD", func(t *testing.T) {
		// curl -I: the GET handler's status and length, no body.
		r := curlRun(t, "--fail", "-I", p.cliURL+"/server/time").ok(t)
		if !strings.HasPrefix(r.stdout, "HTTP/1.1 200") || !strings.Contains(r.stdout, "Content-Type: application/json") ||
			strings.Contains(r.stdout, "{") {
			t.Errorf("curl -I /server/time:\n%s", r.stdout)
		}
		if n := headerValue(r.stdout, "Content-Length"); n == "" || n == "0" {
			t.Errorf("curl -I /server/time: Content-Length %q\n%s", n, r.stdout)
		}
		r = pythonRun(t, `
import sys, requests
for url in (sys.argv[1] + "/client/c1/cat//abc", sys.argv[1] + "/client/c1/svc/doc"):
    get, head = requests.get(url, timeout=10), requests.head(url, timeout=10)
    print(head.status_code, head.headers.get("Content-Length"), len(get.content), repr(head.content))`, p.srvURL).ok(t)
		cat := len(`{"result":"abc"}` + "\n")
		want := fmt.Sprintf("200 %d %d b''\n200 %d %d b''\n", cat, cat, len(interopDoc), len(interopDoc))
		if r.stdout != want {
			t.Errorf("requests.head, handler then route: %q, want %q", r.stdout, want)
		}
	})

	t.Run("SSE", func(t *testing.T) {
		// A curl -N subscriber on the client node gets each line published
		// on the server node before the next one is published.
		lines := curlStream(t, "-N", "-i", "-H", "Accept: text/event-stream", p.cliURL+"/channels/interop-sse")
		for line := range lines { // the subscription holds once its headers are here
			if line == "" {
				break
			}
		}
		for i := range 3 {
			msg := fmt.Sprintf("line %d at %s", i, time.Now().Format(time.StampMicro))
			curlRun(t, "--fail", "-d", msg, p.srvURL+"/channels/interop-sse").ok(t)
			timeout := time.After(5 * time.Second)
		next:
			for {
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatalf("the subscriber's stream ended before %q", msg)
					}
					if strings.HasPrefix(line, "data:") {
						if line != "data: "+msg {
							t.Fatalf("subscriber got %q, want %q", line, "data: "+msg)
						}
						break next
					}
				case <-timeout:
					t.Fatalf("%q published, not at the subscriber within 5 s", msg)
				}
			}
		}
	})

	t.Run("WebSocket", func(t *testing.T) {
		ws := "ws" + strings.TrimPrefix(svc, "http") + "/ws"
		r := pythonRun(t, `
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], open_timeout=10) as ws:
        await ws.send("hello through the tunnel")
        print(await ws.recv())
        blob = bytes(range(256)) * 256
        await ws.send(blob)
        got = await ws.recv()
        print(type(got).__name__, len(got), got == blob)
asyncio.run(main())`, ws).ok(t)
		if want := "hello through the tunnel\nbytes 65536 True\n"; r.stdout != want {
			t.Errorf("python3 websockets: %q, want %q", r.stdout, want)
		}
	})
}

// headerValue finds a header in curl -I's output.
func headerValue(out, name string) string {
	for _, line := range strings.Split(out, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// curlStream starts "curl --silent --show-error args..." and returns its
// stdout's lines (without line ends) as they come; the channel closes
// when curl's output ends. curl is stopped when the test ends.
func curlStream(t *testing.T, args ...string) <-chan string {
	t.Helper()
	curl := needTool(t, "curl", "curl")
	return streamLines(t, "", curl, append([]string{"--silent", "--show-error"}, args...)...)
}
