package main

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/tokens/dpop/prover"
)

// descChar is RFC 6749 §5.2's error_description (and error_uri, error)
// character set: %x20-21 / %x23-5B / %x5D-7E.
func descChar(c byte) bool {
	return c == 0x20 || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E)
}

// checkRFC6749Error fails t unless r's error, error_description and every
// WWW-Authenticate parameter keep to RFC 6749 §5.2's characters and echo
// nothing of the request (marker).
func checkRFC6749Error(t *testing.T, r reply, marker string) {
	t.Helper()
	if r.status < 400 {
		t.Fatalf("got %d %s; want a refusal", r.status, r.raw)
	}
	for _, f := range []string{"error", "error_description"} {
		s, ok := r.body[f].(string)
		if !ok {
			t.Fatalf("%s missing: %s", f, r.raw)
		}
		for i := range len(s) {
			if !descChar(s[i]) {
				t.Fatalf("%s %q: byte %q at %d is outside %%x20-21 / %%x23-5B / %%x5D-7E (RFC 6749 §5.2)", f, s, s[i], i)
			}
		}
		if marker != "" && strings.Contains(s, marker) {
			t.Fatalf("%s %q echoes the request", f, s)
		}
	}
	for _, h := range r.header.Values("WWW-Authenticate") {
		// auth-params: name="value"; the value keeps to the same set
		for _, part := range strings.Split(h, `="`)[1:] {
			v, _, _ := strings.Cut(part, `"`)
			for i := range len(v) {
				if !descChar(v[i]) {
					t.Fatalf("WWW-Authenticate %q: byte %q outside RFC 6749 §5.2's set", h, v[i])
				}
			}
			if marker != "" && strings.Contains(v, marker) {
				t.Fatalf("WWW-Authenticate %q echoes the request", h)
			}
		}
	}
}

// rawProof signs header and claims as given with k: a client free to put
// anything in them.
func rawProof(t *testing.T, k *prover.Key, h, c map[string]any) string {
	t.Helper()
	p, err := k.Proof("POST", tokenURL, prover.Options{Edit: func(hh, cc map[string]any) {
		maps.Copy(hh, h)
		maps.Copy(cc, c)
		for n, v := range h {
			if v == nil {
				delete(hh, n)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// RFC 6749 §5.2: every error path of /oauth2/token and /oauth2/revoke
// answers an error_description of %x20-21 / %x23-5B / %x5D-7E from a fixed
// table, never text of the request or a library's error; the same for the
// parameters of WWW-Authenticate.
func TestOAuth2ErrorCharset(t *testing.T) {
	const marker = "EVIL"
	in := start(t, "memory", oauthEnv("TOKEND_CLIENTS", "ios-app"))
	_, rt := in.startFor("alice", "ios-app", "openid", "")
	device := newProver(t, "ES256")
	now := in.clock.Now()
	b64 := base64.RawURLEncoding
	seg := func(v any) string { b, _ := json.Marshal(v); return b64.EncodeToString(b) }
	good := mustProof(t, device, "POST", tokenURL, now)
	parts := strings.Split(good, ".")
	hostile := `"\` + marker + "§\x01"
	form := func(kv ...string) []byte {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return []byte(v.Encode())
	}
	const ct = "application/x-www-form-urlencoded"
	valid := refreshForm(rt, "ios-app")
	oauthPair(t, in.token(valid, "DPoP", good), "DPoP", "openid") // binds the session; good is replayed below
	proofs := [][2]string{
		{"typ", rawProof(t, device, map[string]any{"typ": hostile}, nil)},
		{"no typ", rawProof(t, device, map[string]any{"typ": nil}, nil)},
		{"alg", rawProof(t, device, map[string]any{"alg": hostile}, nil)},
		{"htm", rawProof(t, device, nil, map[string]any{"htm": hostile})},
		{"htu", rawProof(t, device, nil, map[string]any{"htu": "https://" + marker + `.test/"x`})},
		{"iat", rawProof(t, device, nil, map[string]any{"iat": now.Add(-time.Hour).Unix()})},
		{"no iat", rawProof(t, device, nil, map[string]any{"iat": nil})},
		{"jti", rawProof(t, device, nil, map[string]any{"jti": strings.Repeat("x", 300)})},
		{"jwk private", rawProof(t, device, map[string]any{"jwk": map[string]any{"kty": "EC", "d": hostile}}, nil)},
		{"jwk garbage", rawProof(t, device, map[string]any{"jwk": map[string]any{"kty": "EC", "crv": hostile, "x": hostile, "y": hostile}}, nil)},
		{"jwk unknown kty", rawProof(t, device, map[string]any{"jwk": map[string]any{"kty": hostile}}, nil)},
		{"jwk not an object", rawProof(t, device, map[string]any{"jwk": hostile}, nil)},
		{"header not JSON", b64.EncodeToString([]byte(hostile)) + "." + parts[1] + "." + parts[2]},
		{"header not base64", `"\` + marker + "." + parts[1] + "." + parts[2]},
		{"claims not JSON", parts[0] + "." + b64.EncodeToString([]byte(hostile)) + "." + parts[2]},
		{"signature truncated", parts[0] + "." + parts[1] + "." + parts[2][:20]},
		{"signature garbage", parts[0] + "." + parts[1] + "." + "!!" + marker},
		{"signature of zeros", parts[0] + "." + parts[1] + "." + b64.EncodeToString(make([]byte, 64))},
		{"two segments", parts[0] + "." + parts[1]},
		{"header of a string", seg(hostile) + "." + parts[1] + "." + parts[2]},
		{"replayed", good},
	}
	for _, p := range proofs {
		t.Run("DPoP "+p[0], func(t *testing.T) {
			checkRFC6749Error(t, in.token(valid, "DPoP", p[1]), marker)
		})
	}
	_, rt = in.startFor("bob", "ios-app", "openid", "") // unbound: the form's own checks
	for _, tc := range []struct {
		name, path, ctype string
		body              []byte
	}{
		{"content type", "/oauth2/token", "text/" + marker, form("grant_type", "refresh_token")},
		{"bad escape", "/oauth2/token", ct, []byte("grant_type=%zz" + marker)},
		{"grant type", "/oauth2/token", ct, form("grant_type", hostile, "client_id", "ios-app")},
		{"client", "/oauth2/token", ct, form("grant_type", "refresh_token", "refresh_token", rt, "client_id", hostile)},
		{"scope characters", "/oauth2/token", ct, form("grant_type", "refresh_token", "refresh_token", rt, "client_id", "ios-app", "scope", hostile)},
		{"scope beyond", "/oauth2/token", ct, form("grant_type", "refresh_token", "refresh_token", rt, "client_id", "ios-app", "scope", "admin"+marker)},
		{"refresh token", "/oauth2/token", ct, form("grant_type", "refresh_token", "refresh_token", hostile, "client_id", "ios-app")},
		{"repeated", "/oauth2/token", ct, form("grant_type", "refresh_token", "grant_type", "refresh_token")},
		{"over 4 KiB", "/oauth2/token", ct, form("grant_type", "refresh_token", "pad", strings.Repeat(marker, 2000))},
		{"revoke without token", "/oauth2/revoke", ct, form("client_id", "ios-app")},
		{"revoke unknown client", "/oauth2/revoke", ct, form("token", rt, "client_id", hostile)},
		{"revoke content type", "/oauth2/revoke", "application/json", []byte(`{"token":"` + marker + `"}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkRFC6749Error(t, in.do(http.MethodPost, in.public+tc.path, tc.ctype, tc.body), marker)
		})
	}
	t.Run("method", func(t *testing.T) {
		checkRFC6749Error(t, in.do(http.MethodGet, in.public+"/oauth2/token", "", nil), "")
	})
}
