package main

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/dpop/prover"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// publicURL is what clients call tokend in these tests: behind a load
// balancer, not the port the test listens on.
const publicURL = "https://auth.example.test"

const tokenURL = publicURL + "/oauth2/token"

func oauthEnv(more ...string) map[string]string {
	env := map[string]string{"TOKEND_PUBLIC_URL": publicURL}
	for i := 0; i+1 < len(more); i += 2 {
		env[more[i]] = more[i+1]
	}
	return env
}

// token posts a form to /oauth2/token with headers (name, value, ...).
func (in *instance) token(form url.Values, header ...string) reply {
	in.t.Helper()
	return in.do(http.MethodPost, in.public+"/oauth2/token", "application/x-www-form-urlencoded", []byte(form.Encode()), header...)
}

func refreshForm(refresh, client string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {client}}
}

// startFor starts a session on the admin API with OAuth fields and returns
// its first pair (spring's or aspnet's body).
func (in *instance) startFor(sub, client, scope, jkt string) (access, refresh string) {
	in.t.Helper()
	req := map[string]string{"sub": sub, "client_id": client, "scope": scope, "jkt": jkt}
	maps.DeleteFunc(req, func(_, v string) bool { return v == "" })
	b, _ := json.Marshal(req)
	r := in.postJSON(in.admin+"/admin/sessions", string(b))
	if _, ok := r.body["Token"]; ok {
		return aspnetPair(in.t, r)
	}
	return pair(in.t, r)
}

// oauthPair asserts RFC 6749 §5.1's answer: 200, exactly its fields, not
// to be cached; it returns the tokens.
func oauthPair(t *testing.T, r reply, tokenType, scope string) (access, refresh string) {
	t.Helper()
	want := []string{"access_token", "expires_in", "refresh_token", "token_type"}
	if scope != "" {
		want = append(want, "scope")
		slices.Sort(want)
	}
	if r.status != 200 || !slices.Equal(slices.Sorted(maps.Keys(r.body)), want) {
		t.Fatalf("token = %d %s; want 200 with exactly %v", r.status, r.raw, want)
	}
	access, _ = r.body["access_token"].(string)
	refresh, _ = r.body["refresh_token"].(string)
	if r.body["token_type"] != tokenType || r.body["expires_in"] != float64(1800) || access == "" || refresh == "" ||
		(scope != "" && r.body["scope"] != scope) {
		t.Fatalf("token = %s; want token_type %s, expires_in 1800, scope %q", r.raw, tokenType, scope)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Fatalf("Cache-Control %q, Pragma %q; want no-store, no-cache", r.header.Get("Cache-Control"), r.header.Get("Pragma"))
	}
	return access, refresh
}

// oauthError asserts RFC 6749 §5.2's answer: status, exactly error and
// error_description, code, and the description (a prefix of it when it
// ends with "…").
func oauthError(t *testing.T, r reply, status int, code, desc string) {
	t.Helper()
	got, _ := r.body["error_description"].(string)
	ok := got == desc
	if p, cut := strings.CutSuffix(desc, "…"); cut {
		ok = strings.HasPrefix(got, p)
	}
	if r.status != status || r.body["error"] != code || !ok || len(r.body) != 2 {
		t.Fatalf("got %d %s; want %d {error: %s, error_description: %q}", r.status, r.raw, status, code, desc)
	}
	if r.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("headers %v", r.header)
	}
}

const invalidGrant = "the refresh token is invalid, expired or revoked"

// A session started by a login is refreshed on /oauth2/token and on the
// dialect's endpoint alike: one rotation, one reuse detection.
func TestOAuth2Token(t *testing.T) {
	for _, store := range stores {
		for _, dialect := range []string{"spring", "aspnet"} {
			t.Run(store+"/"+dialect, func(t *testing.T) {
				in := start(t, store, oauthEnv("TOKEND_DIALECT", dialect))
				_, rt := in.startFor("alice", "ios-app", "openid orders:read", "")
				access, rt2 := oauthPair(t, in.token(refreshForm(rt, "ios-app")), "Bearer", "openid orders:read")
				_, claims := decodeJWT(t, access)
				if claims["client_id"] != "ios-app" || claims["scope"] != "openid orders:read" || claims["sub"] != "alice" || claims["cnf"] != nil {
					t.Fatalf("access token claims %v; want client_id, scope and sub, no cnf", claims)
				}
				// narrowed: the new access token only
				form := refreshForm(rt2, "ios-app")
				form.Set("scope", "orders:read")
				access, rt3 := oauthPair(t, in.token(form), "Bearer", "orders:read")
				if _, claims := decodeJWT(t, access); claims["scope"] != "orders:read" {
					t.Fatalf("narrowed scope %v", claims["scope"])
				}
				// the dialect's endpoint rotates the same session
				var rt4 string
				if dialect == "spring" {
					_, rt4 = pair(t, in.refresh(rt3))
				} else {
					_, rt4 = aspnetPair(t, in.aspnetRefresh(access, rt3))
				}
				_, rt5 := oauthPair(t, in.token(refreshForm(rt4, "ios-app")), "Bearer", "openid orders:read")
				// a retry inside the grace window: the same pair again
				again := in.token(refreshForm(rt4, "ios-app"))
				if _, r := oauthPair(t, again, "Bearer", "openid orders:read"); r != rt5 {
					t.Fatal("a retry inside grace did not get the same refresh token")
				}
				// reuse after grace revokes the session, on every endpoint
				in.clock.Advance(11 * time.Second)
				oauthError(t, in.token(refreshForm(rt3, "ios-app")), 400, "invalid_grant", invalidGrant)
				oauthError(t, in.token(refreshForm(rt5, "ios-app")), 400, "invalid_grant", invalidGrant)
			})
		}
	}
}

// Every refusal of the token endpoint, over HTTP, in RFC 6749's shape.
func TestOAuth2Errors(t *testing.T) {
	in := start(t, "redis", oauthEnv("TOKEND_CLIENTS", "ios-app, android-app"))
	_, rt := in.startFor("alice", "ios-app", "openid", "")
	_, other := in.startFor("bob", "android-app", "", "")
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	for _, tc := range []struct {
		name, ctype, body string
		status            int
		code, desc        string
	}{
		{"JSON body", "application/json", `{"grant_type":"refresh_token"}`, 400, "invalid_request", "the body must be application/x-www-form-urlencoded"},
		{"no content type", "", form("grant_type", "refresh_token"), 400, "invalid_request", "the body must be application/x-www-form-urlencoded"},
		{"over 12 KiB", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "pad", strings.Repeat("x", 12<<10)), 400, "invalid_request", "the body is over the size limit"},
		{"no grant_type", "application/x-www-form-urlencoded", form("refresh_token", rt, "client_id", "ios-app"), 400, "invalid_request", "grant_type is missing"},
		{"empty grant_type", "application/x-www-form-urlencoded", form("grant_type", "", "refresh_token", rt, "client_id", "ios-app"), 400, "invalid_request", "grant_type is missing"},
		{"password grant", "application/x-www-form-urlencoded", form("grant_type", "password", "client_id", "ios-app"), 400, "unsupported_grant_type", "only grant_type=refresh_token is supported"},
		{"no refresh_token", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "client_id", "ios-app"), 400, "invalid_request", "refresh_token is missing"},
		{"no client_id", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "refresh_token", rt), 400, "invalid_request", "client_id is missing"},
		{"refresh_token twice", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "refresh_token", rt, "refresh_token", rt, "client_id", "ios-app"), 400, "invalid_request", "refresh_token is repeated"},
		{"grant_type twice", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "grant_type", "refresh_token", "refresh_token", rt, "client_id", "ios-app"), 400, "invalid_request", "grant_type is repeated"},
		{"unknown client", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "refresh_token", rt, "client_id", "web"), 401, "invalid_client", "unknown client_id"},
		{"forged token", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "refresh_token", tamper(rt), "client_id", "ios-app"), 400, "invalid_grant", invalidGrant},
		{"garbage token", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "refresh_token", "garbage", "client_id", "ios-app"), 400, "invalid_grant", invalidGrant},
		{"another client's session", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "refresh_token", other, "client_id", "ios-app"), 400, "invalid_grant", invalidGrant},
		{"scope beyond the session's", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "refresh_token", rt, "client_id", "ios-app", "scope", "openid admin"), 400, "invalid_scope", "the scope requested exceeds the session's"},
		{"scope not scope tokens", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "refresh_token", rt, "client_id", "ios-app", "scope", `open"id`), 400, "invalid_scope", "scope is not a list of scope tokens (RFC 6749 section 3.3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oauthError(t, in.do(http.MethodPost, in.public+"/oauth2/token", tc.ctype, []byte(tc.body)), tc.status, tc.code, tc.desc)
		})
	}
	t.Run("unknown client has WWW-Authenticate", func(t *testing.T) {
		r := in.token(refreshForm(rt, "web"))
		if r.header.Get("WWW-Authenticate") == "" {
			t.Fatal("401 without WWW-Authenticate")
		}
	})
	t.Run("GET", func(t *testing.T) {
		r := in.do(http.MethodGet, in.public+"/oauth2/token", "", nil)
		oauthError(t, r, 405, "invalid_request", "method not allowed")
		if r.header.Get("Allow") != "POST" {
			t.Fatalf("Allow %q", r.header.Get("Allow"))
		}
	})
	// none of the refusals burned anything: both sessions still refresh
	oauthPair(t, in.token(refreshForm(rt, "ios-app")), "Bearer", "openid")
	oauthPair(t, in.token(refreshForm(other, "android-app")), "Bearer", "")

	t.Run("store down", func(t *testing.T) {
		_, rt := in.startFor("carol", "ios-app", "", "")
		in.redis.Stop()
		defer in.redis.Start()
		r := in.token(refreshForm(rt, "ios-app"))
		oauthError(t, r, 503, "temporarily_unavailable", "the token service is temporarily unavailable; retry")
		if r.header.Get("Retry-After") != "1" {
			t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
		}
	})
}

func TestOAuth2Metadata(t *testing.T) {
	in := start(t, "memory", oauthEnv("TOKEND_DPOP_ALGS", "ES256"))
	r := in.do(http.MethodGet, in.public+"/.well-known/oauth-authorization-server", "", nil)
	want := map[string]any{
		"issuer": publicURL, "token_endpoint": tokenURL, "revocation_endpoint": publicURL + "/oauth2/revoke",
		"jwks_uri": publicURL + "/.well-known/jwks.json", "grant_types_supported": []any{"refresh_token"},
		"token_endpoint_auth_methods_supported": []any{"none"}, "revocation_endpoint_auth_methods_supported": []any{"none"},
		"response_types_supported": []any{}, "dpop_signing_alg_values_supported": []any{"ES256"},
	}
	if r.status != 200 || !jsonEqual(r.body, want) {
		t.Fatalf("metadata = %d %s; want %v", r.status, r.raw, want)
	}
	// the default: http://localhost and the port of TOKEND_ADDR
	in = start(t, "memory", map[string]string{"TOKEND_ADDR": "127.0.0.1:0"})
	r = in.do(http.MethodGet, in.public+"/.well-known/oauth-authorization-server", "", nil)
	if r.body["token_endpoint"] != "http://localhost:0/oauth2/token" || r.body["dpop_signing_alg_values_supported"] == nil {
		t.Fatalf("default metadata %s", r.raw)
	}
}

// RFC 7009: 200 for any token; a refresh token ends its session, an access
// token too, which the denylist then refuses.
func TestOAuth2Revoke(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, oauthEnv())
			revoke := func(token, hint string) reply {
				v := url.Values{"token": {token}, "client_id": {"ios-app"}}
				if hint != "" {
					v.Set("token_type_hint", hint)
				}
				return in.do(http.MethodPost, in.public+"/oauth2/revoke", "application/x-www-form-urlencoded", []byte(v.Encode()))
			}
			ok := func(r reply) {
				t.Helper()
				if r.status != 200 || len(r.raw) != 0 || r.header.Get("Cache-Control") != "no-store" {
					t.Fatalf("revoke = %d %s %v; want 200, empty, no-store", r.status, r.raw, r.header)
				}
			}
			_, rt := in.startFor("alice", "ios-app", "", "")
			ok(revoke(rt, "refresh_token"))
			oauthError(t, in.token(refreshForm(rt, "ios-app")), 400, "invalid_grant", invalidGrant)

			access, rt := in.startFor("bob", "ios-app", "", "")
			ok(revoke(access, "")) // no hint: tried as both
			waitUntil(t, func() bool { return in.introspect(access).body["active"] == false })
			oauthError(t, in.token(refreshForm(rt, "ios-app")), 400, "invalid_grant", invalidGrant)

			for _, tok := range []string{"garbage", rt, access} { // unknown, revoked already: still 200
				ok(revoke(tok, "access_token"))
			}
			oauthError(t, in.do(http.MethodPost, in.public+"/oauth2/revoke", "application/x-www-form-urlencoded",
				[]byte("client_id=ios-app")), 400, "invalid_request", "token is missing")
			oauthError(t, in.do(http.MethodPost, in.public+"/oauth2/revoke", "application/json", []byte(`{"token":"x"}`)),
				400, "invalid_request", "the body must be application/x-www-form-urlencoded")
		})
	}
}

// DPoP (RFC 9449) over HTTP: the first proof binds, every check of §4.3 is
// a refusal of its own, and none burns the session.
func TestDPoP(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, oauthEnv())
			device, thief := newProver(t, "ES256"), newProver(t, "EdDSA")
			proof := func(k *prover.Key, o prover.Options) string {
				t.Helper()
				if o.IssuedAt.IsZero() {
					o.IssuedAt = in.clock.Now()
				}
				p, err := k.Proof("POST", tokenURL, o)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			_, rt := in.startFor("alice", "ios-app", "", "")
			// the first proof binds the session to its key
			access, rt := oauthPair(t, in.token(refreshForm(rt, "ios-app"), "DPoP", proof(device, prover.Options{})), "DPoP", "")
			if _, claims := decodeJWT(t, access); claims["cnf"].(map[string]any)["jkt"] != device.Thumbprint() {
				t.Fatalf("cnf %v; want jkt %s", claims["cnf"], device.Thumbprint())
			}
			edit := func(f func(h, c map[string]any)) prover.Options { return prover.Options{Edit: f} }
			for _, tc := range []struct {
				name    string
				headers []string
				desc    string
			}{
				{"no proof for a bound session", nil, "the session is bound to a DPoP key: a proof signed by it is required"},
				{"another key", []string{proof(thief, prover.Options{})}, "the DPoP proof is signed by another key than the one the session is bound to"},
				{"two DPoP headers", []string{proof(device, prover.Options{}), proof(device, prover.Options{})}, "DPoP proof: more than one DPoP header"},
				{"wrong htm", []string{mustProof(t, device, "GET", tokenURL, in.clock.Now())}, "DPoP proof: htm is not the request's method"},
				{"wrong htu", []string{mustProof(t, device, "POST", in.public+"/oauth2/token", in.clock.Now())}, "DPoP proof: htu is not the request's URL"},
				{"htu of the revocation endpoint", []string{mustProof(t, device, "POST", publicURL+"/oauth2/revoke", in.clock.Now())}, "DPoP proof: htu is not the request's URL"},
				{"stale iat", []string{proof(device, prover.Options{IssuedAt: in.clock.Now().Add(-61 * time.Second)})}, "DPoP proof: iat is not within the accepted window of now"},
				{"future iat", []string{proof(device, prover.Options{IssuedAt: in.clock.Now().Add(61 * time.Second)})}, "DPoP proof: iat is not within the accepted window of now"},
				{"alg none", []string{unsigned(proof(device, edit(func(h, c map[string]any) { h["alg"] = "none" })))}, "DPoP proof: alg is not accepted"},
				{"HS256", []string{proof(device, edit(func(h, c map[string]any) { h["alg"] = "HS256" }))}, "DPoP proof: alg is not accepted"},
				{"private key in the jwk", []string{proof(device, edit(func(h, c map[string]any) {
					k := maps.Clone(device.JWK)
					k["d"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
					h["jwk"] = k
				}))}, "DPoP proof: jwk holds a private or symmetric key"},
				{"typ JWT", []string{proof(device, edit(func(h, c map[string]any) { h["typ"] = "JWT" }))}, "DPoP proof: typ is not dpop+jwt"},
				{"not a JWT", []string{"not.a.proof"}, "DPoP proof: header is not base64url JSON"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var h []string
					for _, p := range tc.headers {
						h = append(h, "DPoP", p)
					}
					oauthError(t, in.token(refreshForm(rt, "ios-app"), h...), 400, "invalid_dpop_proof", tc.desc)
				})
			}
			t.Run("replayed jti", func(t *testing.T) {
				p := proof(device, prover.Options{})
				_, next := oauthPair(t, in.token(refreshForm(rt, "ios-app"), "DPoP", p), "DPoP", "")
				// the same request again, inside the grace window: no second
				// copy of the pair for whoever captured it
				oauthError(t, in.token(refreshForm(rt, "ios-app"), "DPoP", p), 400, "invalid_dpop_proof", "the DPoP proof was used already (jti)")
				oauthError(t, in.token(refreshForm(next, "ios-app"), "DPoP", p), 400, "invalid_dpop_proof", "the DPoP proof was used already (jti)")
				rt = next
			})
			t.Run("legacy endpoint refuses a bound session", func(t *testing.T) {
				springError(t, in.refresh(rt), 401, "Invalid JWT token")
			})
			// nothing above burned the session: the device's next refresh works
			oauthPair(t, in.token(refreshForm(rt, "ios-app"), "DPoP", proof(device, prover.Options{})), "DPoP", "")

			t.Run("bound from the start", func(t *testing.T) {
				_, rt := in.startFor("bob", "ios-app", "", device.Thumbprint())
				oauthError(t, in.token(refreshForm(rt, "ios-app")), 400, "invalid_dpop_proof", "the session is bound to a DPoP key: a proof signed by it is required")
				oauthError(t, in.token(refreshForm(rt, "ios-app"), "DPoP", proof(thief, prover.Options{})), 400, "invalid_dpop_proof",
					"the DPoP proof is signed by another key than the one the session is bound to")
				oauthPair(t, in.token(refreshForm(rt, "ios-app"), "DPoP", proof(device, prover.Options{})), "DPoP", "")
			})
		})
	}
}

// TestDPoPRetryDoesNotBind (issue 25, item 7): the owner refreshes without a
// proof; whoever holds the used-up token retries it inside the grace
// window with a proof of their own key. They get the pair the owner got, a
// Bearer pair, and the session stays unbound: the owner's next refresh,
// without a proof, is answered.
func TestDPoPRetryDoesNotBind(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, oauthEnv())
			thief := newProver(t, "EdDSA")
			_, used := in.startFor("alice", "ios-app", "", "")
			_, rt := oauthPair(t, in.token(refreshForm(used, "ios-app")), "Bearer", "")
			p, err := thief.Proof("POST", tokenURL, prover.Options{IssuedAt: in.clock.Now()})
			if err != nil {
				t.Fatal(err)
			}
			access, again := oauthPair(t, in.token(refreshForm(used, "ios-app"), "DPoP", p), "Bearer", "")
			if _, claims := decodeJWT(t, access); again != rt || claims["cnf"] != nil {
				t.Fatalf("the retry with a proof: cnf %v, same refresh token %v; want the owner's Bearer pair", claims["cnf"], again == rt)
			}
			oauthPair(t, in.token(refreshForm(rt, "ios-app")), "Bearer", "")
		})
	}
}

// aspnet refuses a bound session in its own shape.
func TestDPoPAspnetLegacyEndpoint(t *testing.T) {
	in := start(t, "memory", oauthEnv("TOKEND_DIALECT", "aspnet"))
	device := newProver(t, "ES256")
	access, rt := in.startFor("alice", "", "", device.Thumbprint())
	aspnetError(t, in.aspnetRefresh(access, rt), 404,
		aspnetEntry{"invalid_refresh_token", "Invalid refresh token", "NotFound"})
	p := mustProof(t, device, "POST", tokenURL, in.clock.Now())
	oauthPair(t, in.token(refreshForm(rt, "ios-app"), "DPoP", p), "DPoP", "")
}

// A proof is used once across every instance: the same proof replayed on
// a second instance sharing the Redis is refused, with the token it came
// with (inside the grace window: no second copy of the pair) or the next;
// so is the client's retry's own proof. Also while the instances disagree
// on TOKEND_DPOP_JTI_KEYS, as during a rolling upgrade's second restart.
func TestDPoPReplayTwoInstances(t *testing.T) {
	redis := redistest.Start(t)
	const used = "the DPoP proof was used already (jti)"
	for _, keys := range [][2]string{{"false", "false"}, {"true", "false"}, {"false", "true"}} {
		t.Run("keys "+keys[0]+"/"+keys[1], func(t *testing.T) {
			a := start(t, "redis", oauthEnv("TOKEND_REDIS_ADDR", redis.Addr, "TOKEND_DPOP_JTI_KEYS", keys[0]))
			b := start(t, "redis", oauthEnv("TOKEND_REDIS_ADDR", redis.Addr, "TOKEND_DPOP_JTI_KEYS", keys[1]))
			// one time for both: each clock starts at its start's second, and
			// on a loaded machine b may start a second after a, when a retry
			// on b would rightly announce a second less of the token's life
			b.clock.Advance(a.clock.Now().Sub(b.clock.Now()))
			device := newProver(t, "ES256")
			_, rt := a.startFor("alice", "ios-app", "", device.Thumbprint())
			p := mustProof(t, device, "POST", tokenURL, a.clock.Now())
			_, next := oauthPair(t, a.token(refreshForm(rt, "ios-app"), "DPoP", p), "DPoP", "")
			oauthError(t, b.token(refreshForm(rt, "ios-app"), "DPoP", p), 400, "invalid_dpop_proof", used)
			oauthError(t, b.token(refreshForm(next, "ios-app"), "DPoP", p), 400, "invalid_dpop_proof", used)
			// the client's retry, its answer lost: a new proof, the pair again
			q := mustProof(t, device, "POST", tokenURL, b.clock.Now())
			_, again := oauthPair(t, b.token(refreshForm(rt, "ios-app"), "DPoP", q), "DPoP", "")
			for _, token := range []string{rt, next, again} {
				for _, proof := range []string{p, q} {
					oauthError(t, a.token(refreshForm(token, "ios-app"), "DPoP", proof), 400, "invalid_dpop_proof", used)
				}
			}
			oauthPair(t, b.token(refreshForm(next, "ios-app"), "DPoP", mustProof(t, device, "POST", tokenURL, a.clock.Now())), "DPoP", "")
		})
	}
}

// Instances whose clocks disagree by a third of the window (60 s): a proof
// the session's next one displaces keeps a key while the instance behind
// could take it, and a proof made half a minute ahead (a client's fast
// clock) makes the honest proofs after it look older: they cost keys and
// go through, and every one of them is refused when replayed on the other.
func TestDPoPReplayClocksApart(t *testing.T) {
	redis := redistest.Start(t)
	const used = "the DPoP proof was used already (jti)"
	a := start(t, "redis", oauthEnv("TOKEND_REDIS_ADDR", redis.Addr))
	b := start(t, "redis", oauthEnv("TOKEND_REDIS_ADDR", redis.Addr))
	b.clock.Advance(-20 * time.Second)
	device := newProver(t, "ES256")
	_, rt := a.startFor("alice", "ios-app", "", device.Thumbprint())
	p := mustProof(t, device, "POST", tokenURL, a.clock.Now())
	_, next := oauthPair(t, a.token(refreshForm(rt, "ios-app"), "DPoP", p), "DPoP", "")
	a.clock.Advance(50 * time.Second)
	b.clock.Advance(50 * time.Second)
	q := mustProof(t, device, "POST", tokenURL, a.clock.Now())
	_, next = oauthPair(t, a.token(refreshForm(next, "ios-app"), "DPoP", q), "DPoP", "")
	// p is 30 s old to b: within its window
	oauthError(t, b.token(refreshForm(next, "ios-app"), "DPoP", p), 400, "invalid_dpop_proof", used)
	proofs := []string{p, q, mustProof(t, device, "POST", tokenURL, a.clock.Now().Add(30*time.Second))}
	for _, iat := range []time.Duration{0, 1, 30, 2} {
		proofs = append(proofs, mustProof(t, device, "POST", tokenURL, b.clock.Now().Add(iat*time.Second)))
	}
	for i, proof := range proofs[2:] {
		in := a
		if i%2 == 1 {
			in = b
		}
		_, next = oauthPair(t, in.token(refreshForm(next, "ios-app"), "DPoP", proof), "DPoP", "")
		for _, replay := range proofs[:i+3] {
			oauthError(t, b.token(refreshForm(next, "ios-app"), "DPoP", replay), 400, "invalid_dpop_proof", used)
			oauthError(t, a.token(refreshForm(next, "ios-app"), "DPoP", replay), 400, "invalid_dpop_proof", used)
		}
	}
}

// Server nonces (§8): a proof without the nonce gets use_dpop_nonce and
// the nonce; with it, the refresh goes through, on any instance.
func TestDPoPNonce(t *testing.T) {
	redis := redistest.Start(t)
	in := start(t, "redis", oauthEnv("TOKEND_DPOP_NONCE", "true", "TOKEND_REDIS_ADDR", redis.Addr))
	device := newProver(t, "ES256")
	_, rt := in.startFor("alice", "ios-app", "", "")
	r := in.token(refreshForm(rt, "ios-app"), "DPoP", mustProof(t, device, "POST", tokenURL, in.clock.Now()))
	oauthError(t, r, 400, "use_dpop_nonce", "the DPoP proof must carry the server's nonce (DPoP-Nonce header)")
	nonce := r.header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}
	wrong, _ := device.Proof("POST", tokenURL, prover.Options{IssuedAt: in.clock.Now(), Nonce: "not-the-nonce"})
	oauthError(t, in.token(refreshForm(rt, "ios-app"), "DPoP", wrong), 400, "use_dpop_nonce", "the DPoP proof must carry the server's nonce (DPoP-Nonce header)")
	p, _ := device.Proof("POST", tokenURL, prover.Options{IssuedAt: in.clock.Now(), Nonce: nonce})
	ok := in.token(refreshForm(rt, "ios-app"), "DPoP", p)
	_, rt = oauthPair(t, ok, "DPoP", "")
	if ok.header.Get("DPoP-Nonce") == "" {
		t.Fatal("200 without a DPoP-Nonce header")
	}
	// another instance with the same keys takes the nonce the first handed
	// out: nonces are derived from the keys, not kept
	other := start(t, "redis", oauthEnv("TOKEND_DPOP_NONCE", "true", "TOKEND_REDIS_ADDR", redis.Addr))
	p, _ = device.Proof("POST", tokenURL, prover.Options{IssuedAt: in.clock.Now(), Nonce: ok.header.Get("DPoP-Nonce")})
	oauthPair(t, other.token(refreshForm(rt, "ios-app"), "DPoP", p), "DPoP", "")
}

func newProver(t *testing.T, alg string) *prover.Key {
	t.Helper()
	k, err := prover.New(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustProof(t *testing.T, k *prover.Key, method, url string, iat time.Time) string {
	t.Helper()
	p, err := k.Proof(method, url, prover.Options{IssuedAt: iat})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// unsigned drops a proof's signature, as alg none has none.
func unsigned(p string) string { return p[:strings.LastIndexByte(p, '.')+1] }

// Introspection of a DPoP-bound token says so (RFC 9449 §6.2).
func TestIntrospectDPoP(t *testing.T) {
	in := start(t, "memory", oauthEnv())
	device := newProver(t, "ES256")
	access, _ := in.startFor("alice", "ios-app", "openid", device.Thumbprint())
	r := in.introspect(access)
	cnf, _ := r.body["cnf"].(map[string]any)
	if r.status != 200 || r.body["token_type"] != "DPoP" || cnf["jkt"] != device.Thumbprint() ||
		r.body["client_id"] != "ios-app" || r.body["scope"] != "openid" {
		t.Fatalf("introspection %d %s; want token_type DPoP, cnf.jkt, client_id, scope", r.status, r.raw)
	}
}
