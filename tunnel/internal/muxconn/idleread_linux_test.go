package muxconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"testing"
	"time"
)

// TestTLSPassesTemporaryRead pins assumption 13: crypto/tls passes up the
// idle reader's would-block error (a net.Error whose Temporary() is true)
// without breaking the connection, and reads on once data comes. It also
// drives readFrom, the session reader's path, across two idle waits.
func TestTLSPassesTemporaryRead(t *testing.T) {
	srvConf, cliConf := testTLS(t)
	srvRaw, raw := loopbackTCP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ir := newIdleReader(raw)
	if ir == nil {
		t.Fatal("no idle reader on a TCP connection")
	}
	srv, tc := tls.Server(srvRaw, srvConf), tls.Client(ir, cliConf)
	done := make(chan error, 1)
	go func() { done <- srv.HandshakeContext(ctx) }()
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	ir.start()

	// Nothing to read: the record layer gets errWouldBlock from below and
	// must hand it up as it is.
	buf := make([]byte, 64)
	ir.noWait = true
	n, err := tc.Read(buf)
	ir.noWait = false
	if n != 0 || !errors.Is(err, errWouldBlock) {
		t.Fatalf("tls.Conn.Read on an idle socket through the idle reader: %d, %v; want 0, errWouldBlock", n, err)
	}

	// The connection is not broken: what comes next is read, through
	// readFrom's wait, twice.
	for _, msg := range []string{"first", "second"} {
		go func() { _, _ = io.WriteString(srv, msg) }()
		n, err := ir.readFrom(tc, buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("readFrom after an idle wait: %q, %v; want %q (crypto/tls broke the connection on a Temporary error?)", buf[:n], err, msg)
		}
	}
}
