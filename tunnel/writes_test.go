package tunnel_test

import (
	"io"
	"net/http"
	"os"
	"testing"
)

// maxWritesPerSmallEvent bounds the write syscalls of one small event
// through the front end, the whole cost in this process: the caller's
// HTTP request, the front end's HTTP reply, and the tunnel's writes on
// each node. BenchmarkRoundTripSmall reports 4 (1 + 1 + one a node, the
// SYN with the request, the ACK with the reply, each FIN with the next
// event); a FIN that waits out its 1 ms alone adds one. Without write
// merging it would be 10 (SYN, header, body, FIN on each node).
const maxWritesPerSmallEvent = 6.0

// TestWritesPerSmallEvent asserts what BenchmarkRoundTripSmall reports
// as writes/op: GET /server/time through the client's front end, one
// at a time, on a kept-alive connection.
func TestWritesPerSmallEvent(t *testing.T) {
	if _, err := os.Stat("/proc/self/io"); err != nil {
		t.Skip("no /proc/self/io to count write syscalls")
	}
	p := newPKI(t)
	s := startServer(t, p, nil)
	c := startClient(t, p, "c1", s.tunnelAddr, nil)
	waitConnected(t, c, s)
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	url := c.httpURL + "/server/time"
	call := func() {
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", url, resp.StatusCode)
		}
	}
	call() // the HTTP connection
	// The least of three rounds: whatever else this process writes
	// meanwhile only adds.
	const n = 100
	best := -1.0
	for range 3 {
		before := readSyscalls()
		for range n {
			call()
		}
		w := float64(readSyscalls().w-before.w) / n
		if best < 0 || w < best {
			best = w
		}
	}
	t.Logf("%.2f write syscalls per small event (bound %.1f; 10 unmerged)", best, maxWritesPerSmallEvent)
	if best > maxWritesPerSmallEvent {
		t.Errorf("%.2f write syscalls per small event, want at most %.1f: write merging (tunnel/internal/muxconn) no longer works", best, maxWritesPerSmallEvent)
	}
}
