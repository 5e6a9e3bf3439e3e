package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// demoClient is the name of the demo's client node.
const demoClient = "demo-client"

func runDemo(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "demo", "run a server and a client on loopback with a temporary CA, make real calls both ways, and stay up for your own curls",
		"restpipe demo --server-http 127.0.0.1:8080 --client-http 127.0.0.1:8081")
	serverHTTP := fs.String("server-http", "127.0.0.1:0", "the server node's front end `ADDR` (port 0: any free port)")
	clientHTTP := fs.String("client-http", "127.0.0.1:0", "the client node's front end `ADDR`")
	once := fs.Bool("once", false, "exit after the calls instead of waiting for Ctrl-C")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error: the nodes' logs, on stderr")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	logger, err := newLogger(env, *logLevel, "text")
	if err != nil {
		return err
	}
	out := env.stdout

	dir, err := os.MkdirTemp("", "restpipe-demo-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	ca, err := certs.InitCA(dir, "restpipe demo CA", 24*time.Hour, false)
	if err != nil {
		return err
	}
	serverID, err := ca.Issue(certs.IssueRequest{Name: "server", Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		return err
	}
	clientID, err := ca.Issue(certs.IssueRequest{Name: demoClient})
	if err != nil {
		return err
	}
	for name, id := range map[string]*certs.Identity{"server": serverID, demoClient: clientID} {
		if err := certs.WriteIdentity(dir+"/"+name+".crt", dir+"/"+name+".key", id); err != nil {
			return err
		}
	}

	config := func(id *certs.Identity) tunnel.Config {
		reg := handlers.NewRegistry(handlers.WithLogger(logger))
		handlers.Builtins(reg, id.Name())
		reg.MustHandle("get_hello", func(_ context.Context, req *handlers.Request) (any, error) {
			return map[string]string{"greeting": "hello " + req.Peer + ", this is " + id.Name(), "request_id": req.ID}, nil
		})
		cfg := tunnel.DefaultConfig()
		cfg.Certificate, cfg.CA, cfg.Dispatcher = id.Certificate, id.Pool, reg
		cfg.Logger = logger.With("node", id.Name())
		cfg.Version = version
		cfg.ShutdownTimeout = 2 * time.Second
		return cfg
	}
	scfg, ccfg := config(serverID), config(clientID)
	srv, err := tunnel.NewServer(scfg)
	if err != nil {
		return err
	}
	cli, err := tunnel.NewClient(ccfg)
	if err != nil {
		return err
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("tunnel: %w", err)
	}
	sln, err := listenHTTP(*serverHTTP, logger)
	if err != nil {
		tln.Close()
		return err
	}
	cln, err := listenHTTP(*clientHTTP, logger)
	if err != nil {
		tln.Close()
		sln.Close()
		return err
	}
	sURL, cURL := "http://"+sln.Addr().String(), "http://"+cln.Addr().String()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- runAll(ctx,
			func(ctx context.Context) error { return srv.Serve(ctx, tln) },
			func(ctx context.Context) error { return srv.ServeFrontend(ctx, sln) },
			func(ctx context.Context) error { return cli.Run(ctx, tln.Addr().String()) },
			func(ctx context.Context) error { return cli.ServeFrontend(ctx, cln) })
	}()

	fmt.Fprintf(out, "restpipe demo: a temporary CA, a server node and a client node on this machine\n\n")
	fmt.Fprintf(out, "  CA and identities   %s (removed on exit)\n", dir)
	fmt.Fprintf(out, "  server node         tunnel %s, front end %s\n", tln.Addr(), sURL)
	fmt.Fprintf(out, "  client node         %q, front end %s\n", demoClient, cURL)

	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	err = cli.WaitConnected(wctx)
	wcancel()
	if err != nil {
		cancel()
		<-errc
		return fmt.Errorf("the client did not connect: %w", err)
	}
	fmt.Fprintf(out, "  tunnel              up: mTLS (TLS 1.3, both certificates verified), one yamux session\n")

	calls := []struct{ title, method, url, body string }{
		{"client -> server: the server's built-in get_time", "GET", cURL + "/server/time", ""},
		{"client -> server: arguments after //, URL-decoded", "GET", cURL + "/server/cat//hello%20/world", ""},
		{"client -> server: a handler that sees who calls (from the certificate)", "GET", cURL + "/server/hello", ""},
		{"client -> server: a body, streamed there and back", "POST", cURL + "/server/echo", "ping through the tunnel"},
		{"server -> client: the firewalled client's get_time", "GET", sURL + "/client/" + demoClient + "/time", ""},
		{"server -> client: get_cat with two arguments", "GET", sURL + "/client/" + demoClient + "/cat//a/b", ""},
		{"server -> client: who calls whom", "GET", sURL + "/client/" + demoClient + "/hello", ""},
		{"server: the connected clients", "GET", sURL + "/clients", ""},
		{"an error: a client that is not connected", "GET", sURL + "/client/nobody/time", ""},
		{"an error: no such handler", "GET", cURL + "/server/nope", ""},
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	failed := 0
	for _, c := range calls {
		fmt.Fprintf(out, "\n# %s\n$ %s\n", c.title, curlLine(c.method, c.url, c.body))
		status, body, err := demoCall(ctx, hc, c.method, c.url, c.body)
		if err != nil {
			failed++
			fmt.Fprintf(out, "call failed: %v\n", err)
			continue
		}
		fmt.Fprintf(out, "HTTP %d  %s\n", status, strings.TrimSpace(body))
	}
	if err := demoChannel(ctx, hc, out, sURL, cURL); err != nil {
		failed++
		fmt.Fprintf(out, "channel demo failed: %v\n", err)
	}
	if failed > 0 {
		cancel()
		<-errc
		return fmt.Errorf("%d demo calls failed", failed)
	}
	if *once {
		cancel()
		return <-errc
	}
	fmt.Fprintf(out, "\nThe nodes stay up: try your own calls, for example\n")
	fmt.Fprintf(out, "  curl -s %s/server/cat//any/args/you%%20like\n", cURL)
	fmt.Fprintf(out, "  curl -s -N %s/client/%s/stream//20\n", sURL, demoClient)
	fmt.Fprintf(out, "  open %s/channels/demo in a browser, then: curl -s --data hi %s/channels/demo\n", cURL, sURL)
	fmt.Fprintf(out, "  DEBUG=1 shows the mechanics. Press Ctrl-C to stop.\n")
	select {
	case <-ctx.Done():
		fmt.Fprintf(out, "\nstopping...\n")
		return <-errc
	case err := <-errc:
		return err
	}
}

// curlLine is the curl command a user would type for a call.
func curlLine(method, url, body string) string {
	switch {
	case body != "":
		return fmt.Sprintf("curl -s -X %s --data '%s' %s", method, body, url)
	case method != "GET":
		return fmt.Sprintf("curl -s -X %s %s", method, url)
	default:
		return "curl -s " + url
	}
}

func demoCall(ctx context.Context, hc *http.Client, method, url, body string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), err
}

// demoChannel subscribes to a channel on the client node with
// Server-Sent Events, publishes on the server node, and prints what the
// subscriber got.
func demoChannel(ctx context.Context, hc *http.Client, out io.Writer, sURL, cURL string) error {
	const text = "hello, subscribers"
	subURL, pubURL := cURL+"/channels/demo", sURL+"/channels/demo"
	fmt.Fprintf(out, "\n# channels: subscribe on the client node (Server-Sent Events), publish on the server node\n")
	fmt.Fprintf(out, "$ curl -s -N -H 'Accept: text/event-stream' %s &\n", subURL)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, subURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{}).Do(req) // no client timeout: a stream
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("subscribe: HTTP %d", resp.StatusCode)
	}
	fmt.Fprintf(out, "$ %s\n", curlLine("POST", pubURL, text))
	status, body, err := demoCall(ctx, hc, "POST", pubURL, text)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "HTTP %d  %s\n", status, strings.TrimSpace(body))
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data:") {
			fmt.Fprintf(out, "the subscriber on the client node printed: %s\n", line)
			return nil
		}
	}
	return fmt.Errorf("the subscriber got no message: %v", cmp.Or(sc.Err(), io.ErrUnexpectedEOF))
}
