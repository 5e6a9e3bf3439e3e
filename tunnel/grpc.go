package tunnel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/restpipe/restpipe/handlers"
)

// gRPC callers of a front end. A gRPC call is an HTTP/2 POST of
// application/grpc; it crosses the tunnel as any request does, to a
// forward route whose target is the gRPC server (h2c://). What the front
// end adds: the call's grpc-timeout is the event's deadline (serve), and
// an error of the error table reaches the caller as a gRPC status
// (grpcErrors), which a gRPC client reads where it would not read an
// HTTP error.

// isGRPC reports whether r is a gRPC call: HTTP/2, and a content type of
// application/grpc, application/grpc+proto, ...
func isGRPC(r *http.Request) bool {
	if r.ProtoMajor != 2 {
		return false
	}
	ct := r.Header.Get("Content-Type")
	rest, ok := strings.CutPrefix(ct, "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// grpcErrors is the ResponseWriter of a gRPC call: an error reply of the
// error table (a status of 400 or more with a JSON body, the front end's
// own or the peer's) is held back, and goes out as a gRPC trailers-only
// reply: HTTP 200, grpc-status from the status and code (grpcCode), and
// grpc-message the error's text; X-Event-Return-Code keeps the HTTP
// status. Anything else (the service's own answer) passes unchanged.
type grpcErrors struct {
	http.ResponseWriter
	status int          // the error held back; 0: none
	body   bytes.Buffer // its JSON, up to maxGRPCErrorBody
	passed bool         // WriteHeader went through
}

// maxGRPCErrorBody bounds the error body held back.
const maxGRPCErrorBody = 16 << 10

func (g *grpcErrors) WriteHeader(status int) {
	if g.status != 0 || g.passed {
		return
	}
	if status >= 400 && strings.HasPrefix(g.Header().Get("Content-Type"), "application/json") {
		g.status = status
		return
	}
	g.passed = true
	g.ResponseWriter.WriteHeader(status)
}

func (g *grpcErrors) Write(p []byte) (int, error) {
	if g.status == 0 && !g.passed {
		g.WriteHeader(http.StatusOK)
	}
	if g.status == 0 {
		return g.ResponseWriter.Write(p)
	}
	if room := maxGRPCErrorBody - g.body.Len(); room > 0 {
		g.body.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// FlushError flushes what passed; an error held back waits for finish.
func (g *grpcErrors) FlushError() error {
	if g.status != 0 || !g.passed {
		return nil
	}
	return http.NewResponseController(g.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (g *grpcErrors) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// finish sends the error held back, if any, as a gRPC status.
func (g *grpcErrors) finish() {
	if g.status == 0 {
		return
	}
	var e handlers.ErrorBody
	if err := json.Unmarshal(g.body.Bytes(), &e); err != nil || e.Error == "" {
		e.Error = strings.TrimSpace(g.body.String())
	}
	h := g.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/grpc")
	h.Set(HeaderReturnCode, strconv.Itoa(g.status))
	h.Set("Grpc-Status", strconv.Itoa(grpcCode(g.status, e.Code)))
	msg := e.Error
	if e.Code != "" {
		msg = fmt.Sprintf("%s (%d %s)", e.Error, g.status, e.Code)
	}
	h.Set("Grpc-Message", grpcMessage(msg))
	// No body, not flushed: HTTP/2 sends it as one HEADERS frame that
	// ends the stream, the form of a trailers-only reply.
	g.passed = true
	g.ResponseWriter.WriteHeader(http.StatusOK)
}

// gRPC status codes (google.golang.org/grpc/codes) the error table maps to.
const (
	grpcUnknown           = 2
	grpcInvalidArgument   = 3
	grpcDeadlineExceeded  = 4
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// grpcCode is the gRPC status of an error of the error table: its HTTP
// status as gRPC maps HTTP statuses, made finer by its code.
func grpcCode(status int, code string) int {
	switch {
	case code == handlers.CodeTimeout || status == http.StatusGatewayTimeout || status == http.StatusRequestTimeout:
		return grpcDeadlineExceeded
	case code == handlers.CodeBadPath || code == handlers.CodeNoHandler || status == http.StatusNotFound:
		return grpcUnimplemented // no such method here
	case status == http.StatusUnauthorized:
		return grpcUnauthenticated
	case status == http.StatusForbidden || status == http.StatusMisdirectedRequest:
		return grpcPermissionDenied
	case status == http.StatusRequestEntityTooLarge || status == http.StatusRequestHeaderFieldsTooLarge:
		return grpcResourceExhausted
	case status == http.StatusBadRequest:
		return grpcInvalidArgument
	case status == http.StatusTooManyRequests || status == http.StatusBadGateway || status == http.StatusServiceUnavailable:
		return grpcUnavailable // peer_unavailable, peer_busy, tunnel_closed, upstream_unavailable
	case status == http.StatusInternalServerError:
		return grpcInternal
	}
	return grpcUnknown
}

// grpcMessage percent-encodes msg for grpc-message (gRPC over HTTP/2):
// every byte outside printable ASCII, and '%'.
func grpcMessage(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c < ' ' || c > '~' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
