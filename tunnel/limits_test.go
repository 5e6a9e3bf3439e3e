package tunnel_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// TestFrontendLimits: a slow header sender, oversized headers and a
// stalled body are each cut off by a bound, not left to hang.
func TestFrontendLimits(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	bodyErr := make(chan error, 1)
	s.reg.MustHandle("post_slurp", func(_ context.Context, req *handlers.Request) (any, error) {
		_, err := io.Copy(io.Discard, req.Body)
		bodyErr <- err
		return nil, err
	})
	c := startClient(t, p, "c1", s.tunnelAddr, func(cfg *tunnel.Config) {
		cfg.HeaderTimeout = 300 * time.Millisecond
		cfg.MaxHeaderBytes = 4 << 10
		cfg.BodyIdleTimeout = 300 * time.Millisecond
	})
	waitConnected(t, c, s)
	addr := strings.TrimPrefix(c.httpURL, "http://")

	t.Run("slowloris", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		_, _ = conn.Write([]byte("GET /server/time HTTP/1.1\r\nHost: " + addr + "\r\nX-Slow: "))
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.Copy(io.Discard, conn) // until the front end closes
		if err != nil {
			t.Fatalf("connection not closed by the front end: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("slow headers held the connection %v", d)
		}
	})
	t.Run("oversized headers", func(t *testing.T) {
		r := get(t, c.httpURL+"/server/time", "X-Big", strings.Repeat("a", 8<<10))
		if r.status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", r.status)
		}
	})
	t.Run("stalled body", func(t *testing.T) {
		// Larger than what the front end reads ahead: the event starts, and
		// the handler sees the stall.
		resp := stalledPost(t, addr, 100000, func() {
			select {
			case err := <-bodyErr:
				// The trailer with the reason races with net/http cancelling
				// the request (it does so on a body read timeout): either way
				// the handler learns that the body is incomplete.
				var be *events.BodyError
				if !(errors.As(err, &be) && strings.Contains(be.Msg, "nothing received")) && !errors.Is(err, events.ErrTruncated) {
					t.Errorf("handler's body error %v, want the idle timeout or a truncated body", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("handler still waits on a stalled body")
			}
		})
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("stalled upload answered %d, want 408", resp.StatusCode)
		}
	})
	t.Run("stalled small body", func(t *testing.T) {
		// A small body is read before the event starts: a stall is answered
		// without bothering the peer.
		resp := stalledPost(t, addr, 100, func() {})
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("stalled small upload answered %d, want 408", resp.StatusCode)
		}
		select {
		case err := <-bodyErr:
			t.Errorf("the handler ran (body error %v)", err)
		default:
		}
	})
	// The node is fine after all that.
	if r := get(t, c.httpURL+"/server/time"); r.status != 200 {
		t.Errorf("after the limits: %d", r.status)
	}
}

// stalledPost announces a body of length bytes, sends a few and stalls;
// then runs during and returns the front end's answer.
func stalledPost(t *testing.T, addr string, length int, during func()) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /server/slurp HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\nonly part", addr, length)
	during()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestNoClientCertificate: a TLS client that presents no certificate is
// refused at the handshake, and the server says why.
func TestNoClientCertificate(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = logs.logger() })
	conn, err := tls.Dial("tcp", s.tunnelAddr, &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: p.server.Pool, ServerName: "localhost",
	})
	if err == nil {
		// TLS 1.3: the client learns of the refusal on its first read.
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate was served")
	}
	logs.wait(t, "client refused", "didn't provide a certificate")
	if len(s.Clients()) != 0 {
		t.Errorf("clients: %v", s.Clients())
	}
}
