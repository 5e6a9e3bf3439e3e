package main

// The parent side of the nodes: starting a node process, reading its
// ready line, asking it for stats, and killing it (its whole process
// group) on every way out.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// readyTimeout bounds how long a node may take to start listening (a
// clients node first loads its identities).
const readyTimeout = 60 * time.Second

// fleet starts nodes and kills them all at the end.
type fleet struct {
	exe     string
	verbose io.Writer // if not nil, nodes' stderr is copied here too
	http    *http.Client

	mu       sync.Mutex
	children []*child
}

func newFleet(verbose io.Writer) (*fleet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable to start nodes: %w", err)
	}
	return &fleet{
		exe:     exe,
		verbose: verbose,
		http:    &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}},
	}, nil
}

// child is one node process.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready nodeReady
	tail  *tailWriter
	http  *http.Client

	exited  chan struct{} // closed when the process has been waited for
	waitErr error
}

// start runs "restpipe-bench node -role role args..." and waits for its
// ready line. The node dies with ctx, with stopAll, and with this process
// (its stdin closes).
func (f *fleet) start(ctx context.Context, name, role string, args ...string) (*child, error) {
	argv := append([]string{"node", "-role", role}, args...)
	cmd := exec.CommandContext(ctx, f.exe, argv...)
	cmd.Env = append(os.Environ(), nodeEnv+"=1")
	ownProcessGroup(cmd)
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = 3 * time.Second
	c := &child{name: name, cmd: cmd, tail: &tailWriter{max: 8 << 10, copy: f.verbose, prefix: name + ": "}, http: f.http, exited: make(chan struct{})}
	readyc := make(chan nodeReady, 1)
	cmd.Stdout = &firstLineWriter{onLine: func(line []byte) {
		var r nodeReady
		if json.Unmarshal(line, &r) == nil {
			readyc <- r
		}
	}}
	cmd.Stderr = c.tail
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start node %s: stdin: %w", name, err)
	}
	c.stdin = stdin
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %s: %w", name, err)
	}
	f.mu.Lock()
	f.children = append(f.children, c)
	f.mu.Unlock()
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	t := time.NewTimer(readyTimeout)
	defer t.Stop()
	select {
	case c.ready = <-readyc:
		if f.verbose != nil {
			fmt.Fprintf(f.verbose, "%s: pid %d, tunnel %s, http %s, stats and pprof http://%s/debug/pprof/\n",
				name, c.ready.PID, dash(c.ready.Tunnel), dash(c.ready.HTTP), c.ready.Stats)
		}
		return c, nil
	case <-c.exited:
		return nil, fmt.Errorf("node %s exited before it was ready (%v): %s", name, c.waitErr, c.tail.String())
	case <-t.C:
		c.stop()
		return nil, fmt.Errorf("node %s not ready after %v: %s", name, readyTimeout, c.tail.String())
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

// stopAll kills every node still running.
func (f *fleet) stopAll() {
	f.mu.Lock()
	cs := f.children
	f.children = nil
	f.mu.Unlock()
	for _, c := range cs {
		c.stop()
	}
}

// stop kills the node's process group and waits (bounded) for it to go.
func (c *child) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = killGroup(c.cmd)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
	}
}

// send writes one command line to the node's stdin.
func (c *child) send(cmd string) error {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return fmt.Errorf("node %s: send %q: %w", c.name, cmd, err)
	}
	return nil
}

// stats asks the node for its nodeStats; gc first returns freed memory
// to the OS in the node.
func (c *child) stats(ctx context.Context, gc bool) (nodeStats, error) {
	url := "http://" + c.ready.Stats + "/stats"
	if gc {
		url += "?gc=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nodeStats{}, fmt.Errorf("node %s stats: %w", c.name, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nodeStats{}, fmt.Errorf("node %s stats: %w", c.name, err)
	}
	defer resp.Body.Close()
	var st nodeStats
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return st, fmt.Errorf("node %s stats: %s: %s", c.name, resp.Status, bytes.TrimSpace(b))
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("node %s stats: decode: %w", c.name, err)
	}
	return st, nil
}

// errorf is an error about the node, with the tail of its stderr.
func (c *child) errorf(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if t := c.tail.String(); t != "" {
		msg += "; node " + c.name + " said: " + t
	}
	return errors.New(msg)
}

// firstLineWriter hands the first line written to it to onLine and
// discards everything else.
type firstLineWriter struct {
	buf  []byte
	done bool

	onLine func([]byte)
}

func (w *firstLineWriter) Write(p []byte) (int, error) {
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
		w.done = true
		w.onLine(w.buf[:i])
		w.buf = nil
	} else if len(w.buf) > 64<<10 {
		w.done = true
		w.buf = nil
	}
	return len(p), nil
}

// tailWriter keeps the last max bytes written to it, and copies them to
// copy (if set) line by line with prefix.
type tailWriter struct {
	max    int
	copy   io.Writer
	prefix string

	mu  sync.Mutex
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.max:]...)
	}
	if w.copy != nil {
		for line := range strings.Lines(string(p)) {
			_, _ = io.WriteString(w.copy, w.prefix+line)
		}
	}
	return len(p), nil
}

// String is the kept tail, one line.
func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.TrimSpace(string(w.buf))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return strings.ReplaceAll(s, "\n", " | ")
}
