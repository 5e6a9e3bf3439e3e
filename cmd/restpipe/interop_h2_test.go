//go:build unix

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// h2cBackend is a service that speaks only HTTP/2 over cleartext (prior
// knowledge), as a gRPC server does: it answers the protocol it was
// spoken to in and the SHA-256 of the body. It returns its address.
func h2cBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &http.Protocols{}
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: p, ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%s %s %x %d", r.Proto, r.URL.Path, h.Sum(nil), n)
		})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// TestInteropH2C: curl --http2-prior-knowledge and h2load against the
// front ends (issue 15, point 5): calls, an upload, a forward route to an
// h2c-only service, the Host and Origin guards and the header bound,
// over HTTP/2 without TLS; HTTP/1.1 on the same port still works.
func TestInteropH2C(t *testing.T) {
	addr := h2cBackend(t)
	p := interopPair(t, nil, []string{"--forward", "rpc=h2c://" + addr + "/base"})
	h2 := func(args ...string) []string { return append([]string{"--http2-prior-knowledge"}, args...) }

	t.Run("calls", func(t *testing.T) {
		r := curlRun(t, h2("-w", "\n%{http_version} %{http_code}", p.cliURL+"/server/time")...).ok(t)
		if !strings.HasSuffix(r.stdout, "\n2 200") || !strings.Contains(r.stdout, `"node":"server"`) {
			t.Errorf("curl --http2-prior-knowledge /server/time: %q", r.stdout)
		}
		r = curlRun(t, h2("-H", "Content-Type: text/plain", "--data-binary", "over h2", "-w", " %{http_version}", p.srvURL+"/client/c1/echo")...).ok(t)
		if r.stdout != "over h2 2" {
			t.Errorf("curl --http2-prior-knowledge POST echo: %q", r.stdout)
		}
		r = curlRun(t, "-w", " %{http_version} %{http_code}", "-o", "/dev/null", p.cliURL+"/server/time").ok(t)
		if r.stdout != " 1.1 200" {
			t.Errorf("curl over HTTP/1.1 next to h2c: %q", r.stdout)
		}
	})

	t.Run("h2c route", func(t *testing.T) {
		data := make([]byte, 2<<20)
		for i := range data {
			data[i] = byte(i * 7)
		}
		file := filepath.Join(t.TempDir(), "data")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		want := fmt.Sprintf("HTTP/2.0 /base/up %s %d", hex.EncodeToString(sum[:]), len(data))
		// The caller over HTTP/2 and over HTTP/1.1: the service is spoken
		// to in HTTP/2 either way.
		for _, args := range [][]string{h2(), nil} {
			r := curlRun(t, append(args, "--fail", "--data-binary", "@"+file, p.srvURL+"/client/c1/rpc/up")...).ok(t)
			if r.stdout != want {
				t.Errorf("curl %q upload through the h2c route: %q, want %q", args, r.stdout, want)
			}
		}
	})

	t.Run("guards", func(t *testing.T) {
		port := p.cliURL[strings.LastIndexByte(p.cliURL, ':')+1:]
		for _, tc := range []struct {
			hdr, want string
		}{
			{"Host: evil.example:" + port, "421"},
			{"Origin: https://evil.example", "403"},
		} {
			r := curlRun(t, h2("-H", tc.hdr, "-w", " %{http_version} %{http_code}", p.cliURL+"/server/time")...).ok(t)
			if !strings.HasSuffix(r.stdout, " 2 "+tc.want) {
				t.Errorf("curl --http2-prior-knowledge -H %q: %q, want HTTP/2 %s", tc.hdr, r.stdout, tc.want)
			}
		}
		// A header list over the 64 KiB default bound, in fields of 4 KiB,
		// is refused: 431, or (net/http's defence against CONTINUATION
		// floods, once the list runs on past the bound by a frame) the
		// connection ends; one under the bound passes.
		big := func(n int) []string {
			args := []string{"-o", "/dev/null", "-w", "%{http_version} %{http_code}"}
			for i := range n {
				args = append(args, "-H", fmt.Sprintf("X-Big-%d: %s", i, strings.Repeat("b", 4<<10)))
			}
			return h2(append(args, p.cliURL+"/server/time")...)
		}
		if r := curlRun(t, big(20)...); !(r.code == 0 && r.stdout == "2 431") && !(r.code == 56 && r.stdout == "0 000") {
			t.Errorf("80 KiB of headers over h2: exit %d, %q %s; want 431 or the connection closed", r.code, r.stdout, r.stderr)
		}
		if r := curlRun(t, big(14)...).ok(t); r.stdout != "2 200" {
			t.Errorf("56 KiB of headers over h2: %q, want 200", r.stdout)
		}
	})

	t.Run("h2load", func(t *testing.T) {
		h2load := needTool(t, "h2load", "nghttp2-client")
		// 4 connections, 20 streams at once on each.
		r := runTool(t, h2load, "-n", "400", "-c", "4", "-m", "20", p.cliURL+"/server/time")
		if r.code != 0 {
			t.Fatalf("h2load: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if !regexp.MustCompile(`requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed, 0 errored`).MatchString(r.stdout) ||
			!regexp.MustCompile(`status codes: 400 2xx`).MatchString(r.stdout) {
			t.Errorf("h2load:\n%s", r.stdout)
		}
	})
}
