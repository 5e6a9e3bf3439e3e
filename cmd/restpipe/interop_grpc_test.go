//go:build unix

package main

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

// prefixMethods is a gRPC client option that puts prefix before every
// method, so that generated stubs ("/grpc.health.v1.Health/Check") call
// a forward route through a front end ("/server/rpc/grpc.health...").
func prefixMethods(prefix string) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(ctx, prefix+method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(ctx, desc, cc, prefix+method, opts...)
		}),
	}
}

// TestInteropGRPC (issue 15, point 5): a real grpc.Server with the
// standard health and reflection services next to the server process,
// behind --forward rpc=h2c://...; a gRPC client with their generated
// stubs on the client's side dials the client process's front end (h2c):
// a unary Check, its NOT_FOUND status (a trailers-only reply), a
// server-streaming Watch that sees a change made while it runs, and a
// bidi reflection stream, each answer before the next request.
func TestInteropGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("restpipe.test", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	p := interopPair(t, []string{"--forward", "rpc=h2c://" + ln.Addr().String()}, nil)
	cc, err := grpc.NewClient("passthrough:///"+strings.TrimPrefix(p.cliURL, "http://"),
		append(prefixMethods("/server/rpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(cc)

	t.Run("unary", func(t *testing.T) {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "restpipe.test"})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check: %v, %v", r, err)
		}
		_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
		if st, _ := status.FromError(err); st.Code() != codes.NotFound {
			t.Errorf("Check(nope): %v, want NotFound", err)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "restpipe.test"})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Watch, first: %v, %v", r, err)
		}
		// A change while the stream is open reaches the caller at once.
		hs.SetServingStatus("restpipe.test", healthpb.HealthCheckResponse_NOT_SERVING)
		if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("Watch, after the change: %v, %v", r, err)
		}
		hs.SetServingStatus("restpipe.test", healthpb.HealthCheckResponse_SERVING)
	})

	t.Run("bidi", func(t *testing.T) {
		st, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := st.Send(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			r, err := st.Recv()
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			var names []string
			for _, s := range r.GetListServicesResponse().GetService() {
				names = append(names, s.GetName())
			}
			if !slices.Contains(names, "grpc.health.v1.Health") {
				t.Errorf("answer %d: services %q", i, names)
			}
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); !errors.Is(err, io.EOF) { // status OK
			t.Errorf("after CloseSend: %v, want io.EOF", err)
		}
	})
}
