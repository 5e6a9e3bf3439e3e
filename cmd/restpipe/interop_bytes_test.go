//go:build unix

package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestInteropNonUTF8 (issue 15, point 1): octets that HTTP allows but
// that are not UTF-8 cross the real nodes unchanged both ways, sent by
// curl and by Python's requests and urllib: %FF in a forward route's path
// and query, a Latin-1 request header, a backend's Latin-1 reply header,
// and a Latin-1 content type through post_echo, a native handler.
func TestInteropNonUTF8(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", "attachment; filename=\"caf\xe9\"")
		fmt.Fprintf(w, "saw %s %s", r.RequestURI, r.Header.Get("X-Name"))
	}))
	t.Cleanup(be.Close)
	p := interopPair(t, nil, []string{"--forward", "files=" + be.URL + "/api"})
	url := p.srvURL + "/client/c1/files/a%FFb?q=%ff"

	r := curlRun(t, "--include", "-H", "X-Name: caf\xe9", url).ok(t)
	if !strings.Contains(r.stdout, "saw /api/a%FFb?q=%ff caf\xe9") {
		t.Errorf("curl: the service saw otherwise:\n%q", r.stdout)
	}
	if !strings.Contains(r.stdout, "Content-Disposition: attachment; filename=\"caf\xe9\"") {
		t.Errorf("curl: the Latin-1 reply header did not come back as sent:\n%q", r.stdout)
	}
	r = curlRun(t, "--include", "-H", "Content-Type: text/plain; name=caf\xe9", "--data-binary", "x\xff", p.cliURL+"/server/echo").ok(t)
	if !strings.Contains(r.stdout, "Content-Type: text/plain; name=caf\xe9\r\n") || !strings.HasSuffix(r.stdout, "\r\n\r\nx\xff") {
		t.Errorf("curl through post_echo:\n%q", r.stdout)
	}

	// requests sends a str header as Latin-1 and reads reply headers as
	// Latin-1; urllib the same. requests itself upper-cases the query's
	// %ff (requote_uri); urllib sends it as given.
	r = pythonRun(t, `
import sys, requests, urllib.request
r = requests.get(sys.argv[1], headers={"X-Name": "caf\u00e9"}, timeout=10)
print(r.status_code, r.content == b"saw /api/a%FFb?q=%FF caf\xe9",
      r.headers["Content-Disposition"] == 'attachment; filename="caf\u00e9"')
req = urllib.request.Request(sys.argv[1], headers={"X-Name": "caf\u00e9"})
with urllib.request.urlopen(req, timeout=10) as u:
    print(u.status, u.read() == b"saw /api/a%FFb?q=%ff caf\xe9", u.headers["Content-Disposition"] == 'attachment; filename="caf\u00e9"')
`, url).ok(t)
	if r.stdout != "200 True True\n200 True True\n" {
		t.Errorf("python requests and urllib: %q (want 200 True True twice)\nstderr: %s", r.stdout, r.stderr)
	}
}
