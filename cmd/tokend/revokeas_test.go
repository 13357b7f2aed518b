package main

import (
	"net/http"
	"net/url"
	"testing"
)

const revokeURL = publicURL + "/oauth2/revoke"

// TestOAuth2RevokeIsTheClients: /oauth2/revoke ends a session only for the
// client it was issued to (RFC 7009 §2.1), and a DPoP-bound session only
// with a proof by its key (RFC 9449): whoever sees a user's token (a
// resource server, a log) cannot log the user out. Each refusal leaves the
// session as it was.
func TestOAuth2RevokeIsTheClients(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, oauthEnv())
			revoke := func(token, client string, header ...string) reply {
				t.Helper()
				v := url.Values{"token": {token}, "client_id": {client}}
				return in.do(http.MethodPost, in.public+"/oauth2/revoke", "application/x-www-form-urlencoded", []byte(v.Encode()), header...)
			}
			ok := func(r reply) {
				t.Helper()
				if r.status != 200 {
					t.Fatalf("revoke = %d %s; want 200", r.status, r.raw)
				}
			}
			alive := func(rt, client string, header ...string) string {
				t.Helper()
				r := in.token(refreshForm(rt, client), header...)
				if r.status != 200 {
					t.Fatalf("the session was ended by a refused revocation: %d %s", r.status, r.raw)
				}
				rt, _ = r.body["refresh_token"].(string)
				return rt
			}

			// another client, with the access token or the refresh token
			access, rt := in.startFor("alice", "ios-app", "", "")
			oauthError(t, revoke(access, "web"), 400, "invalid_grant", invalidGrant)
			oauthError(t, revoke(rt, "web"), 400, "invalid_grant", invalidGrant)
			rt = alive(rt, "ios-app")
			ok(revoke(rt, "ios-app"))
			oauthError(t, in.token(refreshForm(rt, "ios-app")), 400, "invalid_grant", invalidGrant)

			// a session for no client: its access token names the client that
			// refreshed it, and only that one revokes with it
			_, rt = in.startFor("bob", "", "", "")
			r := in.token(refreshForm(rt, "ios-app"))
			access, rt = oauthPair(t, r, "Bearer", "")
			oauthError(t, revoke(access, "web"), 400, "invalid_grant", invalidGrant)
			rt = alive(rt, "ios-app")
			ok(revoke(access, "ios-app"))
			oauthError(t, in.token(refreshForm(rt, "ios-app")), 400, "invalid_grant", invalidGrant)

			// a DPoP-bound session: a proof by its key, for this endpoint
			device, thief := newProver(t, "ES256"), newProver(t, "EdDSA")
			_, rt = in.startFor("carol", "ios-app", "", "")
			access, rt = oauthPair(t, in.token(refreshForm(rt, "ios-app"), "DPoP", mustProof(t, device, "POST", tokenURL, in.clock.Now())), "DPoP", "")
			for _, tc := range []struct {
				name    string
				token   string
				headers []string
				desc    string
			}{
				{"access token, no proof", access, nil, "the session is bound to a DPoP key: a proof signed by it is required"},
				{"refresh token, no proof", rt, nil, "the session is bound to a DPoP key: a proof signed by it is required"},
				{"another key's proof", access, []string{"DPoP", mustProof(t, thief, "POST", revokeURL, in.clock.Now())}, "the DPoP proof is signed by another key than the one the session is bound to"},
				{"the key's proof for the token endpoint", access, []string{"DPoP", mustProof(t, device, "POST", tokenURL, in.clock.Now())}, "DPoP proof: htu …"},
			} {
				r := revoke(tc.token, "ios-app", tc.headers...)
				if r.status != 400 || r.body["error"] != "invalid_dpop_proof" || (tc.desc != "DPoP proof: htu …" && r.body["error_description"] != tc.desc) {
					t.Fatalf("%s: %d %s; want 400 invalid_dpop_proof %q", tc.name, r.status, r.raw, tc.desc)
				}
			}
			// nor the dialect's revoke endpoint, which takes no proof
			if r := in.postJSON(in.public+"/api/auth/revoke", `{"refreshToken":"`+rt+`"}`); r.status == 204 {
				t.Fatalf("/api/auth/revoke ended a DPoP-bound session without a proof: %d %s", r.status, r.raw)
			}
			rt = alive(rt, "ios-app", "DPoP", mustProof(t, device, "POST", tokenURL, in.clock.Now()))
			p := mustProof(t, device, "POST", revokeURL, in.clock.Now())
			ok(revoke(rt, "ios-app", "DPoP", p))
			oauthError(t, in.token(refreshForm(rt, "ios-app"), "DPoP", mustProof(t, device, "POST", tokenURL, in.clock.Now())), 400, "invalid_grant", invalidGrant)
			// the proof was for one revocation: replayed, it is refused
			r = revoke(rt, "ios-app", "DPoP", p)
			if r.status != 400 || r.body["error"] != "invalid_dpop_proof" {
				t.Fatalf("a replayed revocation proof: %d %s", r.status, r.raw)
			}
		})
	}
}
