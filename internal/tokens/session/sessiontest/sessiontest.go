// Package sessiontest is the contract every session.Store must pass, in the
// manner of testing/slogtest: one suite, run by each store's own tests.
package sessiontest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

// Store is what the suite checks: a session store that also publishes its
// revocations.
type Store interface {
	session.Store
	session.Feed
}

// Rewind remembers a session record as it is now; calling restore puts it
// back exactly, as a failover to a replica that missed the writes in
// between does, or a restart that lost them (fsync every second). The
// suite uses it to prove that a store's loss logs no honest client out.
type Rewind func(t *testing.T, id string) (restore func())

// Run checks store against the rotation rule, the revocation contract, the
// revocation feed and lost writes. newStore returns a fresh, empty store for
// each subtest, and the Rewind of that store.
func Run(t *testing.T, newStore func(t *testing.T) (Store, Rewind)) {
	for _, tc := range suite() {
		t.Run(tc.name, func(t *testing.T) {
			st, rewind := newStore(t)
			tc.run(t, st, rewind)
		})
	}
}

// A suiteCase is a case of any group, in the form of lossCases.
type suiteCase struct {
	name string
	run  func(t *testing.T, st Store, rewind Rewind)
}

// suite is every case of every group, in the order Run runs them: Run and
// RunEarlier walk the same list, so a new case runs on both by default.
func suite() []suiteCase {
	var all []suiteCase
	for _, group := range [][]struct {
		name string
		run  func(t *testing.T, st session.Store)
	}{cases, oauthCases, proofCases, revokeAsCases, lentCases, legacyCases, edgeCases} {
		for _, tc := range group {
			all = append(all, suiteCase{tc.name, func(t *testing.T, st Store, _ Rewind) { tc.run(t, st) }})
		}
	}
	for _, tc := range feedCases {
		all = append(all, suiteCase{tc.name, func(t *testing.T, st Store, _ Rewind) { tc.run(t, st) }})
	}
	for _, tc := range lossCases {
		all = append(all, suiteCase{tc.name, tc.run})
	}
	return all
}

const (
	idle  = time.Hour
	grace = 5 * time.Second
)

// base is a clock reading near real time: Redis expires keys by its own clock.
var base = time.Now().Truncate(time.Millisecond)

func newID(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func create(t *testing.T, st session.Store, sub string) session.Session {
	t.Helper()
	s := session.Session{ID: newID(t), Subject: sub, Created: base, Rotated: base, Expires: base.Add(24 * time.Hour)}
	if err := st.Create(context.Background(), s, idle); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return s
}

func step(id string, gen int64, at time.Duration, g time.Duration) session.Step {
	return session.Step{ID: id, Gen: gen, Now: base.Add(at), Grace: g, Idle: idle}
}

func rotate(t *testing.T, st session.Store, s session.Step) (session.Rotation, error) {
	t.Helper()
	return st.Rotate(context.Background(), s)
}

func mustAdvance(t *testing.T, st session.Store, s session.Step) session.Rotation {
	t.Helper()
	r, err := rotate(t, st, s)
	if err != nil || r.Retry || r.Gen != s.Gen+1 {
		t.Fatalf("Rotate(gen %d) = %+v, %v; want advance to %d", s.Gen, r, err, s.Gen+1)
	}
	return r
}

func mustAdvanceTo(t *testing.T, st session.Store, s session.Step, gen int64) session.Rotation {
	t.Helper()
	r, err := rotate(t, st, s)
	if err != nil || r.Retry || r.Gen != gen || !r.Rotated.Equal(s.Now) {
		t.Fatalf("Rotate(gen %d) = %+v, %v; want advance to %d at %v", s.Gen, r, err, gen, s.Now)
	}
	return r
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v; want %v", err, want)
	}
}

var cases = []struct {
	name string
	run  func(t *testing.T, st session.Store)
}{
	{"AdvanceFromZero", func(t *testing.T, st session.Store) {
		s := create(t, st, "alice")
		r := mustAdvance(t, st, step(s.ID, 0, time.Second, grace))
		if r.Subject != "alice" || r.ID != s.ID || !r.Rotated.Equal(base.Add(time.Second)) ||
			!r.Created.Equal(s.Created) || !r.Expires.Equal(s.Expires) {
			t.Fatalf("rotation = %+v; want the session, rotated at +1s", r)
		}
		mustAdvance(t, st, step(s.ID, 1, 2*time.Second, grace))
		mustAdvance(t, st, step(s.ID, 2, 30*time.Second, grace))
	}},
	{"Missing", func(t *testing.T, st session.Store) {
		_, err := rotate(t, st, step(newID(t), 0, 0, grace))
		wantErr(t, err, session.ErrNotFound)
	}},
	{"CreateTwice", func(t *testing.T, st session.Store) {
		s := create(t, st, "alice")
		if err := st.Create(context.Background(), s, idle); err == nil {
			t.Fatal("second Create of the same id succeeded")
		}
	}},
	{"RetryInsideGrace", func(t *testing.T, st session.Store) {
		s := create(t, st, "alice")
		first := mustAdvance(t, st, step(s.ID, 0, time.Second, grace))
		r, err := rotate(t, st, step(s.ID, 0, time.Second+grace-time.Millisecond, grace))
		if err != nil || !r.Retry || r.Gen != 1 || !r.Rotated.Equal(first.Rotated) {
			t.Fatalf("retry = %+v, %v; want Retry of gen 1 rotated at %v", r, err, first.Rotated)
		}
		// the retry changed nothing: gen 1 still advances
		mustAdvance(t, st, step(s.ID, 1, 2*time.Second, grace))
	}},
	{"ReuseAfterGrace", func(t *testing.T, st session.Store) {
		s := create(t, st, "alice")
		mustAdvance(t, st, step(s.ID, 0, time.Second, grace))
		_, err := rotate(t, st, step(s.ID, 0, time.Second+grace, grace))
		wantErr(t, err, session.ErrReuse)
		// reuse revoked the session: even the current token is refused
		_, err = rotate(t, st, step(s.ID, 1, time.Second+grace, grace))
		wantErr(t, err, session.ErrRevoked)
	}},
	{"ReuseOfGrandparent", func(t *testing.T, st session.Store) {
		s := create(t, st, "alice")
		mustAdvance(t, st, step(s.ID, 0, time.Second, grace))
		mustAdvance(t, st, step(s.ID, 1, 2*time.Second, grace))
		_, err := rotate(t, st, step(s.ID, 0, 2*time.Second, grace))
		wantErr(t, err, session.ErrReuse)
	}},
	{"AheadOfRecordAdvances", func(t *testing.T, st session.Store) {
		// only a record that lost rotations is behind a token tokend signed
		s := create(t, st, "alice")
		r := mustAdvanceTo(t, st, step(s.ID, 7, time.Second, grace), 8)
		if r.Lost != 7 {
			t.Fatalf("Lost = %d; want 7", r.Lost)
		}
		_, err := rotate(t, st, step(s.ID, 6, time.Second+grace, grace))
		wantErr(t, err, session.ErrReuse)
	}},
	{"GraceZeroNeverRetries", func(t *testing.T, st session.Store) {
		s := create(t, st, "alice")
		mustAdvance(t, st, step(s.ID, 0, time.Second, 0))
		_, err := rotate(t, st, step(s.ID, 0, time.Second, 0))
		wantErr(t, err, session.ErrReuse)
	}},
	{"Expired", func(t *testing.T, st session.Store) {
		s := session.Session{ID: newID(t), Subject: "alice", Created: base, Rotated: base, Expires: base.Add(time.Minute)}
		if err := st.Create(context.Background(), s, idle); err != nil {
			t.Fatal(err)
		}
		_, err := rotate(t, st, step(s.ID, 0, time.Minute, grace))
		if !errors.Is(err, session.ErrExpired) && !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("err = %v; want ErrExpired or ErrNotFound", err)
		}
	}},
	{"Revoke", func(t *testing.T, st session.Store) {
		s := create(t, st, "alice")
		if err := st.Revoke(context.Background(), s.ID); err != nil {
			t.Fatal(err)
		}
		_, err := rotate(t, st, step(s.ID, 0, time.Second, grace))
		wantErr(t, err, session.ErrRevoked)
		if err := st.Revoke(context.Background(), newID(t)); err != nil {
			t.Fatalf("Revoke of a missing session: %v", err)
		}
	}},
	{"RevokeSubject", func(t *testing.T, st session.Store) {
		a1, a2, b := create(t, st, "alice"), create(t, st, "alice"), create(t, st, "bob")
		n, err := st.RevokeSubject(context.Background(), "alice", false)
		if err != nil || n != 2 {
			t.Fatalf("RevokeSubject = %d, %v; want 2", n, err)
		}
		for _, s := range []session.Session{a1, a2} {
			_, err := rotate(t, st, step(s.ID, 0, time.Second, grace))
			wantErr(t, err, session.ErrRevoked)
		}
		mustAdvance(t, st, step(b.ID, 0, time.Second, grace))
		if n, err := st.RevokeSubject(context.Background(), "alice", false); err != nil || n != 0 {
			t.Fatalf("second RevokeSubject = %d, %v; want 0", n, err)
		}
		if n, err := st.RevokeSubject(context.Background(), "nobody", false); err != nil || n != 0 {
			t.Fatalf("RevokeSubject(nobody) = %d, %v; want 0", n, err)
		}
	}},
	{"DeleteSubject", func(t *testing.T, st session.Store) {
		a := create(t, st, "alice")
		revokedFirst := create(t, st, "alice")
		if err := st.Revoke(context.Background(), revokedFirst.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := st.RevokeSubject(context.Background(), "alice", true); err != nil || n != 1 {
			t.Fatalf("RevokeSubject(deleted) = %d, %v; want 1", n, err)
		}
		for _, s := range []session.Session{a, revokedFirst} {
			_, err := rotate(t, st, step(s.ID, 0, time.Second, grace))
			wantErr(t, err, session.ErrDeleted)
		}
		// a revocation never hides a deletion
		if err := st.Revoke(context.Background(), a.ID); err != nil {
			t.Fatal(err)
		}
		_, err := rotate(t, st, step(a.ID, 0, time.Second, grace))
		wantErr(t, err, session.ErrDeleted)
		// the user may come back: a new session works
		mustAdvance(t, st, step(create(t, st, "alice").ID, 0, time.Second, grace))
	}},
	{"OwnerMustMatch", func(t *testing.T, st session.Store) {
		s := create(t, st, "alice")
		asBob := step(s.ID, 0, time.Second, grace)
		asBob.Owner = "bob"
		_, err := rotate(t, st, asBob)
		wantErr(t, err, session.ErrNotOwner)
		// a stale generation from another user is not reuse: nothing burns
		asBob.Gen = 7
		_, err = rotate(t, st, asBob)
		wantErr(t, err, session.ErrNotOwner)
		asAlice := step(s.ID, 0, 2*time.Second, grace)
		asAlice.Owner = "alice"
		if r := mustAdvance(t, st, asAlice); r.Subject != "alice" {
			t.Fatalf("subject %q", r.Subject)
		}
	}},
	{"NotOwnerHidesState", func(t *testing.T, st session.Store) {
		revokedOne, deletedOne := create(t, st, "alice"), create(t, st, "zoe")
		if err := st.Revoke(context.Background(), revokedOne.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := st.RevokeSubject(context.Background(), "zoe", true); err != nil {
			t.Fatal(err)
		}
		for _, s := range []session.Session{revokedOne, deletedOne} {
			asBob := step(s.ID, 0, time.Second, grace)
			asBob.Owner = "bob"
			_, err := rotate(t, st, asBob)
			wantErr(t, err, session.ErrNotOwner)
		}
	}},
	{"AdoptLegacy", func(t *testing.T, st session.Store) {
		id := newID(t)
		adopt := func(at time.Duration) (session.Rotation, error) {
			s := step(id, -1, at, grace)
			s.Subject, s.Expires = "carol", base.Add(24*time.Hour)
			return rotate(t, st, s)
		}
		r, err := adopt(0)
		if err != nil || r.Retry || r.Gen != 0 || r.Subject != "carol" {
			t.Fatalf("adopt = %+v, %v; want a new session at gen 0", r, err)
		}
		if r, err := adopt(time.Second); err != nil || !r.Retry || r.Gen != 0 {
			t.Fatalf("second adopt inside grace = %+v, %v; want Retry of gen 0", r, err)
		}
		mustAdvance(t, st, step(id, 0, 2*time.Second, grace))
		_, err = adopt(3 * time.Second)
		wantErr(t, err, session.ErrReuse)
		if n, err := st.RevokeSubject(context.Background(), "carol", false); err != nil || n != 0 {
			t.Fatalf("RevokeSubject(carol) = %d, %v; want 0 (already revoked by reuse)", n, err)
		}
	}},
	{"AdoptedSessionIsIndexed", func(t *testing.T, st session.Store) {
		s := step(newID(t), -1, 0, grace)
		s.Subject, s.Expires = "dave", base.Add(time.Hour)
		if _, err := rotate(t, st, s); err != nil {
			t.Fatal(err)
		}
		if n, err := st.RevokeSubject(context.Background(), "dave", false); err != nil || n != 1 {
			t.Fatalf("RevokeSubject(dave) = %d, %v; want 1", n, err)
		}
	}},
	{"ConcurrentSameTokenGraceZero", func(t *testing.T, st session.Store) {
		s := create(t, st, "alice")
		advanced, retries, rejected := concurrently(t, st, step(s.ID, 0, time.Second, 0))
		if advanced != 1 || retries != 0 || rejected != 31 {
			t.Fatalf("advanced %d, retries %d, rejected %d; want 1, 0, 31", advanced, retries, rejected)
		}
	}},
	{"ConcurrentSameTokenGrace", func(t *testing.T, st session.Store) {
		s := create(t, st, "alice")
		advanced, retries, rejected := concurrently(t, st, step(s.ID, 0, time.Second, grace))
		if advanced != 1 || retries != 31 || rejected != 0 {
			t.Fatalf("advanced %d, retries %d, rejected %d; want 1, 31, 0", advanced, retries, rejected)
		}
	}},
	{"Ping", func(t *testing.T, st session.Store) {
		if err := st.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}},
}

// concurrently sends 32 identical Steps at once. Every retry must name the
// generation the one advance produced; every rejection must be reuse or the
// revocation reuse caused.
func concurrently(t *testing.T, st session.Store, s session.Step) (advanced, retries, rejected int) {
	const n = 32
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		rots  = make([]session.Rotation, n)
		errs  = make([]error, n)
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rots[i], errs[i] = st.Rotate(context.Background(), s)
		}()
	}
	close(start)
	wg.Wait()
	for i := range rots {
		switch {
		case errs[i] == nil && !rots[i].Retry:
			advanced++
		case errs[i] == nil:
			retries++
		case errors.Is(errs[i], session.ErrReuse), errors.Is(errs[i], session.ErrRevoked):
			rejected++
		default:
			t.Fatalf("unexpected error: %v", errs[i])
		}
		if errs[i] == nil && rots[i].Gen != s.Gen+1 {
			t.Fatalf("rotation names gen %d; want %d", rots[i].Gen, s.Gen+1)
		}
	}
	return advanced, retries, rejected
}

// lossCases: the store acknowledged rotations and then lost them. The
// client holds a token ahead of the record; it must stay logged in, and an
// older token replayed must still be caught.
var lossCases = []struct {
	name string
	run  func(t *testing.T, st Store, rewind Rewind)
}{
	{"LookupRecordGone", func(t *testing.T, st Store, rewind Rewind) {
		// A revoked session whose record is gone (expired, evicted, lost in
		// a failover): the denylist confirms a filter hit with Lookup, and
		// a missing record taken for "not revoked" would let the session's
		// access tokens through. Lookup answers it ended: fail closed.
		s := session.Session{ID: newID(t), Subject: "mallory", Created: base, Rotated: base, Expires: base.Add(24 * time.Hour)}
		gone := rewind(t, s.ID) // before the record exists: restore deletes it
		if err := st.Create(context.Background(), s, idle); err != nil {
			t.Fatal(err)
		}
		if err := st.Revoke(context.Background(), s.ID); err != nil {
			t.Fatal(err)
		}
		if r, ok := lookup(t, st, s.ID); !ok || r.Gone {
			t.Fatalf("revoked, record there: %+v, revoked %v", r, ok)
		}
		gone()
		r, ok := lookup(t, st, s.ID)
		if !ok || !r.Gone || r.ID != s.ID {
			t.Fatalf("revoked, then its record gone: Lookup says %+v, revoked %v; want it ended (Gone)", r, ok)
		}
		if !errors.Is(r.Err(), session.ErrNotFound) {
			t.Fatalf("the refusal of a gone session: %v; want ErrNotFound, as Rotate answers", r.Err())
		}
		_, err := rotate(t, st, step(s.ID, 0, time.Second, grace))
		wantErr(t, err, session.ErrNotFound)
	}},
	{"LostRotationAdvances", func(t *testing.T, st Store, rewind Rewind) {
		s := create(t, st, "alice")
		restore := rewind(t, s.ID)
		mustAdvance(t, st, step(s.ID, 0, time.Second, grace)) // the client now holds gen 1
		restore()                                             // the failover lost it: the record is at gen 0
		r := mustAdvanceTo(t, st, step(s.ID, 1, time.Minute, grace), 2)
		if r.Lost != 1 || r.Subject != "alice" || !r.Expires.Equal(s.Expires) {
			t.Fatalf("rotation = %+v; want gen 2 of alice's session, 1 rotation lost", r)
		}
		// the client whose answer was lost retries: the same generation again
		again, err := rotate(t, st, step(s.ID, 1, time.Minute+time.Second, grace))
		if err != nil || !again.Retry || again.Gen != 2 {
			t.Fatalf("retry after recovery = %+v, %v; want Retry of gen 2", again, err)
		}
		mustAdvance(t, st, step(s.ID, 2, 2*time.Minute, grace))
	}},
	{"SeveralLostRotationsAdvance", func(t *testing.T, st Store, rewind Rewind) {
		s := create(t, st, "alice")
		restore := rewind(t, s.ID)
		for g := int64(0); g < 3; g++ {
			mustAdvance(t, st, step(s.ID, g, time.Duration(g+1)*time.Second, grace))
		}
		restore() // a restore from an older snapshot: three rotations gone
		if r := mustAdvanceTo(t, st, step(s.ID, 3, time.Minute, grace), 4); r.Lost != 3 {
			t.Fatalf("Lost = %d; want 3", r.Lost)
		}
	}},
	{"ReplayAfterLossIsCaught", func(t *testing.T, st Store, rewind Rewind) {
		// gen 0 was stolen; the client rotated to 1, then to 2, and the store lost the second
		s := create(t, st, "alice")
		mustAdvance(t, st, step(s.ID, 0, time.Second, grace))
		restore := rewind(t, s.ID)
		mustAdvance(t, st, step(s.ID, 1, 2*time.Second, grace))
		restore()
		mustAdvanceTo(t, st, step(s.ID, 2, time.Minute, grace), 3) // the honest client goes on
		_, err := rotate(t, st, step(s.ID, 0, 2*time.Minute, grace))
		wantErr(t, err, session.ErrReuse)
		_, err = rotate(t, st, step(s.ID, 3, 2*time.Minute, grace))
		wantErr(t, err, session.ErrRevoked)
	}},
	{"ReplayBeforeHonestAfterLossIsCaught", func(t *testing.T, st Store, rewind Rewind) {
		s := create(t, st, "alice")
		mustAdvance(t, st, step(s.ID, 0, time.Second, grace))
		restore := rewind(t, s.ID)
		mustAdvance(t, st, step(s.ID, 1, 2*time.Second, grace))
		restore()
		// the thief's gen-0 token comes first: it is reuse of gen 0 whatever was lost
		_, err := rotate(t, st, step(s.ID, 0, time.Minute, grace))
		wantErr(t, err, session.ErrReuse)
		_, err = rotate(t, st, step(s.ID, 2, time.Minute, grace))
		wantErr(t, err, session.ErrRevoked)
	}},
	{"LostCreationIsNotFound", func(t *testing.T, st Store, rewind Rewind) {
		// a lost record cannot be told from an evicted one, which may have
		// been revoked: it is not brought back
		s := session.Session{ID: newID(t), Subject: "alice", Created: base, Rotated: base, Expires: base.Add(24 * time.Hour)}
		restore := rewind(t, s.ID)
		if err := st.Create(context.Background(), s, idle); err != nil {
			t.Fatal(err)
		}
		restore()
		_, err := rotate(t, st, step(s.ID, 0, time.Second, grace))
		wantErr(t, err, session.ErrNotFound)
	}},
}
