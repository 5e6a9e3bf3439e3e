//go:build unix

package main

// Interop of channels with GRIP publishers (issue 15, points 7 and 8):
// curl, the real Node @fanoutio/grip publisher, and Python publishing
// the way pubcontrol/gripcontrol do, to curl -N (SSE) and python3
// websockets (WebSocket) subscribers on the other node.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nextLine returns the next line that is not an SSE comment or blank,
// failing the test if none comes within 10 s.
func nextLine(t *testing.T, who string, lines <-chan string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("%s: its output ended", who)
			}
			if line == "" || strings.HasPrefix(line, ":") {
				continue
			}
			return line
		case <-timeout:
			t.Fatalf("%s: nothing within 10 s", who)
		}
	}
}

// expectLines reads want from lines, in order.
func expectLines(t *testing.T, who string, lines <-chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := nextLine(t, who, lines); got != w {
			t.Fatalf("%s got %q, want %q", who, got, w)
		}
	}
}

// pythonWith is a python3 that has the module (the PATH's or Debian's),
// or skips the test naming the Debian package.
func pythonWith(t *testing.T, module string) string {
	t.Helper()
	py := needTool(t, "python3", "python3")
	for _, cand := range []string{py, debianPython} {
		if _, err := exec.LookPath(cand); err == nil && runTool(t, cand, "-c", "import "+module).code == 0 {
			return cand
		}
	}
	t.Skipf("python3 has no %s: install python3-%s (make client-deps)", module, module)
	return ""
}

// wsSubscriberScript prints "open" once its WebSocket is up, then each
// text message, then "close CODE REASON".
const wsSubscriberScript = `
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], open_timeout=10) as ws:
        print("open", flush=True)
        try:
            async for m in ws:
                print("msg", m, flush=True)
        except websockets.ConnectionClosed:
            pass
        print("close", ws.close_code, ws.close_reason, flush=True)
asyncio.run(main())`

// subscribeBoth starts a curl -N SSE subscriber and a python3 websockets
// subscriber of channel at front end url; both are live on return.
func subscribeBoth(t *testing.T, url, channel string) (sse, ws <-chan string) {
	t.Helper()
	py := pythonWith(t, "websockets")
	curl := needTool(t, "curl", "curl")
	sse = streamLines(t, "", curl, "--silent", "--show-error", "-N", "-H", "Accept: text/event-stream", url+"/channels/"+channel)
	ws = streamLines(t, "", py, "-u", "-c", wsSubscriberScript, "ws"+strings.TrimPrefix(url, "http")+"/channels/"+channel)
	select { // "retry: 2000", then ": subscribed" once the subscription holds
	case line := <-sse:
		if line == "retry: 2000" {
			line = <-sse
		}
		if line != ": subscribed" {
			t.Fatalf("curl -N subscriber: first line %q, want \": subscribed\"", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("curl -N subscriber: not subscribed within 10 s")
	}
	expectLines(t, "websockets subscriber", ws, "open")
	return sse, ws
}

// TestInteropGRIPCurl: curl publishes GRIP items to the server node with
// its default form Content-Type; subscribers on the client node get each
// format by its kind, plain POSTs by both, and a close each its own end.
func TestInteropGRIPCurl(t *testing.T) {
	p := interopPair(t, nil, nil)
	sse, ws := subscribeBoth(t, p.cliURL, "grip-curl")
	publish := func(path, body string) {
		t.Helper()
		// -d: application/x-www-form-urlencoded, as most curl users send.
		r := curlRun(t, "--fail-with-body", "-d", body, p.srvURL+path).ok(t)
		if !strings.Contains(r.stdout, `"published":1`) {
			t.Fatalf("curl -d %s %s: %s", body, path, r.stdout)
		}
	}
	publish("/publish/", `{"items":[{"channel":"grip-curl","http-stream":{"content":"data: stream only\n\n"}}]}`)
	publish("/publish/", `{"items":[{"channel":"grip-curl","ws-message":{"content":"ws only"}}]}`)
	publish("/publish/", `{"items":[{"channel":"grip-curl","formats":{"ws-message":{"content":"both, ws"},"http-stream":{"content":"event: both\ndata: both, stream\n\n"}}}]}`)
	publish("/channels/grip-curl", "plain")
	publish("//publish/", `{"items":[{"channel":"grip-curl","http-stream":{"action":"close"},"ws-message":{"action":"close","code":4000,"reason":"bye"}}]}`)
	expectLines(t, "curl -N subscriber", sse, "data: stream only", "event: both", "data: both, stream", "data: plain",
		"event: close", "data: closed by the publisher")
	expectLines(t, "websockets subscriber", ws, "msg ws only", "msg both, ws", "msg plain", "close 4000 bye")

	t.Run("not JSON", func(t *testing.T) {
		r := curlRun(t, "-w", "\n%{http_code}", "-d", "channel=grip-curl&content=hi", p.srvURL+"/publish/")
		if !strings.HasSuffix(r.stdout, "\n400") || !strings.Contains(r.stdout, "the body is not JSON") ||
			!strings.Contains(r.stdout, `application/x-www-form-urlencoded`) {
			t.Errorf("curl -d form body: %s, want 400 saying the body is not JSON", r.stdout)
		}
		r = curlRun(t, "-w", "\n%{http_code}", "-d", `{"items":[{"channel":"a","ws-message":{"content":"x"}},{"channel":"a","ws-message":{"content":7}}]}`, p.srvURL+"/publish/")
		if !strings.HasSuffix(r.stdout, "\n400") || !strings.Contains(r.stdout, `item 1: ws-message: \"content\" is a JSON number, want a string`) {
			t.Errorf("curl -d a bad item: %s, want 400 naming item 1", r.stdout)
		}
	})
	t.Run("405", func(t *testing.T) {
		for _, c := range []struct{ method, url, allow string }{
			{"GET", p.srvURL + "/publish/", "POST"},
			{"PUT", p.cliURL + "//publish/", "POST"},
			{"DELETE", p.srvURL + "/channels/grip-curl", "GET, HEAD, POST"},
			{"POST", p.srvURL + "/clients", "GET, HEAD"},
		} {
			r := curlRun(t, "-i", "-X", c.method, c.url)
			if !strings.HasPrefix(r.stdout, "HTTP/1.1 405") || headerValue(r.stdout, "Allow") != c.allow ||
				!strings.Contains(r.stdout, `"code":"method_not_allowed"`) {
				t.Errorf("curl -X %s %s: %s, want 405 method_not_allowed with Allow: %s", c.method, c.url, r.stdout, c.allow)
			}
		}
	})
}

// gripNodeDir is where make client-deps installs the Node GRIP publisher.
var gripNodeDir = filepath.Join("..", "..", ".interop", "node")

// gripNodeScript publishes with @fanoutio/grip's Publisher, control URI
// argv[2] (with a trailing slash), iss "restpipe-interop" and key
// argv[3]: an http-stream item, a ws-message item, then closes both
// kinds. It prints "ok" or the error.
const gripNodeScript = `
import { Publisher, HttpStreamFormat, WebSocketMessageFormat } from '@fanoutio/grip';
const [, uri, key] = process.argv;
const pub = new Publisher({ control_uri: uri, control_iss: 'restpipe-interop', key });
try {
  await pub.publishHttpStream('grip-node', 'data: from node\n\n');
  await pub.publishFormats('grip-node', new WebSocketMessageFormat('ws from node'));
  await pub.publishFormats('grip-node', [new HttpStreamFormat(null, true), new WebSocketMessageFormat(null, true, 4001)]);
  console.log('ok');
} catch (e) {
  console.log('error', e.message, JSON.stringify(e.context ?? {}));
}`

// TestInteropGRIPNode: the real Node publisher, with a JWT signed with
// --publish-key, through a control URI with a trailing slash, to the
// client node; the subscribers are on the server node. A publisher with
// another key is refused.
func TestInteropGRIPNode(t *testing.T) {
	node := needTool(t, "node", "nodejs")
	if _, err := os.Stat(filepath.Join(gripNodeDir, "node_modules", "@fanoutio", "grip")); err != nil {
		t.Skipf("no @fanoutio/grip in %s: make client-deps installs it (npm install @fanoutio/grip ws)", gripNodeDir)
	}
	p := interopPair(t, nil, []string{"--publish-key", "node-interop-key"})
	sse, ws := subscribeBoth(t, p.srvURL, "grip-node")
	run := func(key string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "--input-type=module", "-e", gripNodeScript, "--", p.cliURL+"/", key)
		cmd.Env, cmd.Dir = toolEnv(), gripNodeDir
		code, stdout, stderr := runCommand(t, cmd)
		if code != 0 {
			t.Fatalf("node: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		return strings.TrimSpace(stdout)
	}
	if out := run("another-key"); !strings.HasPrefix(out, "error") || !strings.Contains(out, "401") {
		t.Fatalf("a publisher with another key: %q, want a 401 error", out)
	}
	if out := run("node-interop-key"); out != "ok" {
		t.Fatalf("node publisher: %s", out)
	}
	expectLines(t, "curl -N subscriber", sse, "data: from node", "event: close", "data: closed by the publisher")
	expectLines(t, "websockets subscriber", ws, "msg ws from node", "close 4001 closed by the publisher")
	if strings.Contains(p.cliLog.String(), "node-interop-key") {
		t.Errorf("the client's log shows the publish key")
	}
}

// gripPythonScript publishes as Python's pubcontrol and gripcontrol do on
// the wire (they cannot be installed from Debian; pip may have no index):
// each format at the top level of the item, POSTed with urllib to the
// control URI + "/publish/" (so "//publish/" for a URI with a trailing
// slash), Authorization "Bearer " + jwt.encode({"iss": ..., "exp": now +
// 3600}, key) (PyJWT, HS256), or pubcontrol 3's Basic header, which on
// Python 3 is "Basic b'...'". It prints each answer's status.
const gripPythonScript = `
import base64, json, sys, time, urllib.request, urllib.error, jwt
uri, key = sys.argv[1], sys.argv[2]
def publish(item, auth):
    body = json.dumps({"items": [dict(item, channel="grip-python")]}).encode()
    req = urllib.request.Request(uri + "/publish/", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": auth})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            print(r.status, flush=True)
    except urllib.error.HTTPError as e:
        print(e.code, e.headers.get_all("WWW-Authenticate"), json.loads(e.read())["code"], flush=True)
token = jwt.encode({"iss": "restpipe-interop", "exp": int(time.time()) + 3600}, key)
if isinstance(token, bytes):
    token = token.decode()
bearer = "Bearer " + token
basic = "Basic " + str(base64.b64encode(("user:%s" % key).encode("ascii")))
expired = "Bearer " + jwt.encode({"iss": "x", "exp": int(time.time()) - 10}, key)
publish({"http-stream": {"content": "data: from python\n\n"}}, expired)
publish({"http-stream": {"content": "data: from python\n\n"}}, bearer)
publish({"ws-message": {"content-bin": base64.b64encode(b"ws from python").decode()}}, basic)
publish({"http-stream": {"action": "close"}, "ws-message": {"action": "close"}}, bearer)`

// TestInteropGRIPPython: Python with PyJWT (python3-jwt) publishing as
// gripcontrol does, with --publish-key from a file, to the server node
// through a control URI with a trailing slash; the subscribers are on
// the client node.
func TestInteropGRIPPython(t *testing.T) {
	py := pythonWith(t, "jwt")
	keyFile := filepath.Join(t.TempDir(), "publish.key")
	if err := os.WriteFile(keyFile, []byte("py-interop-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := interopPair(t, []string{"--publish-key-file", keyFile}, nil)
	sse, ws := subscribeBoth(t, p.cliURL, "grip-python")
	r := runTool(t, py, "-c", gripPythonScript, p.srvURL+"/", "py-interop-key").ok(t)
	want := "401 ['Bearer realm=\"restpipe publish\"', 'Basic realm=\"restpipe publish\", charset=\"UTF-8\"'] unauthorized\n200\n200\n200\n"
	if r.stdout != want {
		t.Fatalf("python publisher printed\n%s\nwant\n%s", r.stdout, want)
	}
	expectLines(t, "curl -N subscriber", sse, "data: from python", "event: close", "data: closed by the publisher")
	expectLines(t, "websockets subscriber", ws, "msg ws from python", "close 1000 closed by the publisher")
	if !strings.Contains(p.srvLog.String(), "GRIP publish refused") {
		t.Errorf("the server's log does not say why it refused the expired token")
	}
	if strings.Contains(p.srvLog.String(), "py-interop-key") {
		t.Errorf("the server's log shows the publish key")
	}
}
