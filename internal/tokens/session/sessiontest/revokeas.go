package sessiontest

import (
	"context"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

// revokeAs is the step of a revocation by client, with a proof by key
// (jti) where key is set.
func revokeAs(id string, at time.Duration, client, key, jti string) session.Step {
	return session.Step{ID: id, Now: base.Add(at), Client: client, Key: key, Proof: jti, ProofTTL: time.Minute}
}

// revokeAsCases: a token's holder ends its session only as the token
// endpoint would let it refresh it: the session's client (RFC 7009 §2.1),
// and for a DPoP-bound session a proof by its key. Each refusal leaves
// the session as it was.
var revokeAsCases = []struct {
	name string
	run  func(t *testing.T, st session.Store)
}{
	{"RevokeAsOtherClient", func(t *testing.T, st session.Store) {
		ctx := context.Background()
		s := createOAuth(t, st, "ios-app", "openid", "")
		wantErr(t, st.RevokeAs(ctx, revokeAs(s.ID, time.Second, "web", "", "")), session.ErrWrongClient)
		mustAdvance(t, st, oauthStep(s.ID, 0, 2*time.Second, "ios-app", "", "", ""))
		if err := st.RevokeAs(ctx, revokeAs(s.ID, 3*time.Second, "ios-app", "", "")); err != nil {
			t.Fatalf("RevokeAs by the session's client: %v", err)
		}
		_, err := rotate(t, st, oauthStep(s.ID, 1, 4*time.Second, "ios-app", "", "", ""))
		wantErr(t, err, session.ErrRevoked)
		// another client is refused still, revoked or not: no oracle of state
		wantErr(t, st.RevokeAs(ctx, revokeAs(s.ID, 5*time.Second, "web", "", "")), session.ErrWrongClient)
		// a session started for no client is any client's; the dialects'
		// endpoints name no client and end a client's session
		anyone := createOAuth(t, st, "", "", "")
		if err := st.RevokeAs(ctx, revokeAs(anyone.ID, time.Second, "web", "", "")); err != nil {
			t.Fatal(err)
		}
		own := createOAuth(t, st, "ios-app", "", "")
		if err := st.RevokeAs(ctx, revokeAs(own.ID, time.Second, "", "", "")); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{anyone.ID, own.ID} {
			_, err := rotate(t, st, step(id, 0, 2*time.Second, grace))
			wantErr(t, err, session.ErrRevoked)
		}
		// a session that is not there: nothing to end, no error
		if err := st.RevokeAs(ctx, revokeAs(newID(t), time.Second, "web", "", "")); err != nil {
			t.Fatalf("RevokeAs of a missing session: %v", err)
		}
	}},
	{"RevokeAsBoundNeedsItsKey", func(t *testing.T, st session.Store) {
		ctx := context.Background()
		k, other := thumb("device key"), thumb("attacker key")
		s := createOAuth(t, st, "app", "", "")
		mustAdvance(t, st, oauthStep(s.ID, 0, time.Second, "app", "", k, proof())) // the first proof binds it
		for _, try := range []struct {
			key  string
			want error
		}{{"", session.ErrKeyRequired}, {other, session.ErrWrongKey}} {
			jti := ""
			if try.key != "" {
				jti = proof()
			}
			wantErr(t, st.RevokeAs(ctx, revokeAs(s.ID, 2*time.Second, "app", try.key, jti)), try.want)
		}
		// nor by an endpoint that names no client and takes no proof
		wantErr(t, st.RevokeAs(ctx, revokeAs(s.ID, 2*time.Second, "", "", "")), session.ErrKeyRequired)
		mustAdvance(t, st, oauthStep(s.ID, 1, 3*time.Second, "app", "", k, proof()))
		jti := proof()
		if err := st.RevokeAs(ctx, revokeAs(s.ID, 4*time.Second, "app", k, jti)); err != nil {
			t.Fatalf("RevokeAs with a proof by the session's key: %v", err)
		}
		_, err := rotate(t, st, oauthStep(s.ID, 2, 5*time.Second, "app", "", k, proof()))
		wantErr(t, err, session.ErrRevoked)
		// its proof is used: replayed, it is refused
		wantErr(t, st.RevokeAs(ctx, revokeAs(s.ID, 5*time.Second, "app", k, jti)), session.ErrReplay)
	}},
	{"RevokeAsKeyNotThumbprint", func(t *testing.T, st session.Store) {
		// refused by every store alike, before anything changes
		s := createOAuth(t, st, "app", "", "")
		for _, key := range []string{"x.y", thumb("k")[:42] + "B"} {
			if err := st.RevokeAs(context.Background(), revokeAs(s.ID, time.Second, "app", key, proof())); err == nil {
				t.Fatalf("RevokeAs with step key %q, no thumbprint: accepted", key)
			}
		}
		mustAdvance(t, st, oauthStep(s.ID, 0, 2*time.Second, "app", "", "", ""))
	}},
	{"RevokeAsBoundAtCreation", func(t *testing.T, st session.Store) {
		ctx := context.Background()
		k := thumb("device key")
		s := createOAuth(t, st, "", "", k)
		wantErr(t, st.RevokeAs(ctx, revokeAs(s.ID, time.Second, "web", "", "")), session.ErrKeyRequired)
		wantErr(t, st.RevokeAs(ctx, revokeAs(s.ID, time.Second, "web", thumb("other"), proof())), session.ErrWrongKey)
		mustAdvance(t, st, oauthStep(s.ID, 0, 2*time.Second, "web", "", k, proof()))
		if err := st.RevokeAs(ctx, revokeAs(s.ID, 3*time.Second, "web", k, proof())); err != nil {
			t.Fatal(err)
		}
		_, err := rotate(t, st, oauthStep(s.ID, 1, 4*time.Second, "web", "", k, proof()))
		wantErr(t, err, session.ErrRevoked)
	}},
	{"RevokeAsPublishes", func(t *testing.T, st session.Store) {
		s := createOAuth(t, st, "app", "", "")
		if err := st.RevokeAs(context.Background(), revokeAs(s.ID, time.Second, "app", "", "")); err != nil {
			t.Fatal(err)
		}
		f, ok := st.(session.Feed)
		if !ok {
			return
		}
		rev, revoked, err := f.Lookup(context.Background(), s.ID)
		if err != nil || !revoked || rev.Subject != s.Subject {
			t.Fatalf("Lookup after RevokeAs = %+v, %v, %v; want revoked", rev, revoked, err)
		}
	}},
}
