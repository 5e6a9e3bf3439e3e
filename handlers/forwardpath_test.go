package handlers

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestCheckForwardPath(t *testing.T) {
	for _, ok := range []string{
		"", "/", "/a", "/a/", "/a/b.txt", "/a%20b/c", "/.hidden", "/a..b", "/..a", "/a.", "/v1/items;v=2",
		"/100%25.txt", "/%E2%82%AC", "/caf%C3%A9", "/a:b@c", "/[x]", "/a%3Fb", "/~user/", "/a+b=c&d",
	} {
		if err := checkForwardPath(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"a", "..", "/..", "/../admin", "/a/../../admin", "/.", "/./a", "/a/.", "/a/..",
		"/%2e%2e/admin", "/%2E%2E/admin", "/%2e./admin", "/.%2e/admin", "/%2E./x", "/.%2E/x",
		"/a%2fb", "/a%2F..%2Fb", "/a%5cb", "/a%5C..", "/a\\..\\b", "/a\\b",
		"//admin", "/a//b", "/a///", "/..;/admin", "/..;x/admin", "/%2e%2e;/x", "/...", "/. .", "/..%20",
		"/a%00b", "/a%0d%0aX-Injected:%201", "/a%7f", "/a\x00b", "/a\nb", "/a b", "/a\tb",
		"/%252e%252e/admin", "/a%252Fb", "/a%255cb", "/%25%32%65", "/%", "/%2", "/%zz", "/a?b", "/a#b",
		"/caf\xc3\xa9", "/%C0%AE%C0%AE/x", "/%ff", "/%EF%BC%8E%EF%BC%8E/x", "/%E2%80%A5/x",
	} {
		if err := checkForwardPath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestForwardURL(t *testing.T) {
	for _, tc := range []struct{ target, raw, want string }{
		{"http://h", "", "/"},
		{"http://h", "/a/b", "/a/b"},
		{"http://h/", "/a", "/a"},
		{"http://h/api", "", "/api/"},
		{"http://h/api", "/x%20y/", "/api/x%20y/"},
		{"http://h/api/", "/x", "/api/x"},
		{"http://h/a%2Fb", "/x", "/a%2Fb/x"},
	} {
		u, _ := url.Parse(tc.target)
		if got := forwardURL(u, tc.raw, "q=1").RequestURI(); got != tc.want+"?q=1" {
			t.Errorf("forwardURL(%s, %q) = %s, want %s?q=1", tc.target, tc.raw, got, tc.want)
		}
	}
}

// forwardTargets are target paths the property is checked against.
var forwardTargets = []string{"http://h", "http://h/", "http://h/api", "http://h/api/", "http://h/a%20b/c"}

// FuzzCheckForwardPath: whatever the input, a path the check accepts,
// joined to the target, stays under the target's path after path.Clean,
// after one and two decodings and with '\' read as '/', equals its cleaned
// form (but a trailing slash), and is exactly what the backend is sent.
func FuzzCheckForwardPath(f *testing.F) {
	for _, s := range []string{"/a/b", "/../x", "/%2e%2e/x", "/a%2fb", "//x", "/..;/x", "/%252e%252e/",
		"/a/", "/%C0%AE", "/\\..", "/a%00", "/.%2E", "/x/%2E%2e/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if checkForwardPath(raw) != nil {
			return
		}
		for _, ts := range forwardTargets {
			target, err := url.Parse(ts)
			if err != nil {
				t.Fatal(err)
			}
			u := forwardURL(target, raw, "")
			base := path.Clean("/" + target.Path)
			escBase := path.Clean("/" + target.EscapedPath())
			wantEsc := strings.TrimSuffix(target.EscapedPath(), "/") + raw
			if raw == "" {
				wantEsc += "/"
			}
			if u.EscapedPath() != wantEsc {
				t.Fatalf("%q on %s: the backend is sent %q, want %q", raw, ts, u.EscapedPath(), wantEsc)
			}
			once, err1 := url.PathUnescape(u.Path)
			views := []string{u.Path, u.EscapedPath(), strings.ReplaceAll(u.Path, `\`, "/")}
			if err1 == nil {
				views = append(views, once, strings.ReplaceAll(once, `\`, "/"))
			}
			for i, v := range views {
				b := base
				if i == 1 {
					b = escBase
				}
				c := path.Clean(v)
				if c != b && !strings.HasPrefix(c, strings.TrimSuffix(b, "/")+"/") {
					t.Fatalf("%q on %s: %q cleans to %q, outside %q", raw, ts, v, c, b)
				}
				if v != c && v != c+"/" {
					t.Fatalf("%q on %s: %q is not its cleaned form %q", raw, ts, v, c)
				}
			}
		}
	})
}
