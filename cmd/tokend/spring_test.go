package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"hash"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens"
)

var timestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$`)

// mint signs a token the way tokend does, with the test secret and any
// claims: for tokens tokend would never issue (expired, unknown session).
func mint(t *testing.T, typ tokens.Type, at time.Time, cl tokens.Claims) string {
	t.Helper()
	ks, err := tokens.HMACKeySet([]byte(testSecret), "HS256")
	if err != nil {
		t.Fatal(err)
	}
	c := tokens.NewCodec(ks, "tokend", tokens.ClockFunc(func() time.Time { return at }))
	cl.Issuer = "tokend"
	tok, err := c.AppendToken(nil, typ, &cl)
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// legacyToken is a refresh token as the old spring backend minted it.
func legacyToken(sub string, iat, exp time.Time) string {
	return hs256(`{"alg":"HS256"}`, `{"sub":"`+sub+`","iat":`+strconv.FormatInt(iat.Unix(), 10)+`,"exp":`+strconv.FormatInt(exp.Unix(), 10)+`}`)
}

// hs256 signs any header and claims with the test secret.
func hs256(header, claims string) string { return signHMAC(sha256.New, testSecret, header, claims) }

// signHMAC signs any header and claims, as no well-behaved issuer would.
func signHMAC(h func() hash.Hash, secret, header, claims string) string {
	b64 := base64.RawURLEncoding
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	m := hmac.New(h, []byte(secret))
	m.Write([]byte(input))
	return input + "." + b64.EncodeToString(m.Sum(nil))
}

// TestSpringSuccess: the 200 body of the seed, field for field.
func TestSpringSuccess(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, nil)
			_, rt := in.login("7f36a89d-1234-4567-8901-234567890abc")
			r := in.refresh(rt)
			if r.status != 200 {
				t.Fatalf("refresh = %d %s", r.status, r.raw)
			}
			if len(r.body) != 2 || !timestampRE.MatchString(r.body["timestamp"].(string)) {
				t.Fatalf("body %s: want exactly timestamp and result", r.raw)
			}
			res := r.body["result"].(map[string]any)
			want := map[string]any{"tokenType": "Bearer", "accessTokenExpiresIn": float64(1800000), "refreshTokenExpiresIn": float64(2592000000)}
			for k, v := range want {
				if res[k] != v {
					t.Errorf("result.%s = %v; want %v", k, res[k], v)
				}
			}
			if len(res) != 5 {
				t.Errorf("result has %d fields; want 5: %s", len(res), r.raw)
			}
			access, refresh := pair(t, r)
			if refresh == rt {
				t.Error("the refresh token was not rotated")
			}
			hdr, claims := decodeJWT(t, access)
			if hdr["typ"] != "at+jwt" || hdr["kid"] == nil || hdr["alg"] != "HS256" {
				t.Errorf("access header %v", hdr)
			}
			for _, c := range []string{"iss", "sub", "iat", "nbf", "exp", "jti", "sid"} {
				if claims[c] == nil {
					t.Errorf("access token lacks %s: %v", c, claims)
				}
			}
			if claims["sub"] != "7f36a89d-1234-4567-8901-234567890abc" {
				t.Errorf("sub = %v", claims["sub"])
			}
			if hdr, claims := decodeJWT(t, refresh); hdr["typ"] != "refresh+jwt" || claims["gen"] != float64(1) {
				t.Errorf("refresh token header %v claims %v", hdr, claims)
			}
		})
	}
}

// TestSpringSettingsShapeExpiresIn: the expiresIn fields follow the settings.
func TestSpringSettingsShapeExpiresIn(t *testing.T) {
	in := start(t, "memory", map[string]string{"TOKEND_ACCESS_TTL": "5m", "TOKEND_REFRESH_TTL": "48h"})
	_, rt := in.login("alice")
	res := in.refresh(rt).body["result"].(map[string]any)
	if res["accessTokenExpiresIn"] != float64(300000) || res["refreshTokenExpiresIn"] != float64(172800000) {
		t.Fatalf("expiresIn = %v, %v; want 300000, 172800000", res["accessTokenExpiresIn"], res["refreshTokenExpiresIn"])
	}
}

func decodeJWT(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a JWS", tok)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			t.Fatalf("segment %d of %q", i, tok)
		}
	}
	return header, claims
}

// TestSpringErrors: every row of the seed's error list, over HTTP.
func TestSpringErrors(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, nil)
			access, rt := in.login("alice")
			now := in.clock.Now()
			expired := mint(t, tokens.Refresh, now, tokens.Claims{Subject: "alice", Session: "x", Gen: 0, IssuedAt: now.Add(-2 * time.Hour).Unix(), Expires: now.Add(-time.Hour).Unix()})
			unknownSession := mint(t, tokens.Refresh, now, tokens.Claims{Subject: "alice", Session: "no-such-session", Gen: 0, IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
			parts := strings.Split(rt, ".")
			badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
			b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
			cases := []struct {
				name, contentType, body string
				status                  int
				message                 string
			}{
				{"not JSON", "application/json", `refreshToken=abc`, 400, "Invalid request body"},
				{"JSON array", "application/json", `["abc"]`, 400, "Invalid request body"},
				{"JSON string", "application/json", `"abc"`, 400, "Invalid request body"},
				{"empty body", "application/json", ``, 400, "Invalid request body"},
				{"field missing", "application/json", `{}`, 400, "Invalid request body"},
				{"field of another case", "application/json", `{"RefreshToken":"` + rt + `"}`, 400, "Invalid request body"},
				{"field null", "application/json", `{"refreshToken":null}`, 400, "Invalid request body"},
				{"field empty", "application/json", `{"refreshToken":""}`, 400, "Invalid request body"},
				{"field blank", "application/json", `{"refreshToken":"  \t "}`, 400, "Invalid request body"},
				{"field a number", "application/json", `{"refreshToken":42}`, 400, "Invalid request body"},
				{"field an object", "application/json", `{"refreshToken":{"a":1}}`, 400, "Invalid request body"},
				{"trailing garbage", "application/json", `{"refreshToken":"` + rt + `"} x`, 400, "Invalid request body"},
				{"body over 12 KiB", "application/json", `{"refreshToken":"` + strings.Repeat("a", 12<<10) + `"}`, 400, "Invalid request body"},
				{"wrong content type", "text/plain", `{"refreshToken":"` + rt + `"}`, 400, "Invalid request body"},
				{"no content type", "", `{"refreshToken":"` + rt + `"}`, 400, "Invalid request body"},
				{"expired", "application/json", `{"refreshToken":"` + expired + `"}`, 401, "JWT token has expired"},
				{"one segment", "application/json", `{"refreshToken":"abc"}`, 401, "Invalid token format"},
				{"two segments", "application/json", `{"refreshToken":"abc.def"}`, 401, "Invalid token format"},
				{"four segments", "application/json", `{"refreshToken":"` + rt + `.x"}`, 401, "Invalid token format"},
				{"not base64url", "application/json", `{"refreshToken":"a$b.c.d"}`, 401, "Invalid token format"},
				{"header not JSON", "application/json", `{"refreshToken":"` + b64("nope") + "." + parts[1] + "." + parts[2] + `"}`, 401, "Invalid token format"},
				{"claims not JSON", "application/json", `{"refreshToken":"` + parts[0] + "." + b64("nope") + "." + parts[2] + `"}`, 401, "Invalid token format"},
				{"bad signature", "application/json", `{"refreshToken":"` + badSig + `"}`, 401, "Invalid JWT token"},
				{"unknown kid", "application/json", `{"refreshToken":"` + hs256(`{"alg":"HS256","kid":"nope","typ":"refresh+jwt"}`, `{"sub":"a","sid":"s","gen":0,"exp":9999999999}`) + `"}`, 401, "Invalid JWT token"},
				{"alg none", "application/json", `{"refreshToken":"` + b64(`{"alg":"none","typ":"refresh+jwt"}`) + "." + parts[1] + `."}`, 401, "Invalid JWT token"},
				{"alg switched", "application/json", `{"refreshToken":"` + hs256(`{"alg":"HS512","kid":"hmac-HS256","typ":"refresh+jwt"}`, `{"sub":"a","sid":"s","gen":0,"exp":9999999999}`) + `"}`, 401, "Invalid JWT token"},
				{"access token as refresh token", "application/json", `{"refreshToken":"` + access + `"}`, 401, "Invalid JWT token"},
				{"legacy token while legacy is off", "application/json", `{"refreshToken":"` + legacyToken("alice", now, now.Add(time.Hour)) + `"}`, 401, "Invalid JWT token"},
				{"unknown session", "application/json", `{"refreshToken":"` + unknownSession + `"}`, 401, "Invalid JWT token"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r := in.do(http.MethodPost, in.public+"/api/auth/refresh", tc.contentType, []byte(tc.body))
					springError(t, r, tc.status, tc.message)
				})
			}
			// none of that burned the session
			if r := in.refresh(rt); r.status != 200 {
				t.Fatalf("refresh after the bad requests = %d %s", r.status, r.raw)
			}
		})
	}
}

// TestSpringRotation: every row of the rotation table (DESIGN §4).
func TestSpringRotation(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, nil)

			t.Run("advance", func(t *testing.T) {
				_, rt0 := in.login("alice")
				_, rt1 := pair(t, in.refresh(rt0))
				_, rt2 := pair(t, in.refresh(rt1))
				if rt2 == rt1 || rt1 == rt0 {
					t.Fatal("tokens did not change")
				}
			})
			t.Run("retry inside grace gets the same pair", func(t *testing.T) {
				_, rt0 := in.login("alice")
				first := in.refresh(rt0)
				in.clock.Advance(9 * time.Second)
				again := in.refresh(rt0)
				if again.status != 200 {
					t.Fatalf("retry = %d %s", again.status, again.raw)
				}
				a1, r1 := pair(t, first)
				a2, r2 := pair(t, again)
				if a1 != a2 || r1 != r2 {
					t.Fatal("a retry must hand back the pair already issued")
				}
				// 9 s later the same tokens have 9 s less to live
				ttl := func(r reply, k string) any { return r.body["result"].(map[string]any)[k] }
				if ttl(first, "accessTokenExpiresIn") != float64(1800000) || ttl(again, "accessTokenExpiresIn") != float64(1800000-9000) ||
					ttl(again, "refreshTokenExpiresIn") != ttl(first, "refreshTokenExpiresIn").(float64)-9000 {
					t.Fatalf("retry announces %v and %v; the rotation announced %v and %v", ttl(again, "accessTokenExpiresIn"),
						ttl(again, "refreshTokenExpiresIn"), ttl(first, "accessTokenExpiresIn"), ttl(first, "refreshTokenExpiresIn"))
				}
				// the session did not move: the newest token still works once
				if r := in.refresh(r1); r.status != 200 {
					t.Fatalf("refresh with the newest token = %d", r.status)
				}
			})
			t.Run("parent after grace is reuse and revokes", func(t *testing.T) {
				_, rt0 := in.login("alice")
				_, rt1 := pair(t, in.refresh(rt0))
				in.clock.Advance(10 * time.Second)
				springError(t, in.refresh(rt0), 401, "Invalid JWT token")
				springError(t, in.refresh(rt1), 401, "Invalid JWT token")
				if !strings.Contains(in.logs.String(), "reuse detected") {
					t.Fatal("reuse was not logged")
				}
				if strings.Contains(in.logs.String(), rt0) {
					t.Fatal("a token appeared in the log")
				}
			})
			t.Run("grandparent is reuse even inside grace", func(t *testing.T) {
				_, rt0 := in.login("alice")
				_, rt1 := pair(t, in.refresh(rt0))
				_, rt2 := pair(t, in.refresh(rt1))
				springError(t, in.refresh(rt0), 401, "Invalid JWT token")
				springError(t, in.refresh(rt2), 401, "Invalid JWT token")
			})
			t.Run("missing session", func(t *testing.T) {
				now := in.clock.Now()
				tok := mint(t, tokens.Refresh, now, tokens.Claims{Subject: "alice", Session: "gone", Gen: 4, IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
				springError(t, in.refresh(tok), 401, "Invalid JWT token")
			})
			t.Run("revoked by logout", func(t *testing.T) {
				_, rt0 := in.login("alice")
				r := in.postJSON(in.public+"/api/auth/revoke", `{"refreshToken":"`+rt0+`"}`)
				if r.status != 204 || len(r.raw) != 0 {
					t.Fatalf("revoke = %d %q; want 204", r.status, r.raw)
				}
				springError(t, in.refresh(rt0), 401, "Invalid JWT token")
			})
		})
	}
}

// TestSessionEnds: a session refreshed every day still ends at
// TOKEND_SESSION_MAX, and an idle one when its refresh token expires.
func TestSessionEnds(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, map[string]string{"TOKEND_SESSION_MAX": "72h", "TOKEND_REFRESH_TTL": "48h"})
			_, rt := in.login("alice")
			for i := 0; i < 2; i++ {
				in.clock.Advance(30 * time.Hour)
				r := in.refresh(rt)
				if r.status != 200 {
					t.Fatalf("day %d: %d %s", i, r.status, r.raw)
				}
				_, rt = pair(t, r)
				if i == 1 {
					// at +60h only 12h of the session remain: the token says so
					if got := r.body["result"].(map[string]any)["refreshTokenExpiresIn"]; got != float64(12*time.Hour/time.Millisecond) {
						t.Fatalf("refreshTokenExpiresIn = %v; want 12h, capped at the session's end", got)
					}
				}
			}
			in.clock.Advance(12 * time.Hour)
			springError(t, in.refresh(rt), 401, "JWT token has expired")

			_, idle := in.login("bob")
			in.clock.Advance(48 * time.Hour)
			springError(t, in.refresh(idle), 401, "JWT token has expired")
		})
	}
}

// TestRevokeIsNoOracle: logout answers 204 whatever the token, 400 for a
// malformed body.
func TestRevokeIsNoOracle(t *testing.T) {
	in := start(t, "memory", nil)
	for _, tok := range []string{"junk", "a.b.c", legacyToken("x", time.Now(), time.Now().Add(time.Hour))} {
		if r := in.postJSON(in.public+"/api/auth/revoke", `{"refreshToken":"`+tok+`"}`); r.status != 204 {
			t.Fatalf("revoke(%q) = %d; want 204", tok, r.status)
		}
	}
	springError(t, in.postJSON(in.public+"/api/auth/revoke", `{}`), 400, "Invalid request body")
}

// TestLegacyTokens: with TOKEND_LEGACY_TOKENS, an old backend's refresh token
// is accepted once and starts a tracked session.
func TestLegacyTokens(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, map[string]string{"TOKEND_LEGACY_TOKENS": "true"})
			now := in.clock.Now()
			old := legacyToken("7f36a89d", now.Add(-time.Hour), now.Add(7*24*time.Hour))
			r := in.refresh(old)
			if r.status != 200 {
				t.Fatalf("legacy refresh = %d %s", r.status, r.raw)
			}
			_, rt := pair(t, r)
			if _, cl := decodeJWT(t, rt); cl["sub"] != "7f36a89d" || cl["sid"] == nil {
				t.Fatalf("new refresh token claims %v", cl)
			}
			if r := in.refresh(rt); r.status != 200 {
				t.Fatalf("refresh of the adopted session = %d %s", r.status, r.raw)
			}
			in.clock.Advance(time.Minute)
			springError(t, in.refresh(old), 401, "Invalid JWT token")
			expiredOld := legacyToken("x", now.Add(-48*time.Hour), now.Add(-time.Hour))
			springError(t, in.refresh(expiredOld), 401, "JWT token has expired")
		})
	}
}

// TestLegacyTokenAcceptedOnce: a legacy token is accepted at most once for
// as long as it could be presented, and never after its own revocation or
// its user's deletion (issue 25, item 11).
func TestLegacyTokenAcceptedOnce(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			// sessions end after 2s: their records go while the legacy tokens
			// (7 days) stay valid. No denylist: the store must refuse on its own
			// (a denylist forgets after two access-token lifetimes).
			in := start(t, store, map[string]string{"TOKEND_LEGACY_TOKENS": "true", "TOKEND_SESSION_MAX": "2s", "TOKEND_DENYLIST_SIZE": "0"})
			now := in.clock.Now()
			legacy := func(sub string) string { return legacyToken(sub, now.Add(-time.Hour), now.Add(7*24*time.Hour)) }
			oauthRevoke := func(token string) {
				t.Helper()
				v := url.Values{"token": {token}, "client_id": {"ios-app"}}
				if r := in.do(http.MethodPost, in.public+"/oauth2/revoke", "application/x-www-form-urlencoded", []byte(v.Encode())); r.status != 200 {
					t.Fatalf("/oauth2/revoke = %d %s", r.status, r.raw)
				}
			}
			springRevoke := func(token string) {
				t.Helper()
				if r := in.postJSON(in.public+"/api/auth/revoke", `{"refreshToken":"`+token+`"}`); r.status != 204 {
					t.Fatalf("/api/auth/revoke = %d %s", r.status, r.raw)
				}
			}

			refused := func(what, token string) {
				t.Helper()
				if r := in.refresh(token); r.status != 401 {
					t.Errorf("%s: refresh = %d %s; want 401", what, r.status, r.raw)
				}
			}

			// logged out before its first use, by either endpoint
			erin, frank := legacy("erin"), legacy("frank")
			springRevoke(erin)
			oauthRevoke(frank)
			refused("logged out (/api/auth/revoke) before its first use", erin)
			refused("logged out (/oauth2/revoke) before its first use", frank)

			// its user deleted before its first use
			dave := legacy("dave")
			if r := in.do(http.MethodDelete, in.admin+"/admin/subjects/dave", "", nil); r.status != 200 || r.body["revoked"] != float64(0) {
				t.Fatalf("DELETE dave = %d %s; want 200, revoked 0", r.status, r.raw)
			}
			refused("its user deleted before its first use", dave)

			// "log out everywhere" before its first use
			ivan := legacy("ivan")
			if r := in.postJSON(in.admin+"/admin/subjects/ivan/revoke", ""); r.status != 200 {
				t.Fatalf("revoke ivan = %d %s", r.status, r.raw)
			}
			refused("its user logged out everywhere before its first use", ivan)

			// adopted, then logged out (with the new token, or the legacy one);
			// adopted and never logged out (a thief's copy): each record goes
			// before its legacy token expires
			grace, judy, heidi := legacy("grace"), legacy("judy"), legacy("heidi")
			for _, old := range []string{grace, judy, heidi} {
				if r := in.refresh(old); r.status != 200 {
					t.Fatalf("first use of a legacy token = %d %s", r.status, r.raw)
				}
			}
			springRevoke(grace)                // the legacy token itself, adopted already
			_, rt := pair(t, in.refresh(judy)) // a retry inside the grace window: the same pair
			springRevoke(rt)
			in.clock.Advance(3 * time.Second)
			if store == "redis" {
				time.Sleep(3 * time.Second) // Redis expires records by its own clock
			}
			refused("adopted, logged out by the legacy token, record expired", grace)
			refused("adopted, logged out by its new token, record expired", judy)
			refused("adopted, record expired (a thief's copy)", heidi)
			springError(t, in.refresh(erin), 401, "Invalid JWT token") // and still refused, with the spring body
		})
	}
}
