package handlers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Builtins registers the built-in handlers on r, answering as the node
// called nodeName:
//
//	get_time        {"time": RFC 3339, "unix_ms": ..., "node": nodeName}
//	get_cat//a/b    {"result": "ab"}: the arguments concatenated
//	post_echo       the request body back, streamed, same content type
//	get_stream//N   N lines (default 10, at most 100000), one per 100 ms, each sent at once
func Builtins(r *Registry, nodeName string) {
	r.MustHandle("get_time", func(_ context.Context, _ *Request) (any, error) {
		now := time.Now()
		return map[string]any{
			"time":    now.Format(time.RFC3339Nano),
			"unix_ms": now.UnixMilli(),
			"node":    nodeName,
		}, nil
	})
	r.MustHandle("get_cat", func(_ context.Context, req *Request) (any, error) {
		return map[string]string{"result": strings.Join(req.Args, "")}, nil
	})
	r.MustHandle("post_echo", func(_ context.Context, req *Request) (any, error) {
		ct := req.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		return &Reply{Status: http.StatusOK, ContentType: ct, Body: req.Body}, nil
	})
	r.MustHandle("get_stream", func(_ context.Context, req *Request) (any, error) {
		n := 10
		if len(req.Args) > 0 {
			v, err := strconv.Atoi(req.Args[0])
			if err != nil || v < 0 || v > 100000 {
				return nil, Errorf(http.StatusBadRequest, CodeBadRequest,
					"get_stream//N: N must be a whole number from 0 to 100000, not %q", req.Args[0])
			}
			n = v
		}
		return &Reply{
			Status:      http.StatusOK,
			ContentType: "text/plain; charset=utf-8",
			Body:        newTicker(req.Context(), n, 100*time.Millisecond),
		}, nil
	})
}

// ticker is the body of get_stream: one line per interval, n lines.
type ticker struct {
	ctx      context.Context
	n, i     int
	interval time.Duration
	t        *time.Timer
	pending  []byte // what p could not hold of the current line
}

func newTicker(ctx context.Context, n int, interval time.Duration) *ticker {
	return &ticker{ctx: ctx, n: n, interval: interval}
}

func (t *ticker) Read(p []byte) (int, error) {
	if len(t.pending) > 0 {
		n := copy(p, t.pending)
		t.pending = t.pending[n:]
		return n, nil
	}
	if t.i >= t.n {
		return 0, io.EOF
	}
	if t.i > 0 {
		if t.t == nil {
			t.t = time.NewTimer(t.interval)
		} else {
			t.t.Reset(t.interval)
		}
		select {
		case <-t.t.C:
		case <-t.ctx.Done():
			return 0, t.ctx.Err()
		}
	}
	t.i++
	line := fmt.Appendf(nil, "line %d of %d at %s\n", t.i, t.n, time.Now().Format(time.RFC3339Nano))
	n := copy(p, line)
	t.pending = line[n:]
	return n, nil
}

// Close stops the ticker's timer.
func (t *ticker) Close() error {
	if t.t != nil {
		t.t.Stop()
	}
	return nil
}
