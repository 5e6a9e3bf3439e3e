package tunnel_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/tunnel"
)

// hostileAnswer is what a hostile client answers to every event: the
// reply header, then body as one chunk.
type hostileAnswer struct {
	reply *events.Reply
	body  string
}

// answerEvents has h answer every event the server sends it with what
// answer returns for it, until the session ends.
func (h *hostile) answerEvents(answer func(*events.Request) hostileAnswer) {
	answerEvents(h.sess, answer)
}

// answerEvents answers every event the peer of sess sends with what
// answer returns for it, until the session ends; a channel relay is
// held open and never answered.
func answerEvents(sess *yamux.Session, answer func(*events.Request) hostileAnswer) {
	go func() {
		for {
			st, err := sess.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				_ = st.SetDeadline(time.Now().Add(10 * time.Second))
				r := events.NewReader(st)
				defer r.Release()
				var ev events.Request
				if err := r.ReadMessage(&ev); err != nil {
					return
				}
				if ev.ChannelRelay {
					_, _ = io.Copy(io.Discard, st)
					return
				}
				if ev.Upgrade == "" {
					_ = r.Body().Drain()
				}
				a := answer(&ev)
				w := events.NewWriter(st)
				defer w.Release()
				err := w.WriteMessage(a.reply)
				if err == nil && a.body != "" {
					err = w.WriteChunk([]byte(a.body))
				}
				if err == nil {
					err = w.EndBody("")
				}
				if err == nil {
					_ = w.Flush()
				}
				if ev.Upgrade != "" {
					_, _ = io.Copy(io.Discard, r.Body()) // until the caller hangs up
				}
			}()
		}
	}()
}

// waitListed waits until the server lists the client name.
func waitListed(t *testing.T, s *serverNode, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, ctx, func() bool {
		for _, ci := range s.Clients() {
			if ci.Name == name {
				return true
			}
		}
		return false
	}, "server to list "+name)
}

// TestHostileReplyStatus: a client with a valid certificate answers the
// server's events with statuses net/http cannot write (WriteHeader
// panics outside 100-999, and the caller got an empty reply), no client
// knows (600-999), or that are no final reply (1xx, 101 to a request that
// asked for no upgrade): the server's front end answers 502 bad_reply,
// with the JSON body, and logs the peer and request id. 200 to 599 pass.
func TestHostileReplyStatus(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = warnLogs(logs) })
	h, _ := dialHostile(t, s.tunnelAddr, p.client(t, "mallory"), nil)
	h.answerEvents(func(ev *events.Request) hostileAnswer {
		var status int32
		_, _ = fmt.Sscan(string(ev.Noun[0]), &status)
		return hostileAnswer{reply: &events.Reply{Status: status, ContentType: []byte("text/plain")}, body: "from mallory"}
	})
	waitListed(t, s, "mallory")

	for _, tc := range []struct {
		status int64
		ok     bool
	}{
		{0, false}, {-1, false}, {99, false}, {100, false}, {101, false}, {102, false}, {103, false},
		{199, false}, {600, false}, {999, false}, {1000, false}, {2147483647, false}, {-2147483648, false},
		{200, true}, {201, true}, {299, true}, {404, true}, {500, true}, {599, true},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			id := fmt.Sprintf("bad-status-%d", tc.status)
			r := get(t, fmt.Sprintf("%s/client/mallory/%d", s.httpURL, tc.status), "X-Request-Id", id)
			if tc.ok {
				if r.status != int(tc.status) || r.body != "from mallory" {
					t.Fatalf("status %d, body %q; want %d from mallory", r.status, r.body, tc.status)
				}
				return
			}
			wantError(t, r, http.StatusBadGateway, "bad_reply")
			if !strings.Contains(r.body, fmt.Sprint(tc.status)) || strings.Contains(r.body, "from mallory") {
				t.Errorf("body %s: want it to name the status, not to carry the peer's body", r.body)
			}
			logs.wait(t, "peer's reply refused", "peer=mallory", "req="+id, fmt.Sprintf("status=%d", tc.status))
		})
	}
	// The session goes on: an honest status after the refused ones.
	if r := get(t, s.httpURL+"/client/mallory/204"); r.status != http.StatusNoContent {
		t.Errorf("after the refused replies: %d %s", r.status, r.body)
	}
}

// TestHostileReplyUpgrade: 101 passes only as the answer to a request
// that asked to switch protocols; an upgrade answered 100 or 103 is 502
// bad_reply like any other.
func TestHostileReplyUpgrade(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, func(cfg *tunnel.Config) { cfg.Logger = warnLogs(newLogCapture()) })
	h, _ := dialHostile(t, s.tunnelAddr, p.client(t, "mallory"), nil)
	h.answerEvents(func(ev *events.Request) hostileAnswer {
		var status int32
		_, _ = fmt.Sscan(string(ev.Noun[0]), &status)
		if status == http.StatusSwitchingProtocols {
			return hostileAnswer{reply: &events.Reply{Status: status},
				body: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nswitched"}
		}
		return hostileAnswer{reply: &events.Reply{Status: status}, body: "interim"}
	})
	waitListed(t, s, "mallory")
	hostPort := strings.TrimPrefix(s.httpURL, "http://")

	for _, tc := range []struct {
		status int
		want   int
	}{
		{101, 101}, {100, 502}, {103, 502}, {0, 502}, {1000, 502},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			conn, err := net.Dial("tcp", hostPort)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "GET /client/mallory/%d HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", tc.status, hostPort)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("read the reply: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusSwitchingProtocols {
				got, _ := io.ReadAll(io.LimitReader(br, int64(len("switched"))))
				if string(got) != "switched" {
					t.Errorf("after the 101: %q, want the peer's bytes", got)
				}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(b), `"code":"bad_reply"`) {
				t.Errorf("body %s, want code bad_reply", b)
			}
		})
	}
}

// TestHostileServerReplyStatus: the same check on a client node, whose
// server (a valid certificate, speaking the protocol by hand) answers the
// client's events with statuses that are no final HTTP reply: the
// client's front end answers 502 bad_reply and logs the peer.
func TestHostileServerReplyStatus(t *testing.T) {
	p := newPKI(t)
	logs := newLogCapture()
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				sess, err := yamux.Server(tls.Server(conn, p.server.ServerTLSConfig()), nil)
				if err != nil {
					return
				}
				defer sess.Close()
				st, err := sess.AcceptStream()
				if err != nil {
					return
				}
				var h events.Hello
				if events.NewReader(st).ReadMessage(&h) != nil {
					return
				}
				w := events.NewWriter(st)
				_ = w.WriteMessage(&events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: "server"})
				_ = w.Flush()
				answerEvents(sess, func(ev *events.Request) hostileAnswer {
					var status int32
					_, _ = fmt.Sscan(string(ev.Noun[0]), &status)
					return hostileAnswer{reply: &events.Reply{Status: status}, body: "from the server"}
				})
				_, _ = io.Copy(io.Discard, st)
				<-sess.CloseChan()
			}()
		}
	}()
	c := startClient(t, p, "c1", ln.Addr().String(), func(cfg *tunnel.Config) { cfg.Logger = warnLogs(logs) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	for _, status := range []int{0, 103, 101, 600, 1000} {
		id := fmt.Sprintf("from-server-%d", status)
		r := get(t, fmt.Sprintf("%s/server/%d", c.httpURL, status), "X-Request-Id", id)
		wantError(t, r, http.StatusBadGateway, "bad_reply")
		logs.wait(t, "peer's reply refused", "peer=server", "req="+id)
	}
	if r := get(t, c.httpURL+"/server/418"); r.status != http.StatusTeapot || r.body != "from the server" {
		t.Errorf("418: %d %q", r.status, r.body)
	}
}
