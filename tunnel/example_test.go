package tunnel_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/restpipe/restpipe/certs"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel"
)

// A server node and a client node with a handler of its own, on this
// machine: the server calls the client's handler from Go, and an HTTP
// caller of the client's front end calls the server's built-in get_cat.
func ExampleClient() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	var wg sync.WaitGroup
	defer wg.Wait() // once cancel has run: every node has stopped
	defer cancel()
	run := func(f func() error) {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f() }()
	}

	// Identities from a CA of the moment; "restpipe ca init" and
	// "restpipe ca issue" make the same on disk.
	ca, err := certs.NewCA("example CA", time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	serverID, err := ca.Issue(certs.IssueRequest{Name: "server", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		log.Fatal(err)
	}
	clientID, err := ca.Issue(certs.IssueRequest{Name: "c1", Usage: certs.UsageClient})
	if err != nil {
		log.Fatal(err)
	}

	// The server node, with the built-in handlers.
	sreg := handlers.NewRegistry()
	handlers.Builtins(sreg, "server")
	scfg := tunnel.DefaultConfig()
	scfg.Certificate, scfg.CA, scfg.Dispatcher = serverID.Certificate, serverID.Pool, sreg
	server, err := tunnel.NewServer(scfg)
	if err != nil {
		log.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	run(func() error { return server.Serve(ctx, tln) })

	// The client node, with a handler of its own, and its front end.
	reg := handlers.NewRegistry()
	reg.MustHandle("get_hello", func(_ context.Context, req *handlers.Request) (any, error) {
		return map[string]string{"hello": req.Peer, "to": strings.Join(req.Args, " ")}, nil
	})
	cfg := tunnel.DefaultConfig()
	cfg.Certificate, cfg.CA, cfg.Dispatcher = clientID.Certificate, clientID.Pool, reg
	client, err := tunnel.NewClient(cfg)
	if err != nil {
		log.Fatal(err)
	}
	fln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	run(func() error { return client.Run(ctx, tln.Addr().String()) })
	run(func() error { return client.ServeFrontend(ctx, fln) })
	if err := client.WaitConnected(ctx); err != nil {
		log.Fatal(err)
	}

	// From HTTP: a caller of c1's front end calls get_cat on the server.
	// (Once the server has answered c1, it also lists c1: WaitConnected
	// says the client has its session, a moment before the server may.)
	hresp, err := http.Get("http://" + fln.Addr().String() + "/server/cat//con/cat")
	if err != nil {
		log.Fatal(err)
	}
	body, err := io.ReadAll(hresp.Body)
	hresp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(hresp.StatusCode, strings.TrimSpace(string(body)))

	// From Go: the server calls get_hello on c1.
	resp, err := server.Call(ctx, "c1", &tunnel.Request{Noun: []string{"hello"}, Args: []string{"a", "b"}})
	if err != nil {
		log.Fatal(err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, resp.ContentType, strings.TrimSpace(string(body)))

	// Output:
	// 200 {"result":"concat"}
	// 200 application/json {"hello":"server","to":"a b"}
}
