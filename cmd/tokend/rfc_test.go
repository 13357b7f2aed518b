package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/dpop/prover"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
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

// rsaProof is an RS256 proof (RFC 9449 §4.2) signed by an RSA key of bits,
// its public key in the header; pad, when set, adds a claim of that many
// bytes.
func rsaProof(t *testing.T, priv *rsa.PrivateKey, iat time.Time, pad int) string {
	t.Helper()
	b64 := base64.RawURLEncoding
	jwk := map[string]any{"kty": "RSA", "n": b64.EncodeToString(priv.N.Bytes()), "e": "AQAB"}
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk})
	claims := map[string]any{"jti": rand.Text(), "htm": "POST", "htu": tokenURL, "iat": iat.Unix()}
	if pad > 0 {
		claims["pad"] = strings.Repeat("p", pad)
	}
	c, _ := json.Marshal(claims)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// The OpenAPI document's 8 KiB DPoP proof fits the public listener's
// headers, a proof with an RSA-4096 key among them (RFC 9449 §4.2); a
// larger one is invalid_dpop_proof, and headers over the listener's
// buffer are refused in RFC 6749 §5.2's shape on /oauth2/*, in the
// dialect's elsewhere.
func TestDPoPProofSize(t *testing.T) {
	in := start(t, "memory", oauthEnv("TOKEND_DPOP_ALGS", "ES256,RS256"))
	priv, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	_, rt := in.startFor("alice", "ios-app", "", "")
	p := rsaProof(t, priv, in.clock.Now(), 0)
	t.Logf("RSA-4096 proof: %d bytes", len(p))
	_, rt = oauthPair(t, in.token(refreshForm(rt, "ios-app"), "DPoP", p), "DPoP", "")

	// padded to just under 8 KiB: still a proof
	p = rsaProof(t, priv, in.clock.Now(), 0)
	p = rsaProof(t, priv, in.clock.Now(), (8192-len(p))*3/4-16)
	if len(p) > 8192 || len(p) < 8000 {
		t.Fatalf("padded proof of %d bytes", len(p))
	}
	_, rt = oauthPair(t, in.token(refreshForm(rt, "ios-app"), "DPoP", p), "DPoP", "")

	// over 8 KiB: refused by the proof's check, not the HTTP layer
	p = rsaProof(t, priv, in.clock.Now(), 0)
	p = rsaProof(t, priv, in.clock.Now(), (8400-len(p))*3/4)
	if len(p) <= 8192 || len(p) > 8600 {
		t.Fatalf("proof of %d bytes", len(p))
	}
	oauthError(t, in.token(refreshForm(rt, "ios-app"), "DPoP", p), 400, "invalid_dpop_proof", "DPoP proof: missing or over 8192 bytes")

	// headers over the listener's buffer: the HTTP layer refuses, in the
	// shape of the endpoint asked
	huge := strings.Repeat("h", 40<<10)
	for _, path := range []string{"/oauth2/token", "/oauth2/revoke"} {
		r := in.do(http.MethodPost, in.public+path, "application/x-www-form-urlencoded", []byte(refreshForm(rt, "ios-app").Encode()), "X-Pad", huge)
		oauthError(t, r, 431, "invalid_request", "the request headers are over the size limit")
	}
	r := in.do(http.MethodGet, in.public+"/.well-known/oauth-authorization-server", "", nil, "X-Pad", huge)
	oauthError(t, r, 431, "invalid_request", "the request headers are over the size limit")
	springError(t, in.do(http.MethodPost, in.public+"/api/auth/refresh", "application/json", []byte(`{}`), "X-Pad", huge),
		431, "Request header fields too large")
	// a header the HTTP layer cannot parse, and a request line with a
	// query: still the endpoint's shape
	for _, head := range []string{
		"POST /oauth2/token HTTP/1.1\r\nHost: tokend\r\nContent-Length: x\r\n\r\n",
		"POST /oauth2/token?x=1 HTTP/1.1\r\nHost: tokend\r\nX-Pad: " + huge + "\r\n\r\n",
	} {
		resp, body := rawHTTP(t, in.public, func(c net.Conn) { write(c, head) })
		var got map[string]any
		_ = json.Unmarshal(body, &got)
		if (resp.StatusCode != 400 && resp.StatusCode != 431) || got["error"] != "invalid_request" || len(got) != 2 {
			t.Fatalf("%.40q: %d %s; want RFC 6749's invalid_request", head, resp.StatusCode, body)
		}
	}
	// nothing refused above burned the session
	oauthPair(t, in.token(refreshForm(rt, "ios-app"), "DPoP", rsaProof(t, priv, in.clock.Now(), 0)), "DPoP", "")
}

// RFC 8414 §3.1: an issuer with a path (https://api.example.com/auth) has
// its metadata at /.well-known/oauth-authorization-server/auth, the
// well-known part first; tokend serves it there, and at the plain path for
// a gateway that maps the well-known URL to tokend's root.
func TestOAuth2MetadataPath(t *testing.T) {
	for _, public := range []string{"https://api.example.com/auth", "https://api.example.com/auth/"} {
		t.Run(public, func(t *testing.T) {
			in := start(t, "memory", map[string]string{"TOKEND_PUBLIC_URL": public})
			for _, path := range []string{"/.well-known/oauth-authorization-server/auth", "/.well-known/oauth-authorization-server"} {
				r := in.do(http.MethodGet, in.public+path, "", nil)
				if r.status != 200 || r.body["issuer"] != "https://api.example.com/auth" ||
					r.body["token_endpoint"] != "https://api.example.com/auth/oauth2/token" {
					t.Fatalf("GET %s = %d %s; want the metadata of issuer https://api.example.com/auth", path, r.status, r.raw)
				}
			}
			for _, path := range []string{"/.well-known/oauth-authorization-server/other", "/.well-known/oauth-authorization-server/auth/x",
				"/auth/.well-known/oauth-authorization-server"} {
				if r := in.do(http.MethodGet, in.public+path, "", nil); r.status != 404 {
					t.Fatalf("GET %s = %d %s; want 404", path, r.status, r.raw)
				}
			}
			r := in.do(http.MethodPost, in.public+"/.well-known/oauth-authorization-server/auth", "", nil)
			oauthError(t, r, 405, "invalid_request", "method not allowed")
		})
	}
	// no path in the issuer: nothing under the well-known path
	in := start(t, "memory", oauthEnv())
	if r := in.do(http.MethodGet, in.public+"/.well-known/oauth-authorization-server/auth", "", nil); r.status != 404 {
		t.Fatalf("suffix path without an issuer path = %d", r.status)
	}
}

// reissue re-signs token with iss set to iss: a token of an earlier
// version or issuer, signed with the same keys.
func reissue(t *testing.T, token string, typ tokens.Type, iss string) string {
	t.Helper()
	ks, err := tokens.HMACKeySet([]byte(testSecret), "HS256")
	if err != nil {
		t.Fatal(err)
	}
	codec := tokens.NewCodec(ks, "", tokens.SystemClock)
	var cl tokens.Claims
	if err := codec.Parse([]byte(token), typ, &cl); err != nil {
		t.Fatal(err)
	}
	cl.Issuer = iss
	b, err := codec.AppendToken(nil, typ, &cl)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// RFC 9068 §2.2 and RFC 8414 §3.3: the access tokens' iss is the
// metadata's issuer, in every configuration; tokens issued before an
// upgrade (iss "tokend") or under a former issuer keep working until they
// expire.
func TestIssuerIsMetadataIssuer(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"default", map[string]string{}, "http://localhost:0"},
		{"public URL", oauthEnv(), publicURL},
		{"trailing slash", map[string]string{"TOKEND_PUBLIC_URL": publicURL + "/"}, publicURL},
		{"with a path", map[string]string{"TOKEND_PUBLIC_URL": "https://api.example.com/auth"}, "https://api.example.com/auth"},
		{"aspnet", map[string]string{"TOKEND_PUBLIC_URL": publicURL, "TOKEND_DIALECT": "aspnet"}, publicURL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := start(t, "memory", tc.env)
			md := in.do(http.MethodGet, in.public+"/.well-known/oauth-authorization-server", "", nil)
			access, rt := in.startFor("alice", "ios-app", "", "")
			_, dialect := decodeJWT(t, access)
			oauthAccess, _ := oauthPair(t, in.token(refreshForm(rt, "ios-app")), "Bearer", "")
			_, oauth := decodeJWT(t, oauthAccess)
			intro := in.introspect(oauthAccess)
			if md.body["issuer"] != tc.want || dialect["iss"] != tc.want || oauth["iss"] != tc.want || intro.body["iss"] != tc.want {
				t.Fatalf("metadata issuer %v, dialect token iss %v, /oauth2/token iss %v, introspection iss %v; want all %q",
					md.body["issuer"], dialect["iss"], oauth["iss"], intro.body["iss"], tc.want)
			}
		})
	}
	t.Run("upgrade and change of issuer", func(t *testing.T) {
		redis := redistest.Start(t)
		old := start(t, "redis", oauthEnv("TOKEND_REDIS_ADDR", redis.Addr))
		access, rt := old.startFor("alice", "ios-app", "", "")
		// what the previous version issued: iss "tokend"
		access0, rt0 := old.startFor("bob", "ios-app", "", "")
		access0, rt0 = reissue(t, access0, tokens.Access, "tokend"), reissue(t, rt0, tokens.Refresh, "tokend")
		for _, in := range []*instance{old, start(t, "redis", map[string]string{
			"TOKEND_REDIS_ADDR": redis.Addr, "TOKEND_PUBLIC_URL": "https://new.example.test",
			"TOKEND_ACCEPTED_ISSUERS": "tokend," + publicURL,
		})} {
			for _, a := range []string{access, access0} {
				if r := in.introspect(a); r.body["active"] != true {
					t.Fatalf("%s: a token of an earlier issuer is refused: %s", in.public, r.raw)
				}
			}
		}
		in := start(t, "redis", map[string]string{
			"TOKEND_REDIS_ADDR": redis.Addr, "TOKEND_PUBLIC_URL": "https://new.example.test",
			"TOKEND_ACCEPTED_ISSUERS": "tokend," + publicURL,
		})
		a, _ := oauthPair(t, in.token(refreshForm(rt, "ios-app")), "Bearer", "")
		if _, cl := decodeJWT(t, a); cl["iss"] != "https://new.example.test" {
			t.Fatalf("iss %v after the change", cl["iss"])
		}
		oauthPair(t, in.token(refreshForm(rt0, "ios-app")), "Bearer", "")
		// an issuer never accepted is still refused
		forged := reissue(t, access, tokens.Access, "https://evil.example.test")
		if r := in.introspect(forged); r.body["active"] != false {
			t.Fatalf("a token of another issuer is accepted: %s", r.raw)
		}
	})
}

// RFC 9068 §2.2 and §4, RFC 8707 §2: /oauth2/token's access tokens carry
// aud, TOKEND_AUDIENCE's first by default, the one `resource` names if it
// is one of them, invalid_target otherwise; the dialect's tokens carry none
// unless TOKEND_DIALECT_AUDIENCE asks; tokens.Verifier checks the audience
// it is given.
func TestAudience(t *testing.T) {
	const api, billing = "https://api.example.test", "https://billing.example.test"
	in := start(t, "memory", oauthEnv("TOKEND_AUDIENCE", api+", "+billing))
	access, rt := in.startFor("alice", "ios-app", "", "")
	if _, cl := decodeJWT(t, access); cl["aud"] != nil {
		t.Fatalf("the dialect's token carries aud %v; want none, as the old backends'", cl["aud"])
	}
	a, rt := oauthPair(t, in.token(refreshForm(rt, "ios-app")), "Bearer", "")
	if _, cl := decodeJWT(t, a); cl["aud"] != api {
		t.Fatalf("aud %v; want the first of TOKEND_AUDIENCE, %s", cl["aud"], api)
	}
	form := refreshForm(rt, "ios-app")
	form.Set("resource", billing)
	a, rt = oauthPair(t, in.token(form), "Bearer", "")
	if _, cl := decodeJWT(t, a); cl["aud"] != billing {
		t.Fatalf("aud %v; want the resource asked, %s", cl["aud"], billing)
	}
	for _, tc := range []struct{ name, body, code, desc string }{
		{"unknown resource", "resource=" + url.QueryEscape("https://evil.example.test"), "invalid_target", "the resource is not one of this server's audiences"},
		{"a prefix of one", "resource=" + url.QueryEscape("https://api.example.test/x"), "invalid_target", "the resource is not one of this server's audiences"},
		{"two resources", "resource=" + url.QueryEscape(api) + "&resource=" + url.QueryEscape(billing), "invalid_target", "one resource per request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := refreshForm(rt, "ios-app").Encode() + "&" + tc.body
			oauthError(t, in.do(http.MethodPost, in.public+"/oauth2/token", "application/x-www-form-urlencoded", []byte(body)), 400, tc.code, tc.desc)
		})
	}
	// a refusal burned nothing; the Verifier a resource server runs
	// accepts the token for its own audience only
	a, _ = oauthPair(t, in.token(refreshForm(rt, "ios-app")), "Bearer", "")
	ks, err := tokens.HMACKeySet([]byte(testSecret), "HS256")
	if err != nil {
		t.Fatal(err)
	}
	for aud, ok := range map[string]bool{api: true, billing: false, "": true} {
		v := tokens.NewVerifier(ks, publicURL, in.clock)
		v.SetAudience(aud)
		var cl tokens.Claims
		if err := v.Verify(t.Context(), []byte(a), &cl); (err == nil) != ok {
			t.Fatalf("Verifier of audience %q: %v; want accepted %v", aud, err, ok)
		}
	}
	// the dialect's tokens carry none for a Verifier that asks for one
	v := tokens.NewVerifier(ks, publicURL, in.clock)
	v.SetAudience(api)
	var cl tokens.Claims
	if err := v.Verify(t.Context(), []byte(access), &cl); !errors.Is(err, tokens.ErrInvalid) {
		t.Fatalf("a token without aud: %v; want ErrInvalid", err)
	}

	t.Run("no TOKEND_AUDIENCE: the issuer", func(t *testing.T) {
		in := start(t, "memory", oauthEnv())
		_, rt := in.startFor("alice", "ios-app", "", "")
		a, _ := oauthPair(t, in.token(refreshForm(rt, "ios-app")), "Bearer", "")
		if _, cl := decodeJWT(t, a); cl["aud"] != publicURL {
			t.Fatalf("aud %v; want %s", cl["aud"], publicURL)
		}
	})
	t.Run("TOKEND_DIALECT_AUDIENCE", func(t *testing.T) {
		in := start(t, "memory", oauthEnv("TOKEND_AUDIENCE", api, "TOKEND_DIALECT_AUDIENCE", "true"))
		access, _ := in.startFor("alice", "ios-app", "", "")
		if _, cl := decodeJWT(t, access); cl["aud"] != api {
			t.Fatalf("dialect aud %v; want %s", cl["aud"], api)
		}
	})
}
