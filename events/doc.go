// Package events is restpipe's event model: the protobuf messages that
// cross the tunnel, how they are framed on a stream, the REST path that
// names an event, and the mapping between HTTP headers and event headers.
//
// # Sessions and streams
//
// A client node holds one TLS 1.3 connection to the server with one yamux
// session on it. Both sides open streams. The first stream of a session is
// the hello exchange; every later stream carries exactly one event.
//
// # Messages
//
// A message is a protobuf message (events.proto) preceded by its length as
// an unsigned varint, the encoding of google.golang.org/protobuf's
// encoding/protodelim:
//
//	uvarint(len) | len bytes of protobuf
//
// A message longer than MaxMessageSize is refused (ErrTooLarge) before it
// is read, so a peer cannot make the reader allocate more than that.
//
// # Bodies
//
// A body is a sequence of chunks, then an end marker, then a Trailer:
//
//	uvarint(n) | n bytes       a chunk, 0 < n <= MaxChunkSize
//	uvarint(0)                 end of body
//	uvarint(len) | Trailer     error is empty when the body is complete
//
// A body is never required to fit in memory: it is produced and consumed
// chunk by chunk, and yamux's per-stream window is the flow control. A
// stream that ends before the end marker is a truncated body
// (ErrTruncated); a trailer with an error is a body its producer could not
// finish (*BodyError). The Trailer of a complete body carries the body's
// HTTP trailer fields, if any (a caller's chunked upload's, a forward
// route's service's grpc-status): at most MaxTrailerSize bytes and
// MaxHeaderFields fields, only fields TrailerAllowed accepts. Their names
// are announced ahead, in Request.trailer and Reply.trailer, so that the
// receiver can announce them (Trailer) in turn; fields that were not
// announced may come too.
//
// # Hello stream
//
//	client -> server   Hello{protocol_version, node_name, software_version}
//	server -> client   Hello{protocol_version, node_name, software_version, error}
//
// The server refuses (error set, then closes) a hello whose version it does
// not speak or whose node_name differs from the client certificate's
// Common Name.
//
// # Event stream
//
//	sender   -> receiver   Request, then the request body
//	receiver -> sender     Reply, then the reply body
//
// Both directions flow at once, so a handler can stream its reply while the
// request body still arrives. The sender half-closes its side (yamux FIN)
// only when it gives up on the event: the caller went away or its deadline
// passed. A receiver that reads end-of-stream after the request body
// cancels the handler's context.
//
// # Session close notice
//
//	sender   -> receiver   Request{session_close: SessionClose{code, reason}}, then FIN
//
// Either side may send it just before it ends the session, so that the
// other side's log says why (see SessionClose); the receiver closes the
// session. A peer that predates it answers with a 404 Reply.
package events

// ProtocolVersion is the version of the framing and messages above. Both
// ends of a session must speak the same one. Version 2 carries what a
// caller sent (path, query, header values, content types) as protobuf
// bytes instead of strings, so that octets that are not UTF-8 cross
// unchanged; a version 1 node would refuse such a message. Trailer
// fields (Trailer.headers, Request.trailer, Reply.trailer) are part of
// version 2 too: no release spoke version 2 without them, and a node that
// ignored them would only drop the fields.
const ProtocolVersion = 2
