package handlers

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://svc:S3cretPw@host/check":    "http://svc:xxxxx@host/check",
		"http://host:8080/x":                "http://host:8080/x",
		"http://svc:S3cretPw@host:bad/x":    "http://xxxxx@host:bad/x",
		"http://svc:S3c%zzret@host/x":       "http://xxxxx@host/x",
		"files:http://u:S3cretPw@h/x":       "files:http://xxxxx@h/x",
		"http://a@b:S3cretPw@[bad/x":        "http://xxxxx@[bad/x",
		"no url at all":                     "no url at all",
		"http://host/path@S3cretPw":         "http://host/path@S3cretPw", // '@' past the authority is no user info
		"ftp://u:S3cretPw@127.0.0.1/x":      "ftp://u:xxxxx@127.0.0.1/x",
		"http://u:S3cretPw@127.0.0.1:x?y=1": "http://xxxxx@127.0.0.1:x?y=1",
	} {
		got := RedactURL(in)
		if got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(in, "@") && strings.Contains(got, "S3c") && !strings.HasPrefix(in, "http://host/") {
			t.Errorf("RedactURL(%q) = %q shows the password", in, got)
		}
	}
}

// FuzzRedactURL: whatever a user gives, the password of a URL that has
// one never shows.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"http://svc:S3cretPw@host/check", "files:http://u:pw@h/", "http://u:pw@h:bad/", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		const pw = "PW9876"
		in := "http://user:" + pw + "@" + s
		if i := strings.IndexAny(s, "/?#@"); i >= 0 && s[i] == '@' {
			return // the password is no longer the user info's
		}
		if got := RedactURL(in); strings.Contains(got, pw) {
			t.Errorf("RedactURL(%q) = %q", in, got)
		}
	})
}
