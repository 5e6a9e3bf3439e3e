package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/cmd/internal/memtrim"
	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

func protocolVersion() int { return events.ProtocolVersion }

// nodeFlags are the flags server and client share.
type nodeFlags struct {
	cert, key, ca   string
	identityDir     string
	http            string
	logLevel        string
	logFormat       string
	timeout         time.Duration
	maxBody         byteSize
	keepAlive       time.Duration
	shutdownTimeout time.Duration
	window          byteSize
	maxFrame        byteSize
	forward         stringList
	config          string
	revoked         string
	allow           stringList
	authURL         string
	authTimeout     time.Duration
	authTTL         time.Duration
	authCacheKey    string
	origins         stringList
	httpHosts       stringList
	httpApps        stringList
	channelPrefix   string
	publishKey      string
	publishKeyFile  string
	channelQueue    int
	channelMaxMsg   byteSize
	channelOutage   time.Duration
	maxStreams      int // per peer
	maxSubs         int
	admin           adminFlags

	fs *flag.FlagSet // the flags above, for the value a message quotes

	revocations atomic.Pointer[certs.RevocationFile] // the list in force, nil for none
	// reverify drops the sessions whose peer the list in force refuses;
	// set before the node starts.
	reverify func()
}

func (n *nodeFlags) register(fs *flag.FlagSet, httpDefault string) {
	n.fs = fs
	d := tunnel.DefaultConfig()
	fs.StringVar(&n.cert, "cert", "", "this node's certificate `file` (default: node.crt in --identity-dir)")
	fs.StringVar(&n.key, "key", "", "this node's private key `file` (default: node.key in --identity-dir)")
	fs.StringVar(&n.ca, "ca", "", "the CA certificate `file` that verifies the peer (default: ca.crt in --identity-dir)")
	fs.StringVar(&n.identityDir, "identity-dir", certs.DefaultIdentityDir(), "where to find ca.crt, node.crt and node.key when --cert, --key and --ca are not given")
	fs.StringVar(&n.http, "http", httpDefault, "the local front end: `ADDR` (host:port) or unix:PATH; whoever reaches it can drive the tunnel")
	fs.StringVar(&n.logLevel, "log-level", "info", "debug, info, warn or error (DEBUG=1 means debug)")
	fs.StringVar(&n.logFormat, "log-format", "text", "text or json")
	fs.DurationVar(&n.timeout, "timeout", d.DefaultTimeout, "how long the front end waits for an answer when the caller sets no X-Restpipe-Timeout")
	n.maxBody = byteSize(d.MaxBodyBytes)
	fs.Var(&n.maxBody, "max-body", "largest request body the front end accepts, a `size` (0: no limit)")
	fs.DurationVar(&n.keepAlive, "keepalive", d.KeepAliveInterval, fmt.Sprintf("keep-alive ping interval; a session from which nothing is received for this plus %v ends", d.WriteTimeout))
	fs.DurationVar(&n.shutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "how long events in flight may finish on SIGINT/SIGTERM")
	n.window = byteSize(d.StreamWindow)
	fs.Var(&n.window, "window", "each stream's receive window, a `size` (256KiB to 64MiB): one stream moves at most this per round trip; set it on both nodes")
	fs.Var(&n.maxFrame, "max-frame", "the largest frame a body is sent in, a `size` (16KiB to 1MiB; default 256KiB on a client, 64KiB on a server): bigger costs less CPU when streaming, but each session that has sent one keeps a buffer that big")
	fs.Var(&n.forward, "forward", "a forward route `NAME=URL`: events to noun NAME are forwarded to the local HTTP service at URL (repeatable)")
	fs.StringVar(&n.config, "config", "", "a config `file` (TOML if its name ends in .toml, comments allowed; JSON otherwise) whose keys are these flags' names; flags and environment win over it")
	fs.StringVar(&n.revoked, "revoked", "", "a revocation list `file` (from \"restpipe ca revoke\"): peers whose certificate is on it are refused, and dropped when it changes (looked at every second; SIGHUP reloads it)")
	fs.Var(&n.allow, "allow", "an access rule `PEER=TARGET,...`: which peers (glob) may call which handlers or forward:ROUTE, or use which channels (subscribe:GLOB, publish:GLOB, channel:GLOB for both; on the server), on this node; once any rule exists, the rest is denied (repeatable; SIGHUP reloads)")
	fs.StringVar(&n.authURL, "auth-url", "", "an external auth `URL` asked about every event and, on the server, every client node's channel subscribe and publish: 204 allows, 403 denies, anything else is 503 (SIGHUP reloads)")
	fs.DurationVar(&n.authTimeout, "auth-timeout", 2*time.Second, "how long to wait for the external auth service")
	fs.DurationVar(&n.authTTL, "auth-ttl", 0, "how long to cache an external auth decision, for requests with the same peer, method, path and headers (0: no cache)")
	fs.StringVar(&n.authCacheKey, "auth-cache-key", "", "`HEADER,...`: the only request headers a cached auth decision depends on (default: all but X-Request-Id); name every header the auth service decides from")
	fs.Var(&n.origins, "origin", "a web origin `PATTERN` whose pages may call the front end (every path) besides its own: a host glob (\"*.example.com\") or scheme://host (repeatable)")
	fs.Var(&n.httpApps, "http-app", "a browser-facing app `ADDR=PATH`: a front end of its own on ADDR (host:port or unix:PATH) that serves only PATH (/client/c1/web on a server), at its root, so that the app's pages get an origin without the control API (repeatable)")
	fs.Var(&n.httpHosts, "http-host", "a Host `NAME` the front end answers to besides its address, localhost, 127.0.0.1 and [::1]: NAME (with the front end's port) or NAME:PORT; any other Host gets 421 (repeatable)")
	fs.StringVar(&n.channelPrefix, "channel-prefix", "", "a `PREFIX` put before the channel of every item published with GRIP's POST /publish/ on this node")
	fs.StringVar(&n.publishKey, "publish-key", "", "a `KEY` GRIP's POST /publish/ must show: a JWT signed with it (HS256, with exp), \"Bearer KEY\" or Basic with KEY as the password; anything else is 401 (default: anyone reaching the front end may publish)")
	fs.StringVar(&n.publishKeyFile, "publish-key-file", "", "a `file` holding the --publish-key (a trailing newline is not part of it), so that the key is not on the command line")
	fs.IntVar(&n.channelQueue, "channel-queue", d.ChannelQueue, "how many `messages` may wait for one channel subscriber before it is disconnected as too slow")
	n.channelMaxMsg = byteSize(d.ChannelMaxMessage)
	fs.Var(&n.channelMaxMsg, "channel-max-message", "the largest channel message, a `size` (up to 256KiB)")
	fs.DurationVar(&n.channelOutage, "channel-outage-wait", d.ChannelOutageWait, "how long a client node keeps its channel subscribers (told of the outage) while the tunnel is down, before closing them")
	fs.IntVar(&n.maxStreams, "max-streams", d.MaxStreams, "how many `streams` (events in flight) one peer may hold at this node, 1 to 65536; announced in the hello, so an honest peer waits for a slot; a peer that does not is answered 503 peer_busy")
	fs.IntVar(&n.maxSubs, "max-subscriptions", d.MaxSubscriptions, "how many `channels` one client node may subscribe to at the server")
	n.admin.register(fs)
}

// authHook builds the Auth hook from --allow and --auth-url: the rules,
// the external service, or both (handlers.Registry.Access); nil if
// neither is set. The description, for the log, has no password.
func (n *nodeFlags) authHook(reg *handlers.Registry) (handlers.AuthFunc, string, error) {
	rules, err := handlers.ParseRules(n.allow)
	if err != nil {
		return nil, "", usageError{"--allow: " + err.Error()}
	}
	var ext *handlers.ExternalAuth
	if n.authURL != "" {
		opts := n.admin.authOptions()
		if n.authCacheKey != "" {
			opts = append(opts, handlers.CacheKey(strings.Split(n.authCacheKey, ",")...))
		}
		if ext, err = handlers.NewExternalAuth(n.authURL, n.authTimeout, n.authTTL, opts...); err != nil {
			return nil, "", usageError{"--auth-url, --auth-cache-key: " + err.Error()}
		}
	}
	desc := "none: every event runs"
	switch {
	case rules.Len() > 0 && ext != nil:
		desc = fmt.Sprintf("%d rules, then %s", rules.Len(), ext)
	case rules.Len() > 0:
		desc = fmt.Sprintf("%d rules", rules.Len())
	case ext != nil:
		desc = ext.String()
	}
	return n.admin.observeAuth(reg.Access(rules, ext)), desc, nil
}

// setup loads the identity and builds the logger, the handler registry
// and the tunnel config.
func (n *nodeFlags) setup(env *cliEnv, role string) (*certs.Identity, tunnel.Config, *slog.Logger, *handlers.Registry, error) {
	id, cfg, logger, err := n.setupNode(env, role)
	if err != nil {
		return nil, cfg, nil, nil, err
	}
	return id, cfg, logger, cfg.Dispatcher.(*handlers.Registry), nil
}

func (n *nodeFlags) setupNode(env *cliEnv, role string) (*certs.Identity, tunnel.Config, *slog.Logger, error) {
	if err := checkHTTPAddr(n.http); err != nil {
		return nil, tunnel.Config{}, nil, err
	}
	if err := n.admin.init(role); err != nil {
		return nil, tunnel.Config{}, nil, err
	}
	// The settings are checked before the identity is loaded and
	// anything is logged, so that a mistake gets one line.
	cfg := n.tunnelConfig()
	if err := n.flagError(cfg.Validate()); err != nil {
		return nil, tunnel.Config{}, nil, err
	}
	// The auth service's are checked whether or not --auth-url is set, as
	// the config file and the environment may set them apart from it.
	if n.authTimeout <= 0 {
		return nil, tunnel.Config{}, nil, usageError{fmt.Sprintf("--auth-timeout %v: --auth-timeout must be positive", n.authTimeout)}
	}
	if n.authTTL < 0 {
		return nil, tunnel.Config{}, nil, usageError{fmt.Sprintf("--auth-ttl %v: --auth-ttl must not be negative (0: no cache)", n.authTTL)}
	}
	for _, app := range n.httpApps {
		if _, _, err := parseHTTPApp(app); err != nil {
			return nil, tunnel.Config{}, nil, err
		}
	}
	logger, err := newLogger(env, n.logLevel, n.logFormat)
	if err != nil {
		return nil, tunnel.Config{}, nil, err
	}
	id, err := n.identity()
	if err != nil {
		return nil, tunnel.Config{}, nil, err
	}
	if err := id.Check(time.Now()); err != nil {
		logger.Warn("this node's certificate will be refused", "err", err)
	}
	if e, exposed := certs.CheckKeyFile(n.keyFile()); exposed {
		logger.Warn("this node's private key is not private: other users can reach it", "file", e.Path, "mode", fmt.Sprintf("%#o", e.Mode.Perm()), "fix", e.Fix)
	}
	noteUncheckedKey(logger, n.keyFile())
	want := certs.UsageClient
	if role == "server" {
		want = certs.UsageServer
	}
	if id.Usage()&want == 0 {
		logger.Warn("this node's certificate lacks the usage its role needs", "role", role, "usage", id.Usage().String())
	}
	reg := handlers.NewRegistry(handlers.WithLogger(logger))
	handlers.Builtins(reg, id.Name())
	for _, fw := range n.forward {
		route, target, ok := strings.Cut(fw, "=")
		if !ok {
			return nil, tunnel.Config{}, nil, usageError{fmt.Sprintf("--forward %q: want NAME=URL, like files=http://127.0.0.1:9000", handlers.RedactURL(fw))}
		}
		if err := reg.Forward(route, target); err != nil {
			// The URL may hold a password: the error names it redacted.
			return nil, tunnel.Config{}, nil, usageError{fmt.Sprintf("--forward %q: %v", route, err)}
		}
		checkForwardTarget(logger, route, target)
	}
	auth, authDesc, err := n.authHook(reg)
	if err != nil {
		return nil, tunnel.Config{}, nil, err
	}
	reg.SetAuth(auth)
	if auth != nil {
		logger.Info("access control", "auth", authDesc)
	}
	if n.revoked != "" {
		rf, err := n.openRevoked(logger, n.revoked)
		if err != nil {
			return nil, cfg, nil, err
		}
		n.revocations.Store(rf)
		logger.Info("revocation list loaded", "file", n.revoked, "serials", rf.List().Len())
	}
	// Installed always, so that a reload may add a list later.
	cfg.VerifyPeer = func(leaf *x509.Certificate) error {
		if rf := n.revocations.Load(); rf != nil {
			return rf.Check(leaf) // looks at the file, at most once a second
		}
		return nil
	}
	if cfg.PublishKey, err = n.loadPublishKey(logger); err != nil {
		return nil, tunnel.Config{}, nil, err
	}
	cfg.Certificate = id.Certificate
	cfg.CA = id.Pool
	cfg.Dispatcher = reg
	cfg.Logger = logger.With("node", id.Name())
	cfg.Version = version
	n.admin.wire(&cfg, id)
	return id, cfg, logger, nil
}

// loadPublishKey returns the key of --publish-key or --publish-key-file,
// nil if neither is set. It never logs the key.
func (n *nodeFlags) loadPublishKey(logger *slog.Logger) ([]byte, error) {
	switch {
	case n.publishKey != "" && n.publishKeyFile != "":
		return nil, usageError{"--publish-key and --publish-key-file: give one of them"}
	case n.publishKey != "":
		logger.Info("GRIP /publish/ needs the publish key", "from", "--publish-key")
		return []byte(n.publishKey), nil
	case n.publishKeyFile == "":
		return nil, nil
	}
	data, err := os.ReadFile(n.publishKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--publish-key-file: %w", err)
	}
	key := bytes.TrimRight(data, "\r\n")
	if len(key) == 0 {
		return nil, usageError{fmt.Sprintf("--publish-key-file %s: the file is empty", n.publishKeyFile)}
	}
	if e, exposed := certs.CheckKeyFile(n.publishKeyFile); exposed {
		logger.Warn("the publish key file is not private: other users can read it", "file", e.Path, "mode", fmt.Sprintf("%#o", e.Mode.Perm()), "fix", e.Fix)
	}
	logger.Info("GRIP /publish/ needs the publish key", "from", n.publishKeyFile)
	return key, nil
}

// tunnelConfig is DefaultConfig with the settings of the flags; the
// identity, the handlers and the logger are set later.
func (n *nodeFlags) tunnelConfig() tunnel.Config {
	cfg := tunnel.DefaultConfig()
	cfg.DefaultTimeout = n.timeout
	cfg.MaxBodyBytes = int64(min(n.maxBody, math.MaxInt64))
	cfg.KeepAliveInterval = n.keepAlive
	cfg.ShutdownTimeout = n.shutdownTimeout
	cfg.StreamWindow = uint32(min(n.window, math.MaxUint32)) // more is refused, not wrapped
	cfg.MaxFrame = int(min(n.maxFrame, math.MaxInt32))
	cfg.Origins = n.origins
	cfg.HTTPHosts = frontendHosts(n.http, n.httpHosts)
	cfg.ChannelPrefix = n.channelPrefix
	cfg.ChannelQueue = n.channelQueue
	cfg.ChannelMaxMessage = int64(min(n.channelMaxMsg, math.MaxInt64))
	cfg.ChannelOutageWait = n.channelOutage
	cfg.MaxStreams, cfg.MaxSubscriptions = n.maxStreams, n.maxSubs
	return cfg
}

// configFlags names the flag that sets each Config field the node flags
// set.
var configFlags = map[string]string{
	"DefaultTimeout":    "timeout",
	"MaxBodyBytes":      "max-body",
	"KeepAliveInterval": "keepalive",
	"ShutdownTimeout":   "shutdown-timeout",
	"StreamWindow":      "window",
	"MaxFrame":          "max-frame",
	"Origins":           "origin",
	"HTTPHosts":         "http-host",
	"ChannelQueue":      "channel-queue",
	"ChannelMaxMessage": "channel-max-message",
	"ChannelOutageWait": "channel-outage-wait",
	"MaxStreams":        "max-streams",
	"MaxSubscriptions":  "max-subscriptions",
}

// flagError turns the first field Config.Validate refused that a flag
// sets into a usage error naming the flag, its value and its bounds:
// "--max-streams 0: --max-streams must be from 1 to 65536". The other
// fields (the identity, not yet loaded) are checked again by NewServer
// or NewClient once set.
func (n *nodeFlags) flagError(err error) error {
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	for _, err := range errs {
		var fe *tunnel.FieldError
		if !errors.As(err, &fe) {
			continue
		}
		name, ok := configFlags[fe.Field]
		if !ok {
			continue
		}
		if fe.Err != nil { // a list: its error names the item
			return usageError{fmt.Sprintf("--%s: %v", name, fe.Err)}
		}
		return usageError{fmt.Sprintf("--%s %s: --%s %s", name, n.fs.Lookup(name).Value, name, fe.Rule)}
	}
	return nil
}

// keyFile is the private key file the node loads.
func (n *nodeFlags) keyFile() string {
	if n.key != "" {
		return n.key
	}
	_, key, _ := certs.IdentityFiles(n.identityDir)
	return key
}

func (n *nodeFlags) identity() (*certs.Identity, error) {
	given := 0
	for _, f := range []string{n.cert, n.key, n.ca} {
		if f != "" {
			given++
		}
	}
	switch given {
	case 3:
		return certs.LoadIdentity(n.cert, n.key, n.ca)
	case 0:
		id, err := certs.LoadIdentityDir(n.identityDir)
		if err != nil {
			return nil, fmt.Errorf("%w (give --cert, --key and --ca, or install an identity with \"restpipe identity set\")", err)
		}
		return id, nil
	default:
		return nil, usageError{"give --cert, --key and --ca together, or none of them to use --identity-dir"}
	}
}

func newLogger(env *cliEnv, level, format string) (*slog.Logger, error) {
	if v := env.getenv("DEBUG"); v != "" && v != "0" && v != "false" {
		level = "debug"
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(env.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(env.stderr, opts)), nil
	default:
		return nil, usageError{fmt.Sprintf("--log-format %q: want text or json", format)}
	}
}

// listenHTTP opens the front end's listener: host:port or unix:PATH.
func listenHTTP(addr string, logger *slog.Logger) (net.Listener, error) {
	if err := checkHTTPAddr(addr); err != nil {
		return nil, err
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if dir, mode := exposedSocketDir(path); dir != "" {
			logger.Warn("another user can replace the front end's socket: its directory is writable by group or others and not sticky; they would receive its callers' requests",
				"dir", dir, "mode", mode.String(), "fix", "chmod go-w "+dir+" (or put the socket in a directory only this user can write)")
		}
		warnSocketWithoutMode(logger, path)
		return listenUnix(path) // mode 0600 from the start where sockets have modes
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		logger.Warn("front end is not on loopback: anyone who reaches it can call through the tunnel", "addr", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("front end: listen %s: %w", addr, err)
	}
	return ln, nil
}

// parseHTTPApp parses --http-app ADDR=PATH into its address and the
// part of the front end it serves.
func parseHTTPApp(v string) (addr, prefix string, err error) {
	addr, prefix, ok := strings.Cut(v, "=")
	if !ok {
		return "", "", usageError{fmt.Sprintf("--http-app %q: want ADDR=PATH, like 127.0.0.1:9090=/client/c1/web", v)}
	}
	if err := checkHTTPAddr(addr); err != nil {
		return "", "", usageError{fmt.Sprintf("--http-app %q: want host:port or unix:PATH before the =", v)}
	}
	if err := tunnel.CheckMount(prefix); err != nil {
		return "", "", usageError{fmt.Sprintf("--http-app %q: %v", v, err)}
	}
	return addr, prefix, nil
}

// frontNode is a Server or a Client: what serves a front end.
type frontNode interface {
	ServeFrontend(ctx context.Context, ln net.Listener) error
	ServeMount(ctx context.Context, ln net.Listener, prefix string) error
}

// frontends opens the main front end and each --http-app one, and
// returns a runner for each; on an error the listeners opened are closed.
func (n *nodeFlags) frontends(logger *slog.Logger, node frontNode) ([]func(context.Context) error, error) {
	var lns []net.Listener
	fail := func(err error) ([]func(context.Context) error, error) {
		for _, ln := range lns {
			ln.Close()
		}
		return nil, err
	}
	ln, err := listenHTTP(n.http, logger)
	if err != nil {
		return fail(err)
	}
	lns = append(lns, ln)
	runs := []func(context.Context) error{func(ctx context.Context) error { return node.ServeFrontend(ctx, ln) }}
	for _, v := range n.httpApps {
		addr, prefix, err := parseHTTPApp(v)
		if err != nil {
			return fail(err)
		}
		ln, err := listenHTTP(addr, logger)
		if err != nil {
			return fail(err)
		}
		lns = append(lns, ln)
		logger.Info("app front end", "addr", ln.Addr().String(), "serves", prefix)
		runs = append(runs, func(ctx context.Context) error { return node.ServeMount(ctx, ln, prefix) })
	}
	return runs, nil
}

// frontendHosts are the front end's extra Host names: --http-host, and
// the host of --http when it is a name (--http myhost.lan:8080), which
// the listener only knows as an address.
func frontendHosts(httpAddr string, given []string) []string {
	host, _, err := net.SplitHostPort(httpAddr)
	if err != nil || strings.HasPrefix(httpAddr, "unix:") || host == "" || net.ParseIP(host) != nil || strings.EqualFold(host, "localhost") {
		return given
	}
	return append([]string{host}, given...)
}

// checkForwardTarget warns when a forward route's service does not answer
// yet; it may well come up later, so this is no error.
func checkForwardTarget(logger *slog.Logger, route, target string) {
	u, err := handlers.ParseForwardTarget(target)
	if err != nil {
		return
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443", "h2c": "80"}[u.Scheme])
	}
	conn, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		logger.Warn("forward route: its service does not answer yet", "route", route, "target", target, "err", err)
		return
	}
	conn.Close()
	logger.Info("forward route", "route", route, "target", target)
}

// openRevoked opens the revocation list at path, kept in step with the
// file: a change drops the sessions it now refuses; one that does not
// parse is an error in the log, and the old list stays.
func (n *nodeFlags) openRevoked(logger *slog.Logger, path string) (*certs.RevocationFile, error) {
	return certs.OpenRevocationFile(path, certs.RevocationFileOptions{
		OnChange: func(l *certs.RevocationList) {
			logger.Info("revocation list changed: reloaded", "file", path, "serials", l.Len())
			if n.reverify != nil {
				n.reverify()
			}
		},
		OnError: func(err error) {
			logger.Error("revocation list changed but cannot be used: the old list stays in force", "file", path, "err", err)
		},
	})
}

// watchRevoked looks at the revocation list's file every second until ctx
// ends, so that a revocation drops a live session even when nobody
// connects (a connection's handshake looks too).
func (n *nodeFlags) watchRevoked(ctx context.Context) {
	go func() {
		tick := time.NewTicker(certs.DefaultRevocationInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if rf := n.revocations.Load(); rf != nil {
					rf.Refresh()
				}
			}
		}
	}()
}

// reload applies what can change without a restart from fresh settings
// (config file, environment and flags read again): access rules, external
// auth and the revocation list. On an error the old ones stay. It reports
// whether the revocation list was reloaded.
func (n *nodeFlags) reload(logger *slog.Logger, reg *handlers.Registry, fresh *nodeFlags, err error) bool {
	ok := true
	defer func() { n.admin.reloaded(ok) }()
	if err != nil {
		logger.Error("reload: settings kept as they were", "err", err)
		ok = false
		return false
	}
	fresh.admin.m = n.admin.m // the metrics of this node count the fresh rules' decisions
	auth, desc, err := fresh.authHook(reg)
	if err != nil {
		logger.Error("reload: access rules kept as they were", "err", err)
		ok = false
	} else {
		reg.SetAuth(auth)
		logger.Info("reload: access control", "auth", desc)
	}
	if fresh.revoked == "" {
		if old := n.revocations.Swap(nil); old != nil {
			logger.Warn("reload: no revocation list any more (--revoked not set)", "was", old.Path())
		}
		return false
	}
	rf := n.revocations.Load()
	if rf != nil && rf.Path() == fresh.revoked {
		if _, err := rf.Reload(); err != nil {
			logger.Error("reload: revocation list kept as it was", "file", fresh.revoked, "err", err)
			ok = false
			return false
		}
	} else {
		if rf, err = n.openRevoked(logger, fresh.revoked); err != nil {
			logger.Error("reload: revocation list kept as it was", "file", fresh.revoked, "err", err)
			ok = false
			return false
		}
		n.revocations.Store(rf)
	}
	logger.Info("reload: revocation list", "file", fresh.revoked, "serials", rf.List().Len())
	return true
}

// onReload runs fn for each SIGHUP until ctx ends.
func onReload(ctx context.Context, env *cliEnv, fn func()) {
	if env.reload == nil {
		return
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-env.reload:
				fn()
			}
		}
	}()
}

// logStopping says when a stop was asked for, before the drain begins.
func logStopping(ctx context.Context, logger *slog.Logger, grace time.Duration) {
	context.AfterFunc(ctx, func() {
		logger.Info("stopping: no new events; events in flight may finish", "within", grace)
	})
}

func checkHTTPAddr(addr string) error {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return usageError{fmt.Sprintf("--http %q: want unix:PATH with a path", addr)}
		}
		if strings.HasPrefix(path, "@") { // Linux's abstract namespace: no file, no mode, anyone may connect
			return usageError{fmt.Sprintf("--http %q: an abstract socket has no permissions; give a file path (./%s for a file of that name)", addr, path)}
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usageError{fmt.Sprintf("--http %q: want host:port or unix:PATH", addr)}
	}
	return nil
}

// runAll runs fns until ctx ends or one fails; a failure stops the others.
// It returns the first failure.
func runAll(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				once.Do(func() { first = err })
				cancel()
			}
		}()
	}
	wg.Wait()
	return first
}

// rpEnv applies RestPipe's environment variables to fs as defaults, below
// RESTPIPE_* variables and flags.
func rpEnv(fs *flag.FlagSet, env *cliEnv, flagName string, hostVars, portVars []string, defHost, defPort string) error {
	pick := func(keys []string) string {
		for _, k := range keys {
			if v := env.getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	host, port := pick(hostVars), pick(portVars)
	if host == "" && port == "" {
		return nil
	}
	if host == "" {
		host = defHost
	}
	if port == "" {
		port = defPort
	}
	return fs.Set(flagName, net.JoinHostPort(host, port))
}

// serverFlags are the settings of "restpipe server".
type serverFlags struct {
	nodeFlags
	listen string
}

func parseServerFlags(env *cliEnv, args []string) (*serverFlags, error) {
	fs := newNodeFlagSet(env, "server", "run the central node that client nodes connect to",
		"restpipe server --listen 0.0.0.0:7443 --http 127.0.0.1:8080 --cert server.crt --key server.key --ca ca.crt")
	f := &serverFlags{}
	fs.StringVar(&f.listen, "listen", "0.0.0.0:7443", "the tunnel `ADDR` clients connect to (RP_SERVER_BIND_INTERFACE/RP_SERVER_BIND_PORT, BIND_IP/BIND_PORT)")
	f.register(fs, "127.0.0.1:8080")
	rp := func() error {
		return rpEnv(fs, env, "listen", []string{"RP_SERVER_BIND_INTERFACE", "BIND_IP"},
			[]string{"RP_SERVER_BIND_PORT", "BIND_PORT"}, "0.0.0.0", "7443")
	}
	return f, parseFlagsWith(fs, env, args, rp)
}

func runServer(ctx context.Context, env *cliEnv, args []string) error {
	f, err := parseServerFlags(env, args)
	if err != nil {
		return err
	}
	n := &f.nodeFlags
	_, cfg, logger, reg, err := n.setup(env, "server")
	if err != nil {
		return err
	}
	srv, err := tunnel.NewServer(cfg)
	if err != nil {
		return err
	}
	tln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("tunnel: listen %s: %w", f.listen, err)
	}
	fronts, err := n.frontends(logger, srv)
	if err != nil {
		tln.Close()
		return err
	}
	adm, err := n.admin.listen(logger, srv.Ready, func() any {
		return nodeSummary{Node: srv.Name(), Role: "server", Version: version, Peers: len(srv.Clients()), Ready: srv.Ready() == nil}
	})
	if err != nil {
		tln.Close()
		return err
	}
	fronts = withAdmin(fronts, adm)
	logger.Info("server starting", "node", srv.Name(), "version", version)
	logStopping(ctx, logger, n.shutdownTimeout)
	n.reverify = func() {
		if dropped := srv.Reverify(); len(dropped) > 0 {
			logger.Warn("dropped revoked clients", "clients", dropped)
		}
	}
	n.watchRevoked(ctx)
	onReload(ctx, env, func() {
		fresh, err := parseServerFlags(quiet(env), args)
		if n.reload(logger, reg, &fresh.nodeFlags, err) {
			n.reverify()
		}
		if ended := srv.RecheckChannels(); ended > 0 {
			logger.Info("reload: channel subscriptions the rules no longer allow ended", "subscriptions", ended)
		}
	})
	go trimMemory(ctx, logger)
	return runAll(ctx, append(fronts, func(ctx context.Context) error { return srv.Serve(ctx, tln) })...)
}

// quiet is env with usage output silenced, for reparsing on a reload.
func quiet(env *cliEnv) *cliEnv {
	q := *env
	q.stdout, q.stderr = io.Discard, io.Discard
	return &q
}

// clientFlags are the settings of "restpipe client".
type clientFlags struct {
	nodeFlags
	server, serverName string
}

func parseClientFlags(env *cliEnv, args []string) (*clientFlags, error) {
	fs := newNodeFlagSet(env, "client", "run a node that keeps a tunnel to the server, reconnecting forever",
		"restpipe client --server tunnel.example.com:7443 --http 127.0.0.1:8081 --cert c1.crt --key c1.key --ca ca.crt")
	f := &clientFlags{}
	fs.StringVar(&f.server, "server", "", "the server's tunnel `ADDR` (host:port; RP_CLIENT_TARGET_HOSTNAME/RP_CLIENT_TARGET_PORT)")
	fs.StringVar(&f.serverName, "server-name", "", "the `name` the server certificate must carry (default: host of --server)")
	f.register(fs, "127.0.0.1:8081")
	rp := func() error {
		return rpEnv(fs, env, "server", []string{"RP_CLIENT_TARGET_HOSTNAME"},
			[]string{"RP_CLIENT_TARGET_PORT"}, "localhost", "7443")
	}
	if err := parseFlagsWith(fs, env, args, rp); err != nil {
		return f, err
	}
	if f.server == "" {
		return f, usageError{"--server is required (or RP_CLIENT_TARGET_HOSTNAME)"}
	}
	if _, _, err := net.SplitHostPort(f.server); err != nil {
		return f, usageError{fmt.Sprintf("--server %q: want host:port", f.server)}
	}
	return f, nil
}

func runClient(ctx context.Context, env *cliEnv, args []string) error {
	f, err := parseClientFlags(env, args)
	if err != nil {
		return err
	}
	n := &f.nodeFlags
	_, cfg, logger, reg, err := n.setup(env, "client")
	if err != nil {
		return err
	}
	cfg.ServerName = f.serverName
	c, err := tunnel.NewClient(cfg)
	if err != nil {
		return err
	}
	fronts, err := n.frontends(logger, c)
	if err != nil {
		return err
	}
	adm, err := n.admin.listen(logger, c.Ready, func() any {
		_, up := c.Server()
		return nodeSummary{Node: c.Name(), Role: "client", Version: version, Peers: map[bool]int{true: 1}[up], Ready: c.Ready() == nil}
	})
	if err != nil {
		return err
	}
	fronts = withAdmin(fronts, adm)
	logger.Info("client starting", "node", c.Name(), "server", f.server, "version", version)
	logStopping(ctx, logger, n.shutdownTimeout)
	n.reverify = func() {
		if c.Reverify() {
			logger.Warn("dropped the server: its certificate is revoked")
		}
	}
	n.watchRevoked(ctx)
	onReload(ctx, env, func() {
		fresh, err := parseClientFlags(quiet(env), args)
		if n.reload(logger, reg, &fresh.nodeFlags, err) {
			n.reverify()
		}
	})
	go trimMemory(ctx, logger)
	return runAll(ctx, append(fronts, func(ctx context.Context) error { return c.Run(ctx, f.server) })...)
}

// trimMemory gives the memory of a burst of events back to the OS once it
// is over, until ctx ends: the runtime alone would keep it for minutes in
// a node that then has little to do (memtrim).
func trimMemory(ctx context.Context, logger *slog.Logger) {
	cfg := memtrim.DefaultConfig()
	cfg.Logger = logger
	memtrim.New(cfg).Run(ctx)
}
