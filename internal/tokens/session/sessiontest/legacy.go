package sessiontest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

// legacyStep adopts the legacy token of sub, issued an hour before base and
// valid for a week, at base+at.
func legacyStep(id, sub string, at time.Duration) session.Step {
	s := step(id, -1, at, grace)
	s.Subject, s.Expires = sub, base.Add(at+24*time.Hour)
	s.TokenIssued, s.TokenExpires = base.Add(-time.Hour), base.Add(7*24*time.Hour)
	return s
}

// legacyNow is legacyStep at real time now, for the cases that wait for
// Redis to expire a record by its own clock; the record lives idle.
func legacyNow(id, sub string, idle time.Duration) session.Step {
	now := time.Now().Truncate(time.Millisecond)
	return session.Step{ID: id, Gen: -1, Now: now, Grace: grace, Idle: idle, Subject: sub, Expires: now.Add(24 * time.Hour),
		TokenIssued: now.Add(-time.Hour), TokenExpires: now.Add(7 * 24 * time.Hour)}
}

// after is s presented again d later.
func after(s session.Step, d time.Duration) session.Step {
	s.Now = s.Now.Add(d)
	return s
}

// legacyCases: a legacy token is accepted at most once for as long as it
// could be presented, and never after its own revocation or its subject's
// (issue 25, item 11); every adopted session that can refresh is in its
// subject's index (item 16).
var legacyCases = []struct {
	name string
	run  func(t *testing.T, st session.Store)
}{
	{"LegacyRevokedBeforeUse", func(t *testing.T, st session.Store) {
		s := legacyStep(newID(t), "erin", 0)
		if err := st.RevokeLegacy(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		_, err := rotate(t, st, after(s, time.Second))
		wantErr(t, err, session.ErrRevoked)
		// still, long after any record the adoption would have made is gone
		_, err = rotate(t, st, after(s, 3*idle))
		wantErr(t, err, session.ErrRevoked)
	}},
	{"LegacyRevokedAfterAdoption", func(t *testing.T, st session.Store) {
		s := legacyStep(newID(t), "grace", 0)
		if _, err := rotate(t, st, s); err != nil {
			t.Fatal(err)
		}
		if err := st.RevokeLegacy(context.Background(), after(s, time.Second)); err != nil {
			t.Fatal(err)
		}
		_, err := rotate(t, st, step(s.ID, 0, 2*time.Second, grace))
		wantErr(t, err, session.ErrRevoked)
		_, err = rotate(t, st, after(s, 2*time.Second))
		wantErr(t, err, session.ErrRevoked)
		// a second logout with the same token changes nothing
		if err := st.RevokeLegacy(context.Background(), after(s, 3*time.Second)); err != nil {
			t.Fatal(err)
		}
	}},
	{"LegacySubjectDeletedBeforeUse", func(t *testing.T, st session.Store) {
		ctx := context.Background()
		s := legacyStep(newID(t), "dave", 0)
		if err := st.RevokeLegacySubject(ctx, "dave", base, true); err != nil {
			t.Fatal(err)
		}
		if n, err := st.RevokeSubject(ctx, "dave", true); err != nil || n != 0 {
			t.Fatalf("RevokeSubject(dave) = %d, %v; want 0", n, err)
		}
		_, err := rotate(t, st, after(s, time.Second))
		wantErr(t, err, session.ErrDeleted)
		// nothing it could refresh was left behind
		_, err = rotate(t, st, step(s.ID, 0, 2*time.Second, grace))
		if err == nil {
			t.Fatal("the refused adoption left a session that refreshes")
		}
		// a token without iat may have been issued before the deletion
		noIat := legacyStep(newID(t), "dave", time.Second)
		noIat.TokenIssued = time.Time{}
		_, err = rotate(t, st, noIat)
		wantErr(t, err, session.ErrDeleted)
		// the user came back: a token the old backend issued since is adopted
		back := legacyStep(newID(t), "dave", time.Second)
		back.TokenIssued = base.Add(time.Millisecond)
		if r, err := rotate(t, st, back); err != nil || r.Gen != 0 {
			t.Fatalf("adoption of a token issued after the deletion = %+v, %v; want gen 0", r, err)
		}
		// "log out everywhere" of someone else is no deletion of dave
		if err := st.RevokeLegacySubject(ctx, "zoe", base.Add(time.Hour), false); err != nil {
			t.Fatal(err)
		}
		mustAdvance(t, st, step(back.ID, 0, 2*time.Second, grace))
	}},
	{"LegacySubjectRevokedBeforeUse", func(t *testing.T, st session.Store) {
		ctx := context.Background()
		if err := st.RevokeLegacySubject(ctx, "ivan", base, false); err != nil {
			t.Fatal(err)
		}
		_, err := rotate(t, st, legacyStep(newID(t), "ivan", time.Second))
		wantErr(t, err, session.ErrRevoked)
		// a later deletion says so
		if err := st.RevokeLegacySubject(ctx, "ivan", base.Add(time.Second), true); err != nil {
			t.Fatal(err)
		}
		_, err = rotate(t, st, legacyStep(newID(t), "ivan", 2*time.Second))
		wantErr(t, err, session.ErrDeleted)
		// and an earlier revocation, arriving late (another instance's
		// clock), undoes neither
		if err := st.RevokeLegacySubject(ctx, "ivan", base.Add(-time.Minute), false); err != nil {
			t.Fatal(err)
		}
		_, err = rotate(t, st, legacyStep(newID(t), "ivan", 3*time.Second))
		wantErr(t, err, session.ErrDeleted)
	}},
	{"LegacyOnceAfterRecordExpires", func(t *testing.T, st session.Store) {
		// three legacy tokens adopted; one logged out with its new token,
		// one with itself, one never: each record goes (idle) while the
		// tokens stay valid, and none is adopted again
		const short = 300 * time.Millisecond
		var adopted []session.Step
		for _, sub := range []string{"heidi", "judy", "grace"} {
			s := legacyNow(newID(t), sub, short)
			if r, err := rotate(t, st, s); err != nil || r.Gen != 0 {
				t.Fatalf("adoption = %+v, %v", r, err)
			}
			adopted = append(adopted, s)
		}
		if err := st.Revoke(context.Background(), adopted[1].ID); err != nil {
			t.Fatal(err)
		}
		if err := st.RevokeLegacy(context.Background(), adopted[2]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(short + 200*time.Millisecond) // Redis expires records by its own clock
		for i, want := range []error{session.ErrExpired, session.ErrExpired, session.ErrRevoked} {
			s := after(adopted[i], short+200*time.Millisecond)
			r, err := rotate(t, st, s)
			if !errors.Is(err, want) {
				t.Fatalf("%s's legacy token after its record expired = %+v, %v; want %v", s.Subject, r, err, want)
			}
		}
	}},
	{"LegacyRetryIndexedOnce", func(t *testing.T, st session.Store) {
		s := legacyStep(newID(t), "kim", 0)
		for _, at := range []time.Duration{0, time.Second} {
			if _, err := rotate(t, st, after(s, at)); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := st.RevokeSubject(context.Background(), "kim", false); err != nil || n != 1 {
			t.Fatalf("RevokeSubject(kim) = %d, %v; want 1", n, err)
		}
		_, err := rotate(t, st, after(s, 2*time.Second))
		wantErr(t, err, session.ErrRevoked)
	}},
	{"LegacyRetryAfterCutoff", func(t *testing.T, st session.Store) {
		// a retry of an adoption between the deletion's cutoff and its
		// RevokeSubject (or racing the adoption's own refusal): no pair
		s := legacyStep(newID(t), "nina", 0)
		if _, err := rotate(t, st, s); err != nil {
			t.Fatal(err)
		}
		if err := st.RevokeLegacySubject(context.Background(), "nina", base.Add(time.Second), true); err != nil {
			t.Fatal(err)
		}
		r, err := rotate(t, st, after(s, 2*time.Second))
		if !errors.Is(err, session.ErrDeleted) {
			t.Fatalf("retry of the adoption after its subject's cutoff = %+v, %v; want ErrDeleted", r, err)
		}
		_, err = rotate(t, st, step(s.ID, 0, 3*time.Second, grace))
		wantErr(t, err, session.ErrDeleted)
	}},
	{"LegacyAdoptionWithProof", func(t *testing.T, st session.Store) {
		// the token endpoint adopting a legacy token with a DPoP proof: the
		// adoption mark, the record and the proof in one step (one slot)
		key := thumb("device")
		s := legacyStep(newID(t), "6f1c8e2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b", 0)
		s.Key, s.Proof, s.ProofTTL = key, proof(), time.Minute
		if r, err := rotate(t, st, s); err != nil || r.Gen != 0 || r.Key != key {
			t.Fatalf("adoption with a proof = %+v, %v; want gen 0 bound to the key", r, err)
		}
		_, err := rotate(t, st, after(s, time.Second)) // the same proof again
		wantErr(t, err, session.ErrReplay)
		again := after(s, time.Second)
		again.Proof = proof()
		if r, err := rotate(t, st, again); err != nil || !r.Retry || r.Key != key {
			t.Fatalf("retry with a new proof = %+v, %v; want a retry bound to the key", r, err)
		}
		_, err = rotate(t, st, step(s.ID, 0, 2*time.Second, grace))
		wantErr(t, err, session.ErrKeyRequired)
		// revoked (with a proof of its own by the session's key:
		// LegacyRevokeBoundNeedsItsKey): refused before its proof is recorded (nothing burns)
		revoke := after(s, 3*time.Second)
		revoke.Proof = proof()
		if err := st.RevokeLegacy(context.Background(), revoke); err != nil {
			t.Fatal(err)
		}
		again = after(s, 4*time.Second)
		again.Proof = proof()
		_, err = rotate(t, st, again)
		wantErr(t, err, session.ErrRevoked)
	}},
	{"LegacyAdoptionScope", func(t *testing.T, st session.Store) {
		// a legacy token carries no scope, and its session has none: an
		// adoption asking for one is refused (ErrScope) as any refresh of a
		// session without it, before anything changes, or the token endpoint
		// would sign an access token with whatever scope was asked
		s := legacyStep(newID(t), "6f1c8e2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b", 0)
		s.Scope = "admin"
		s.Key, s.Proof, s.ProofTTL = thumb("device"), proof(), time.Minute
		r, err := rotate(t, st, s)
		if !errors.Is(err, session.ErrScope) {
			t.Fatalf("adoption asking for a scope = %+v, %v; want ErrScope", r, err)
		}
		// refused before its mark and its proof: the same request without
		// the scope adopts it
		s.Scope = " "
		if r, err := rotate(t, st, after(s, time.Second)); err != nil || r.Gen != 0 || r.Retry {
			t.Fatalf("adoption after a refused scope = %+v, %v; want generation 0", r, err)
		}
		again := after(s, 2*time.Second)
		again.Scope, again.Proof = "admin", proof()
		_, err = rotate(t, st, again)
		wantErr(t, err, session.ErrScope)
	}},
	{"LegacyRevokeBoundNeedsItsKey", func(t *testing.T, st session.Store) {
		// a legacy token whose adoption bound its session to a DPoP key
		// logs it out only with a proof by that key, as RevokeAs: the used
		// legacy token, seen in a log, cannot end the session it cannot refresh
		ctx := context.Background()
		key, other := thumb("device"), thumb("attacker")
		s := legacyStep(newID(t), "6f1c8e2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b", 0)
		s.Key, s.Proof, s.ProofTTL = key, proof(), time.Minute
		if r, err := rotate(t, st, s); err != nil || r.Key != key {
			t.Fatalf("adoption with a proof = %+v, %v; want it bound to the key", r, err)
		}
		revoke := func(at time.Duration, k, jti string) error {
			r := after(s, at)
			r.Key, r.Proof = k, jti
			return st.RevokeLegacy(ctx, r)
		}
		wantErr(t, revoke(time.Second, "", ""), session.ErrKeyRequired)
		wantErr(t, revoke(time.Second, other, proof()), session.ErrWrongKey)
		// refused: nothing changed, the mark included (a retry of the
		// adoption is a retry, not ErrRevoked)
		again := after(s, 2*time.Second)
		again.Proof = proof()
		if r, err := rotate(t, st, again); err != nil || !r.Retry {
			t.Fatalf("retry of the adoption after refused revocations = %+v, %v; want a retry", r, err)
		}
		used := proof()
		if err := revoke(3*time.Second, key, used); err != nil {
			t.Fatalf("RevokeLegacy with a proof by the session's key: %v", err)
		}
		wantErr(t, revoke(4*time.Second, key, used), session.ErrReplay)
		again = after(s, 5*time.Second)
		again.Proof = proof()
		_, err := rotate(t, st, again)
		wantErr(t, err, session.ErrRevoked)
		// a legacy token not adopted yet has no binding: ended with or without a proof
		fresh := legacyStep(newID(t), "6f1c8e2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b", 0)
		if err := st.RevokeLegacy(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		_, err = rotate(t, st, after(fresh, time.Second))
		wantErr(t, err, session.ErrRevoked)
	}},
	{"LegacyStepStringsAreLent", func(t *testing.T, st session.Store) {
		var l lender
		s := legacyStep(newID(t), "oscar", 0)
		if err := st.RevokeLegacy(context.Background(), l.step(s)); err != nil {
			t.Fatal(err)
		}
		l.spoil()
		_, err := rotate(t, st, after(s, time.Second))
		wantErr(t, err, session.ErrRevoked)
		sub := l.lend("peggy")
		if err := st.RevokeLegacySubject(context.Background(), sub, base, true); err != nil {
			t.Fatal(err)
		}
		l.spoil()
		_, err = rotate(t, st, legacyStep(newID(t), "peggy", time.Second))
		wantErr(t, err, session.ErrDeleted)
	}},
	{"LegacyAdoptionRacesDeletion", func(t *testing.T, st session.Store) {
		// adoptions and the deletion of their subject at once: whichever
		// wins, no adopted session outlives the deletion
		ctx := context.Background()
		const n = 16
		steps := make([]session.Step, n)
		errs := make([]error, n)
		for i := range steps {
			steps[i] = legacyStep(newID(t), "mallory", 0)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range steps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = st.Rotate(ctx, steps[i])
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := st.RevokeLegacySubject(ctx, "mallory", base, true); err != nil {
				t.Error(err)
			}
			if _, err := st.RevokeSubject(ctx, "mallory", true); err != nil {
				t.Error(err)
			}
		}()
		close(start)
		wg.Wait()
		for i, s := range steps {
			if errs[i] != nil && !errors.Is(errs[i], session.ErrDeleted) {
				t.Fatalf("adoption: %v; want success or ErrDeleted", errs[i])
			}
			if _, err := rotate(t, st, step(s.ID, 0, time.Second, grace)); !errors.Is(err, session.ErrDeleted) && !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("refresh of an adoption racing its subject's deletion: %v; want ErrDeleted", err)
			}
			if _, err := rotate(t, st, after(s, time.Second)); !errors.Is(err, session.ErrDeleted) {
				t.Fatalf("the legacy token again after its subject's deletion: %v; want ErrDeleted", err)
			}
		}
	}},
}
