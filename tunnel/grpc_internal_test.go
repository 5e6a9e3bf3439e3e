package tunnel

import (
	"net/http"
	"testing"

	"github.com/restpipe/restpipe/handlers"
)

func TestGRPCCode(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		want   int
	}{
		{http.StatusGatewayTimeout, handlers.CodeTimeout, grpcDeadlineExceeded},
		{http.StatusRequestTimeout, handlers.CodeBodyTimeout, grpcDeadlineExceeded},
		{http.StatusNotFound, handlers.CodeNoHandler, grpcUnimplemented},
		{http.StatusBadRequest, handlers.CodeBadPath, grpcUnimplemented},
		{http.StatusBadRequest, handlers.CodeBadRequest, grpcInvalidArgument},
		{http.StatusServiceUnavailable, handlers.CodePeerUnavailable, grpcUnavailable},
		{http.StatusServiceUnavailable, handlers.CodePeerBusy, grpcUnavailable},
		{http.StatusBadGateway, handlers.CodeTunnelClosed, grpcUnavailable},
		{http.StatusBadGateway, handlers.CodeUpstreamUnavailable, grpcUnavailable},
		{http.StatusForbidden, handlers.CodeForbidden, grpcPermissionDenied},
		{http.StatusUnauthorized, "", grpcUnauthenticated},
		{http.StatusRequestEntityTooLarge, handlers.CodeTooLarge, grpcResourceExhausted},
		{http.StatusRequestHeaderFieldsTooLarge, handlers.CodeTooLarge, grpcResourceExhausted},
		{http.StatusInternalServerError, handlers.CodeHandlerError, grpcInternal},
		{http.StatusTeapot, "", grpcUnknown},
	} {
		if got := grpcCode(tc.status, tc.code); got != tc.want {
			t.Errorf("grpcCode(%d, %q) = %d, want %d", tc.status, tc.code, got, tc.want)
		}
	}
}

func TestGRPCMessage(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"plain words (x)":    "plain words (x)",
		"100% sure":          "100%25 sure",
		"caf\xc3\xa9\n\x00~": "caf%C3%A9%0A%00~",
	} {
		if got := grpcMessage(in); got != want {
			t.Errorf("grpcMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
