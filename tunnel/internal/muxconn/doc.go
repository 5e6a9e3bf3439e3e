// Package muxconn is everything between a peer's TCP connection and its
// yamux session:
//
//	TCP -> record batcher -> tls.Conn -> coalescing conn -> yamux.Session
//
// built the same way for both roles (Handshake, then Conn.Start), with the
// tricks that make a small event cost about one socket write a side and an
// idle session no goroutine besides yamux's reader and writer:
//
//   - write merging (coalesceConn): a data frame's header goes out with
//     its body, and the frames that open and close streams (SYN, ACK, FIN)
//     wait up to 1 ms to ride with the next frame;
//   - record batching (recordBatcher): the TLS records of one big write
//     leave in one syscall;
//   - the frame scanner (gate): the incoming frames are followed as they
//     pass, so that an acceptor goroutine runs only while streams come
//     (Conn.Serve, Acceptor), a ping flood or streams opened before the
//     hello end the session (ErrPingFlood, ErrStreamsBeforeHello), and the
//     peer's FIN or RST on a stream this node opened is reported
//     (Conn.OnOwnClosed).
//
// The package uses only yamux's public API and the bytes that cross the
// connection: no fork. It rests on the following facts about
// github.com/hashicorp/yamux v0.1.2 and crypto/tls; each is pinned by a
// test on the real library (named after it) that fails the day it stops
// holding.
//
// yamux:
//
//  1. A frame starts with a 12-byte header: version (0), type (0 data, 1
//     window update, 2 ping, 3 go-away), flags (2 bytes: SYN 1, ACK 2,
//     FIN 4, RST 8), stream id (4), length (4), big-endian (frame.go).
//     TestYamuxFramesAsAssumed; the scanner's own tests and fuzzer
//     (FuzzAcceptGateScan).
//  2. Only a data frame has a body: length bytes after its header. A
//     window update's length is the window's increment, a ping's its id,
//     a go-away's its code. TestYamuxFramesAsAssumed.
//  3. The session's send loop is the only writer of the connection, one
//     frame after the other: a data frame's body is the very next write
//     after its header. (Were another writer to slip a frame between
//     the two, the merged write would corrupt the stream.)
//     TestYamuxFramesAsAssumed, FuzzSessionBytes.
//  4. A data frame is written as two calls, the header, then the body;
//     without it merging would not find them apart (harmless: it would
//     then merge nothing). TestYamuxFramesAsAssumed,
//     TestWritesPerSmallEvent.
//  5. A stream opens with a header-only window update flagged SYN
//     (OpenStream), is acknowledged by one flagged ACK when the other end
//     accepts it (AcceptStream), and each end's close is one flagged FIN:
//     the frames coalesceConn holds. TestYamuxFramesAsAssumed,
//     TestWritesPerSmallEvent.
//  6. The session's receive loop is the only reader of the connection,
//     and reads headers through a 4 KiB bufio.Reader: the scanner's state
//     needs no lock, and a read holds at most 341 headers (maxScanCloses).
//     TestYamuxFramesAsAssumed.
//  7. The receive loop handles every complete frame it has read before it
//     reads again, and a SYN queues the new stream for AcceptStream (or
//     refuses it, 8) as it is handled: when the next Read comes, the
//     streams the scanner counted are in the accept queue, and an
//     acceptor started then takes the first without waiting (were it
//     otherwise, the acceptor would wait a little in AcceptStream).
//     TestAcceptGateStartsOnePerBusySpell; every session test.
//  8. A stream the peer opens after this session's GoAway, or beyond its
//     AcceptBacklog, is never queued: yamux resets it at once with a
//     header-only window update flagged RST, and sends no other reset for
//     a stream nobody has accepted. The gate stops counting it on that
//     reset, so after a go-away its count returns to zero and no acceptor
//     waits. TestYamuxRefusesAfterGoAway, TestAcceptorsAfterGoAway,
//     TestAcceptorsBacklogFull.
//  9. Each ping request is answered from a goroutine of its own that
//     waits up to ConnectionWriteTimeout to send: hence MaxPings.
//     TestHostilePingFlood (package tunnel).
//  10. The session closes its connection when it ends, whatever the
//     reason: Conn.WhenClosed hangs off that Close. The tunnel package's
//     session tests.
//
// crypto/tls:
//
//  11. A record carries at most 16 KiB of plaintext, and a Write of up to
//     16 KiB is one record, once the connection has sent its first
//     128 KiB or so (crypto/tls starts with records of about 1 KiB, which
//     a small event's merged write fits in). TestTLSRecordsAsAssumed.
//  12. crypto/tls writes each record to the socket with a Write of its
//     own, in order, from the goroutine that called tls.Conn.Write (its
//     other writes, alerts and key updates, are serialised with them):
//     recordBatcher gathers those of one big write into one syscall.
//     TestTLSRecordsAsAssumed.
//
// The idle reader that tunnel had (a Linux-only read path that let an
// idle session's reader wait on a small stack, relying on crypto/tls
// passing up a Temporary() net.Error without breaking the connection) is
// gone: measured with `restpipe-bench -only scale` (2000 idle clients),
// it saved 0.8 KiB of server memory per idle client (38.2 KiB with it,
// 39.0 KiB without; goroutine stacks 8.1 against 8.4 KiB), less than the
// run-to-run spread of that figure (36.9 to 38.9 KiB), for a build that
// only Linux had and a deprecated interface.
package muxconn
