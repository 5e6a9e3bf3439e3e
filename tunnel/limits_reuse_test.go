package tunnel_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/restpipe/restpipe/tunnel"
)

// TestChunkedTooLargeThenNextRequest: after a chunked body refused with 413
// before it was read whole, the caller's next request works (net/http
// in full-duplex mode once panicked on it: "invalid concurrent Body.Read").
func TestChunkedTooLargeThenNextRequest(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	small := startClient(t, p, "small", s.tunnelAddr, func(cfg *tunnel.Config) { cfg.MaxBodyBytes = 10 })
	waitConnected(t, small, s)
	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	for i := range 50 {
		resp, err := hc.Post(small.httpURL+"/server/echo", "text/plain", io.MultiReader(strings.NewReader("0123456"), strings.NewReader("7890123")))
		if err != nil {
			t.Fatalf("%d chunked: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("%d: %d", i, resp.StatusCode)
		}
		resp, err = hc.Post(small.httpURL+"/server/echo", "text/plain", strings.NewReader("0123456789"))
		if err != nil {
			t.Fatalf("%d at limit: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "0123456789" {
			t.Fatalf("%d at limit: %d %q", i, resp.StatusCode, b)
		}
	}
}
