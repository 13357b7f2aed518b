package main

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens"
)

// aspnetSecret is the HS512 secret of the aspnet instances, as long as the
// hash (shorter secrets are refused).
const aspnetSecret = "aspnet-e2e-secret-0123456789abcdef-0123456789abcdef-0123456789abcdef"

var aspnetEnv = map[string]string{"TOKEND_DIALECT": "aspnet", "TOKEND_HMAC_SECRET": aspnetSecret, "TOKEND_HMAC_ALG": "HS512"}

func startAspnet(t *testing.T, store string, extra map[string]string) *instance {
	t.Helper()
	env := map[string]string{}
	for k, v := range aspnetEnv {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return start(t, store, env)
}

// aspnetPair extracts the tokens of an aspnet success body, which has
// exactly the two fields.
func aspnetPair(t *testing.T, r reply) (token, refresh string) {
	t.Helper()
	token, _ = r.body["Token"].(string)
	refresh, _ = r.body["RefreshToken"].(string)
	if r.status != 200 || token == "" || refresh == "" || len(r.body) != 2 {
		t.Fatalf("want 200 {Token, RefreshToken}; got %d %s", r.status, r.raw)
	}
	return token, refresh
}

func (in *instance) aspnetLogin(sub string) (token, refresh string) {
	in.t.Helper()
	return aspnetPair(in.t, in.postJSON(in.admin+"/admin/sessions", `{"sub":"`+sub+`"}`))
}

func (in *instance) aspnetRefresh(token, refresh string) reply {
	in.t.Helper()
	b, _ := json.Marshal(map[string]string{"Token": token, "RefreshToken": refresh})
	return in.postJSON(in.public+"/api/auth/refresh", string(b))
}

type aspnetEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Type    string `json:"type"`
}

// aspnetError asserts an aspnet error: the status and exactly the envelope
// {"errors":[...]} holding want.
func aspnetError(t *testing.T, r reply, status int, want ...aspnetEntry) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d; want %d (body %s)", r.status, status, r.raw)
	}
	var got map[string][]aspnetEntry
	dec := json.NewDecoder(strings.NewReader(string(r.raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil || len(got) != 1 || !reflect.DeepEqual(got["errors"], want) {
		t.Fatalf("body %s; want exactly {\"errors\": %+v}", r.raw, want)
	}
	var fields []map[string]any // no member beyond code, message, type
	_ = json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(string(r.raw), `{"errors":`), "}")), &fields)
	for _, f := range fields {
		if len(f) != 3 {
			t.Fatalf("error entry %v; want exactly code, message, type", f)
		}
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
}

var (
	invalidRefreshToken = aspnetEntry{"invalid_refresh_token", "Invalid refresh token", "NotFound"}
	userNotFound        = aspnetEntry{"user_not_found", "User not found", "NotFound"}
	invalidToken        = aspnetEntry{"invalid_token", "Invalid token", "Unauthorized"}
)

func validation(message string) aspnetEntry {
	return aspnetEntry{"invalid_request", message, "Validation"}
}

// aspnetCodec signs and MACs tokens the way the aspnet instances do, at a
// given time: for tokens tokend would not issue (expired, unknown session).
func aspnetCodec(t *testing.T, secret string, at time.Time) (*tokens.Codec, tokens.Opaque) {
	t.Helper()
	ks, err := tokens.HMACKeySet([]byte(secret), "HS512")
	if err != nil {
		t.Fatal(err)
	}
	c := tokens.NewCodec(ks, "tokend", tokens.ClockFunc(func() time.Time { return at }))
	return c, tokens.Opaque{Codec: c}
}

func newSID(t *testing.T) string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hs512 signs any header and claims with the aspnet secret.
func hs512(header, claims string) string { return signHMAC(sha512.New, aspnetSecret, header, claims) }

// TestAspnetSuccess: the seed's 200, and tokens shaped as DESIGN §1-2 say.
func TestAspnetSuccess(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := startAspnet(t, store, nil)
			const user = "4ef1c711-06ff-41ea-888a-456579e447d6"
			tok0, rt0 := in.aspnetLogin(user)
			tok1, rt1 := aspnetPair(t, in.aspnetRefresh(tok0, rt0))
			if tok1 == tok0 || rt1 == rt0 {
				t.Fatal("the pair was not rotated")
			}
			hdr, claims := decodeJWT(t, tok1)
			if hdr["alg"] != "HS512" || hdr["typ"] != "at+jwt" || hdr["kid"] == nil {
				t.Errorf("Token header %v; want HS512, at+jwt, a kid", hdr)
			}
			for _, c := range []string{"nameid", "sub", "nbf", "iat", "exp", "sid", "jti", "iss"} {
				if claims[c] == nil {
					t.Errorf("Token lacks %s: %v", c, claims)
				}
			}
			if claims["nameid"] != user || claims["sub"] != user {
				t.Errorf("nameid %v, sub %v; want both %s", claims["nameid"], claims["sub"], user)
			}
			if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 1800 || claims["nbf"] != iat {
				t.Errorf("iat %v nbf %v exp %v; want nbf = iat, exp = iat + 30m", iat, claims["nbf"], exp)
			}
			for _, rt := range []string{rt0, rt1} {
				raw, err := base64.StdEncoding.Strict().DecodeString(rt)
				if len(rt) != 88 || err != nil || len(raw) != 64 {
					t.Errorf("RefreshToken %q: want 88 characters of padded standard base64 holding 64 bytes", rt)
				}
			}
			// the response spells the properties as the seed does
			if !strings.HasPrefix(string(in.aspnetRefresh(tok1, rt1).raw), `{"Token":"`) {
				t.Error(`response does not start with {"Token":`)
			}
		})
	}
}

// TestAspnetNames: property names match in any case, unknown ones are ignored.
func TestAspnetNames(t *testing.T) {
	in := startAspnet(t, "memory", nil)
	tok, rt := in.aspnetLogin("alice")
	for _, body := range []string{
		`{"token":%q,"refreshToken":%q}`,
		`{"TOKEN":%q,"REFRESHTOKEN":%q,"deviceId":"x"}`,
		`{"tOkEn":%q,"RefreshToken":%q,"extra":{"Token":1}}`,
	} {
		r := in.postJSON(in.public+"/api/auth/refresh", sprintf(body, tok, rt))
		tok, rt = aspnetPair(t, r)
	}
}

// sprintf fills the two %q of format with tok and rt as JSON strings.
func sprintf(format, tok, rt string) string {
	format = strings.Replace(format, "%q", quote(tok), 1)
	return strings.Replace(format, "%q", quote(rt), 1)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestAspnetExpiredToken: the Token may have expired long ago; its signature
// must still verify.
func TestAspnetExpiredToken(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := startAspnet(t, store, nil)
			tok, rt := in.aspnetLogin("alice")
			in.clock.Advance(6 * time.Hour)
			tok2, rt2 := aspnetPair(t, in.aspnetRefresh(tok, rt))
			if _, cl := decodeJWT(t, tok2); int64(cl["iat"].(float64)) != in.clock.Now().Unix() {
				t.Fatalf("new Token iat %v; want now", cl["iat"])
			}
			aspnetPair(t, in.aspnetRefresh(tok2, rt2))
		})
	}
}

// TestAspnetOutcomes: every answer of the seed and DESIGN §1, over HTTP, on
// both stores; none of the refused requests burns the session.
func TestAspnetOutcomes(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := startAspnet(t, store, nil)
			tok, rt := in.aspnetLogin("alice")
			bobTok, bobRT := in.aspnetLogin("bob")
			now := in.clock.Now()
			codec, opaque := aspnetCodec(t, aspnetSecret, now)
			otherCodec, otherOpaque := aspnetCodec(t, strings.Repeat("x", 64), now)

			access := func(c *tokens.Codec, sub string) string {
				b, err := c.AppendToken(nil, tokens.Access, &tokens.Claims{Issuer: "tokend", Subject: sub, NameID: sub, Session: newSID(t), Gen: 0,
					IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(30 * time.Minute).Unix()})
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			refresh := func(o tokens.Opaque, sid string, gen int64, exp time.Time) string {
				b, err := o.AppendRefresh(nil, &tokens.Claims{Session: sid, Gen: gen, Expires: exp.Unix()})
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			flip := func(s string, i int) string {
				raw, _ := base64.StdEncoding.DecodeString(s)
				raw[i] ^= 1
				return base64.StdEncoding.EncodeToString(raw)
			}
			random := make([]byte, 64)
			rand.Read(random)
			parts := strings.Split(tok, ".")
			q := quote
			body := func(token, refresh string) string {
				return `{"Token":` + q(token) + `,"RefreshToken":` + q(refresh) + `}`
			}

			cases := []struct {
				name, contentType, body string
				status                  int
				want                    []aspnetEntry
			}{
				{"Token missing", "application/json", `{"RefreshToken":` + q(rt) + `}`, 400, []aspnetEntry{validation("The Token field is required.")}},
				{"RefreshToken missing", "application/json", `{"Token":` + q(tok) + `}`, 400, []aspnetEntry{validation("The RefreshToken field is required.")}},
				{"both missing", "application/json", `{}`, 400, []aspnetEntry{validation("The Token field is required."), validation("The RefreshToken field is required.")}},
				{"Token null", "application/json", `{"Token":null,"RefreshToken":` + q(rt) + `}`, 400, []aspnetEntry{validation("The Token field is required.")}},
				{"RefreshToken blank", "application/json", body(tok, "   "), 400, []aspnetEntry{validation("The RefreshToken field is required.")}},
				{"Token a number", "application/json", `{"Token":42,"RefreshToken":` + q(rt) + `}`, 400, []aspnetEntry{validation("The Token field must be a string.")}},
				{"RefreshToken an array", "application/json", `{"Token":` + q(tok) + `,"RefreshToken":[]}`, 400, []aspnetEntry{validation("The RefreshToken field must be a string.")}},
				{"not JSON", "application/json", `Token=a&RefreshToken=b`, 400, []aspnetEntry{validation("The request body is not valid JSON.")}},
				{"empty body", "application/json", ``, 400, []aspnetEntry{validation("The request body is not valid JSON.")}},
				{"JSON array", "application/json", `[` + body(tok, rt) + `]`, 400, []aspnetEntry{validation("The request body must be a JSON object.")}},
				{"wrong content type", "text/plain", body(tok, rt), 400, []aspnetEntry{validation("The request body must be JSON (Content-Type: application/json).")}},
				{"body over 12 KiB", "application/json", body(tok, strings.Repeat("A", 12<<10)), 400, []aspnetEntry{validation("The request body is too large.")}},

				{"Token garbage", "application/json", body("garbage", rt), 401, []aspnetEntry{invalidToken}},
				{"Token bad signature", "application/json", body(parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(make([]byte, 64)), rt), 401, []aspnetEntry{invalidToken}},
				{"Token of another key", "application/json", body(access(otherCodec, "alice"), rt), 401, []aspnetEntry{invalidToken}},
				{"Token alg none", "application/json", body(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`))+"."+parts[1]+".", rt), 401, []aspnetEntry{invalidToken}},
				{"Token alg switched", "application/json", body(hs512(`{"alg":"HS256","kid":"hmac-HS512","typ":"at+jwt"}`, `{"sub":"alice","nameid":"alice","sid":"s","exp":9999999999}`), rt), 401, []aspnetEntry{invalidToken}},
				{"Token typ JWT, as the old backend", "application/json", body(hs512(`{"alg":"HS512","typ":"JWT"}`, `{"nameid":"alice","nbf":1721078649,"exp":9999999999,"iat":1721078649}`), rt), 401, []aspnetEntry{invalidToken}},
				{"Token typ JWT with kid", "application/json", body(hs512(`{"alg":"HS512","kid":"hmac-HS512","typ":"JWT"}`, `{"sub":"alice","nameid":"alice","sid":"s","exp":9999999999}`), rt), 401, []aspnetEntry{invalidToken}},
				{"Token nameid differs from sub", "application/json", body(hs512(`{"alg":"HS512","kid":"hmac-HS512","typ":"at+jwt"}`, `{"iss":"tokend","sub":"alice","nameid":"bob","sid":"s","iat":1,"exp":9999999999}`), rt), 401, []aspnetEntry{invalidToken}},
				{"refresh token as Token", "application/json", body(rt, rt), 401, []aspnetEntry{invalidToken}},
				{"Token bad, RefreshToken bad too", "application/json", body("garbage", "garbage"), 401, []aspnetEntry{invalidToken}},

				{"RefreshToken random 64 bytes", "application/json", body(tok, base64.StdEncoding.EncodeToString(random)), 404, []aspnetEntry{invalidRefreshToken}},
				{"RefreshToken truncated", "application/json", body(tok, rt[:84]), 404, []aspnetEntry{invalidRefreshToken}},
				{"RefreshToken bit-flipped", "application/json", body(tok, flip(rt, 30)), 404, []aspnetEntry{invalidRefreshToken}},
				{"RefreshToken MAC flipped", "application/json", body(tok, flip(rt, 63)), 404, []aspnetEntry{invalidRefreshToken}},
				{"RefreshToken url-safe alphabet", "application/json", body(tok, strings.Repeat("-_", 43)+"=="), 404, []aspnetEntry{invalidRefreshToken}},
				{"RefreshToken of another key", "application/json", body(tok, refresh(otherOpaque, newSID(t), 0, now.Add(time.Hour))), 404, []aspnetEntry{invalidRefreshToken}},
				{"RefreshToken unknown session", "application/json", body(tok, refresh(opaque, newSID(t), 0, now.Add(time.Hour))), 404, []aspnetEntry{invalidRefreshToken}},
				{"RefreshToken expired", "application/json", body(tok, refresh(opaque, newSID(t), 0, now.Add(-time.Second))), 404, []aspnetEntry{invalidRefreshToken}},
				{"RefreshToken a JWT", "application/json", body(tok, tok), 404, []aspnetEntry{invalidRefreshToken}},
				{"another user's RefreshToken", "application/json", body(tok, bobRT), 404, []aspnetEntry{invalidRefreshToken}},
				{"another user's Token", "application/json", body(bobTok, rt), 404, []aspnetEntry{invalidRefreshToken}},
				{"a valid Token of an unknown user", "application/json", body(access(codec, "mallory"), rt), 404, []aspnetEntry{invalidRefreshToken}},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r := in.do(http.MethodPost, in.public+"/api/auth/refresh", tc.contentType, []byte(tc.body))
					aspnetError(t, r, tc.status, tc.want...)
				})
			}
			// none of that burned either session
			aspnetPair(t, in.aspnetRefresh(tok, rt))
			aspnetPair(t, in.aspnetRefresh(bobTok, bobRT))
			if !strings.Contains(in.logs.String(), "another subject's access token") {
				t.Error("a refresh token presented with another user's Token was not logged")
			}
		})
	}
}

// TestAspnetRotation: the rotation table of DESIGN §4, unchanged.
func TestAspnetRotation(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := startAspnet(t, store, nil)
			t.Run("retry inside grace gets the same pair", func(t *testing.T) {
				tok0, rt0 := in.aspnetLogin("alice")
				first := in.aspnetRefresh(tok0, rt0)
				in.clock.Advance(9 * time.Second)
				again := in.aspnetRefresh(tok0, rt0)
				tok1, rt1 := aspnetPair(t, first)
				tok2, rt2 := aspnetPair(t, again)
				if tok1 != tok2 || rt1 != rt2 {
					t.Fatal("a retry must hand back the pair already issued")
				}
				aspnetPair(t, in.aspnetRefresh(tok1, rt1))
			})
			t.Run("parent after grace is reuse and revokes", func(t *testing.T) {
				tok0, rt0 := in.aspnetLogin("alice")
				tok1, rt1 := aspnetPair(t, in.aspnetRefresh(tok0, rt0))
				in.clock.Advance(10 * time.Second)
				aspnetError(t, in.aspnetRefresh(tok0, rt0), 404, invalidRefreshToken)
				aspnetError(t, in.aspnetRefresh(tok1, rt1), 404, invalidRefreshToken)
				if !strings.Contains(in.logs.String(), "reuse detected") {
					t.Fatal("reuse was not logged")
				}
				if strings.Contains(in.logs.String(), rt0) || strings.Contains(in.logs.String(), tok0) {
					t.Fatal("a token appeared in the log")
				}
			})
			t.Run("grandparent is reuse even inside grace", func(t *testing.T) {
				tok0, rt0 := in.aspnetLogin("alice")
				tok1, rt1 := aspnetPair(t, in.aspnetRefresh(tok0, rt0))
				tok2, rt2 := aspnetPair(t, in.aspnetRefresh(tok1, rt1))
				aspnetError(t, in.aspnetRefresh(tok0, rt0), 404, invalidRefreshToken)
				aspnetError(t, in.aspnetRefresh(tok2, rt2), 404, invalidRefreshToken)
			})
			t.Run("idle session expires with its refresh token", func(t *testing.T) {
				tok0, rt0 := in.aspnetLogin("alice")
				in.clock.Advance(720 * time.Hour)
				aspnetError(t, in.aspnetRefresh(tok0, rt0), 404, invalidRefreshToken)
			})
		})
	}
}

// TestAspnetRevocation: logout, subject revocation, and user deletion, the
// one case answered user_not_found.
func TestAspnetRevocation(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := startAspnet(t, store, nil)
			revoke := func(body string) reply { return in.postJSON(in.public+"/api/auth/revoke", body) }

			tok, rt := in.aspnetLogin("alice")
			for _, b := range []string{`{"RefreshToken":"junk"}`, `{"refreshToken":` + quote(rt[:87]+"A") + `}`, `{"Token":"x","RefreshToken":"AAAA"}`} {
				if r := revoke(b); r.status != 204 || len(r.raw) != 0 {
					t.Fatalf("revoke %s = %d %q; want 204 (no oracle)", b, r.status, r.raw)
				}
			}
			aspnetError(t, revoke(`{"Token":"x"}`), 400, validation("The RefreshToken field is required."))
			aspnetPair(t, in.aspnetRefresh(tok, rt)) // the junk revoked nothing

			tok, rt = in.aspnetLogin("alice")
			if r := revoke(`{"refreshtoken":` + quote(rt) + `}`); r.status != 204 {
				t.Fatalf("logout = %d %s", r.status, r.raw)
			}
			aspnetError(t, in.aspnetRefresh(tok, rt), 404, invalidRefreshToken)

			tok, rt = in.aspnetLogin("carol")
			if r := in.do(http.MethodPost, in.admin+"/admin/subjects/carol/revoke", "", nil); r.status != 200 {
				t.Fatalf("revoke carol = %d %s", r.status, r.raw)
			}
			aspnetError(t, in.aspnetRefresh(tok, rt), 404, invalidRefreshToken)

			tok1, rt1 := in.aspnetLogin("dave")
			tok2, rt2 := in.aspnetLogin("dave")
			tok2, rt2 = aspnetPair(t, in.aspnetRefresh(tok2, rt2))
			if r := in.do(http.MethodDelete, in.admin+"/admin/subjects/dave", "", nil); r.status != 200 || r.body["revoked"] != float64(2) {
				t.Fatalf("delete dave = %d %s", r.status, r.raw)
			}
			aspnetError(t, in.aspnetRefresh(tok1, rt1), 404, userNotFound)
			aspnetError(t, in.aspnetRefresh(tok2, rt2), 404, userNotFound)
			in.clock.Advance(time.Hour) // with an expired Token too, and a later revocation
			in.do(http.MethodPost, in.admin+"/admin/subjects/dave/revoke", "", nil)
			aspnetError(t, in.aspnetRefresh(tok2, rt2), 404, userNotFound)
			// another user presenting dave's refresh token learns nothing
			erin, _ := in.aspnetLogin("erin")
			aspnetError(t, in.aspnetRefresh(erin, rt2), 404, invalidRefreshToken)
		})
	}
}

// TestAspnetAdminAndServerErrors: POST /admin/sessions answers in the
// dialect, and so do the server's own errors.
func TestAspnetAdminAndServerErrors(t *testing.T) {
	in := startAspnet(t, "memory", nil)
	aspnetError(t, in.postJSON(in.admin+"/admin/sessions", `{"sub":" "}`), 400, validation("The sub field is required."))
	aspnetError(t, in.postJSON(in.admin+"/admin/sessions", `{}`), 400, validation("The sub field is required."))
	aspnetError(t, in.postJSON(in.public+"/admin/sessions", `{"sub":"x"}`), 404, aspnetEntry{"not_found", "Not found", "NotFound"})
	r := in.do(http.MethodGet, in.public+"/api/auth/refresh", "", nil)
	aspnetError(t, r, 405, aspnetEntry{"method_not_allowed", "Method not allowed", "Failure"})
	if r.header.Get("Allow") != "POST" {
		t.Fatalf("Allow %q", r.header.Get("Allow"))
	}
}

// TestAspnetRedisDown: 503 in the aspnet envelope with Retry-After, never a
// token; the refresh token is not burned.
func TestAspnetRedisDown(t *testing.T) {
	in := startAspnet(t, "redis", nil)
	tok, rt := in.aspnetLogin("alice")
	in.redis.Stop()
	r := in.aspnetRefresh(tok, rt)
	aspnetError(t, r, 503, aspnetEntry{"service_unavailable", "Service temporarily unavailable", "Failure"})
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	// The test server restarts empty; a pooled connection may fail once
	// more (503, fail closed) before tokend serves again, with no restart.
	in.redis.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		login := in.postJSON(in.admin+"/admin/sessions", `{"sub":"alice"}`)
		if login.status == 200 {
			tok, rt = aspnetPair(t, login)
			if r := in.aspnetRefresh(tok, rt); r.status == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 10s: login %d %s", login.status, login.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAspnetForgeriesNeverReachRedis: random and damaged refresh tokens are
// refused by their MAC; Redis never runs a script for them.
func TestAspnetForgeriesNeverReachRedis(t *testing.T) {
	in := startAspnet(t, "redis", nil)
	tok, rt := in.aspnetLogin("alice")
	before := in.redis.Calls(t, "evalsha") + in.redis.Calls(t, "eval")
	raw := make([]byte, 64)
	for i := range 1000 {
		rand.Read(raw)
		if i%2 == 0 {
			raw[0] = 1 // the version byte, to reach the key and MAC checks
		}
		aspnetError(t, in.aspnetRefresh(tok, base64.StdEncoding.EncodeToString(raw)), 404, invalidRefreshToken)
	}
	rawRT, _ := base64.StdEncoding.DecodeString(rt)
	for bit := range 64 * 8 {
		b := append([]byte(nil), rawRT...)
		b[bit/8] ^= 1 << (bit % 8)
		aspnetError(t, in.aspnetRefresh(tok, base64.StdEncoding.EncodeToString(b)), 404, invalidRefreshToken)
	}
	if after := in.redis.Calls(t, "evalsha") + in.redis.Calls(t, "eval"); after != before {
		t.Fatalf("%d scripts ran in Redis for forged refresh tokens; want 0", after-before)
	}
	aspnetPair(t, in.aspnetRefresh(tok, rt))
	if in.redis.Calls(t, "evalsha")+in.redis.Calls(t, "eval") == before {
		t.Fatal("the genuine refresh ran no script: the counter proves nothing")
	}
}
