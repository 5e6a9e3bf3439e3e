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
		// Not UTF-8, and not an overlong form: Latin-1, a lone 0xFF.
		"/%ff", "/caf%E9", "/%C0", "/%C0x", "/%E0%80", "/%E0%A0%80",
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
		"/caf\xc3\xa9", "/%C0%AE%C0%AE/x", "/%EF%BC%8E%EF%BC%8E/x", "/%E2%80%A5/x",
		"/%C1%9C", "/a%E0%80%AEb", "/%F0%80%80%AF", "/caf%C0%AF",
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
// after one and two decodings, with '\' read as '/' and as a lenient
// UTF-8 decoder that normalises look-alikes reads it (lenientView),
// equals its cleaned form (but a trailing slash), and is exactly what the
// backend is sent; a lenient decoder finds no ASCII character in it but
// those it holds as ASCII bytes.
func FuzzCheckForwardPath(f *testing.F) {
	for _, s := range []string{"/a/b", "/../x", "/%2e%2e/x", "/a%2fb", "//x", "/..;/x", "/%252e%252e/",
		"/a/", "/%C0%AE", "/\\..", "/a%00", "/.%2E", "/x/%2E%2e/y",
		"/%F8%80%80%80%AE%F8%80%80%80%AE/x", "/%FC%80%80%80%80%AE", "/%E0%80%AF", "/%F0%8F%BC%8E", "/%ED%A0%80",
		"/%EF%BC%8F", "/%E2%88%95", "/%EF%BC%85%32%65", "/M%FCller", "/%FF", "/%C2%A5"} {
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
			lenient := lenientView(u.Path)
			views = append(views, lenient, strings.ReplaceAll(lenient, `\`, "/"))
			if n, m := asciiBytes(u.Path), asciiRunes(lenientDecode(u.Path)); n != m {
				t.Fatalf("%q on %s: %d ASCII bytes in %q, but a lenient decoder reads %d ASCII characters", raw, ts, n, u.Path, m)
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

func TestForwardPathNormalised(t *testing.T) {
	for raw, want := range map[string]string{
		"":                       "",
		"/a/b":                   "/a/b",
		"/%73ecret":              "/secret",
		"/%41%5a%30%2D%2e%5F%7E": "/AZ0-._~",
		"/%2ex":                  "/.x",
		"/a%2e":                  "/a.",
		"/caf%c3%a9":             "/caf%C3%A9",
		"/a%20b%3bc%2a":          "/a%20b%3Bc%2A",
		"/100%25":                "/100%25",
		"/%25%7a":                "/%25z", // %25 stays an escape
	} {
		got, err := forwardPath(raw)
		if err != nil || got != want {
			t.Errorf("forwardPath(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{"/%2e%2e/x", "/%2E.", "/x/%2e", "/.%2e;v", "/%252e"} {
		if got, err := forwardPath(raw); err == nil {
			t.Errorf("forwardPath(%q) = %q, want it refused", raw, got)
		}
	}
}

// FuzzForwardPath: a path the check accepts normalises to one it accepts
// again, that decodes to the same bytes, is its own normal form, and has
// no escape of an unreserved character nor a lower-case hex digit left.
func FuzzForwardPath(f *testing.F) {
	for _, s := range []string{"/a/b", "/%73ecret", "/%2ex", "/a%2e", "/%2e%2e", "/caf%c3%a9", "/%25%7a", "/%25%33",
		"/.%2e;x", "/%2E%2e/", "/x%7e%7E", "/%41;%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		norm, err := forwardPath(raw)
		if err != nil {
			return
		}
		if err := checkForwardPath(norm); err != nil {
			t.Fatalf("%q normalises to %q, which the check refuses: %v", raw, norm, err)
		}
		if again, _ := forwardPath(norm); again != norm {
			t.Fatalf("%q normalises to %q, then to %q", raw, norm, again)
		}
		d1, err1 := url.PathUnescape(raw)
		d2, err2 := url.PathUnescape(norm)
		if err1 != nil || err2 != nil || d1 != d2 {
			t.Fatalf("%q decodes to %q (%v), its normal form %q to %q (%v)", raw, d1, err1, norm, d2, err2)
		}
		for i := 0; i < len(norm); i++ {
			if norm[i] != '%' {
				continue
			}
			e := norm[i+1 : i+3]
			if strings.ToUpper(e) != e {
				t.Fatalf("%q: escape %%%s left in lower case in %q", raw, e, norm)
			}
			if c, _ := url.PathUnescape("%" + e); unreserved(c[0]) {
				t.Fatalf("%q: escape of unreserved %q left in %q", raw, c, norm)
			}
		}
	})
}

func asciiBytes(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < 0x80 {
			n++
		}
	}
	return n
}

func asciiRunes(rs []rune) int {
	n := 0
	for _, r := range rs {
		if r < 0x80 {
			n++
		}
	}
	return n
}
