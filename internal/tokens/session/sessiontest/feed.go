package sessiontest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

// follower runs Feed.Follow in the background and collects what it hears.
type follower struct {
	mu      sync.Mutex
	got     []session.Revocation
	current int // caughtUp calls
	ready   chan struct{}
	done    chan error
}

func follow(t *testing.T, f session.Feed, since time.Time) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	fl := &follower{ready: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		fl.done <- f.Follow(ctx, since, func(r session.Revocation) {
			fl.mu.Lock()
			fl.got = append(fl.got, r)
			fl.mu.Unlock()
		}, func() {
			fl.mu.Lock()
			fl.current++
			if fl.current == 1 {
				close(fl.ready)
			}
			fl.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-fl.done; !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v after its context ended; want context.Canceled", err)
		}
	})
	select {
	case <-fl.ready:
	case err := <-fl.done:
		t.Fatalf("Follow stopped before catching up: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not catch up within 5s")
	}
	return fl
}

// await waits until the follower heard of session id, and returns it.
func (fl *follower) await(t *testing.T, id string) session.Revocation {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		fl.mu.Lock()
		for i := len(fl.got) - 1; i >= 0; i-- {
			if fl.got[i].ID == id {
				r := fl.got[i]
				fl.mu.Unlock()
				return r
			}
		}
		fl.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no revocation of %s published within 5s", id)
	return session.Revocation{}
}

func (fl *follower) heard(id string) bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	for _, r := range fl.got {
		if r.ID == id {
			return true
		}
	}
	return false
}

func wantRevocation(t *testing.T, r session.Revocation, s session.Session, deleted bool) {
	t.Helper()
	if r.ID != s.ID || r.Subject != s.Subject || r.Deleted != deleted {
		t.Fatalf("revocation %+v; want session %s of %s, deleted %v", r, s.ID, s.Subject, deleted)
	}
}

func lookup(t *testing.T, f session.Feed, id string) (session.Revocation, bool) {
	t.Helper()
	r, ok, err := f.Lookup(context.Background(), id)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", id, err)
	}
	return r, ok
}

var feedCases = []struct {
	name string
	run  func(t *testing.T, st Store)
}{
	{"FeedRevoke", func(t *testing.T, st Store) {
		fl := follow(t, st, time.Now())
		s := create(t, st, "alice")
		other := create(t, st, "alice")
		if err := st.Revoke(context.Background(), s.ID); err != nil {
			t.Fatal(err)
		}
		wantRevocation(t, fl.await(t, s.ID), s, false)
		if fl.heard(other.ID) {
			t.Fatal("a session nobody revoked was published")
		}
	}},
	{"FeedReuse", func(t *testing.T, st Store) {
		fl := follow(t, st, time.Now())
		s := create(t, st, "bob")
		mustAdvance(t, st, step(s.ID, 0, time.Second, 0))
		_, err := rotate(t, st, step(s.ID, 0, 2*time.Second, 0))
		wantErr(t, err, session.ErrReuse)
		wantRevocation(t, fl.await(t, s.ID), s, false)
	}},
	{"FeedSubject", func(t *testing.T, st Store) {
		fl := follow(t, st, time.Now())
		a, b := create(t, st, "carol"), create(t, st, "carol")
		if _, err := st.RevokeSubject(context.Background(), "carol", false); err != nil {
			t.Fatal(err)
		}
		wantRevocation(t, fl.await(t, a.ID), a, false)
		wantRevocation(t, fl.await(t, b.ID), b, false)
		d := create(t, st, "dave")
		if _, err := st.RevokeSubject(context.Background(), "dave", true); err != nil {
			t.Fatal(err)
		}
		wantRevocation(t, fl.await(t, d.ID), d, true)
	}},
	{"FeedCatchUp", func(t *testing.T, st Store) {
		before := time.Now().Add(-time.Second)
		s := create(t, st, "erin")
		if err := st.Revoke(context.Background(), s.ID); err != nil {
			t.Fatal(err)
		}
		// a follower that starts later hears of it before it is ready
		fl := follow(t, st, before)
		if !fl.heard(s.ID) {
			t.Fatal("a follower starting after a revocation did not catch up on it")
		}
		// and one that starts from after it does not
		late := follow(t, st, time.Now().Add(time.Second))
		if late.heard(s.ID) {
			t.Fatal("the catch-up went back before since")
		}
	}},
	{"FeedCurrentAgain", func(t *testing.T, st Store) {
		// a quiet feed still says it is current: the denylist's liveness
		fl := follow(t, st, time.Now())
		deadline := time.Now().Add(session.FeedHeartbeat + 2*time.Second)
		for {
			fl.mu.Lock()
			n := fl.current
			fl.mu.Unlock()
			if n >= 2 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("caughtUp called %d times in %s of silence; want again within FeedHeartbeat", n, session.FeedHeartbeat+2*time.Second)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}},
	{"Lookup", func(t *testing.T, st Store) {
		s := create(t, st, "frank")
		if _, ok := lookup(t, st, s.ID); ok {
			t.Fatal("an active session looked revoked")
		}
		// no record: whatever it was, it is over (LookupRecordGone)
		if r, ok := lookup(t, st, "no-such-session"); !ok || !r.Gone || r.ID != "no-such-session" {
			t.Fatalf("a missing session: %+v, revoked %v; want it ended, gone", r, ok)
		}
		if err := st.Revoke(context.Background(), s.ID); err != nil {
			t.Fatal(err)
		}
		r, ok := lookup(t, st, s.ID)
		if !ok || r.Gone {
			t.Fatalf("a revoked session: %+v, revoked %v; want revoked, its record there", r, ok)
		}
		wantRevocation(t, r, s, false)
		if _, err := st.RevokeSubject(context.Background(), "frank", true); err != nil {
			t.Fatal(err)
		}
		r, _ = lookup(t, st, s.ID)
		wantRevocation(t, r, s, true)
	}},
}
