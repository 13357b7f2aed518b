package sessiontest

import (
	"context"
	"errors"
	"strings"
	"sync"
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
	{"ProofFromTheFuture", func(t *testing.T, st session.Store) {
		// a proof whose iat is ahead of every clock (a client's clock fast
		// by most of the window) becomes the session's newest: the honest
		// proofs after it look older and each costs a key, but none is
		// refused, and every one of them, and it, is refused again
		k := thumb("device key")
		s := createOAuth(t, st, "", "", k)
		ahead := proof()
		mustAdvance(t, st, dpopStep(s.ID, 0, time.Second, k, ahead, iatAt(29)))
		used := []session.Step{dpopStep(s.ID, 0, 0, k, ahead, iatAt(29))}
		gen := int64(1)
		for i, iat := range []time.Time{iatAt(2), iatAt(29), iatAt(3), {}, iatAt(28), iatAt(30), iatAt(30)} {
			at := time.Duration(2+i) * time.Second
			p := dpopStep(s.ID, gen, at, k, proof(), iat)
			mustAdvance(t, st, p)
			gen++
			used = append(used, p)
			for _, replay := range used {
				replay.Gen, replay.Now = gen, base.Add(at+time.Millisecond)
				_, err := rotate(t, st, replay)
				wantErr(t, err, session.ErrReplay)
			}
		}
	}},
	{"ProofDisplacedOnAClockAhead", func(t *testing.T, st session.Store) {
		// the proof a newer one displaces keeps a key while an instance
		// could take it: decided by the displacing instance's clock, which
		// may be ahead of the one the replay reaches by almost the window
		for _, late := range []time.Duration{time.Millisecond, 15 * time.Second, 29 * time.Second} {
			t.Run(late.String(), func(t *testing.T) {
				k := thumb("device key")
				s := createOAuth(t, st, "", "", k)
				p, q := proof(), proof()
				mustAdvance(t, st, dpopStep(s.ID, 0, time.Second, k, p, iatAt(1)))
				// ProofTTL is twice the window, a minute: the window is 30 s
				ahead := iatAt(1).Add(time.Minute - late).Sub(base)
				mustAdvance(t, st, dpopStep(s.ID, 1, ahead, k, q, iatAt(2)))
				// an instance behind, to which p is 2 s old
				for _, gen := range []int64{1, 2} {
					_, err := rotate(t, st, dpopStep(s.ID, gen, 3*time.Second, k, p, iatAt(1)))
					wantErr(t, err, session.ErrReplay)
				}
				mustAdvance(t, st, dpopStep(s.ID, 2, ahead+time.Second, k, proof(), iatAt(3)))
			})
		}
	}},
	{"ProofsConcurrentSameSecond", func(t *testing.T, st session.Store) {
		// a client's requests overtaking each other: one token, proofs of
		// the same second, at once. One advances, the rest are retries; then
		// each proof is spent, whichever the record keeps
		k := thumb("device key")
		s := createOAuth(t, st, "", "", k)
		mustAdvance(t, st, dpopStep(s.ID, 0, time.Second, k, proof(), iatAt(1)))
		const n = 16
		jtis := make([]string, n)
		for i := range jtis {
			jtis[i] = proof()
		}
		var wg sync.WaitGroup
		res := make([]session.Rotation, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i], errs[i] = st.Rotate(context.Background(), dpopStep(s.ID, 1, 2*time.Second, k, jtis[i], iatAt(2)))
			}()
		}
		wg.Wait()
		advanced := 0
		for i := range n {
			switch {
			case errs[i] != nil:
				t.Fatalf("request %d: %v", i, errs[i])
			case !res[i].Retry:
				advanced++
			}
		}
		if advanced != 1 {
			t.Fatalf("%d requests advanced; want 1", advanced)
		}
		for _, jti := range jtis {
			for _, gen := range []int64{1, 2} {
				_, err := rotate(t, st, dpopStep(s.ID, gen, 3*time.Second, k, jti, iatAt(2)))
				wantErr(t, err, session.ErrReplay)
			}
		}
		mustAdvance(t, st, dpopStep(s.ID, 2, 4*time.Second, k, proof(), iatAt(2)))
	}},
	{"ProofJTIEdges", func(t *testing.T, st session.Store) {
		// jti is the client's: the longest a verifier takes, any bytes; two
		// that differ in their last byte are two proofs, in the same second
		// or not
		k := thumb("device key")
		s := createOAuth(t, st, "", "", k)
		long := strings.Repeat("j", 255)
		jtis := []string{long + "a", long + "b", "a\x00b", "a\x00c", "\xff\xfe.", ".", "a.b"}
		for i, jti := range jtis {
			mustAdvance(t, st, dpopStep(s.ID, int64(i), time.Duration(1+i)*time.Second, k, jti, iatAt(1+i/2)))
		}
		gen := int64(len(jtis))
		for i, jti := range jtis {
			_, err := rotate(t, st, dpopStep(s.ID, gen, 10*time.Second, k, jti, iatAt(1+i/2)))
			wantErr(t, err, session.ErrReplay)
		}
		mustAdvance(t, st, dpopStep(s.ID, gen, 11*time.Second, k, long+"c", iatAt(20)))
	}},
	{"ProofRecordAtItsLimits", func(t *testing.T, st session.Store) {
		// the largest record: the longest client and scope, a key and its
		// newest proof, a raw subject; the proof spliced in as it changes
		// leaves every other field as it was
		k := thumb("device key")
		client := strings.Repeat("c", session.MaxClientSize)
		scope := strings.Repeat("s", session.MaxScopeSize/2-1) + " " + strings.Repeat("t", session.MaxScopeSize/2)
		s := session.Session{ID: newID(t), Subject: strings.Repeat("u", 300), Created: base, Rotated: base,
			Expires: base.Add(24 * time.Hour), Client: client, Scope: scope, Key: k}
		if err := st.Create(context.Background(), s, idle); err != nil {
			t.Fatal(err)
		}
		var used []session.Step
		for i, iat := range []time.Time{iatAt(1), iatAt(2), iatAt(2), iatAt(1), {}, iatAt(3)} {
			p := dpopStep(s.ID, int64(i), time.Duration(1+i)*time.Second, k, proof(), iat)
			p.Client, p.Owner = client, s.Subject
			r := mustAdvance(t, st, p)
			if r.Client != client || r.Scope != scope || r.Key != k || r.Subject != s.Subject {
				t.Fatalf("advance %d: fields %d/%d/%q/%d; want the session's", i, len(r.Client), len(r.Scope), r.Key, len(r.Subject))
			}
			used = append(used, p)
		}
		for _, replay := range used {
			replay.Gen, replay.Now = 6, base.Add(8*time.Second)
			_, err := rotate(t, st, replay)
			wantErr(t, err, session.ErrReplay)
		}
		r := mustAdvance(t, st, oauthStep(s.ID, 6, 9*time.Second, client, "t"+strings.Repeat("t", session.MaxScopeSize/2-1), k, proof()))
		if r.Scope != scope {
			t.Fatalf("scope after the last advance: %d bytes; want %d", len(r.Scope), len(scope))
		}
	}},
	{"ProofOfRefreshReplayedToRevokeInAnyOrder", func(t *testing.T, st session.Store) {
		ctx := context.Background()
		for _, o := range proofOrders {
			t.Run(o.name, func(t *testing.T) {
				k := thumb("device key")
				s := createOAuth(t, st, "app", "", k)
				p, q := proof(), proof()
				mustAdvance(t, st, dpopStep(s.ID, 0, time.Second, k, p, o.iat1))
				mustAdvance(t, st, dpopStep(s.ID, 1, 2*time.Second, k, q, o.iat2))
				for _, jti := range []string{p, q} {
					wantErr(t, st.RevokeAs(ctx, revokeAs(s.ID, 3*time.Second, "app", k, jti)), session.ErrReplay)
				}
				mustAdvance(t, st, dpopStep(s.ID, 2, 4*time.Second, k, proof(), iatAt(4)))
			})
		}
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
