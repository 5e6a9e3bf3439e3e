package tunnel_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logCapture collects a node's log lines so a test can wait for one.
type logCapture struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogCapture() *logCapture { return &logCapture{changed: make(chan struct{})} }

func (c *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	close(c.changed)
	c.changed = make(chan struct{})
	return len(p), nil
}

// wait blocks until a log line holds every one of parts, and returns it.
func (c *logCapture) wait(t testing.TB, parts ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		c.mu.Lock()
		lines := strings.Split(c.buf.String(), "\n")
		ch := c.changed
		c.mu.Unlock()
		for _, l := range lines {
			if containsAll(l, parts) {
				return l
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("no log line with %q; log:\n%s", parts, c.buf.String())
		}
	}
}

// all returns the log so far.
func (c *logCapture) all() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
