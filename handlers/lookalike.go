package handlers

// What a backend may read in a path segment that is not what restpipe
// checked: the look-alikes of the characters that structure a path, and
// the byte forms that lenient UTF-8 decoders read as characters.

// lookAlikes are the characters that a backend may turn into '.', '/',
// '\' or '%', and so into a dot segment, a separator or an escape that
// restpipe never saw:
//
//   - every character whose NFKC form (Unicode compatibility
//     normalization, which some frameworks apply to paths, and which
//     Python, Java and .NET offer in one call) holds one of them: the dot
//     leaders and ellipses (U+2024-U+2026, U+FE19, U+FE30), "a/c" and
//     its kin (U+2100, U+2101, U+2105, U+2106), "1." to "20." and "0."
//     (U+2488-U+249B, U+1F100), "a.m." (U+33C2, U+33C7, U+33D8), the
//     small and fullwidth forms (U+FE52, U+FE68, U+FE6A, U+FF05, U+FF0E,
//     U+FF0F, U+FF3C). TestLookAlikesNFKC checks this part against
//     Python's unicodedata;
//   - the slashes that have no NFKC form but that Windows "best fit"
//     code page conversion (a service that takes its path through the
//     ANSI API) and readers alike take for '/' or '\': FRACTION SLASH
//     U+2044, DIVISION SLASH U+2215, SET MINUS U+2216, REVERSE SOLIDUS
//     OPERATOR U+29F5, BIG SOLIDUS U+29F8, BIG REVERSE SOLIDUS U+29F9.
//
// Not refused: YEN SIGN U+00A5 and WON SIGN U+20A9, which are '\' only in
// the Japanese and Korean Windows code pages (0x5C); a path with a price
// in it is ordinary, and a service on such a code page must not take
// paths through the ANSI API anyway.
const lookAlikes = nfkcLookAlikes + bestFitSlashes

const nfkcLookAlikes = "\u2024\u2025\u2026\u2100\u2101\u2105\u2106" +
	"\u2488\u2489\u248a\u248b\u248c\u248d\u248e\u248f\u2490\u2491" +
	"\u2492\u2493\u2494\u2495\u2496\u2497\u2498\u2499\u249a\u249b" +
	"\u33c2\u33c7\u33d8\ufe19\ufe30\ufe52\ufe68\ufe6a\uff05\uff0e\uff0f\uff3c\U0001f100"

const bestFitSlashes = "\u2044\u2215\u2216\u29f5\u29f8\u29f9"

// lenientForm returns the index in s of the first byte sequence that is
// not UTF-8 (RFC 3629) but that a lenient decoder reads as a character,
// or -1. A decoder of the first UTF-8 (RFC 2279: up to six bytes, 31
// bits), one that takes overlong forms, one of CESU-8 or Java's modified
// UTF-8 (surrogates encoded one by one), or one that keeps fewer bits
// than it decodes reads each of these as some character, '.', '/' or NUL
// among them:
//
//   - an overlong form of any length: C0 or C1 then a continuation byte
//     (%C0%AE is '.', %C0%AF '/', %C1%9C '\', %C0%80 NUL); E0 then 80-9F
//     and one more; F0 then 80-8F and two more (an overlong U+FF0E is
//     F0 8F BC 8E);
//   - a code point over U+10FFFF in four bytes: F4 then 90-BF, or F5 to
//     F7 then a continuation byte, and two more;
//   - a byte F8 to FF then a continuation byte: the start of a five- or
//     six-byte form (%F8%80%80%80%AE and %FC%80%80%80%80%AE are '.'), or
//     of a longer one (FE, FF), each overlong or over U+10FFFF;
//   - a surrogate: ED then A0-BF and one more.
//
// The other octets that are not UTF-8 pass, as HTTP allows: a lone %FF,
// a Latin-1 "caf%E9" or "M%FCller" (a byte from C0 up followed by ASCII
// is no sequence at all); Latin-1 text rarely holds one of the above
// ("\xc0\xae" is "À®", "\xfc\xa0" is "ü" and a no-break space).
func lenientForm(s string) int {
	cont := func(i int) bool { return i < len(s) && s[i]&0xc0 == 0x80 }
	in := func(i int, lo, hi byte) bool { return i < len(s) && lo <= s[i] && s[i] <= hi }
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case (c == 0xc0 || c == 0xc1) && cont(i+1),
			c == 0xe0 && in(i+1, 0x80, 0x9f) && cont(i+2),
			c == 0xed && in(i+1, 0xa0, 0xbf) && cont(i+2),
			c == 0xf0 && in(i+1, 0x80, 0x8f) && cont(i+2) && cont(i+3),
			c == 0xf4 && in(i+1, 0x90, 0xbf) && cont(i+2) && cont(i+3),
			c >= 0xf5 && c <= 0xf7 && cont(i+1) && cont(i+2) && cont(i+3),
			c >= 0xf8 && cont(i+1):
			return i
		}
	}
	return -1
}
