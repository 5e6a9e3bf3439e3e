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
//	tunnel.ServeFrontend(ctx, ln, client.Frontend(), cfg)
package tunnel
