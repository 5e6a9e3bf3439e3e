package main

// The child side: "restpipe-bench node -role ROLE ...", the processes the
// bench starts and measures. A node prints one JSON line (nodeReady) on
// stdout once it listens, serves GET /stats (nodeStats) on its own
// loopback port, and exits when its stdin closes, so that a bench that
// dies, however it dies, leaves no node behind.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/cmd/internal/memtrim"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// nodeEnv is set in a node's environment; it lets a test binary, which
// is not this command, recognise that it was started as a node.
const nodeEnv = "RESTPIPE_BENCH_NODE"

// Node roles.
const (
	roleServer  = "server"  // a tunnel server and its front end
	roleClients = "clients" // -n tunnel clients; the first one with a front end if -frontend
	roleDirect  = "direct"  // the get_time handler on a plain net/http server
	roleProxy   = "proxy"   // a plain httputil.ReverseProxy to -target
	roleTLSEcho = "tlsecho" // a raw TLS 1.3 echo server
)

// nodeReady is the line a node prints once it listens.
type nodeReady struct {
	Role   string `json:"role"`
	PID    int    `json:"pid"`
	Tunnel string `json:"tunnel,omitempty"` // tunnel (or raw TLS) listener
	HTTP   string `json:"http,omitempty"`   // front end, or the plain HTTP server
	Stats  string `json:"stats"`            // GET /stats
}

// nodeStats is the answer of GET /stats. The same port serves
// /debug/pprof/.
type nodeStats struct {
	PID int `json:"pid"`
	// RSSKiB and HWMKiB are the resident memory now and at its peak;
	// notMeasured (-1) where the OS does not give them (memory_*.go).
	RSSKiB     int64 `json:"rss_kib"`
	HWMKiB     int64 `json:"hwm_kib"`
	Goroutines int   `json:"goroutines"`
	// Connected is, on a server, the clients connected to it; on a
	// clients node, its clients connected to the server.
	Connected int `json:"connected"`
	// CPUSeconds is the CPU time (user and system) the process has used;
	// notMeasured where the OS does not give it (cpu_*.go).
	CPUSeconds float64 `json:"cpu_seconds"`
	// From runtime.MemStats: live heap objects, heap spans in use (live
	// objects and the free space between them), goroutine stacks.
	HeapAlloc  uint64 `json:"heap_alloc"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	// Held is, on a server, the events its post_hold handler holds.
	Held int64 `json:"held"`
}

// nodeConfig is what a node is told on its command line.
type nodeConfig struct {
	role         string
	dir          string // identities: ca.crt, server.*, c00000.*, ...
	listen       string // server, tlsecho: tunnel address
	server       string // clients: the server's tunnel address
	first, n     int    // clients: c<first> .. c<first+n-1>
	frontend     bool   // clients: give the first client a front end
	reconnectMax time.Duration
	target       string // proxy: the URL to forward to
	// server, clients: tunnel.Config's MaxStreams and AcceptBacklog (0:
	// the default), raised for the burst measurement.
	maxStreams, acceptBacklog int
}

// nodeMain runs a node and returns its exit code.
func nodeMain(args []string) int {
	fs := flag.NewFlagSet("restpipe-bench node", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var nc nodeConfig
	fs.StringVar(&nc.role, "role", "", "server, clients, direct, proxy or tlsecho")
	fs.StringVar(&nc.dir, "dir", "", "identity directory")
	fs.StringVar(&nc.listen, "listen", "127.0.0.1:0", "tunnel listen address")
	fs.StringVar(&nc.server, "server", "", "server tunnel address")
	fs.IntVar(&nc.first, "first", 0, "index of the first client")
	fs.IntVar(&nc.n, "n", 1, "number of clients")
	fs.BoolVar(&nc.frontend, "frontend", false, "front end for the first client")
	fs.DurationVar(&nc.reconnectMax, "reconnect-max", 2*time.Second, "client ReconnectMax")
	fs.StringVar(&nc.target, "target", "", "proxy target URL")
	fs.IntVar(&nc.maxStreams, "max-streams", 0, "server, clients: tunnel MaxStreams (0: default)")
	fs.IntVar(&nc.acceptBacklog, "accept-backlog", 0, "server, clients: tunnel AcceptBacklog (0: default)")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "restpipe-bench node: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A node trims its memory after a burst as restpipe's nodes do.
	go memtrim.New(memtrim.DefaultConfig()).Run(ctx)
	// stdin carries commands ("start", "release"); its end means the
	// bench is gone.
	cmds := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
		cancel()
	}()
	if err := runNode(ctx, nc, cmds, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "restpipe-bench node %s: %v\n", nc.role, err)
		return 1
	}
	return 0
}

// runNode runs the node nc describes until ctx ends.
func runNode(ctx context.Context, nc nodeConfig, cmds <-chan string, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		errc = make(chan error, 4)
	)
	// goRun runs f until ctx ends; its error ends the node.
	goRun := func(what string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", what, err)
				cancel()
			}
		}()
	}
	serveHTTP := func(what string, ln net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		goRun(what, func() error {
			go func() {
				<-ctx.Done()
				_ = srv.Close()
			}()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	listen := func(addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		return ln, nil
	}

	ready := nodeReady{Role: nc.role, PID: os.Getpid()}
	connected := func() int { return 0 }
	var start func() // run on "start"; nil for nodes that start at once
	var hold *holder // the server's post_hold, released on "release"

	switch nc.role {
	case roleServer:
		id, err := loadServerIdentity(nc.dir)
		if err != nil {
			return err
		}
		cfg := nodeTunnelConfig(id, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
		nc.applyLimits(&cfg)
		hold = newHolder()
		hold.register(cfg.Dispatcher.(*handlers.Registry))
		srv, err := tunnel.NewServer(cfg)
		if err != nil {
			return fmt.Errorf("new server: %w", err)
		}
		tln, err := listen(nc.listen)
		if err != nil {
			return err
		}
		fln, err := listen("127.0.0.1:0")
		if err != nil {
			return err
		}
		goRun("tunnel", func() error { return srv.Serve(ctx, tln) })
		goRun("front end", func() error { return srv.ServeFrontend(ctx, fln) })
		ready.Tunnel, ready.HTTP = tln.Addr().String(), fln.Addr().String()
		connected = func() int { return len(srv.Clients()) }

	case roleClients:
		if nc.n < 1 || nc.server == "" {
			return errors.New("clients: need -n >= 1 and -server")
		}
		ids, err := loadClientIdentities(nc.dir, nc.first, nc.n)
		if err != nil {
			return err
		}
		quiet := slog.New(slog.DiscardHandler)
		clients := make([]*tunnel.Client, len(ids))
		for i, id := range ids {
			cfg := nodeTunnelConfig(id, quiet)
			cfg.ReconnectMax = nc.reconnectMax
			nc.applyLimits(&cfg)
			if clients[i], err = tunnel.NewClient(cfg); err != nil {
				return fmt.Errorf("new client %s: %w", id.Name(), err)
			}
		}
		if nc.frontend {
			fln, err := listen("127.0.0.1:0")
			if err != nil {
				return err
			}
			goRun("front end", func() error { return clients[0].ServeFrontend(ctx, fln) })
			ready.HTTP = fln.Addr().String()
		}
		start = func() {
			for _, c := range clients {
				goRun("client "+c.Name(), func() error { return c.Run(ctx, nc.server) })
			}
		}
		connected = func() int {
			n := 0
			for _, c := range clients {
				if _, ok := c.Server(); ok {
					n++
				}
			}
			return n
		}

	case roleDirect:
		ln, err := listen("127.0.0.1:0")
		if err != nil {
			return err
		}
		serveHTTP("direct", ln, directHandler())
		ready.HTTP = ln.Addr().String()

	case roleChannels:
		ln, err := listen("127.0.0.1:0")
		if err != nil {
			return err
		}
		serveHTTP("channels", ln, channelsHandler())
		ready.HTTP = ln.Addr().String()

	case roleProxy:
		target, err := url.Parse(nc.target)
		if err != nil || target.Host == "" {
			return fmt.Errorf("proxy: bad -target %q", nc.target)
		}
		ln, err := listen("127.0.0.1:0")
		if err != nil {
			return err
		}
		serveHTTP("proxy", ln, proxyHandler(target))
		ready.HTTP = ln.Addr().String()

	case roleTLSEcho:
		id, err := loadServerIdentity(nc.dir)
		if err != nil {
			return err
		}
		ln, err := listen(nc.listen)
		if err != nil {
			return err
		}
		goRun("tls echo", func() error { return serveTLSEcho(ctx, tls.NewListener(ln, id.ServerTLSConfig())) })
		ready.Tunnel = ln.Addr().String()

	default:
		return fmt.Errorf("unknown role %q", nc.role)
	}

	sln, err := listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/stats", statsHandler(connected, hold.heldCount))
	// Profiles of a node under load, on its loopback stats port:
	// go tool pprof http://STATS/debug/pprof/profile?seconds=10
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	serveHTTP("stats", sln, mux)
	ready.Stats = sln.Addr().String()

	line, err := json.Marshal(ready)
	if err != nil {
		return fmt.Errorf("encode ready line: %w", err)
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return fmt.Errorf("write ready line: %w", err)
	}

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case runErr = <-errc:
			break loop
		case c := <-cmds:
			if c == "start" && start != nil {
				start()
				start = nil
			}
			if c == "release" && hold != nil {
				hold.releaseAll()
			}
		}
	}
	cancel()
	// Shutting down is bounded: the bench kills what does not stop.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return runErr
}

// blobHandler is get_blob//N: N bytes of pattern (at most 1 TiB), streamed
// as a file would be (no Len, no WriteTo: copied in the tunnel's buffers).
func blobHandler(_ context.Context, req *handlers.Request) (any, error) {
	if len(req.Args) != 1 {
		return nil, handlers.Errorf(http.StatusBadRequest, handlers.CodeBadRequest, "get_blob//N: give N, the size in bytes")
	}
	n, err := strconv.ParseInt(req.Args[0], 10, 64)
	if err != nil || n < 0 || n > 1<<40 {
		return nil, handlers.Errorf(http.StatusBadRequest, handlers.CodeBadRequest, "get_blob//N: N must be 0 to 2^40, not %q", req.Args[0])
	}
	return &handlers.Reply{Status: http.StatusOK, ContentType: "application/octet-stream", Body: &patternReader{n: n}}, nil
}

// nodeTunnelConfig is the tunnel.Config of a bench node: the defaults,
// the identity, the built-in handlers and get_blob.
func nodeTunnelConfig(id *certs.Identity, log *slog.Logger) tunnel.Config {
	reg := handlers.NewRegistry(handlers.WithLogger(log))
	handlers.Builtins(reg, id.Name())
	reg.MustHandle("get_blob", blobHandler)
	cfg := tunnel.DefaultConfig()
	cfg.Certificate = id.Certificate
	cfg.CA = id.Pool
	cfg.Dispatcher = reg
	cfg.Logger = log
	cfg.Version = "bench"
	return cfg
}

func loadServerIdentity(dir string) (*certs.Identity, error) {
	c, k := identityFiles(dir, serverName)
	id, err := certs.LoadIdentity(c, k, caFile(dir))
	if err != nil {
		return nil, fmt.Errorf("load server identity: %w", err)
	}
	return id, nil
}

// statsHandler answers GET /stats with this process's nodeStats; with
// ?gc=1 it first collects twice and returns freed memory to the OS
// (debug.FreeOSMemory), so that RSS shows live memory rather than
// garbage not yet collected or buffers idle in pools.
func statsHandler(connected func() int, held func() int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			// Two collections: sync.Pool keeps what it holds through one.
			runtime.GC()
			debug.FreeOSMemory()
		}
		mem, err := readMemStatus()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		st := nodeStats{
			PID:        os.Getpid(),
			RSSKiB:     mem.RSSKiB,
			HWMKiB:     mem.HWMKiB,
			Goroutines: runtime.NumGoroutine(),
			Connected:  connected(),
			CPUSeconds: cpuSeconds(),
			Held:       held(),
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st.HeapAlloc, st.HeapInuse, st.StackInuse = ms.HeapAlloc, ms.HeapInuse, ms.StackInuse
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
}

// directHandler is the "direct" baseline: the built-in get_time handler,
// dispatched through a handlers.Registry as a node does, answering every
// request on a plain net/http server; and /server/blob//N, N bytes of
// pattern, for the slow readers.
func directHandler() http.Handler {
	reg := handlers.NewRegistry()
	handlers.Builtins(reg, "direct")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arg, ok := strings.CutPrefix(r.URL.Path, "/server/blob//"); ok {
			// The slow readers' baseline: get_blob's bytes, from a plain
			// net/http handler.
			n, err := strconv.ParseInt(arg, 10, 64)
			if err != nil || n < 0 {
				http.Error(w, "bad size", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = io.Copy(w, &patternReader{n: n})
			return
		}
		req := &handlers.Request{Method: http.MethodGet, Noun: []string{"time"}, Body: http.NoBody, ContentLength: 0}
		// Serve returns once answer has: w is not used after the handler
		// returns.
		reg.Serve(r.Context(), req, func(rep *handlers.Reply) {
			if rep.ContentType != "" {
				w.Header().Set("Content-Type", rep.ContentType)
			}
			w.WriteHeader(max(rep.Status, http.StatusOK))
			if rep.Body != nil {
				_, _ = io.Copy(w, rep.Body)
			}
		})
	})
}

// proxyHandler is the "proxy hop" baseline: a plain ReverseProxy. Its
// transport keeps up to 256 idle connections to the target (the default
// of 2 would make it open a connection per request at concurrency 64,
// which no one runs a proxy with).
func proxyHandler(target *url.URL) http.Handler {
	p := httputil.NewSingleHostReverseProxy(target)
	p.Transport = &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	p.ErrorLog = nil
	return p
}

// serveTLSEcho echoes every byte each connection sends, with 32 KiB
// buffers, until the peer closes.
func serveTLSEcho(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go func() {
			defer conn.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := conn.Read(buf)
				if n > 0 {
					if _, werr := conn.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}
