package channels

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// MaxJWT is the longest JWT VerifyJWT reads, in bytes: a GRIP publisher's
// token (a header, "iss" and "exp") is about 150.
const MaxJWT = 4096

// ErrBadJWT reports a JWT that VerifyJWT refuses.
var ErrBadJWT = errors.New("bad JWT")

// VerifyJWT checks token, a compact JWS as the GRIP publisher libraries
// (pubcontrol, gripcontrol, @fanoutio/grip) send it to /publish/: its
// header must be {"alg": "HS256"} (and "typ", if present, "JWT"; no
// "crit"), its signature the HMAC-SHA256 with key of its first two parts
// (compared in constant time), and its claims must hold "exp", a time
// after now; "nbf", if present, must not be after now. "iss" may be
// anything. The signature is checked before the claims are read. A token
// over MaxJWT bytes, with padding or whitespace in its base64url, or any
// other "alg" ("none" included) is refused. An empty key verifies
// nothing.
func VerifyJWT(token string, key []byte, now time.Time) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: no key to verify it with", ErrBadJWT)
	}
	if len(token) > MaxJWT {
		return fmt.Errorf("%w: %d bytes, over the limit of %d", ErrBadJWT, len(token), MaxJWT)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%w: %d parts, want 3 (header.claims.signature)", ErrBadJWT, len(parts))
	}
	header, err := b64url(parts[0])
	if err != nil {
		return fmt.Errorf("%w: header: %v", ErrBadJWT, err)
	}
	var h struct {
		Alg  *string         `json:"alg"`
		Typ  *string         `json:"typ"`
		Crit json.RawMessage `json:"crit"`
	}
	if err := strictJSON(header, &h); err != nil {
		return fmt.Errorf("%w: header: %v", ErrBadJWT, err)
	}
	switch {
	case h.Alg == nil:
		return fmt.Errorf(`%w: header has no "alg"`, ErrBadJWT)
	case *h.Alg != "HS256":
		return fmt.Errorf(`%w: "alg" %q: only HS256 is accepted`, ErrBadJWT, *h.Alg)
	case h.Typ != nil && !strings.EqualFold(*h.Typ, "JWT"):
		return fmt.Errorf(`%w: "typ" %q, want JWT`, ErrBadJWT, *h.Typ)
	case h.Crit != nil:
		return fmt.Errorf(`%w: header has "crit" extensions, which are not understood`, ErrBadJWT)
	}
	sig, err := b64url(parts[2])
	if err != nil {
		return fmt.Errorf("%w: signature: %v", ErrBadJWT, err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(token[:len(parts[0])+1+len(parts[1])]))
	if !hmac.Equal(mac.Sum(nil), sig) {
		return fmt.Errorf("%w: the signature does not match the publish key", ErrBadJWT)
	}
	claims, err := b64url(parts[1])
	if err != nil {
		return fmt.Errorf("%w: claims: %v", ErrBadJWT, err)
	}
	var c struct {
		Exp json.RawMessage `json:"exp"`
		Nbf json.RawMessage `json:"nbf"`
	}
	if err := strictJSON(claims, &c); err != nil {
		return fmt.Errorf("%w: claims: %v", ErrBadJWT, err)
	}
	if c.Exp == nil {
		return fmt.Errorf(`%w: no "exp" claim: the token must expire`, ErrBadJWT)
	}
	exp, err := numericDate(c.Exp)
	if err != nil {
		return fmt.Errorf(`%w: "exp": %v`, ErrBadJWT, err)
	}
	if !now.Before(exp) {
		return fmt.Errorf("%w: expired at %s", ErrBadJWT, exp.UTC().Format(time.RFC3339))
	}
	if c.Nbf != nil {
		nbf, err := numericDate(c.Nbf)
		if err != nil {
			return fmt.Errorf(`%w: "nbf": %v`, ErrBadJWT, err)
		}
		if now.Before(nbf) {
			return fmt.Errorf("%w: not valid before %s", ErrBadJWT, nbf.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// b64url decodes unpadded base64url, refusing anything else.
func b64url(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// strictJSON decodes one JSON object into v, numbers as json.Number, and
// refuses anything after it.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// numericDate is a JWT NumericDate: a JSON number of seconds since the
// epoch, possibly with a fraction.
func numericDate(raw json.RawMessage) (time.Time, error) {
	var f float64
	if len(raw) == 0 || raw[0] == '"' || raw[0] == 'n' || json.Unmarshal(raw, &f) != nil ||
		math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, fmt.Errorf("%.40s is not a date in seconds", raw)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}
