package tunnel_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/restpipe/restpipe/tunnel"
)

// h2cClient speaks HTTP/2 over cleartext with prior knowledge only: a
// front end that did not speak it would fail every request.
func h2cClient(t testing.TB) *http.Client {
	p := &http.Protocols{}
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// h2cDo is do over h2c; it fails the test unless the answer came over
// HTTP/2.
func h2cDo(t testing.TB, c *http.Client, req *http.Request) result {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s over h2c: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s %s: answered over %s, want HTTP/2.0", req.Method, req.URL, resp.Proto)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s over h2c: read body: %v", req.Method, req.URL, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(b), length: resp.ContentLength}
}

func TestFrontendServesH2C(t *testing.T) {
	_, s, c := pair(t)
	up := inspectService(t)
	if err := s.reg.Forward("files", up.URL+"/base"); err != nil {
		t.Fatal(err)
	}
	hc := h2cClient(t)

	req, _ := http.NewRequest(http.MethodGet, c.httpURL+"/server/time", nil)
	r := h2cDo(t, hc, req)
	if r.status != http.StatusOK || r.json(t)["node"] != "server" {
		t.Fatalf("GET /server/time over h2c: %d %s", r.status, r.body)
	}
	if r.header.Get("X-Event-Return-Code") != "200" || r.header.Get("X-Request-Id") == "" {
		t.Errorf("headers over h2c: %v", r.header)
	}

	// A streamed body of unknown length, both ways, through post_echo.
	payload := make([]byte, 3<<20)
	_, _ = rand.Read(payload)
	pr, pw := io.Pipe()
	go func() {
		for b := payload; len(b) > 0; b = b[min(len(b), 100<<10):] {
			if _, err := pw.Write(b[:min(len(b), 100<<10)]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ = http.NewRequest(http.MethodPost, c.httpURL+"/server/echo", pr)
	req.Header.Set("Content-Type", "application/x-test")
	r = h2cDo(t, hc, req)
	if r.status != http.StatusOK || sha256.Sum256([]byte(r.body)) != sha256.Sum256(payload) {
		t.Errorf("POST /server/echo over h2c: %d, %d bytes back of %d", r.status, len(r.body), len(payload))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-test" {
		t.Errorf("echo's Content-Type over h2c: %q", ct)
	}

	// A forward route, called over h2c, reaches its HTTP/1.1 service.
	req, _ = http.NewRequest(http.MethodPost, c.httpURL+"/server/files/a?x=1", strings.NewReader("the body"))
	req.Header.Set("X-Custom", "kept")
	r = h2cDo(t, hc, req)
	var got seen
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != http.StatusCreated {
		t.Fatalf("forward route over h2c: %d %s", r.status, r.body)
	}
	if got.Path != "/base/a" || got.Query != "x=1" || got.Body != "the body" || got.Header.Get("X-Custom") != "kept" {
		t.Errorf("the service saw %+v", got)
	}

	// Many calls at once share the connection.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Post(c.httpURL+"/server/echo", "text/plain", strings.NewReader(fmt.Sprint("call ", i)))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.ProtoMajor != 2 || string(b) != fmt.Sprint("call ", i) {
				errs <- fmt.Errorf("call %d: %s %q", i, resp.Proto, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// HTTP/1.1 on the same listener goes on working.
	if r := get(t, c.httpURL+"/server/time"); r.status != http.StatusOK {
		t.Errorf("HTTP/1.1 next to h2c: %d %s", r.status, r.body)
	}
}

// The browser guards hold over HTTP/2 as over HTTP/1.1: a rebound Host
// (:authority) and a foreign Origin are refused before any dispatch.
func TestFrontendH2CGuard(t *testing.T) {
	_, s, c := pair(t)
	hits := 0
	var mu sync.Mutex
	up := httpTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	})
	if err := s.reg.Forward("app", up); err != nil {
		t.Fatal(err)
	}
	hc := h2cClient(t)
	for _, tc := range []struct {
		name   string
		host   string
		hdr    []string
		status int
		code   string
	}{
		{"rebound host", "evil.example", nil, http.StatusMisdirectedRequest, "misdirected"},
		{"rebound host with the port", "evil.example:" + c.httpURL[strings.LastIndexByte(c.httpURL, ':')+1:], nil, http.StatusMisdirectedRequest, "misdirected"},
		{"foreign origin", "", []string{"Origin", "https://evil.example"}, http.StatusForbidden, "forbidden"},
		{"cross-site fetch", "", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "forbidden"},
	} {
		for _, path := range []string{"/server/time", "/server/app/x"} {
			t.Run(tc.name+" "+path, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodGet, c.httpURL+path, nil)
				if tc.host != "" {
					req.Host = tc.host
				}
				for i := 0; i+1 < len(tc.hdr); i += 2 {
					req.Header.Set(tc.hdr[i], tc.hdr[i+1])
				}
				wantError(t, h2cDo(t, hc, req), tc.status, tc.code)
			})
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the route's service was reached %d times by refused requests", hits)
	}
}

// httpTestServer is an HTTP/1.1 service on loopback; it returns its URL.
func httpTestServer(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// The front end's HTTP/2 bounds, as it announces them in its SETTINGS:
// streams per connection, and the header list as large as HTTP/1.1's
// headers may be (MaxHeaderBytes), which a request over it gets 431 for.
func TestFrontendH2CBounds(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	c := startClient(t, p, "c1", s.tunnelAddr, func(cfg *tunnel.Config) { cfg.MaxHeaderBytes = 8 << 10 })
	waitConnected(t, c, s)

	settings := h2cSettings(t, strings.TrimPrefix(c.httpURL, "http://"))
	const maxConcurrentStreams, maxHeaderListSize = 0x3, 0x6
	if n := settings[maxConcurrentStreams]; n != 100 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want 100 (settings %v)", n, settings)
	}
	if n := settings[maxHeaderListSize]; n < 8<<10 || n > 8<<10+1024 {
		t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d, want MaxHeaderBytes (8 KiB) and net/http's slack (settings %v)", n, settings)
	}
	// Go's client refuses to send a header list over the announced size:
	// the bound holds in the client too, and one under it goes through.
	hc := h2cClient(t)
	req, _ := http.NewRequest(http.MethodGet, c.httpURL+"/server/time", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 6<<10))
	if r := h2cDo(t, hc, req); r.status != http.StatusOK {
		t.Errorf("6 KiB header under an 8 KiB bound: %d %s", r.status, r.body)
	}
	req, _ = http.NewRequest(http.MethodGet, c.httpURL+"/server/time", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 12<<10))
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("12 KiB header over an 8 KiB bound: %d, want 431", resp.StatusCode)
		}
	}
}

// h2cSettings opens an HTTP/2 connection with prior knowledge and returns
// the settings of the server's first SETTINGS frame.
func h2cSettings(t *testing.T, addr string) map[uint16]uint32 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The client preface, then an empty SETTINGS frame.
	preface := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 0x4, 0, 0, 0, 0, 0)
	if _, err := conn.Write(preface); err != nil {
		t.Fatal(err)
	}
	var head [9]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		t.Fatalf("read the server's first frame: %v", err)
	}
	n := int(head[0])<<16 | int(head[1])<<8 | int(head[2])
	if head[3] != 0x4 || n%6 != 0 {
		t.Fatalf("first frame: type %d, length %d; want SETTINGS", head[3], n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(conn, payload); err != nil {
		t.Fatal(err)
	}
	out := map[uint16]uint32{}
	for b := payload; len(b) >= 6; b = b[6:] {
		out[binary.BigEndian.Uint16(b)] = binary.BigEndian.Uint32(b[2:])
	}
	return out
}

// h2cService is a service that speaks HTTP/2 over cleartext with prior
// knowledge only (as a gRPC server does); it returns its address.
func h2cService(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	ln := listen(t)
	p := &http.Protocols{}
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// A forward route to h2c://host:port/path reaches a service that speaks
// only HTTP/2 without TLS, whichever protocol its caller spoke to the
// front end; a service that speaks only HTTP/1.1 behind it is a 502.
func TestForwardH2CTarget(t *testing.T) {
	_, s, c := pair(t)
	addr := h2cService(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Up", "h2c")
		_ = json.NewEncoder(w).Encode(map[string]any{"proto": r.Proto, "path": r.URL.EscapedPath(),
			"query": r.URL.RawQuery, "body": string(b), "peer": r.Header.Get("X-Restpipe-Peer"), "host": r.Host,
			"te": r.Header.Get("Te"), "grpc-timeout": r.Header.Get("Grpc-Timeout")})
	})
	if err := c.reg.Forward("rpc", "h2c://"+addr+"/base"); err != nil {
		t.Fatal(err)
	}
	if got := c.reg.Routes()["rpc"]; got != "h2c://"+addr+"/base" {
		t.Errorf("Routes: %q", got)
	}
	h1 := httpTestServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "HTTP/1.1 only") })
	if err := c.reg.Forward("old", "h2c://"+strings.TrimPrefix(h1, "http://")); err != nil {
		t.Fatal(err)
	}
	hc := h2cClient(t)
	for _, viaH2 := range []bool{false, true} {
		req, _ := http.NewRequest(http.MethodPost, s.httpURL+"/client/c1/rpc/a%20b?x=1", strings.NewReader("the body"))
		req.Header.Set("Te", "trailers")
		req.Header.Set("Grpc-Timeout", "45S") // over the 30 s default
		var r result
		if viaH2 {
			r = h2cDo(t, hc, req)
		} else {
			r = do(t, http.MethodPost, req.URL.String(), strings.NewReader("the body"), "Te", "trailers", "Grpc-Timeout", "45S")
		}
		if r.status != http.StatusOK || r.header.Get("X-Up") != "h2c" {
			t.Fatalf("h2c route (caller over HTTP/2: %v): %d %s", viaH2, r.status, r.body)
		}
		m := r.json(t)
		for k, want := range map[string]string{"proto": "HTTP/2.0", "path": "/base/a%20b", "query": "x=1",
			"body": "the body", "peer": "server", "host": addr, "te": "trailers"} {
			if m[k] != want {
				t.Errorf("caller over HTTP/2: %v: the service saw %s %v, want %q", viaH2, k, m[k], want)
			}
		}
		// The event's deadline is the call's 45 s, less its way here.
		var ms int
		if _, err := fmt.Sscanf(fmt.Sprint(m["grpc-timeout"]), "%dm", &ms); err != nil || ms < 40_000 || ms > 45_000 {
			t.Errorf("caller over HTTP/2: %v: the service saw grpc-timeout %v, want 40000m to 45000m", viaH2, m["grpc-timeout"])
		}
		req, _ = http.NewRequest(http.MethodGet, s.httpURL+"/client/c1/old/x", nil)
		if viaH2 {
			r = h2cDo(t, hc, req)
		} else {
			r = get(t, req.URL.String())
		}
		wantError(t, r, http.StatusBadGateway, "upstream_unavailable")
	}
}

// A reply to a request whose body was not read to its end does not end
// an HTTP/2 connection (over HTTP/1.1 it is Connection: close): other
// streams, and the next calls, go on over it.
func TestFrontendH2CUnreadBodyKeepsConnection(t *testing.T) {
	_, _, c := pair(t)
	hc := h2cClient(t)
	call := func(method string, body io.Reader) (reused bool) {
		t.Helper()
		req, _ := http.NewRequest(method, c.httpURL+"/server/time", body)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		}))
		if r := h2cDo(t, hc, req); r.status != http.StatusNotFound && r.status != http.StatusOK {
			t.Fatalf("%s /server/time: %d %s", method, r.status, r.body)
		}
		return reused
	}
	call(http.MethodGet, nil)
	// get_time never reads the 4 MiB a POST sends (no post_time: 404).
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(make([]byte, 4<<20))
		pw.Close()
	}()
	if !call(http.MethodPost, pr) {
		t.Error("the POST did not reuse the connection")
	}
	pr.Close()
	if !call(http.MethodGet, nil) {
		t.Error("the call after an unread body needed a new connection")
	}
}
