// Command custom-handler is a restpipe node with handlers of its own,
// built with the tunnel and handlers packages alone. It runs as the server
// or as a client:
//
//	go run ./examples/custom-handler -role server -listen 127.0.0.1:7443 -http 127.0.0.1:8080 \
//	    -cert D/server.crt -key D/server.key -ca D/ca.crt
//	go run ./examples/custom-handler -role client -server 127.0.0.1:7443 -http 127.0.0.1:8081 \
//	    -cert D/c1.crt -key D/c1.key -ca D/ca.crt
//
//	curl 127.0.0.1:8081/server/hello                   # get_hello
//	curl 127.0.0.1:8081/server/sum//1/2/3.5            # get_sum
//	curl --data 'shout this' 127.0.0.1:8080/client/c1/upper   # post_upper
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

func main() {
	role := flag.String("role", "client", "server or client")
	listen := flag.String("listen", "127.0.0.1:7443", "server: the tunnel address to listen on")
	server := flag.String("server", "127.0.0.1:7443", "client: the server's tunnel address")
	httpAddr := flag.String("http", "127.0.0.1:8081", "the local front end address")
	certFile := flag.String("cert", "", "this node's certificate")
	keyFile := flag.String("key", "", "this node's key")
	caFile := flag.String("ca", "", "the CA certificate")
	flag.Parse()
	if err := run(*role, *listen, *server, *httpAddr, *certFile, *keyFile, *caFile); err != nil {
		fmt.Fprintln(os.Stderr, "custom-handler:", err)
		os.Exit(1)
	}
}

// register adds this program's handlers. A handler's name is the HTTP
// method and the noun: GET /server/hello reaches get_hello.
func register(reg *handlers.Registry) {
	// A Go value is sent as JSON with status 200. The peer's name comes
	// from its certificate, never from anything it says.
	reg.MustHandle("get_hello", func(ctx context.Context, req *handlers.Request) (any, error) {
		deadline, _ := ctx.Deadline()
		return map[string]any{
			"hello":      req.Peer,
			"from":       req.RemoteAddr,
			"request_id": req.ID,
			"deadline":   deadline,
			"query":      req.Query,
		}, nil
	})

	// Arguments follow the double slash: /server/sum//1/2/3.5. A
	// handlers.Error chooses the status and code the caller sees.
	reg.MustHandle("get_sum", func(_ context.Context, req *handlers.Request) (any, error) {
		total := 0.0
		for _, a := range req.Args {
			v, err := strconv.ParseFloat(a, 64)
			if err != nil {
				return nil, handlers.Errorf(http.StatusBadRequest, "bad_number", "%q is not a number", a)
			}
			total += v
		}
		return map[string]float64{"sum": total}, nil
	})

	// A *handlers.Reply sets status, content type and headers, and streams
	// its body: here the request body upper-cased line by line, as it comes.
	reg.MustHandle("post_upper", func(_ context.Context, req *handlers.Request) (any, error) {
		pr, pw := io.Pipe()
		go func() {
			sc := bufio.NewScanner(req.Body)
			for sc.Scan() {
				if _, err := fmt.Fprintln(pw, strings.ToUpper(sc.Text())); err != nil {
					return
				}
			}
			pw.CloseWithError(sc.Err())
		}()
		return &handlers.Reply{
			Status:      http.StatusOK,
			ContentType: "text/plain; charset=utf-8",
			Header:      http.Header{"X-Shouted-By": {req.Peer}},
			Body:        pr,
		}, nil
	})
}

func run(role, listen, server, httpAddr, certFile, keyFile, caFile string) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("load identity: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s holds no PEM certificate", caFile)
	}

	reg := handlers.NewRegistry(handlers.WithLogger(logger))
	handlers.Builtins(reg, role) // get_time, get_cat, post_echo, get_stream
	register(reg)

	cfg := tunnel.DefaultConfig()
	cfg.Certificate, cfg.CA, cfg.Dispatcher, cfg.Logger = cert, pool, reg, logger

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}

	var node interface {
		ServeFrontend(ctx context.Context, ln net.Listener) error
	}
	var runTunnel func(context.Context) error
	switch role {
	case "server":
		srv, err := tunnel.NewServer(cfg)
		if err != nil {
			return err
		}
		node, runTunnel = srv, func(ctx context.Context) error { return srv.ListenAndServe(ctx, listen) }
	case "client":
		c, err := tunnel.NewClient(cfg)
		if err != nil {
			return err
		}
		node, runTunnel = c, func(ctx context.Context) error { return c.Run(ctx, server) }
	default:
		return errors.New(`-role must be "server" or "client"`)
	}
	errc := make(chan error, 2)
	go func() { errc <- runTunnel(ctx) }()
	go func() { errc <- node.ServeFrontend(ctx, hln) }()
	err = <-errc
	stop()
	return errors.Join(err, <-errc)
}
