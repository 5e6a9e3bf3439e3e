// Package muxconn is everything between a peer's TCP connection and its
// yamux session:
//
//	TCP -> idle reader (Linux) -> record batcher -> tls.Conn -> coalescing conn -> yamux.Session
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
//     (Conn.OnOwnClosed);
//   - the time the last bytes arrived (Conn.LastReceived, one atomic
//     store per read): the keep-alive takes a session that receives
//     anything for alive, whether or not its pings are answered in time.
//
// The package uses only yamux's public API and the bytes that cross the
// connection, with one exception: RecvReader (recvbuf.go) reads three
// unexported fields of yamux.Stream, found by name and type, to keep a
// slow stream's receive buffer at a window (TestRecvLayoutFound,
// TestRecvBufStaysAtWindow). No fork. It rests on the following facts about
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
//     (FuzzGateScan).
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
//     TestGateStartsOnePerBusySpell; every session test.
//  8. A stream the peer opens after this session's GoAway, or beyond its
//     AcceptBacklog, is never queued: yamux resets it at once with a
//     header-only window update flagged RST, and sends no other reset for
//     a stream nobody has accepted. The gate stops counting it on that
//     reset, so after a go-away its count returns to zero and no acceptor
//     waits. yamux opens odd ids on a client and even ones on a server
//     (never zero), so a reset of a peer's id is never one of this node's
//     own streams; the gate ends a session whose peer opens another id
//     (ErrStreamID), and counts each SYN of an id the peer opens again
//     after a refusal. TestYamuxRefusesAfterGoAway,
//     TestAcceptorsAfterGoAway, TestAcceptorsBacklogFull,
//     TestYamuxOpensIDsInTurn, TestStreamsReopened, TestStreamsNotThePeers.
//  9. Each ping request is answered from a goroutine of its own that
//     waits up to ConnectionWriteTimeout to send, and the answer is one
//     header-only Write flagged ACK: hence MaxPings a second, and at most
//     MaxPings unanswered (the gate counts requests, coalesceConn the
//     answers written). TestHostilePingFlood (package tunnel),
//     TestPingsUnanswered.
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
//
//  12. crypto/tls writes each record to the socket with a Write of its
//     own, in order, from the goroutine that called tls.Conn.Write (its
//     other writes, alerts and key updates, are serialised with them):
//     recordBatcher gathers those of one big write into one syscall.
//     TestTLSRecordsAsAssumed.
//
//  13. (Linux, the idle reader.) A Read error from the connection under a
//     tls.Conn that is a net.Error whose deprecated Temporary() is true is
//     passed up by tls.Conn.Read without breaking the connection: the
//     next Read reads on. The idle reader returns such an error for a
//     read that would block, so that the session's reader waits for the
//     socket near the top of its stack (idleReader.waitReadable) rather
//     than inside crypto/tls's record layer, and its stack shrinks from
//     8 to 4 KiB at the next collection. TestTLSPassesTemporaryRead.
//
// yamux again, for Conn.LastReceived:
//
//  14. The receive loop waits on nothing but the connection: handling a
//     frame never blocks on the application (a stream's data goes to its
//     buffer, within its window; a ping is answered from a goroutine of
//     its own, 9; a stream beyond the backlog is refused, 8). What the
//     peer sends is read as it arrives, so LastReceived ages only while
//     the link is silent, however long a ping's answer waits behind data.
//     TestLastReceived; TestKeepAliveBusyLink (package tunnel: a session
//     whose pings go unanswered past the write timeout while a transfer
//     runs stays up).
//
// The idle reader is Linux-only (idleread_linux.go; idleread_other.go is
// the portable default, which waits inside tls.Conn). Measured with
// `restpipe-bench` (2000 idle clients, two runs each, same machine and
// hour): with it, goroutine stacks 8.0 KiB per idle client and server
// RSS 40.0 to 40.8 KiB (39.9 to 40.8 before issue 13); without it,
// stacks 10.7 to 10.9 KiB and RSS 41.9 to 43.1 KiB: about 2 KiB more
// per idle client, against a target of 40 KiB. Should assumption 13 stop
// holding, TestTLSPassesTemporaryRead fails, and idleread_linux.go is to
// go (the portable default is what every other OS runs).
package muxconn
