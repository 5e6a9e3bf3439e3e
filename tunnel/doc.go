// Package tunnel connects restpipe nodes: a Server that client nodes keep
// one mTLS connection each to, a Client that keeps that connection up
// forever, the yamux session on each connection, sending an event to the
// peer and waiting for its reply, serving the peer's events with a
// Dispatcher, and the node's local HTTP front end.
//
// The wire format is documented in package events. A node embeds restpipe
// with this package and package handlers alone:
//
//	reg := handlers.NewRegistry()
//	handlers.Builtins(reg, "c1")
//	cfg := tunnel.DefaultConfig()
//	cfg.Certificate, cfg.CA, cfg.Dispatcher = cert, pool, reg
//	client, err := tunnel.NewClient(cfg)
//	go client.Run(ctx, "server.example:7443")
//	go client.ServeFrontend(ctx, ln) // HTTP callers: /server/<noun>
//	resp, err := client.Call(ctx, &tunnel.Request{Noun: []string{"time"}}) // Go callers
//
// NewClient and NewServer fill the zero fields of cfg from DefaultConfig
// and check it with Config.Validate, whose *FieldError names a field
// refused. The server node is the same with NewServer, ListenAndServe (or
// Serve) and Call(ctx, clientName, req). ServeMount serves one part of a front
// end (a forward route) on a listener of its own; Frontend returns the
// front end as an http.Handler for an http.Server of the program's own,
// which must then call CloseChannels as it shuts down. Channels is the
// node's publish/subscribe bus (package channels). ExampleClient runs
// both nodes in one program.
package tunnel
