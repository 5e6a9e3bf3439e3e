// Package admin is a node's admin listener: what an operator and a
// monitoring system read, apart from the front end that drives the
// tunnel.
//
//	/metrics       Prometheus' text format (package metrics)
//	/healthz       200 {"status":"ok"} while the process serves
//	/readyz        200 {"status":"ready"}, or 503 {"status":"not_ready","reason":...}
//	/debug/pprof/  Go's profiles, only with Options.Pprof
//	/              a JSON summary of the node (Options.Summary)
//
// Only GET and HEAD are answered (405 otherwise). The listener is guarded
// as the front end is (package webguard): a Host header that is not one
// of its own names is 421 and a foreign web Origin 403, so that a page in
// the operator's browser cannot read it through DNS rebinding. Serve
// bounds each connection's header size and time.
package admin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel/metrics"
	"github.com/restpipe/restpipe/tunnel/webguard"
)

// Options say what an admin listener serves.
type Options struct {
	// Metrics is served at /metrics; nil: /metrics is 404.
	Metrics *metrics.Metrics
	// Ready says whether the node is ready (nil) or why not, for /readyz.
	// Nil: always ready.
	Ready func() error
	// Summary is the body of / as JSON; nil: the list of endpoints only.
	Summary func() any
	// Pprof serves /debug/pprof/ (Go's profiles: they show the program's
	// memory and may slow it while they run).
	Pprof bool
	// Hosts are Host names the listener answers to besides its address,
	// localhost, 127.0.0.1 and [::1] (webguard.New).
	Hosts []string
}

// Handler returns the admin listener's handler, behind the Host and
// Origin guard.
func Handler(o Options) (http.Handler, error) {
	guard, err := webguard.New(o.Hosts, nil)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	mux := http.NewServeMux()
	if o.Metrics != nil {
		mux.Handle("/metrics", o.Metrics.Handler())
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		handlers.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if o.Ready != nil {
			if err := o.Ready(); err != nil {
				handlers.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "reason": err.Error()})
				return
			}
		}
		handlers.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	endpoints := []string{"/metrics", "/healthz", "/readyz"}
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		endpoints = append(endpoints, "/debug/pprof/")
	}
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		body := map[string]any{"endpoints": endpoints}
		if o.Summary != nil {
			body["node"] = o.Summary()
		}
		handlers.WriteJSON(w, http.StatusOK, body)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		handlers.WriteError(w, http.StatusNotFound, handlers.CodeBadPath, "no such admin endpoint: "+r.URL.Path)
	})
	return guard.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			handlers.WriteError(w, http.StatusMethodNotAllowed, handlers.CodeMethodNotAllowed, "the admin listener answers GET and HEAD only")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})), nil
}

// The bounds of Serve's connections.
const (
	headerTimeout  = 5 * time.Second
	maxHeaderBytes = 16 << 10
	idleTimeout    = time.Minute
	// writeTimeout leaves a 30 s CPU profile (pprof's default) room.
	writeTimeout = 45 * time.Second
)

// Serve serves h on ln until ctx ends, then shuts down within a few
// seconds; it closes ln. Headers are bounded in size (16 KiB) and time
// (5 s), a whole reply in time (45 s).
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       headerTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.With("part", "admin").Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	logger.Info("admin listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-errc
	return nil
}
