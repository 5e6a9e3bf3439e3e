package handlers

import (
	"net/url"
	"strings"
)

// RedactURL returns s, a URL as a user gave it, fit for a log line or an
// error: a password in it reads "xxxxx" ("http://svc:xxxxx@host/"). When s
// does not parse, everything between "://" and the last '@' of the
// authority is replaced, so no password is shown either way.
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Opaque == "" {
		if _, has := u.User.Password(); !has {
			return s // nothing to hide: as given
		}
		return u.Redacted()
	}
	// Unparsable, or opaque ("files:http://u:pw@h/", a typo for '='):
	// the password may be anywhere after "://".
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	scheme, rest := s[:i], s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		return scheme + "://xxxxx" + rest[at:]
	}
	return s
}
