package denylist

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// counting is a real store whose Lookups are counted, so a test can prove
// an answer came from local memory.
type counting struct {
	session.Store
	session.Feed
	lookups atomic.Int64
}

func (c *counting) Lookup(ctx context.Context, id string) (session.Revocation, bool, error) {
	c.lookups.Add(1)
	return c.Feed.Lookup(ctx, id)
}

type store interface {
	session.Store
	session.Feed
}

// running starts a Denylist over st and waits until it has caught up.
func running(t *testing.T, st store, cfg Config) (*Denylist, *counting) {
	t.Helper()
	c := &counting{Store: st, Feed: st}
	d, err := New(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		d.Close()
	})
	select {
	case <-d.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("denylist not ready within 5s")
	}
	return d, c
}

func newSession(t *testing.T, st session.Store, id, sub string) {
	t.Helper()
	now := time.Now()
	s := session.Session{ID: id, Subject: sub, Created: now, Rotated: now, Expires: now.Add(time.Hour)}
	if err := st.Create(context.Background(), s, time.Hour); err != nil {
		t.Fatal(err)
	}
}

// awaitRevoked waits until Check says id is revoked.
func awaitRevoked(t *testing.T, d *Denylist, id string) session.Revocation {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r, ok, err := d.Check(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return r
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s not denied within 5s", id)
	return session.Revocation{}
}

func stores(t *testing.T) map[string]func(t *testing.T) store {
	return map[string]func(t *testing.T) store{
		"memory": func(t *testing.T) store {
			m := session.NewMemory(0)
			t.Cleanup(m.Close)
			return m
		},
		"redis": func(t *testing.T) store {
			srv := redistest.Start(t)
			r, err := session.DialRedis([]string{srv.Addr}, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(r.Close)
			return r
		},
	}
}

// The cases every feed must give the same answers for.
func TestDenylist(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			t.Run("UnrevokedNeverAsks", func(t *testing.T) {
				st := open(t)
				d, c := running(t, st, Config{})
				newSession(t, st, "gone", "alice")
				if err := st.Revoke(ctx, "gone"); err != nil {
					t.Fatal(err)
				}
				awaitRevoked(t, d, "gone")
				asked := c.lookups.Load()
				for i := range 10000 {
					if _, ok, err := d.Check(ctx, fmt.Sprintf("live-%d", i)); ok || err != nil {
						t.Fatalf("live-%d: revoked %v, %v", i, ok, err)
					}
				}
				if n := c.lookups.Load() - asked; n != 0 {
					t.Fatalf("%d store lookups for 10,000 sessions never revoked; want 0", n)
				}
			})
			t.Run("RevokedAnsweredLocally", func(t *testing.T) {
				st := open(t)
				d, c := running(t, st, Config{})
				newSession(t, st, "stolen", "bob")
				newSession(t, st, "erased", "carol")
				if err := st.Revoke(ctx, "stolen"); err != nil {
					t.Fatal(err)
				}
				if _, err := st.RevokeSubject(ctx, "carol", true); err != nil {
					t.Fatal(err)
				}
				if r := awaitRevoked(t, d, "stolen"); r.Subject != "bob" || r.Deleted {
					t.Fatalf("stolen: %+v", r)
				}
				if r := awaitRevoked(t, d, "erased"); r.Subject != "carol" || !r.Deleted {
					t.Fatalf("erased: %+v; want carol's, deleted", r)
				}
				d.cache.Wait()
				asked := c.lookups.Load()
				for range 1000 {
					if _, ok, _ := d.Check(ctx, "stolen"); !ok {
						t.Fatal("a revoked session stopped being denied")
					}
				}
				if n := c.lookups.Load() - asked; n != 0 {
					t.Fatalf("%d store lookups for 1,000 checks of a revoked session; want 0", n)
				}
			})
			t.Run("CatchUpOnStart", func(t *testing.T) {
				st := open(t)
				newSession(t, st, "before", "dave")
				if err := st.Revoke(ctx, "before"); err != nil {
					t.Fatal(err)
				}
				d, _ := running(t, st, Config{}) // Ready: the past is read
				if _, ok, _ := d.Check(ctx, "before"); !ok {
					t.Fatal("a revocation from before the start was not caught up")
				}
			})
			t.Run("FalsePositiveConfirmedOnce", func(t *testing.T) {
				st := open(t)
				d, c := running(t, st, Config{NegativeTTL: time.Hour})
				newSession(t, st, "innocent", "erin")
				d.generation().cur.add("innocent") // as if its bits collided
				if _, ok, err := d.Check(ctx, "innocent"); ok || err != nil {
					t.Fatalf("innocent: revoked %v, %v", ok, err)
				}
				if c.lookups.Load() != 1 {
					t.Fatalf("%d lookups; want the one confirmation", c.lookups.Load())
				}
				d.cache.Wait()
				d.Check(ctx, "innocent")
				if c.lookups.Load() != 1 {
					t.Fatal("a confirmed answer was not cached")
				}
				if st := d.Stats(); st.FilterHits != 2 || st.CacheHits != 1 || st.Lookups != 1 || st.FalsePositives != 1 || st.LookupErrors != 0 {
					t.Fatalf("stats %+v; want 2 filter hits, 1 cache hit, 1 lookup, 1 false positive", st)
				}
				// a revocation replaces the cached "not revoked" at once
				if err := st.Revoke(ctx, "innocent"); err != nil {
					t.Fatal(err)
				}
				awaitRevoked(t, d, "innocent")
			})
		})
	}
}

// A revocation is remembered for at least one Window and forgotten after
// two: by then every access token of the session has expired. Asked
// through Check, as the verifier and the issuer ask: a revocation that has
// rolled over into the previous generation is still refused.
func TestDenylistGenerations(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	st := session.NewMemory(0)
	defer st.Close()
	d, _ := running(t, st, Config{Window: time.Minute, Now: clock})
	ctx := context.Background()
	newSession(t, st, "old", "x")
	if err := st.Revoke(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	awaitRevoked(t, d, "old")
	steps := []struct {
		after time.Duration
		want  bool
		gens  uint64 // generations started by then
	}{{0, true, 1}, {59 * time.Second, true, 1}, {2 * time.Second, true, 2}, {59 * time.Second, true, 2}, {62 * time.Second, false, 3}}
	for i, s := range steps {
		advance(s.after)
		// something else revoked now: generations move on the feed's clock
		d.Add(session.Revocation{ID: fmt.Sprintf("tick-%d", i), At: clock()})
		d.cache.Wait()
		_, got, err := d.Check(ctx, "old")
		if err != nil {
			t.Fatalf("step %d: Check: %v", i, err)
		}
		if got != s.want {
			t.Fatalf("step %d (%d generations): Check says revoked %v; want %v", i, d.Stats().Generations, got, s.want)
		}
		if n := d.Stats().Generations; n != s.gens {
			t.Fatalf("step %d: %d generations started; want %d", i, n, s.gens)
		}
		// the tick revoked in this generation is refused too
		if _, ok, err := d.Check(ctx, fmt.Sprintf("tick-%d", i)); !ok || err != nil {
			t.Fatalf("step %d: tick-%d revoked %v, %v; want refused", i, i, ok, err)
		}
	}
	// the first generation's tick, two windows old, is forgotten; the
	// previous generation's tick is refused
	if _, ok, _ := d.Check(ctx, "tick-0"); ok {
		t.Fatal("tick-0, two windows old, is still refused")
	}
	if _, ok, _ := d.Check(ctx, "tick-3"); !ok {
		t.Fatal("tick-3, in the previous generation, is no longer refused")
	}
}

// Stats say what the metrics need: ready, the newest revocation, when the
// feed was last heard from (a quiet feed too), the lag, the filter's fill.
func TestDenylistStats(t *testing.T) {
	st := session.NewMemory(0)
	defer st.Close()
	var mu sync.Mutex
	var lags []time.Duration
	d, _ := running(t, st, Config{Capacity: 1000, OnHeard: func(l time.Duration) { mu.Lock(); lags = append(lags, l); mu.Unlock() }})
	s0 := d.Stats()
	if !s0.Ready || s0.Heard != 0 || !s0.LastHeard.IsZero() || s0.LastCurrent.IsZero() || s0.Fill != [2]float64{} || s0.Generations != 1 {
		t.Fatalf("a fresh denylist: %+v", s0)
	}
	newSession(t, st, "s1", "alice")
	if err := st.Revoke(context.Background(), "s1"); err != nil {
		t.Fatal(err)
	}
	awaitRevoked(t, d, "s1")
	s1 := d.Stats()
	if s1.Heard != 1 || s1.LastHeard.IsZero() || s1.Fill[0] <= 0 || s1.Fill[1] != 0 || s1.BloomProbes < 1 {
		t.Fatalf("after one revocation: %+v", s1)
	}
	if want := float64(s1.BloomProbes) / float64(s1.BloomBytes/2*8); s1.Fill[0] > want {
		t.Fatalf("fill %v after one key; at most %v", s1.Fill[0], want)
	}
	mu.Lock()
	if len(lags) != 1 || lags[0] < 0 || lags[0] > time.Second {
		t.Fatalf("lags %v; want one, under a second", lags)
	}
	mu.Unlock()
	// silence: the feed still says it is current
	waitFor := time.Now().Add(session.FeedHeartbeat + time.Second)
	for !d.Stats().LastCurrent.After(s1.LastCurrent) {
		if time.Now().After(waitFor) {
			t.Fatal("LastCurrent did not move during a quiet FeedHeartbeat")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The filter's false-positive rate at its capacity is the configured one.
func TestBloomRate(t *testing.T) {
	const n, p = 100_000, 0.01
	b := newBloom(n, p, maphash.MakeSeed())
	for i := range n {
		b.add(fmt.Sprintf("in-%d", i))
	}
	for i := range n {
		if !b.has(fmt.Sprintf("in-%d", i)) {
			t.Fatalf("in-%d: a member was not found", i)
		}
	}
	fp := 0
	for i := range n {
		if b.has(fmt.Sprintf("out-%d", i)) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 1.5*p {
		t.Fatalf("false-positive rate %.4f at capacity; want about %.2f", rate, p)
	}
	t.Logf("%d keys in %d KiB, %d probes: false-positive rate %.4f (target %.2f)", n, b.bytes()/1024, b.k, float64(fp)/n, p)
}

// The denylist resumes after Redis goes away and comes back.
func TestDenylistSurvivesRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	r, err := session.DialRedis([]string{srv.Addr}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, _ := running(t, r, Config{})
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for r.Ping(context.Background()) != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	newSession(t, r, "after", "frank")
	if err := r.Revoke(context.Background(), "after"); err != nil {
		t.Fatal(err)
	}
	awaitRevoked(t, d, "after")
}

// Sessions revoked just before their end, whose records then expire, with
// a cache too small to hold their answers: a filter hit the cache misses
// is confirmed with the store, which has no record. That is no "not
// revoked": the denylist fails closed, on a running instance and on a
// fresh one that caught up from the feed.
func TestDenylistRecordsGone(t *testing.T) {
	const n = 200
	for name, tc := range map[string]struct {
		open   func(t *testing.T) store
		replay bool // the feed still holds the revocations for a fresh instance
	}{
		"memory": {func(t *testing.T) store {
			m := session.NewMemory(10 * time.Millisecond) // the janitor forgets expired records
			t.Cleanup(m.Close)
			return m
		}, false},
		"redis": {stores(t)["redis"], true},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := tc.open(t)
			cfg := Config{CacheEntries: 8}
			d, c := running(t, st, cfg)
			start := time.Now()
			end := start.Add(3 * time.Second)
			for i := range n {
				s := session.Session{ID: fmt.Sprintf("ending-%d", i), Subject: "alice", Created: start, Rotated: start, Expires: end}
				if err := st.Create(ctx, s, time.Hour); err != nil {
					t.Fatal(err)
				}
				if err := st.Revoke(ctx, s.ID); err != nil {
					t.Fatal(err)
				}
			}
			for deadline := time.Now().Add(5 * time.Second); d.Stats().Heard < n; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d revocations heard within 5s", d.Stats().Heard, n)
				}
			}
			if time.Now().After(end) {
				t.Skip("the machine is too slow: the sessions ended before their revocations were heard")
			}
			time.Sleep(time.Until(end) + 100*time.Millisecond) // the records expire
			for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				// the store's own clock (Redis, the janitor) has forgotten the record:
				// Lookup no longer finds it revoked (before the fix, nor revoked at all)
				if r, ok, _ := c.Feed.Lookup(ctx, fmt.Sprintf("ending-%d", n-1)); !ok || r.Gone || time.Now().After(deadline) {
					break
				}
			}
			check := func(d *Denylist) (denied int) {
				for i := range n {
					_, ok, err := d.Check(ctx, fmt.Sprintf("ending-%d", i))
					if err != nil {
						t.Fatal(err)
					}
					if ok {
						denied++
					}
				}
				return denied
			}
			if denied := check(d); denied != n {
				t.Fatalf("%d of %d revoked sessions whose records expired were denied; want all (fail closed)", denied, n)
			}
			if tc.replay {
				fresh, _ := running(t, st, cfg)
				if denied := check(fresh); denied != n {
					t.Fatalf("fresh instance: %d of %d revoked sessions whose records expired were denied; want all", denied, n)
				}
			}
		})
	}
}

// Stream IDs come from the primary's clock. A failover or restart onto a
// node whose clock is behind and which lacks the stream's tail gives new
// revocations lower IDs than the last one heard: the denylist must hear
// them all the same (and not say it is current while it does not).
func TestDenylistStreamIDsGoBackwards(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outage func(srv *redistest.Server)
	}{
		{"restart", func(srv *redistest.Server) { srv.Restart() }},
		{"down for a while", func(srv *redistest.Server) { srv.Stop(); time.Sleep(1500 * time.Millisecond); srv.Start() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			r, err := session.DialRedis([]string{srv.Addr}, 200*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			d, _ := running(t, r, Config{})
			// the old primary's clock ran 60 s ahead: the last entry heard is in the future
			ahead := strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10) + "-0"
			srv.Do(t, "XADD", "tokend:revocations", ahead, "i", "ahead", "u", "x", "d", "0")
			awaitRevoked(t, d, "ahead")
			tc.outage(srv) // empty again: the tail is gone, and IDs start from this clock
			deadline := time.Now().Add(10 * time.Second)
			for r.Ping(context.Background()) != nil && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			// a client retries a 503 (a connection the outage broke) as it would
			now := time.Now()
			s := session.Session{ID: "behind", Subject: "grace", Created: now, Rotated: now, Expires: now.Add(time.Hour)}
			err = r.Create(context.Background(), s, time.Hour)
			for errors.Is(err, session.ErrUnavailable) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				err = r.Create(context.Background(), s, time.Hour)
			}
			if err != nil {
				t.Fatal(err)
			}
			err = r.Revoke(context.Background(), "behind")
			for errors.Is(err, session.ErrUnavailable) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				err = r.Revoke(context.Background(), "behind")
			}
			if err != nil {
				t.Fatal(err)
			}
			awaitRevoked(t, d, "behind")
		})
	}
}

// TestDenylistStoppedFailsClosed: once Run's ctx ends the feed is no
// longer heard, so a session revoked since would pass the filter unseen:
// every check fails closed (ErrUnconfirmed), a never-revoked session's too.
func TestDenylistStoppedFailsClosed(t *testing.T) {
	m := session.NewMemory(0)
	t.Cleanup(m.Close)
	d, err := New(m, Config{Capacity: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-d.Ready()
	if _, revoked, err := d.Check(context.Background(), "never-revoked"); err != nil || revoked {
		t.Fatalf("while followed: Check = %v, %v; want not revoked", revoked, err)
	}
	cancel()
	if _, _, err := d.Check(context.Background(), "never-revoked"); !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("after Run's ctx ended: Check = %v; want ErrUnconfirmed", err)
	}
	<-done
}
