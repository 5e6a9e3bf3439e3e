package tunnel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The gRPC service of these tests, described by hand (no generated code):
// restpipe.test.Echo with a unary Say, a server-streaming Count and a
// bidi Chat, on wrapperspb messages.
//
//	Say("fail")  -> INVALID_ARGUMENT "told to fail" (a trailers-only reply)
//	Say("deadline") -> how long the service's context has left, in ms
//	Say("sleep") -> waits until its context ends, then its error
//	Say(x)       -> "echo: x", with header and trailer metadata
//	Count(n)     -> "1", ..., "n", then OK; n < 0: "1", then FAILED_PRECONDITION
//	Chat         -> "re: x" for each x, until the client ends its side
type echoService interface{}

type echoImpl struct{}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "restpipe.test.Echo",
	HandlerType: (*echoService)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Say", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		in := &wrapperspb.StringValue{}
		if err := dec(in); err != nil {
			return nil, err
		}
		switch in.Value {
		case "fail":
			return nil, status.Error(codes.InvalidArgument, "told to fail")
		case "deadline":
			d, ok := ctx.Deadline()
			if !ok {
				return wrapperspb.String("none"), nil
			}
			return wrapperspb.String(fmt.Sprint(time.Until(d).Milliseconds())), nil
		case "sleep":
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		md, _ := metadata.FromIncomingContext(ctx)
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-head", "h", "x-caller", strings.Join(md.Get("x-caller"), ",")))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-tail", "t"))
		return wrapperspb.String("echo: " + in.Value), nil
	}}},
	Streams: []grpc.StreamDesc{
		{StreamName: "Count", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
			in := &wrapperspb.Int32Value{}
			if err := ss.RecvMsg(in); err != nil {
				return err
			}
			n := in.Value
			if n < 0 {
				if err := ss.SendMsg(wrapperspb.String("1")); err != nil {
					return err
				}
				return status.Error(codes.FailedPrecondition, "counting down is not done")
			}
			for i := int32(1); i <= n; i++ {
				if err := ss.SendMsg(wrapperspb.String(fmt.Sprint(i))); err != nil {
					return err
				}
			}
			ss.SetTrailer(metadata.Pairs("x-counted", fmt.Sprint(n)))
			return nil
		}},
		{StreamName: "Chat", ServerStreams: true, ClientStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
			for {
				in := &wrapperspb.StringValue{}
				err := ss.RecvMsg(in)
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := ss.SendMsg(wrapperspb.String("re: " + in.Value)); err != nil {
					return err
				}
			}
		}},
	},
}

// grpcService runs the Echo service on a real grpc.Server (h2c) on
// loopback and returns its address.
func grpcService(t testing.TB) string {
	t.Helper()
	ln := listen(t)
	srv := grpc.NewServer()
	srv.RegisterService(&echoDesc, echoImpl{})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// grpcConn is a gRPC client connection to addr, without TLS (h2c), as a
// program on a node reaches its front end.
func grpcConn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// grpcRoute is the method prefix that reaches the Echo service through
// the route "rpc" on the server: a gRPC client on c1 dials c1's front
// end, and its method paths go under /server/rpc/.
const grpcRoute = "/server/rpc/restpipe.test.Echo/"

func say(ctx context.Context, cc *grpc.ClientConn, msg string, opts ...grpc.CallOption) (string, error) {
	out := &wrapperspb.StringValue{}
	err := cc.Invoke(ctx, grpcRoute+"Say", wrapperspb.String(msg), out, opts...)
	return out.GetValue(), err
}

// TestGRPCThroughTunnel: a real gRPC client on the client node calls,
// through its front end (h2c) and a forward route on the server node, a
// real gRPC server next to the server node: unary calls with metadata
// both ways, status errors (trailers-only replies), server-streaming and
// bidi streams, and grpc-timeout as the event's deadline.
func TestGRPCThroughTunnel(t *testing.T) {
	_, s, c := pair(t)
	if err := s.reg.Forward("rpc", "h2c://"+grpcService(t)); err != nil {
		t.Fatal(err)
	}
	// The client dials the front end, whose Host check it passes.
	cc := grpcConn(t, strings.TrimPrefix(c.httpURL, "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		var header, trailer metadata.MD
		got, err := say(metadata.AppendToOutgoingContext(ctx, "x-caller", "c1 app"), cc, "hello",
			grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil || got != "echo: hello" {
			t.Fatalf("Say(hello): %q, %v", got, err)
		}
		if h := header.Get("x-head"); len(h) != 1 || h[0] != "h" {
			t.Errorf("header metadata %v", header)
		}
		if h := header.Get("x-caller"); len(h) != 1 || h[0] != "c1 app" {
			t.Errorf("the service saw x-caller %v", h)
		}
		if tr := trailer.Get("x-tail"); len(tr) != 1 || tr[0] != "t" {
			t.Errorf("trailer metadata %v", trailer)
		}
	})

	t.Run("status error", func(t *testing.T) {
		_, err := say(ctx, cc, "fail")
		if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || st.Message() != "told to fail" {
			t.Errorf("Say(fail): %v, want InvalidArgument told to fail", err)
		}
		// An unknown method: the service's own UNIMPLEMENTED.
		err = cc.Invoke(ctx, grpcRoute+"Nope", wrapperspb.String(""), &wrapperspb.StringValue{})
		if st, _ := status.FromError(err); st.Code() != codes.Unimplemented {
			t.Errorf("unknown method: %v, want Unimplemented", err)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		for _, n := range []int32{0, 1, 500} {
			got, tr, err := count(ctx, cc, n)
			if err != nil || len(got) != int(n) || (n > 0 && got[n-1] != fmt.Sprint(n)) {
				t.Fatalf("Count(%d): %d messages, %v", n, len(got), err)
			}
			if v := tr.Get("x-counted"); len(v) != 1 || v[0] != fmt.Sprint(n) {
				t.Errorf("Count(%d) trailer %v", n, tr)
			}
		}
		// A status after messages comes in the trailers.
		got, _, err := count(ctx, cc, -1)
		if st, _ := status.FromError(err); st.Code() != codes.FailedPrecondition || len(got) != 1 {
			t.Errorf("Count(-1): %q, %v; want one message then FailedPrecondition", got, err)
		}
	})

	t.Run("bidi", func(t *testing.T) {
		st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, grpcRoute+"Chat")
		if err != nil {
			t.Fatal(err)
		}
		// Each answer comes before the next message is sent: the stream
		// is full duplex end to end.
		for i := range 20 {
			msg := fmt.Sprint("line ", i)
			if err := st.SendMsg(wrapperspb.String(msg)); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			in := &wrapperspb.StringValue{}
			if err := st.RecvMsg(in); err != nil || in.Value != "re: "+msg {
				t.Fatalf("answer %d: %q, %v", i, in.GetValue(), err)
			}
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if err := st.RecvMsg(&wrapperspb.StringValue{}); err != io.EOF {
			t.Errorf("after CloseSend: %v, want io.EOF (status OK)", err)
		}
	})

	t.Run("mount", func(t *testing.T) {
		// A stock client (generated stubs call /pkg.Service/Method at the
		// root) dials a mount of the route: --http-app ADDR=/server/rpc.
		ln := listen(t)
		stop := runUntilStopped(t, func(ctx context.Context) { _ = c.ServeMount(ctx, ln, "/server/rpc") })
		defer stop()
		mc := grpcConn(t, ln.Addr().String())
		out := &wrapperspb.StringValue{}
		if err := mc.Invoke(ctx, "/restpipe.test.Echo/Say", wrapperspb.String("via the mount"), out); err != nil || out.Value != "echo: via the mount" {
			t.Errorf("Say through the mount: %q, %v", out.GetValue(), err)
		}
		st, err := mc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/restpipe.test.Echo/Chat")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SendMsg(wrapperspb.String("x")); err != nil {
			t.Fatal(err)
		}
		in := &wrapperspb.StringValue{}
		if err := st.RecvMsg(in); err != nil || in.Value != "re: x" {
			t.Errorf("Chat through the mount: %q, %v", in.GetValue(), err)
		}
		_ = st.CloseSend()
		if err := st.RecvMsg(in); err != io.EOF {
			t.Errorf("Chat through the mount, end: %v", err)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		// 45 s, over the front end's 30 s default: the event's deadline is
		// the call's, and so is the service's.
		dctx, dcancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer dcancel()
		got, err := say(dctx, cc, "deadline")
		var ms int
		if _, serr := fmt.Sscan(got, &ms); err != nil || serr != nil || ms < 40_000 || ms > 45_000 {
			t.Errorf("Say(deadline) with 45 s: %q ms, %v; want 40000 to 45000", got, err)
		}
		// A call that runs out of time is DEADLINE_EXCEEDED, and the
		// service's context ends with it.
		dctx, dcancel = context.WithTimeout(ctx, 300*time.Millisecond)
		defer dcancel()
		start := time.Now()
		_, err = say(dctx, cc, "sleep")
		if st, _ := status.FromError(err); st.Code() != codes.DeadlineExceeded || time.Since(start) > 5*time.Second {
			t.Errorf("Say(sleep) with 300 ms: %v after %v, want DeadlineExceeded", err, time.Since(start))
		}
	})
}

// count calls Count(n) and returns its messages and trailer.
func count(ctx context.Context, cc *grpc.ClientConn, n int32) ([]string, metadata.MD, error) {
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, grpcRoute+"Count")
	if err != nil {
		return nil, nil, err
	}
	if err := st.SendMsg(wrapperspb.Int32(n)); err != nil {
		return nil, nil, err
	}
	if err := st.CloseSend(); err != nil {
		return nil, nil, err
	}
	var got []string
	for {
		in := &wrapperspb.StringValue{}
		err := st.RecvMsg(in)
		if errors.Is(err, io.EOF) {
			return got, st.Trailer(), nil
		}
		if err != nil {
			return got, st.Trailer(), err
		}
		got = append(got, in.Value)
	}
}

// TestGRPCErrors: what goes wrong on the way is a gRPC status the client
// reads, not an HTTP error it cannot (the error table's row in its
// message): no route, a peer that is not connected, a service that is
// down, a call over its deadline before the service answered.
func TestGRPCErrors(t *testing.T) {
	_, s, c := pair(t)
	down := listen(t) // a port that answers nothing: closed at once
	downAddr := down.Addr().String()
	down.Close()
	if err := s.reg.Forward("down", "h2c://"+downAddr); err != nil {
		t.Fatal(err)
	}
	stall := listen(t) // accepts and never answers
	t.Cleanup(func() { stall.Close() })
	if err := s.reg.Forward("stall", "h2c://"+stall.Addr().String()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli := grpcConn(t, strings.TrimPrefix(c.httpURL, "http://"))
	srv := grpcConn(t, strings.TrimPrefix(s.httpURL, "http://"))
	for _, tc := range []struct {
		name   string
		cc     *grpc.ClientConn
		method string
		// The call's own deadline is longer: the front end's 504 answers.
		hdr  []string
		code codes.Code
		in   string // in the message
	}{
		{"no route", cli, "/server/nope/restpipe.test.Echo/Say", nil, codes.Unimplemented, "no_handler"},
		{"bad path", cli, "/elsewhere/restpipe.test.Echo/Say", nil, codes.Unimplemented, "bad_path"},
		{"peer not connected", srv, "/client/c9/rpc/restpipe.test.Echo/Say", nil, codes.Unavailable, "peer_unavailable"},
		{"service down", cli, "/server/down/restpipe.test.Echo/Say", nil, codes.Unavailable, "upstream_unavailable"},
		{"deadline", cli, "/server/stall/restpipe.test.Echo/Say", []string{"x-restpipe-timeout", "300ms"}, codes.DeadlineExceeded, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cctx := ctx
			if tc.hdr != nil {
				cctx = metadata.AppendToOutgoingContext(ctx, tc.hdr...)
			}
			err := tc.cc.Invoke(cctx, tc.method, wrapperspb.String("x"), &wrapperspb.StringValue{})
			st, ok := status.FromError(err)
			if !ok || st.Code() != tc.code || !strings.Contains(st.Message(), tc.in) {
				t.Errorf("%s: %v; want %v with %q", tc.method, err, tc.code, tc.in)
			}
		})
	}
	// The guards hold for gRPC clients too: a rebound :authority is
	// refused before any dispatch.
	evil, err := grpc.NewClient("passthrough:///"+strings.TrimPrefix(c.httpURL, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("evil.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	if _, err := say(ctx, evil, "hello"); err == nil || !strings.Contains(err.Error(), "421") {
		t.Errorf("a rebound :authority: %v, want the 421 refusal", err)
	}
}
