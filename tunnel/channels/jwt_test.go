package channels_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel/channels"
	"github.com/restpipe/restpipe/tunnel/internal/hub"
)

var jwtNow = time.Unix(1_800_000_000, 0)

// signJWT makes a compact JWS of header and claims (JSON texts) signed
// with HMAC-SHA256 and key, as the GRIP libraries do.
func signJWT(header, claims string, key []byte) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(in))
	return in + "." + enc.EncodeToString(mac.Sum(nil))
}

var jwtKey = []byte("publish-secret")

// jwtTests are shared with FuzzVerifyJWT as its seeds.
var jwtTests = []struct {
	name    string
	token   string
	wantErr string // "" for a token that verifies
}{
	{"gripcontrol's", signJWT(`{"typ":"JWT","alg":"HS256"}`, `{"iss":"realm","exp":1800000600}`, jwtKey), ""},
	{"@fanoutio/grip's, no typ", signJWT(`{"alg":"HS256"}`, `{"iss":"realm","exp":1800000600,"iat":1800000000}`, jwtKey), ""},
	{"no iss", signJWT(`{"alg":"HS256"}`, `{"exp":1800000001}`, jwtKey), ""},
	{"fractional exp", signJWT(`{"alg":"HS256"}`, `{"exp":1800000000.5}`, jwtKey), ""},
	{"nbf passed", signJWT(`{"alg":"HS256"}`, `{"exp":1800000600,"nbf":1799999999}`, jwtKey), ""},
	{"nbf to come", signJWT(`{"alg":"HS256"}`, `{"exp":1800000600,"nbf":1800000100}`, jwtKey), "not valid before"},
	{"expired", signJWT(`{"alg":"HS256"}`, `{"iss":"realm","exp":1799999999}`, jwtKey), "expired at"},
	{"expires now", signJWT(`{"alg":"HS256"}`, `{"exp":1800000000}`, jwtKey), "expired at"},
	{"no exp", signJWT(`{"alg":"HS256"}`, `{"iss":"realm"}`, jwtKey), `no "exp"`},
	{"exp a string", signJWT(`{"alg":"HS256"}`, `{"exp":"1800000600"}`, jwtKey), "not a date"},
	{"exp null", signJWT(`{"alg":"HS256"}`, `{"exp":null}`, jwtKey), "not a date"},
	{"exp negative", signJWT(`{"alg":"HS256"}`, `{"exp":-1}`, jwtKey), "not a date"},
	{"exp huge", signJWT(`{"alg":"HS256"}`, `{"exp":1e300}`, jwtKey), "not a date"},
	{"another key", signJWT(`{"alg":"HS256"}`, `{"exp":1800000600}`, []byte("other")), "signature does not match"},
	{"alg none", signJWT(`{"alg":"none"}`, `{"exp":1800000600}`, jwtKey), `"alg" "none"`},
	{"alg none, no signature", strings.TrimSuffix(signJWT(`{"alg":"none"}`, `{"exp":1800000600}`, jwtKey), "x") + "", `"alg" "none"`},
	{"alg HS512", signJWT(`{"alg":"HS512"}`, `{"exp":1800000600}`, jwtKey), "only HS256"},
	{"alg hs256 in lower case", signJWT(`{"alg":"hs256"}`, `{"exp":1800000600}`, jwtKey), "only HS256"},
	{"no alg", signJWT(`{"typ":"JWT"}`, `{"exp":1800000600}`, jwtKey), `no "alg"`},
	{"typ not JWT", signJWT(`{"alg":"HS256","typ":"JOSE+JSON"}`, `{"exp":1800000600}`, jwtKey), `"typ"`},
	{"crit", signJWT(`{"alg":"HS256","crit":["b64"]}`, `{"exp":1800000600}`, jwtKey), "crit"},
	{"header not JSON", signJWT(`alg`, `{"exp":1800000600}`, jwtKey), "header"},
	{"claims not JSON", signJWT(`{"alg":"HS256"}`, `exp`, jwtKey), "claims"},
	{"claims with trailing data", signJWT(`{"alg":"HS256"}`, `{"exp":1800000600}{}`, jwtKey), "after the JSON"},
	{"two parts", "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9", "2 parts"},
	{"four parts", signJWT(`{"alg":"HS256"}`, `{"exp":1800000600}`, jwtKey) + ".x", "4 parts"},
	{"padded base64", strings.Replace(signJWT(`{"alg":"HS256"}`, `{"exp":1800000600}`, jwtKey), ".", "=.", 1), "header"},
	{"empty", "", "1 parts"},
	{"too long", signJWT(`{"alg":"HS256"}`, `{"exp":1800000600,"pad":"`+strings.Repeat("x", channels.MaxJWT)+`"}`, jwtKey), "over the limit"},
}

func TestVerifyJWT(t *testing.T) {
	for _, tt := range jwtTests {
		t.Run(tt.name, func(t *testing.T) {
			err := channels.VerifyJWT(tt.token, jwtKey, jwtNow)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("VerifyJWT: %v", err)
				}
				return
			}
			if !errors.Is(err, channels.ErrBadJWT) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("VerifyJWT = %v, want ErrBadJWT mentioning %q", err, tt.wantErr)
			}
		})
	}
	good := jwtTests[0].token
	if err := channels.VerifyJWT(good, nil, jwtNow); !errors.Is(err, channels.ErrBadJWT) {
		t.Fatalf("VerifyJWT with no key = %v, want ErrBadJWT", err)
	}
	// A changed octet anywhere is refused.
	for i := range good {
		b := []byte(good)
		b[i] ^= 1
		if channels.VerifyJWT(string(b), jwtKey, jwtNow) == nil {
			t.Fatalf("a token with octet %d changed verifies", i)
		}
	}
}

// FuzzVerifyJWT checks that VerifyJWT, which reads what any caller of
// /publish/ sends, never panics, and that whatever it accepts is signed
// with the key: re-signing its first two parts gives its signature.
func FuzzVerifyJWT(f *testing.F) {
	for _, tt := range jwtTests {
		f.Add(tt.token)
	}
	f.Fuzz(func(t *testing.T, token string) {
		err := channels.VerifyJWT(token, jwtKey, jwtNow)
		if err == nil {
			i := strings.LastIndexByte(token, '.')
			mac := hmac.New(sha256.New, jwtKey)
			mac.Write([]byte(token[:i]))
			if token[i+1:] != base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) || len(token) > channels.MaxJWT {
				t.Fatalf("VerifyJWT accepted %q, which the key did not sign", token)
			}
		} else if !errors.Is(err, channels.ErrBadJWT) {
			t.Fatalf("error %v does not wrap ErrBadJWT", err)
		}
	})
}

// TestPublishKey checks each Authorization form /publish/ takes with a
// PublishKey, and the 401 of the rest.
func TestPublishKey(t *testing.T) {
	ctx := testCtx(t)
	key := []byte("s3cret")
	srv := newServer(t, &channels.Handler{PublishKey: key}, hub.Options{})
	news, _ := join(t, srv.hub, "news")
	body := `{"items":[{"channel":"news","ws-message":{"content":"hi"}}]}`
	exp := time.Now().Add(time.Hour).Unix()
	jwt := signJWT(`{"typ":"JWT","alg":"HS256"}`, `{"iss":"me","exp":`+itoa(exp)+`}`, key)
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	tests := []struct {
		name string
		auth []string
		ok   bool
	}{
		{"JWT", []string{"Bearer " + jwt}, true},
		{"JWT, scheme in lower case", []string{"bearer " + jwt}, true},
		{"Bearer key", []string{"Bearer s3cret"}, true},
		{"Basic, key as password", []string{basic("anyone", "s3cret")}, true},
		{"Basic, no user", []string{basic("", "s3cret")}, true},
		{"Basic as pubcontrol 3 sends it on Python 3", []string{"Basic b'" + base64.StdEncoding.EncodeToString([]byte("u:s3cret")) + "'"}, true},
		{"none", nil, false},
		{"expired JWT", []string{"Bearer " + signJWT(`{"alg":"HS256"}`, `{"exp":1000}`, key)}, false},
		{"JWT of another key", []string{"Bearer " + signJWT(`{"alg":"HS256"}`, `{"exp":`+itoa(exp)+`}`, []byte("x"))}, false},
		{"JWT alg none", []string{"Bearer " + strings.Join(strings.Split(signJWT(`{"alg":"none"}`, `{"exp":`+itoa(exp)+`}`, key), ".")[:2], ".") + "."}, false},
		{"wrong Bearer key", []string{"Bearer s3cre"}, false},
		{"Basic, key as user", []string{basic("s3cret", "")}, false},
		{"Basic, not base64", []string{"Basic !!!"}, false},
		{"Basic, no colon", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("s3cret"))}, false},
		{"the key alone", []string{"s3cret"}, false},
		{"another scheme", []string{"Digest s3cret"}, false},
		{"two headers", []string{"Bearer s3cret", "Bearer s3cret"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{"Content-Type": {"application/json"}}
			if tt.auth != nil {
				hdr["Authorization"] = tt.auth
			}
			resp, b := do(t, ctx, http.MethodPost, srv.URL+"/publish/", hdr, body)
			if tt.ok {
				checkJSON(t, resp, b, map[string]any{"published": 1.0})
				if m := next(t, ctx, news); m.Text != "hi" {
					t.Fatalf("subscriber got %q", m.Text)
				}
				return
			}
			checkError(t, resp, b, http.StatusUnauthorized, handlers.CodeUnauthorized)
			if got := resp.Header.Values("WWW-Authenticate"); len(got) != 2 ||
				!strings.HasPrefix(got[0], "Bearer ") || !strings.HasPrefix(got[1], "Basic ") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer and a Basic challenge", got)
			}
			if strings.Contains(string(b), "s3cret") {
				t.Errorf("the answer quotes the key: %s", b)
			}
		})
	}
	// The key guards /publish/ only: POST /channels/NAME still publishes.
	resp, b := do(t, ctx, http.MethodPost, srv.URL+chanPath("news"), nil, "plain")
	checkJSON(t, resp, b, map[string]any{"channel": "news", "published": 1.0})
	if m := next(t, ctx, news); m.Text != "plain" {
		t.Fatalf("subscriber got %q, want plain", m.Text)
	}
	// Nothing refused was published.
	srv.hub.Deliver(msg("news", "last"))
	if m := next(t, ctx, news); m.Text != "last" {
		t.Fatalf("subscriber got %q, want last: a refused publish went through", m.Text)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
