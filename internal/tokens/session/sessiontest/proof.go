package sessiontest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

// iatAt is a proof's iat, whole seconds (as RFC 9449's are) sec after
// base's second.
func iatAt(sec int) time.Time { return time.Unix(base.Unix()+int64(sec), 0) }

// dpopStep is a refresh at `at` of generation gen with proof jti by key k,
// issued at iat (zero: the step says no iat).
func dpopStep(id string, gen int64, at time.Duration, k, jti string, iat time.Time) session.Step {
	s := oauthStep(id, gen, at, "", "", k, jti)
	s.ProofIssued = iat
	return s
}

// proofOrders are the orders of two proofs' iat a thief's replay is tried
// against: the second newer, the same second, older (clocks, or requests
// overtaking each other), and proofs whose iat the caller did not give.
var proofOrders = []struct {
	name       string
	iat1, iat2 time.Time
}{
	{"newer", iatAt(1), iatAt(2)},
	{"same second", iatAt(1), iatAt(1)},
	{"older", iatAt(2), iatAt(1)},
	{"no iat", time.Time{}, time.Time{}},
}

// proofCases: a DPoP proof works once per session, across instances,
// whatever token it is replayed with and in whatever order proofs came.
// Each replay is what a thief holding the proof and a refresh token does.
var proofCases = []struct {
	name string
	run  func(t *testing.T, st session.Store)
}{
	{"ProofReplayedOnRetry", func(t *testing.T, st session.Store) {
		// the retry path: a second pair for the same used-up token, with the
		// proof that went with it, or with the retry's own
		for _, o := range proofOrders {
			t.Run(o.name, func(t *testing.T) {
				k := thumb("device key")
				s := createOAuth(t, st, "", "", k)
				p, q := proof(), proof()
				mustAdvance(t, st, dpopStep(s.ID, 0, time.Second, k, p, o.iat1))
				_, err := rotate(t, st, dpopStep(s.ID, 0, 2*time.Second, k, p, o.iat1))
				wantErr(t, err, session.ErrReplay)
				// the client's own retry, with a new proof: the pair again
				r, err := rotate(t, st, dpopStep(s.ID, 0, 2*time.Second, k, q, o.iat2))
				if err != nil || !r.Retry || r.Gen != 1 {
					t.Fatalf("retry with a new proof = %+v, %v; want a retry", r, err)
				}
				for _, replay := range []session.Step{
					dpopStep(s.ID, 0, 3*time.Second, k, p, o.iat1),
					dpopStep(s.ID, 0, 3*time.Second, k, q, o.iat2),
					dpopStep(s.ID, 1, 3*time.Second, k, p, o.iat1), // with the current token
					dpopStep(s.ID, 1, 3*time.Second, k, q, o.iat2),
				} {
					_, err := rotate(t, st, replay)
					wantErr(t, err, session.ErrReplay)
				}
				// refused replays burnt nothing
				mustAdvance(t, st, dpopStep(s.ID, 1, 4*time.Second, k, proof(), iatAt(4)))
			})
		}
	}},
	{"ProofReplayedAfterAdvance", func(t *testing.T, st session.Store) {
		for _, o := range proofOrders {
			t.Run(o.name, func(t *testing.T) {
				k := thumb("device key")
				s := createOAuth(t, st, "", "", k)
				p, q := proof(), proof()
				mustAdvance(t, st, dpopStep(s.ID, 0, time.Second, k, p, o.iat1))
				mustAdvance(t, st, dpopStep(s.ID, 1, 2*time.Second, k, q, o.iat2))
				for _, replay := range []session.Step{
					dpopStep(s.ID, 1, 3*time.Second, k, p, o.iat1), // the parent inside grace: a retry but for the proof
					dpopStep(s.ID, 2, 3*time.Second, k, p, o.iat1), // the current token
					dpopStep(s.ID, 1, 3*time.Second, k, q, o.iat2),
					dpopStep(s.ID, 2, 3*time.Second, k, q, o.iat2),
				} {
					_, err := rotate(t, st, replay)
					wantErr(t, err, session.ErrReplay)
				}
				// the first token with its own proof: used up twice over; never a pair
				r, err := rotate(t, st, dpopStep(s.ID, 0, 3*time.Second, k, p, o.iat1))
				if !errors.Is(err, session.ErrReplay) && !errors.Is(err, session.ErrReuse) {
					t.Fatalf("the first token with its proof = %+v, %v; want ErrReplay or ErrReuse", r, err)
				}
			})
		}
	}},
	{"ProofOnAnotherSessionOfItsKey", func(t *testing.T, st session.Store) {
		// a device with two sessions bound to one key: a proof of one
		// refresh of a is spent for a; with b's token it may be refused or
		// advance b once (docs/design.md: once per session), never twice
		k := thumb("device key")
		a, b := createOAuth(t, st, "", "", k), createOAuth(t, st, "", "", k)
		p := proof()
		mustAdvance(t, st, dpopStep(a.ID, 0, time.Second, k, p, iatAt(1)))
		gen := int64(0)
		r, err := rotate(t, st, dpopStep(b.ID, 0, 2*time.Second, k, p, iatAt(1)))
		switch {
		case err == nil && !r.Retry && r.Gen == 1:
			gen = 1
		case !errors.Is(err, session.ErrReplay):
			t.Fatalf("a's proof with b's token = %+v, %v; want an advance or ErrReplay", r, err)
		}
		_, err = rotate(t, st, dpopStep(b.ID, gen, 3*time.Second, k, p, iatAt(1)))
		wantErr(t, err, session.ErrReplay)
		_, err = rotate(t, st, dpopStep(a.ID, 1, 3*time.Second, k, p, iatAt(1)))
		wantErr(t, err, session.ErrReplay)
		mustAdvance(t, st, dpopStep(a.ID, 1, 4*time.Second, k, proof(), iatAt(4)))
		mustAdvance(t, st, dpopStep(b.ID, gen, 4*time.Second, k, proof(), iatAt(4)))
	}},
	{"ProofOfRefreshReplayedToRevoke", func(t *testing.T, st session.Store) {
		ctx := context.Background()
		k := thumb("device key")
		s := createOAuth(t, st, "app", "", k)
		p, q := proof(), proof()
		mustAdvance(t, st, dpopStep(s.ID, 0, time.Second, k, p, iatAt(1)))
		wantErr(t, st.RevokeAs(ctx, revokeAs(s.ID, 2*time.Second, "app", k, p)), session.ErrReplay)
		// and once a later proof took its place in the session's record
		mustAdvance(t, st, dpopStep(s.ID, 1, 2*time.Second, k, q, iatAt(2)))
		wantErr(t, st.RevokeAs(ctx, revokeAs(s.ID, 3*time.Second, "app", k, p)), session.ErrReplay)
		wantErr(t, st.RevokeAs(ctx, revokeAs(s.ID, 3*time.Second, "app", k, q)), session.ErrReplay)
		// refused: nothing ended
		mustAdvance(t, st, dpopStep(s.ID, 2, 4*time.Second, k, proof(), iatAt(4)))
	}},
	{"ProofOfRevokeReplayedToRefresh", func(t *testing.T, st session.Store) {
		ctx := context.Background()
		k := thumb("device key")
		s := createOAuth(t, st, "app", "", k)
		mustAdvance(t, st, dpopStep(s.ID, 0, time.Second, k, proof(), iatAt(1)))
		p := proof()
		if err := st.RevokeAs(ctx, revokeAs(s.ID, 2*time.Second, "app", k, p)); err != nil {
			t.Fatalf("RevokeAs: %v", err)
		}
		for _, gen := range []int64{0, 1} {
			r, err := rotate(t, st, dpopStep(s.ID, gen, 3*time.Second, k, p, iatAt(2)))
			if !errors.Is(err, session.ErrRevoked) && !errors.Is(err, session.ErrReplay) {
				t.Fatalf("revocation's proof with token %d = %+v, %v; want ErrRevoked or ErrReplay", gen, r, err)
			}
		}
		// a second revocation with it: refused or nothing left to end
		if err := st.RevokeAs(ctx, revokeAs(s.ID, 3*time.Second, "app", k, p)); err != nil && !errors.Is(err, session.ErrReplay) {
			t.Fatalf("RevokeAs again: %v", err)
		}
	}},
	{"ProofAfterSessionEnded", func(t *testing.T, st session.Store) {
		ctx := context.Background()
		k := thumb("device key")
		s := createOAuth(t, st, "", "", k)
		p := proof()
		mustAdvance(t, st, dpopStep(s.ID, 0, time.Second, k, p, iatAt(1)))
		if err := st.Revoke(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		for _, jti := range []string{p, proof()} {
			_, err := rotate(t, st, dpopStep(s.ID, 1, 2*time.Second, k, jti, iatAt(2)))
			wantErr(t, err, session.ErrRevoked)
		}
		// a session past its end: no pair for its proof either
		short := session.Session{ID: newID(t), Subject: "6f1c8e2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b", Created: base, Rotated: base,
			Expires: time.Now().Add(time.Minute).Truncate(time.Millisecond), Key: k}
		end := short.Expires.Sub(base) + time.Second
		if err := st.Create(ctx, short, idle); err != nil {
			t.Fatal(err)
		}
		q := proof()
		mustAdvance(t, st, dpopStep(short.ID, 0, time.Second, k, q, iatAt(1)))
		for _, jti := range []string{q, proof()} {
			r, err := rotate(t, st, dpopStep(short.ID, 1, end, k, jti, iatAt(int(end/time.Second))))
			if !errors.Is(err, session.ErrExpired) && !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("after the session's end = %+v, %v; want ErrExpired or ErrNotFound", r, err)
			}
		}
	}},
	{"ProofForgottenAfterItsTime", func(t *testing.T, st session.Store) {
		// the edges of ProofTTL, where both stores must agree: a proof
		// another took the place of is refused for ProofTTL, then forgotten
		// (its iat is past every instance's window by then); the session's
		// newest proof is refused for as long as the record holds it
		k := thumb("device key")
		s := createOAuth(t, st, "", "", k)
		p, q := proof(), proof()
		ttl := 1500 * time.Millisecond
		first := dpopStep(s.ID, 0, time.Second, k, p, iatAt(1))
		first.ProofTTL = ttl
		mustAdvance(t, st, first)
		second := dpopStep(s.ID, 1, 1200*time.Millisecond, k, q, iatAt(2))
		second.ProofTTL = ttl
		mustAdvance(t, st, second)
		replay := dpopStep(s.ID, 2, 1300*time.Millisecond, k, p, iatAt(1))
		replay.ProofTTL = ttl
		_, err := rotate(t, st, replay)
		wantErr(t, err, session.ErrReplay)
		time.Sleep(1700 * time.Millisecond) // Redis expires by its own clock
		replay.Now = replay.Now.Add(1700 * time.Millisecond)
		mustAdvance(t, st, replay)
		again := dpopStep(s.ID, 3, 3500*time.Millisecond, k, q, iatAt(2))
		again.ProofTTL = ttl
		_, err = rotate(t, st, again)
		wantErr(t, err, session.ErrReplay)
	}},
}

// RunInstances runs the cases of OAuth 2.0 refreshes, DPoP proofs, holders'
// revocations and legacy tokens on stores newStore makes, each of which
// may be several instances, or versions, over one shared store: what one
// instance accepted, another must refuse as well.
func RunInstances(t *testing.T, newStore func(t *testing.T) session.Store) {
	for _, group := range [][]struct {
		name string
		run  func(t *testing.T, st session.Store)
	}{oauthCases, proofCases, revokeAsCases, legacyCases} {
		for _, tc := range group {
			if tc.name == "ProofForgottenAfterItsTime" {
				// when a proof is forgotten depends on where the instance that
				// used it keeps it (a key: ProofTTL after; the record: once a
				// newer one replaces it); that it is refused until then is
				// ProofReplayedAfterAdvance
				continue
			}
			t.Run(tc.name, func(t *testing.T) { tc.run(t, newStore(t)) })
		}
	}
}
