package sessiontest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

// oddSubjects are subjects a store must keep byte for byte: near-UUIDs that
// a lax packing took for another user's UUID (or panicked on), and strings
// no UUID packing may touch.
var oddSubjects = []struct{ sub, lookalike string }{
	// dashes where a UUID has none, the same hex digits as a canonical one
	{"00-00-00-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"},
	{"4ef1c711-06ff-41ea-888a-45-6579e4-47", "4ef1c711-06ff-41ea-888a-456579e44700"},
	// a fifth dash at 34: the packing read past the end
	{"4ef1c711-06ff-41ea-888a-456579e447-7", "4ef1c711-06ff-41ea-888a-456579e44770"},
	{"4ef1c711-06ff-41ea-888a-456579e447d-", "4ef1c711-06ff-41ea-888a-456579e447d0"},
	{"-ef1c711-06ff-41ea-888a-456579e447d6", "0ef1c711-06ff-41ea-888a-456579e447d6"},
	{"4EF1C711-06FF-41EA-888A-456579E447D6", "4ef1c711-06ff-41ea-888a-456579e447d6"},
	{"4ef1c711-06ff-41ea-888a-456579e447d6\x00", "4ef1c711-06ff-41ea-888a-456579e447d6"},
	{"", "\x00"},
	{"\xff\xfe not utf-8 \x00", "\xff\xfe not utf-8 "},
	{"a}b{c", "a"},
}

// edgeCases are where the stores used to disagree: a subject is kept byte
// for byte, a deletion catches every login that lands before it returns,
// a missing session is not found whatever the step asks, and every time is
// compared at the millisecond the record keeps.
var edgeCases = []struct {
	name string
	run  func(t *testing.T, st session.Store)
}{
	{"SubjectByteForByte", func(t *testing.T, st session.Store) {
		for _, tc := range oddSubjects {
			s, other := create(t, st, tc.sub), create(t, st, tc.lookalike)
			r := mustAdvance(t, st, step(s.ID, 0, time.Second, grace))
			if r.Subject != tc.sub {
				t.Fatalf("subject %q came back as %q", tc.sub, r.Subject)
			}
			// the lookalike user owns nothing of it, before or after a rotation
			asOther := step(s.ID, 1, 2*time.Second, grace)
			asOther.Owner = tc.lookalike
			if tc.lookalike != "" {
				_, err := rotate(t, st, asOther)
				wantErr(t, err, session.ErrNotOwner)
			}
			asOwner := asOther
			asOwner.Owner = tc.sub
			if tc.sub != "" {
				if r := mustAdvance(t, st, asOwner); r.Subject != tc.sub {
					t.Fatalf("subject %q came back as %q after an owner's step", tc.sub, r.Subject)
				}
			}
			// revoking the lookalike ends its own session only
			if n, err := st.RevokeSubject(context.Background(), tc.lookalike, false); err != nil || n != 1 {
				t.Fatalf("RevokeSubject(%q) = %d, %v; want 1", tc.lookalike, n, err)
			}
			_, err := rotate(t, st, step(other.ID, 0, 3*time.Second, grace))
			wantErr(t, err, session.ErrRevoked)
			gen := int64(1)
			if tc.sub != "" {
				gen = 2
			}
			if n, err := st.RevokeSubject(context.Background(), tc.sub, true); err != nil || n != 1 {
				t.Fatalf("RevokeSubject(%q, deleted) = %d, %v; want 1", tc.sub, n, err)
			}
			_, err = rotate(t, st, step(s.ID, gen, 4*time.Second, grace))
			wantErr(t, err, session.ErrDeleted)
		}
	}},
	{"SubjectByteForByteExtended", func(t *testing.T, st session.Store) {
		// the same with an OAuth extension between the record and its subject
		for _, tc := range oddSubjects {
			s := session.Session{ID: newID(t), Subject: tc.sub, Created: base, Rotated: base,
				Expires: base.Add(24 * time.Hour), Client: "app", Scope: "openid"}
			if err := st.Create(context.Background(), s, idle); err != nil {
				t.Fatal(err)
			}
			k := thumb("device")
			r := mustAdvance(t, st, oauthStep(s.ID, 0, time.Second, "app", "openid", k, proof()))
			if r.Subject != tc.sub {
				t.Fatalf("subject %q came back as %q", tc.sub, r.Subject)
			}
			if tc.lookalike != "" {
				asOther := oauthStep(s.ID, 1, 2*time.Second, "app", "", k, proof())
				asOther.Owner = tc.lookalike
				_, err := rotate(t, st, asOther)
				wantErr(t, err, session.ErrNotOwner)
			}
			r = mustAdvance(t, st, oauthStep(s.ID, 1, 2*time.Second, "app", "", k, proof()))
			if r.Subject != tc.sub {
				t.Fatalf("subject %q came back as %q after binding", tc.sub, r.Subject)
			}
		}
	}},
	{"AdoptOddSubject", func(t *testing.T, st session.Store) {
		for _, tc := range oddSubjects {
			id := newID(t)
			s := step(id, -1, 0, grace)
			s.Subject, s.Expires = tc.sub, base.Add(time.Hour)
			if r, err := rotate(t, st, s); err != nil || r.Subject != tc.sub {
				t.Fatalf("adopt %q = %+v, %v", tc.sub, r, err)
			}
			if r := mustAdvance(t, st, step(id, 0, time.Second, grace)); r.Subject != tc.sub {
				t.Fatalf("adopted subject %q came back as %q", tc.sub, r.Subject)
			}
			if n, err := st.RevokeSubject(context.Background(), tc.sub, true); err != nil || n != 1 {
				t.Fatalf("RevokeSubject(%q) = %d, %v; want 1", tc.sub, n, err)
			}
		}
	}},
	{"DeleteSubjectDuringLogins", func(t *testing.T, st session.Store) {
		// Logins of one subject land while it is deleted. Once a deletion
		// returns, no session whose Create returned before it may refresh,
		// and deleting again finds every session the first one missed.
		ctx := context.Background()
		for round := range 10 {
			sub := fmt.Sprintf("grace-%d", round)
			var before []session.Session
			for range 20 {
				before = append(before, create(t, st, sub))
			}
			var (
				mu      sync.Mutex
				created []session.Session
				stop    = make(chan struct{})
				wg      sync.WaitGroup
			)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						s := session.Session{ID: newID(t), Subject: sub, Created: base, Rotated: base, Expires: base.Add(24 * time.Hour)}
						if err := st.Create(ctx, s, idle); err != nil {
							t.Errorf("Create: %v", err)
							return
						}
						mu.Lock()
						created = append(created, s)
						mu.Unlock()
					}
				}()
			}
			time.Sleep(time.Millisecond)
			if _, err := st.RevokeSubject(ctx, sub, true); err != nil {
				t.Fatal(err)
			}
			for _, s := range before {
				_, err := rotate(t, st, step(s.ID, 0, time.Second, grace))
				wantErr(t, err, session.ErrDeleted)
			}
			close(stop)
			wg.Wait()
			if _, err := st.RevokeSubject(ctx, sub, true); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			all := created
			mu.Unlock()
			for _, s := range append(before, all...) {
				if _, err := rotate(t, st, step(s.ID, 0, time.Second, grace)); !errors.Is(err, session.ErrDeleted) {
					t.Fatalf("round %d: session %s of %s after two deletions: %v; want ErrDeleted", round, s.ID, sub, err)
				}
			}
		}
	}},
	{"ConcurrentDeletions", func(t *testing.T, st session.Store) {
		// two deletions of one subject at once: when either returns, every
		// session is ended, not only once the other is done too
		ctx := context.Background()
		for round := range 10 {
			sub := fmt.Sprintf("hank-%d", round)
			var ss []session.Session
			for range 50 {
				ss = append(ss, create(t, st, sub))
			}
			var wg sync.WaitGroup
			bad := make(chan string, 2)
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := st.RevokeSubject(ctx, sub, true); err != nil {
						bad <- err.Error()
						return
					}
					for _, s := range ss {
						if _, err := st.Rotate(ctx, step(s.ID, 0, time.Second, grace)); !errors.Is(err, session.ErrDeleted) {
							bad <- fmt.Sprintf("session %s after a deletion returned: %v", s.ID, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(bad)
			for msg := range bad {
				t.Fatalf("round %d: %s", round, msg)
			}
		}
	}},
	{"DeletionIsRepeatable", func(t *testing.T, st session.Store) {
		ctx := context.Background()
		a, b := create(t, st, "ivan"), create(t, st, "ivan")
		if n, err := st.RevokeSubject(ctx, "ivan", true); err != nil || n != 2 {
			t.Fatalf("RevokeSubject = %d, %v; want 2", n, err)
		}
		if n, err := st.RevokeSubject(ctx, "ivan", true); err != nil || n != 0 {
			t.Fatalf("second RevokeSubject = %d, %v; want 0", n, err)
		}
		c := create(t, st, "ivan")
		if n, err := st.RevokeSubject(ctx, "ivan", true); err != nil || n != 1 {
			t.Fatalf("RevokeSubject after a new login = %d, %v; want 1", n, err)
		}
		for _, s := range []session.Session{a, b, c} {
			_, err := rotate(t, st, step(s.ID, 0, time.Second, grace))
			wantErr(t, err, session.ErrDeleted)
		}
	}},
	{"MissingWhateverAsked", func(t *testing.T, st session.Store) {
		// a session that is not there is not found, whatever the step asks
		id := newID(t)
		for _, s := range []session.Step{
			oauthStep(id, 0, time.Second, "", "openid", "", ""),
			oauthStep(id, 0, time.Second, "app", "openid orders:read", thumb("k"), proof()),
			oauthStep(id, 3, time.Second, "app", "", thumb("k"), proof()),
			func() session.Step { s := step(id, 0, time.Second, grace); s.Owner = "alice"; return s }(),
		} {
			_, err := rotate(t, st, s)
			wantErr(t, err, session.ErrNotFound)
		}
	}},
	{"ScopeSeparators", func(t *testing.T, st session.Store) {
		// scope items are separated by ASCII white space only: a Unicode
		// space inside an item is part of it, on every store
		s := createOAuth(t, st, "", "a b\tc", "")
		for _, ask := range []string{"a\u00a0b", "a\u0085", "b\u2003c"} {
			_, err := rotate(t, st, oauthStep(s.ID, 0, time.Second, "", ask, "", ""))
			wantErr(t, err, session.ErrScope)
		}
		mustAdvance(t, st, oauthStep(s.ID, 0, time.Second, "", "c\r\nb\va\f", "", ""))
		odd := createOAuth(t, st, "", "a\u00a0b", "")
		for _, ask := range []string{"a", "b"} {
			_, err := rotate(t, st, oauthStep(odd.ID, 0, time.Second, "", ask, "", ""))
			wantErr(t, err, session.ErrScope)
		}
		mustAdvance(t, st, oauthStep(odd.ID, 0, time.Second, "", "a\u00a0b", "", ""))
	}},
	{"StepKeyNotThumbprint", func(t *testing.T, st session.Store) {
		// a step's key that is no thumbprint is refused, and binds nothing
		s := createOAuth(t, st, "", "", "")
		last := thumb("device")
		for _, key := range []string{"x.y", "not a thumbprint", last[:42], last + "A", last[:42] + "B"} {
			if _, err := rotate(t, st, oauthStep(s.ID, 0, time.Second, "", "", key, proof())); err == nil {
				t.Fatalf("step key %q accepted", key)
			}
		}
		if r := mustAdvance(t, st, step(s.ID, 0, time.Second, grace)); r.Key != "" {
			t.Fatalf("bound to %q by a refused step", r.Key)
		}
	}},
	{"CreateAtGenerationZero", func(t *testing.T, st session.Store) {
		// Create starts every session at generation 0, whatever Gen it is given
		s := session.Session{ID: newID(t), Subject: "lou", Gen: 5, Created: base, Rotated: base, Expires: base.Add(time.Hour)}
		if err := st.Create(context.Background(), s, idle); err != nil {
			t.Fatal(err)
		}
		if r := mustAdvance(t, st, step(s.ID, 0, time.Second, grace)); r.Lost != 0 {
			t.Fatalf("Lost = %d; want 0", r.Lost)
		}
	}},
	{"GraceAtTheMillisecond", func(t *testing.T, st session.Store) {
		// Times are compared at the millisecond the record keeps: a retry
		// is inside grace when its millisecond minus the rotation's is.
		s := create(t, st, "judy")
		at := time.Second + 900*time.Microsecond
		r := mustAdvance(t, st, step(s.ID, 0, at, grace))
		if !r.Rotated.Equal(base.Add(time.Second)) {
			t.Fatalf("Rotated = %v; want %v (the millisecond)", r.Rotated, base.Add(time.Second))
		}
		r, err := rotate(t, st, step(s.ID, 0, time.Second+grace-100*time.Microsecond, grace))
		if err != nil || !r.Retry || !r.Rotated.Equal(base.Add(time.Second)) {
			t.Fatalf("retry in the last millisecond of grace = %+v, %v; want a retry", r, err)
		}
		// 0.4 ms into the millisecond grace ends: reuse on every store
		_, err = rotate(t, st, step(s.ID, 0, time.Second+grace+400*time.Microsecond, grace))
		wantErr(t, err, session.ErrReuse)

		// a grace of a fraction of a millisecond more counts whole milliseconds
		s = create(t, st, "judy")
		mustAdvance(t, st, step(s.ID, 0, time.Second, grace))
		_, err = rotate(t, st, step(s.ID, 0, time.Second+grace+200*time.Microsecond, grace+500*time.Microsecond))
		wantErr(t, err, session.ErrReuse)
	}},
	{"ExpiresAtTheMillisecond", func(t *testing.T, st session.Store) {
		// a session ending 0.5 ms into a millisecond has ended at its start
		end := base.Add(24*time.Hour + 500*time.Microsecond)
		expired := func(err error) {
			t.Helper()
			if !errors.Is(err, session.ErrExpired) && !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("err = %v; want ErrExpired or ErrNotFound", err)
			}
		}
		s := session.Session{ID: newID(t), Subject: "kim", Created: base, Rotated: base, Expires: end}
		if err := st.Create(context.Background(), s, 48*time.Hour); err != nil {
			t.Fatal(err)
		}
		_, err := rotate(t, st, step(s.ID, 0, 24*time.Hour+200*time.Microsecond, grace))
		expired(err)
		// an adopted session too
		id := newID(t)
		adopt := step(id, -1, 0, grace)
		adopt.Subject, adopt.Expires, adopt.Idle = "kim", end, 48*time.Hour
		if _, err := rotate(t, st, adopt); err != nil {
			t.Fatal(err)
		}
		_, err = rotate(t, st, step(id, 0, 24*time.Hour+200*time.Microsecond, grace))
		expired(err)
	}},
}
