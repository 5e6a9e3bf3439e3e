package handlers

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestLenientForms: every form a lenient UTF-8 decoder reads as '.', '/',
// '\' or NUL is refused, in every length from two to six bytes, and so is
// every other sequence that is not UTF-8 but decodes to a character; the
// octets that are not UTF-8 and no such sequence (Latin-1) pass.
func TestLenientForms(t *testing.T) {
	for _, c := range []byte{'.', '/', '\\', 0, 'a'} {
		for n := 2; n <= 6; n++ {
			form := overlong(rune(c), n)
			seg := "/x" + escape(form) + "y"
			if err := checkForwardPath(seg); err == nil {
				t.Errorf("%d-byte overlong %q (%s) accepted", n, c, seg)
			}
			if err := checkForwardPath("/" + escape(form) + escape(form)); err == nil {
				t.Errorf("two %d-byte overlong %q accepted", n, c)
			}
		}
	}
	for _, tc := range []struct {
		raw string
		ok  bool
	}{
		// From the issue: the five- and six-byte forms of '.'.
		{"/%F8%80%80%80%AE", false}, {"/%FC%80%80%80%80%AE", false},
		{"/%F8%80%80%80%AE%F8%80%80%80%AE/x", false}, {"/a/%FC%80%80%80%80%AE%FC%80%80%80%80%AE", false},
		// Overlong forms of a look-alike, and of other characters.
		{"/%F0%8F%BC%8E", false}, {"/%E0%9F%BF", false}, {"/%C1%BF", false},
		// Over U+10FFFF, surrogates (CESU-8), the lead bytes F8-FF.
		{"/%F4%90%80%AE", false}, {"/%F5%80%80%AE", false}, {"/%F7%BF%BF%BF", false},
		{"/%ED%A0%80", false}, {"/%ED%BF%BF", false}, {"/%ED%A0%BC%ED%B4%80", false},
		{"/%F8%80", false}, {"/%FB%BF", false}, {"/%FD%80", false}, {"/%FE%80", false}, {"/%FF%80", false},
		// UTF-8 at the edges passes.
		{"/%C2%80", true}, {"/%E0%A0%80", true}, {"/%ED%9F%BF", true}, {"/%EE%80%80", true},
		{"/%F0%90%80%80", true}, {"/%F4%8F%BF%BF", true},
		// Octets that are not UTF-8 but form no sequence: Latin-1.
		{"/%FF", true}, {"/a%FFb", true}, {"/%F8", true}, {"/%F8a", true}, {"/M%FCller", true},
		{"/%FE%FF", true}, {"/%F5", true}, {"/%F4%90", true}, {"/%ED%A0", true}, {"/caf%E9", true},
		{"/%C0", true}, {"/%C0x", true}, {"/%E0%80", true}, {"/%F0%80%80", true},
	} {
		err := checkForwardPath(tc.raw)
		if (err == nil) != tc.ok {
			t.Errorf("checkForwardPath(%q) = %v, want ok %v", tc.raw, err, tc.ok)
		}
	}
}

// TestLookAlikes: each look-alike of '.', '/', '\' and '%' is refused,
// escaped as an honest front end sends it, alone or in a segment; the
// yen and won signs (documented) and other symbols pass.
func TestLookAlikes(t *testing.T) {
	for _, r := range lookAlikes {
		for _, seg := range []string{"%s", "%s%s", "a%sb", "..%s..", "%s.."} {
			enc := escape(string(r))
			raw := "/" + strings.ReplaceAll(seg, "%s", enc) + "/x"
			if err := checkForwardPath(raw); err == nil {
				t.Errorf("U+%04X in %q accepted", r, raw)
			}
		}
	}
	for _, r := range []rune{'\u00a5', '\u20a9', '\u00b7', '\u2022', '\u3002', '\u2010', '\u00e9', '\u20ac'} {
		if err := checkForwardPath("/a" + escape(string(r)) + "b"); err != nil {
			t.Errorf("U+%04X refused: %v", r, err)
		}
	}
}

// TestLookAlikesNFKC: the NFKC part of lookAlikes is every character
// whose NFKC form holds '.', '/', '\' or '%', by the Unicode tables of
// Python's unicodedata: a new Unicode version that adds one fails here.
func TestLookAlikesNFKC(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (Debian package python3)")
	}
	out, err := exec.Command(py, "-c", `
import unicodedata
for i in range(0x80, 0x110000):
    if 0xd800 <= i < 0xe000: continue
    n = unicodedata.normalize("NFKC", chr(i))
    if any(c in n for c in "./\\%"): print("%x" % i)
`).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	want := map[rune]bool{}
	for _, f := range strings.Fields(string(out)) {
		var r rune
		if _, err := fmt.Sscanf(f, "%x", &r); err != nil {
			t.Fatal(err)
		}
		want[r] = true
	}
	have := map[rune]bool{}
	for _, r := range nfkcLookAlikes {
		have[r] = true
		if !want[r] {
			t.Errorf("U+%04X is in nfkcLookAlikes but NFKC does not make it '.', '/', '\\' or '%%'", r)
		}
	}
	for r := range want {
		if !have[r] {
			t.Errorf("U+%04X (%q) normalises to '.', '/', '\\' or '%%' but is not in nfkcLookAlikes", r, string(r))
		}
	}
}

// overlong is the n-byte form of r (RFC 2279's layout, n from 2 to 6),
// overlong for an r that needs fewer bytes.
func overlong(r rune, n int) []byte {
	b := make([]byte, n)
	v := uint32(r)
	for i := n - 1; i > 0; i-- {
		b[i] = 0x80 | byte(v&0x3f)
		v >>= 6
	}
	b[0] = byte(0xff<<(8-n)) | byte(v)
	return b
}

// escape percent-encodes every byte of s.
func escape[T string | []byte](s T) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// lenientDecode decodes s as the most lenient decoder would: RFC 2279
// sequences of two to six bytes, overlong or not, surrogate pairs
// encoded one by one (CESU-8) joined, a value over U+10FFFF cut to its
// low 16 bits; a byte that starts no sequence is taken as Latin-1, as
// such decoders fall back.
func lenientDecode(s string) []rune {
	var out []rune
	for i := 0; i < len(s); {
		c := s[i]
		n := 0
		switch {
		case c >= 0xc0 && c < 0xe0:
			n = 2
		case c >= 0xe0 && c < 0xf0:
			n = 3
		case c >= 0xf0 && c < 0xf8:
			n = 4
		case c >= 0xf8 && c < 0xfc:
			n = 5
		case c >= 0xfc && c < 0xfe:
			n = 6
		}
		ok := n > 0 && i+n <= len(s)
		for j := 1; ok && j < n; j++ {
			ok = s[i+j]&0xc0 == 0x80
		}
		if !ok {
			out = append(out, rune(c))
			i++
			continue
		}
		v := uint32(c) & (0x7f >> n)
		for j := 1; j < n; j++ {
			v = v<<6 | uint32(s[i+j]&0x3f)
		}
		i += n
		if v > 0x10ffff {
			v &= 0xffff
		}
		if l := len(out); l > 0 && v >= 0xdc00 && v < 0xe000 && out[l-1] >= 0xd800 && out[l-1] < 0xdc00 {
			out[l-1] = (out[l-1]-0xd800)<<10 + rune(v-0xdc00) + 0x10000
			continue
		}
		out = append(out, rune(v))
	}
	return out
}

// lenientView is s as a lenient decoder reads it, its look-alikes
// replaced by what NFKC or a best-fit conversion makes of them.
func lenientView(s string) string {
	var b strings.Builder
	for _, r := range lenientDecode(s) {
		switch {
		case r == utf8.RuneError:
			b.WriteRune(r)
		case strings.ContainsRune("\u2024\ufe52\uff0e", r):
			b.WriteByte('.')
		case strings.ContainsRune("\u2025\ufe30", r):
			b.WriteString("..")
		case strings.ContainsRune("\u2026\ufe19", r):
			b.WriteString("...")
		case strings.ContainsRune("\uff0f\u2044\u2215\u29f8", r):
			b.WriteByte('/')
		case strings.ContainsRune("\uff3c\ufe68\u2216\u29f5\u29f9", r):
			b.WriteByte('\\')
		case strings.ContainsRune("\uff05\ufe6a", r):
			b.WriteByte('%')
		case strings.ContainsRune(nfkcLookAlikes, r):
			b.WriteString("x/.") // "a/c", "1.": a separator or a dot
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestLenientDecode(t *testing.T) {
	for in, want := range map[string]string{
		"\xc0\xae":                 ".",
		"\xe0\x80\xae":             ".",
		"\xf0\x80\x80\xaf":         "/",
		"\xf8\x80\x80\x80\xae":     ".",
		"\xfc\x80\x80\x80\x80\xae": ".",
		"\xf4\x90\x80\xae":         ".",
		"\xed\xa0\xbc\xed\xb4\x80": "\U0001f100",
		"caf\xe9":                  "café",
		"\xef\xbc\x8e":             "\uff0e",
	} {
		if got := string(lenientDecode(in)); got != want {
			t.Errorf("lenientDecode(%q) = %q, want %q", in, got, want)
		}
	}
}
