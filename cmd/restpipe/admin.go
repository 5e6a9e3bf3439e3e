package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
	"github.com/restpipe/restpipe/tunnel/admin"
	"github.com/restpipe/restpipe/tunnel/metrics"
)

// adminFlags are the settings of the admin listener (--admin) and the
// metrics it serves.
type adminFlags struct {
	addr    string
	public  bool
	pprof   bool
	perPeer bool

	m *metrics.Metrics // made by init when --admin is given; nil otherwise
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.addr, "admin", "", "the admin listener's `ADDR` (host:port, loopback unless --admin-public): /metrics, /healthz, /readyz and / (default: none)")
	fs.BoolVar(&a.public, "admin-public", false, "let --admin listen on an address other than loopback: whoever reaches it reads the metrics (and the profiles, with --admin-pprof)")
	fs.BoolVar(&a.pprof, "admin-pprof", false, "serve Go's profiles at /debug/pprof/ on the admin listener")
	fs.BoolVar(&a.perPeer, "metrics-per-peer", false, "add a metric series per connected peer (its certificate's expiry): off by default, as a server may hold 10,000 peers")
}

// check refuses an --admin address that is not host:port, or not on
// loopback without --admin-public.
func (a *adminFlags) check() error {
	if a.addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(a.addr)
	if err != nil {
		return usageError{fmt.Sprintf("--admin %q: want host:port, like 127.0.0.1:9100", a.addr)}
	}
	if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) && !a.public {
		return usageError{fmt.Sprintf("--admin %q: not a loopback address; give --admin-public to serve the admin listener there", a.addr)}
	}
	return nil
}

// init makes the metrics of a node of role, when --admin is given.
func (a *adminFlags) init(role string) error {
	if err := a.check(); err != nil {
		return err
	}
	if a.addr != "" {
		a.m = metrics.New(metrics.Options{Version: version, Role: role, PerPeer: a.perPeer})
	}
	return nil
}

// wire gives cfg the metrics, and the metrics the identity's
// certificates.
func (a *adminFlags) wire(cfg *tunnel.Config, id *certs.Identity) {
	cfg.Metrics = a.m
	var cas []*x509.Certificate
	if id.CA != nil {
		cas = append(cas, id.CA)
	}
	a.m.Certificates(id.Leaf, cas)
}

// observeAuth counts the decisions of auth (nil: none to count).
func (a *adminFlags) observeAuth(auth handlers.AuthFunc) handlers.AuthFunc {
	if auth == nil || a.m == nil {
		return auth
	}
	return func(ctx context.Context, req *handlers.Request) (handlers.Decision, error) {
		d, err := auth(ctx, req)
		a.m.AuthDecision(d.Allow, err)
		return d, err
	}
}

// authOptions are the external auth's options for the metrics.
func (a *adminFlags) authOptions() []handlers.AuthOption {
	if a.m == nil {
		return nil
	}
	return []handlers.AuthOption{handlers.OnCacheLookup(a.m.AuthCache)}
}

// reloaded counts a reload, ok or failed.
func (a *adminFlags) reloaded(ok bool) { a.m.Reload(ok) }

// listen opens the admin listener, if --admin is given, and returns its
// runner (nil without --admin). ready and summary answer /readyz and /.
func (a *adminFlags) listen(logger *slog.Logger, ready func() error, summary func() any) (func(context.Context) error, error) {
	if a.addr == "" {
		return nil, nil
	}
	h, err := admin.Handler(admin.Options{Metrics: a.m, Ready: ready, Summary: summary, Pprof: a.pprof,
		Hosts: frontendHosts(a.addr, nil)})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", a.addr, err)
	}
	if a.public {
		logger.Warn("admin listener may be off loopback (--admin-public): whoever reaches it reads the metrics", "addr", ln.Addr().String())
	}
	return func(ctx context.Context) error { return admin.Serve(ctx, ln, h, logger) }, nil
}

// withAdmin adds the admin listener's runner, if any, to runs.
func withAdmin(runs []func(context.Context) error, run func(context.Context) error) []func(context.Context) error {
	if run == nil {
		return runs
	}
	return append(runs, run)
}

// nodeSummary is the body of the admin listener's /.
type nodeSummary struct {
	Node    string `json:"name"`
	Role    string `json:"role"`
	Version string `json:"version"`
	Peers   int    `json:"peers_connected"`
	Ready   bool   `json:"ready"`
}
