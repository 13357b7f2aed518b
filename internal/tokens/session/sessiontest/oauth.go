package sessiontest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

// thumb is a thumbprint-shaped key (base64url of 32 bytes) named by s.
func thumb(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// createOAuth starts a session with OAuth fields; sub is a UUID so that
// the packed subject and the extension meet in one record.
func createOAuth(t *testing.T, st session.Store, client, scope, key string) session.Session {
	t.Helper()
	s := session.Session{ID: newID(t), Subject: "6f1c8e2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b", Created: base, Rotated: base,
		Expires: base.Add(24 * time.Hour), Client: client, Scope: scope, Key: key}
	if err := st.Create(context.Background(), s, idle); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return s
}

// oauthStep is a step of the token endpoint.
func oauthStep(id string, gen int64, at time.Duration, client, scope, key, proof string) session.Step {
	s := step(id, gen, at, grace)
	s.Client, s.Scope, s.Key, s.Proof, s.ProofTTL = client, scope, key, proof, time.Minute
	return s
}

// proof is a jti not used before.
func proof() string { return rand.Text() }

// oauthCases are the OAuth 2.0 and DPoP rules: clients, scopes, binding,
// proofs used once. Every refusal leaves the session as it was.
var oauthCases = []struct {
	name string
	run  func(t *testing.T, st session.Store)
}{
	{"OAuthFieldsKept", func(t *testing.T, st session.Store) {
		s := createOAuth(t, st, "ios-app", "openid orders:read", "")
		r := mustAdvance(t, st, oauthStep(s.ID, 0, time.Second, "ios-app", "", "", ""))
		if r.Client != "ios-app" || r.Scope != "openid orders:read" || r.Key != "" || r.Subject != s.Subject {
			t.Fatalf("rotation = %+v; want the session's client, scope and subject, no key", r)
		}
		// the legacy endpoints' steps carry no client: still the same session
		r = mustAdvance(t, st, step(s.ID, 1, 2*time.Second, grace))
		if r.Client != "ios-app" || r.Scope != "openid orders:read" {
			t.Fatalf("rotation = %+v; want the OAuth fields kept", r)
		}
	}},
	{"WrongClient", func(t *testing.T, st session.Store) {
		s := createOAuth(t, st, "ios-app", "", "")
		_, err := rotate(t, st, oauthStep(s.ID, 0, time.Second, "web", "", "", ""))
		wantErr(t, err, session.ErrWrongClient)
		// another client's stale token is no reuse either: nothing burns
		_, err = rotate(t, st, oauthStep(s.ID, 5, time.Second, "web", "", "", ""))
		wantErr(t, err, session.ErrWrongClient)
		mustAdvance(t, st, oauthStep(s.ID, 0, 2*time.Second, "ios-app", "", "", ""))
		// a session started for no client is any client's
		any := createOAuth(t, st, "", "", "")
		mustAdvance(t, st, oauthStep(any.ID, 0, time.Second, "web", "", "", ""))
	}},
	{"ScopeNarrows", func(t *testing.T, st session.Store) {
		s := createOAuth(t, st, "", "openid orders:read orders:write", "")
		// the first ask advances, the others retry it inside grace
		for _, ask := range []string{"orders:write", "openid  orders:read", "orders:read openid orders:write"} {
			r, err := rotate(t, st, oauthStep(s.ID, 0, time.Second, "", ask, "", ""))
			if err != nil || r.Gen != 1 {
				t.Fatalf("scope %q: %+v, %v", ask, r, err)
			}
			if r.Scope != "openid orders:read orders:write" {
				t.Fatalf("scope %q narrowed the session: %q", ask, r.Scope)
			}
		}
		for _, ask := range []string{"admin", "orders", "openid admin", "orders:read:x"} {
			_, err := rotate(t, st, oauthStep(s.ID, 1, 2*time.Second, "", ask, "", ""))
			wantErr(t, err, session.ErrScope)
		}
		mustAdvance(t, st, oauthStep(s.ID, 1, 3*time.Second, "", "", "", ""))
		none := createOAuth(t, st, "app", "", "")
		_, err := rotate(t, st, oauthStep(none.ID, 0, time.Second, "app", "openid", "", ""))
		wantErr(t, err, session.ErrScope)
	}},
	{"FirstProofBinds", func(t *testing.T, st session.Store) {
		s := createOAuth(t, st, "", "", "")
		k, other := thumb("device key"), thumb("attacker key")
		r := mustAdvance(t, st, oauthStep(s.ID, 0, time.Second, "app", "", k, proof()))
		if r.Key != k {
			t.Fatalf("Key = %q; want %q", r.Key, k)
		}
		// bound for good: no proof, or another key's, is refused and burns
		// nothing, not even with a token a thief replays after grace
		for _, try := range []struct {
			gen  int64
			key  string
			want error
		}{{1, "", session.ErrKeyRequired}, {1, other, session.ErrWrongKey}, {0, other, session.ErrWrongKey}, {0, "", session.ErrKeyRequired}} {
			_, err := rotate(t, st, oauthStep(s.ID, try.gen, time.Minute, "app", "", try.key, proof()))
			wantErr(t, err, try.want)
		}
		_, err := rotate(t, st, step(s.ID, 1, time.Minute, grace)) // a legacy endpoint's step
		wantErr(t, err, session.ErrKeyRequired)
		if r := mustAdvance(t, st, oauthStep(s.ID, 1, time.Minute, "app", "", k, proof())); r.Key != k {
			t.Fatalf("Key = %q after the bound key's refresh", r.Key)
		}
	}},
	{"BoundAtCreation", func(t *testing.T, st session.Store) {
		k := thumb("device key")
		s := createOAuth(t, st, "app", "openid", k)
		_, err := rotate(t, st, oauthStep(s.ID, 0, time.Second, "app", "", "", ""))
		wantErr(t, err, session.ErrKeyRequired)
		r := mustAdvance(t, st, oauthStep(s.ID, 0, time.Second, "app", "openid", k, proof()))
		if r.Key != k || r.Client != "app" || r.Scope != "openid" {
			t.Fatalf("rotation = %+v", r)
		}
	}},
	{"RetryDoesNotBind", func(t *testing.T, st session.Store) {
		// the thief: whoever holds the used-up token retries it inside the
		// grace window with a proof of their own key. The retry hands out
		// the pair the advance issued, a Bearer pair, and binds nothing: the
		// owner's next refresh without a proof still advances.
		s := createOAuth(t, st, "", "", "")
		thief := thumb("thief key")
		mustAdvance(t, st, step(s.ID, 0, time.Second, grace))
		r, err := rotate(t, st, oauthStep(s.ID, 0, 2*time.Second, "app", "", thief, proof()))
		if err != nil || !r.Retry || r.Gen != 1 || r.Key != "" {
			t.Fatalf("retry with a proof = %+v, %v; want a retry of the unbound pair (Key \"\")", r, err)
		}
		if r := mustAdvance(t, st, step(s.ID, 1, 3*time.Second, grace)); r.Key != "" {
			t.Fatalf("the owner's Bearer refresh = %+v; want it unbound", r)
		}
		// the owner's own first proof, on an advance, still binds
		owner := thumb("owner key")
		if r := mustAdvance(t, st, oauthStep(s.ID, 2, 4*time.Second, "app", "", owner, proof())); r.Key != owner {
			t.Fatalf("Key = %q after the owner's first proof; want the owner's", r.Key)
		}
		// and the thief's retry of the parent with their key is refused, burning nothing
		_, err = rotate(t, st, oauthStep(s.ID, 2, 5*time.Second, "app", "", thief, proof()))
		wantErr(t, err, session.ErrWrongKey)
		mustAdvance(t, st, oauthStep(s.ID, 3, 6*time.Second, "app", "", owner, proof()))
	}},
	{"RetryOfBoundAdvance", func(t *testing.T, st session.Store) {
		// an advance that bound the session is retried with the same key
		// only: the same bound pair; no proof or another key's burns nothing
		s := createOAuth(t, st, "", "", "")
		k := thumb("device key")
		mustAdvance(t, st, oauthStep(s.ID, 0, time.Second, "app", "", k, proof()))
		r, err := rotate(t, st, oauthStep(s.ID, 0, 2*time.Second, "app", "", k, proof()))
		if err != nil || !r.Retry || r.Gen != 1 || r.Key != k {
			t.Fatalf("retry with the bound key = %+v, %v; want a retry bound to it", r, err)
		}
		_, err = rotate(t, st, step(s.ID, 0, 2*time.Second, grace))
		wantErr(t, err, session.ErrKeyRequired)
		_, err = rotate(t, st, oauthStep(s.ID, 0, 2*time.Second, "app", "", thumb("thief key"), proof()))
		wantErr(t, err, session.ErrWrongKey)
		if r := mustAdvance(t, st, oauthStep(s.ID, 1, 3*time.Second, "app", "", k, proof())); r.Key != k {
			t.Fatalf("Key = %q; want %q", r.Key, k)
		}
	}},
	{"ProofUsedOnce", func(t *testing.T, st session.Store) {
		k := thumb("device key")
		a, b := createOAuth(t, st, "", "", k), createOAuth(t, st, "", "", k)
		jti := proof()
		mustAdvance(t, st, oauthStep(a.ID, 0, time.Second, "", "", k, jti))
		// the same proof again: refused, and the session does not burn (that
		// it is refused on another session bound to the same key too is
		// each store's own test: a Cluster keeps jti per slot)
		_, err := rotate(t, st, oauthStep(a.ID, 1, 2*time.Second, "", "", k, jti))
		wantErr(t, err, session.ErrReplay)
		// a replayed request inside grace gets no second copy of the pair
		_, err = rotate(t, st, oauthStep(a.ID, 0, 2*time.Second, "", "", k, jti))
		wantErr(t, err, session.ErrReplay)
		mustAdvance(t, st, oauthStep(a.ID, 1, 3*time.Second, "", "", k, proof()))
		mustAdvance(t, st, oauthStep(b.ID, 0, 3*time.Second, "", "", k, proof()))
		// a jti is the client's choice: another key may use the same one
		c := createOAuth(t, st, "", "", "")
		mustAdvance(t, st, oauthStep(c.ID, 0, 3*time.Second, "", "", thumb("other device"), jti))
	}},
	{"RefusedBeforeRuleChangesNothing", func(t *testing.T, st session.Store) {
		// a refused proof after the session moved is not taken for reuse
		k := thumb("device key")
		s := createOAuth(t, st, "app", "openid", k)
		mustAdvance(t, st, oauthStep(s.ID, 0, time.Second, "app", "", k, proof()))
		for _, bad := range []session.Step{
			oauthStep(s.ID, 0, time.Minute, "web", "", k, proof()),
			oauthStep(s.ID, 0, time.Minute, "app", "admin", k, proof()),
			oauthStep(s.ID, 0, time.Minute, "app", "", thumb("x"), proof()),
		} {
			if _, err := rotate(t, st, bad); err == nil {
				t.Fatalf("step %+v accepted", bad)
			}
		}
		mustAdvance(t, st, oauthStep(s.ID, 1, time.Minute, "app", "", k, proof()))
	}},
	{"RevokeExtended", func(t *testing.T, st session.Store) {
		s := createOAuth(t, st, "app", "openid", thumb("device key"))
		n, err := st.RevokeSubject(context.Background(), s.Subject, false)
		if err != nil || n != 1 {
			t.Fatalf("RevokeSubject = %d, %v; want 1", n, err)
		}
		_, err = rotate(t, st, oauthStep(s.ID, 0, time.Second, "app", "", thumb("device key"), proof()))
		wantErr(t, err, session.ErrRevoked)
	}},
	{"CreateRefusesBadOAuthFields", func(t *testing.T, st session.Store) {
		for _, s := range []session.Session{
			{Key: "not a thumbprint"},
			{Key: base64.RawURLEncoding.EncodeToString([]byte("short"))},
			{Client: string(make([]byte, session.MaxClientSize+1))},
			{Scope: string(make([]byte, session.MaxScopeSize+1))},
		} {
			s.ID, s.Subject, s.Created, s.Rotated, s.Expires = newID(t), "alice", base, base, base.Add(time.Hour)
			if err := st.Create(context.Background(), s, idle); err == nil {
				t.Fatalf("Create(%+v) accepted", s)
			}
		}
	}},
}
