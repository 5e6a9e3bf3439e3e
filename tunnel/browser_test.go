//go:build linux

// Linux only: the browser is Debian's Chromium, driven through
// chromedriver in a process group of its own so that a failed test still
// kills every browser process it started.

package tunnel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	chromiumPath     = "/usr/bin/chromium"     // Debian's chromium
	chromedriverPath = "/usr/bin/chromedriver" // Debian's chromium-driver
	// browserEnv set to 1 makes the browser test fail, rather than skip,
	// when Chromium is missing: make test sets it, after installing it.
	browserEnv = "RESTPIPE_BROWSER"
)

// A person opens a channel's page on a client node in Chromium: the page
// subscribes, shows a message published on the server (across the
// tunnel) as text, and publishes what the person types, which a
// subscriber on the server receives.
func TestChannelsPageInChromium(t *testing.T) {
	needBrowser(t)
	p := newPKI(t)
	s := startServer(t, p, nil)
	a := startClient(t, p, "alpha", s.tunnelAddr, nil)
	waitConnected(t, a, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ch = "lobby/α"
	onServer := subscribeWS(t, ctx, s.httpURL, ch)
	b := startBrowser(t, ctx)

	b.open(t, ctx, chanURL(a.httpURL, ch))
	if title := b.title(t, ctx); title != ch+" · restpipe channel" {
		t.Errorf("page title %q", title)
	}
	state := waitScript(t, ctx, b, "the page to subscribe", `return document.body.dataset.state`,
		func(s string) bool { return s != "connecting" })
	if state != "open" {
		t.Fatalf("page state %q, want open; status: %q", state,
			script[string](t, ctx, b, `return document.getElementById('status').textContent`))
	}

	const fromServer = "<b>not bold</b> from the server"
	publish(t, s.httpURL, ch, fromServer)
	const messages = `return Array.from(document.querySelectorAll('#messages li'), li => li.textContent)`
	got := waitScript(t, ctx, b, "the server's message in the page", messages,
		func(m []string) bool { return len(m) > 0 })
	if !slices.Equal(got, []string{fromServer}) {
		t.Fatalf("page shows %q, want %q", got, fromServer)
	}
	if m, err := onServer.next(ctx); err != nil || m != fromServer {
		t.Fatalf("server's subscriber: %q, %v; want %q", m, err, fromServer)
	}

	const typed = "typed in Chromium: ünïcode ✓"
	b.sendKeys(t, ctx, "#text", typed)
	b.click(t, ctx, "#publish button")
	if m, err := onServer.next(ctx); err != nil || m != typed {
		t.Fatalf("server's subscriber: %q, %v; want what was typed, %q", m, err, typed)
	}
	got = waitScript(t, ctx, b, "the page's own message back", messages,
		func(m []string) bool { return len(m) > 1 })
	if want := []string{fromServer, typed}; !slices.Equal(got, want) {
		t.Fatalf("page shows %q, want %q", got, want)
	}
	if v := script[string](t, ctx, b, `return document.getElementById('text').value`); v != "" {
		t.Errorf("input after publishing: %q, want it cleared", v)
	}
}

// needBrowser skips the test when Chromium or chromedriver is missing,
// or fails it when browserEnv requires the browser test.
func needBrowser(t *testing.T) {
	t.Helper()
	var missing []string
	for _, p := range []string{chromiumPath, chromedriverPath} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := strings.Join(missing, " and ") + " missing: apt-get install chromium chromium-driver (make test does)"
	if os.Getenv(browserEnv) == "1" {
		t.Fatalf("%s; %s=1 requires the browser test", msg, browserEnv)
	}
	t.Skipf("%s; skipped (%s=1 requires it)", msg, browserEnv)
}

// webDriver is a session of headless Chromium, driven through
// chromedriver's W3C WebDriver HTTP API.
type webDriver struct {
	url     string // chromedriver's: http://127.0.0.1:<port>
	session string // the session's path: /session/<id>
}

// driverPort matches chromedriver's line saying where it listens.
var driverPort = regexp.MustCompile(`started successfully on port (\d+)\.`)

// startBrowser runs chromedriver on a kernel-chosen port and opens a
// session of headless Chromium with a profile of its own, and with args
// added to its command line. At cleanup the
// session is closed and chromedriver's process group killed.
func startBrowser(t *testing.T, ctx context.Context, args ...string) *webDriver {
	t.Helper()
	profile := t.TempDir() // removed after the cleanup below: the browser is gone
	out := &driverOutput{port: make(chan string, 1)}
	cmd := exec.Command(chromedriverPath, "--port=0", "--log-level=WARNING")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", chromedriverPath, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	d := &webDriver{}
	t.Cleanup(func() {
		if d.session != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := d.call(ctx, http.MethodDelete, d.session, nil, nil); err != nil {
				t.Logf("close the browser: %v", err)
			}
			cancel()
		}
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("kill chromedriver: %v", err)
		}
		<-exited // bounded by WaitDelay
		if t.Failed() {
			t.Logf("chromedriver's output:\n%s", out)
		}
	})

	select {
	case port := <-out.port:
		d.url = "http://127.0.0.1:" + port
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("chromedriver exited before listening: %v", err)
	case <-ctx.Done():
		t.Fatalf("chromedriver did not say where it listens: %v", ctx.Err())
	}

	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromiumPath,
			"args": append([]string{"--headless=new", "--no-sandbox", "--disable-gpu",
				"--disable-dev-shm-usage", "--user-data-dir=" + profile}, args...),
		},
	}}}
	var session struct {
		ID string `json:"sessionId"`
	}
	if err := d.call(ctx, http.MethodPost, "/session", caps, &session); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	d.session = "/session/" + session.ID
	return d
}

// call sends one WebDriver command to the session (or to chromedriver,
// for a path starting with /session), and decodes its value into out.
func (d *webDriver) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if method == http.MethodPost {
		if in == nil {
			in = struct{}{} // WebDriver takes a JSON object with every POST
		}
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	if !strings.HasPrefix(path, "/session") {
		path = d.session + path
	}
	req, err := http.NewRequestWithContext(ctx, method, d.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("webdriver %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	var reply struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return fmt.Errorf("webdriver %s %s: status %d: %w", method, path, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error, Message string }
		_ = json.Unmarshal(reply.Value, &e)
		return fmt.Errorf("webdriver %s %s: status %d: %s: %s", method, path, resp.StatusCode, e.Error, e.Message)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(reply.Value, out); err != nil {
		return fmt.Errorf("webdriver %s %s: value %s: %w", method, path, reply.Value, err)
	}
	return nil
}

// open navigates to url and waits for the page to load.
func (d *webDriver) open(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := d.call(ctx, http.MethodPost, "/url", map[string]string{"url": url}, nil); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
}

func (d *webDriver) title(t *testing.T, ctx context.Context) string {
	t.Helper()
	var title string
	if err := d.call(ctx, http.MethodGet, "/title", nil, &title); err != nil {
		t.Fatal(err)
	}
	return title
}

// element finds the element that css selects, as WebDriver's reference.
func (d *webDriver) element(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	var ref map[string]string
	if err := d.call(ctx, http.MethodPost, "/element",
		map[string]string{"using": "css selector", "value": css}, &ref); err != nil {
		t.Fatalf("find %s: %v", css, err)
	}
	const key = "element-6066-11e4-a52e-4f735466cecf" // W3C's element identifier
	if ref[key] == "" {
		t.Fatalf("find %s: no element reference in %v", css, ref)
	}
	return ref[key]
}

// sendKeys types text into the element that css selects.
func (d *webDriver) sendKeys(t *testing.T, ctx context.Context, css, text string) {
	t.Helper()
	id := d.element(t, ctx, css)
	if err := d.call(ctx, http.MethodPost, "/element/"+id+"/value", map[string]string{"text": text}, nil); err != nil {
		t.Fatalf("type into %s: %v", css, err)
	}
}

// click clicks the element that css selects.
func (d *webDriver) click(t *testing.T, ctx context.Context, css string) {
	t.Helper()
	id := d.element(t, ctx, css)
	if err := d.call(ctx, http.MethodPost, "/element/"+id+"/click", nil, nil); err != nil {
		t.Fatalf("click %s: %v", css, err)
	}
}

// execute runs js, a function body, in the page and decodes what it
// returns into out.
func (d *webDriver) execute(ctx context.Context, js string, out any) error {
	return d.call(ctx, http.MethodPost, "/execute/sync", map[string]any{"script": js, "args": []any{}}, out)
}

// executeAsync runs js, a function body whose last argument is a
// callback, in the page and decodes what it passes the callback into out.
func (d *webDriver) executeAsync(ctx context.Context, js string, out any) error {
	return d.call(ctx, http.MethodPost, "/execute/async", map[string]any{"script": js, "args": []any{}}, out)
}

// script runs js in the page and returns what it returns.
func script[T any](t *testing.T, ctx context.Context, d *webDriver, js string) T {
	t.Helper()
	var v T
	if err := d.execute(ctx, js, &v); err != nil {
		t.Fatalf("script %q: %v", js, err)
	}
	return v
}

// waitScript runs js in the page until done holds for what it returns,
// and returns that: the page has no event to wait on from outside.
func waitScript[T any](t *testing.T, ctx context.Context, d *webDriver, what, js string, done func(T) bool) T {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var v T
		if err := d.execute(ctx, js, &v); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if done(v) {
			return v
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; the page has %#v", what, ctx.Err(), v)
		case <-tick.C:
		}
	}
}

// driverOutput keeps chromedriver's output for the test log, and sends
// the port it says it listens on.
type driverOutput struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	port chan string // buffered: gets the port once
	sent bool
}

func (o *driverOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if !o.sent {
		if m := driverPort.FindSubmatch(o.buf.Bytes()); m != nil {
			o.sent = true
			o.port <- string(m[1])
		}
	}
	return len(p), nil
}

func (o *driverOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
