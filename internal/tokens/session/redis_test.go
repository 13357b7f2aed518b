package session_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
	"github.com/tokend/tokend/internal/tokens/session/sessiontest"
)

func dial(t *testing.T, addrs ...string) *session.Redis {
	t.Helper()
	r, err := session.DialRedis(addrs, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func TestRedisContract(t *testing.T) {
	srv := redistest.Start(t)
	sessiontest.Run(t, func(t *testing.T) (sessiontest.Store, sessiontest.Rewind) {
		srv.Flush(t) // each case starts from an empty store
		return dial(t, srv.Addr), rewind(srv.Addr)
	})
}

// The suite on sessions still in the hash record of an earlier tokend
// (tokend:s:{id}, rotate.lua and revoke.lua): owner, expiry, grace, reuse,
// revocations, the feed and lost rotations, as for the packed record.
func TestRedisEarlierContract(t *testing.T) {
	srv := redistest.Start(t)
	sessiontest.RunEarlier(t, func(t *testing.T) (sessiontest.Store, sessiontest.Rewind, sessiontest.Earlier) {
		srv.Flush(t)
		st := dial(t, srv.Addr)
		return st, rewindKey(session.LegacyKey, srv.Addr), st.CreateHashRecord
	})
}

// rewind is the Rewind of a Redis store: DUMP and PTTL of the session's key
// now, RESTORE … REPLACE (or DEL) later. The record comes back byte for
// byte, as on a replica that missed the writes in between.
func rewind(addrs ...string) sessiontest.Rewind { return rewindKey(session.RecordKey, addrs...) }

// rewindKey is rewind of the key named by key: the hash record's for
// sessions an earlier tokend wrote.
func rewindKey(key func(id string) string, addrs ...string) sessiontest.Rewind {
	return func(t *testing.T, id string) func() {
		t.Helper()
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		ctx, key := context.Background(), key(id)
		dump, err := c.Do(ctx, c.B().Dump().Key(key).Build()).ToString()
		missing := rueidis.IsRedisNil(err)
		if err != nil && !missing {
			t.Fatalf("DUMP %s: %v", key, err)
		}
		pttl, err := c.Do(ctx, c.B().Pttl().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatalf("PTTL %s: %v", key, err)
		}
		return func() {
			cmd := c.B().Del().Key(key).Build()
			if !missing {
				cmd = c.B().Restore().Key(key).Ttl(max(pttl, 0)).SerializedValue(dump).Replace().Build()
			}
			if err := c.Do(ctx, cmd).Error(); err != nil {
				t.Fatalf("restore %s: %v", key, err)
			}
		}
	}
}

// The same suite against a real 3-master Cluster, given only its seeds:
// rueidis finds out it is a Cluster, and the hash tag keeps each script on
// one node.
func TestRedisClusterContract(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	sessiontest.Run(t, func(t *testing.T) (sessiontest.Store, sessiontest.Rewind) {
		cl.Flush(t)
		return dial(t, cl.Addrs()...), rewind(cl.Addrs()...)
	})
}

// The hash-record suite on the Cluster: each hash record in its own slot.
func TestRedisClusterEarlierContract(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	sessiontest.RunEarlier(t, func(t *testing.T) (sessiontest.Store, sessiontest.Rewind, sessiontest.Earlier) {
		cl.Flush(t)
		st := dial(t, cl.Addrs()...)
		return st, rewindKey(session.LegacyKey, cl.Addrs()...), st.CreateHashRecord
	})
}

// The record of a session lives as long as its newest refresh token, and
// never past the end of the session: the packed record and the hash record
// of an earlier tokend alike (rotate.lua sets the hash's expiry itself).
func TestRedisRecordTTL(t *testing.T) {
	srv := redistest.Start(t)
	st := dial(t, srv.Addr)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		create func(context.Context, session.Session, time.Duration) error
		key    func(string) string
	}{
		{"packed", st.Create, session.RecordKey},
		{"hash", st.CreateHashRecord, session.LegacyKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			id := "ttl-" + tc.name
			s := session.Session{ID: id, Subject: "alice", Created: now, Rotated: now, Expires: now.Add(2 * time.Hour)}
			if err := tc.create(ctx, s, time.Hour); err != nil {
				t.Fatal(err)
			}
			pttl := func() time.Duration {
				v, err := c.Do(ctx, c.B().Pttl().Key(tc.key(id)).Build()).AsInt64()
				if err != nil {
					t.Fatal(err)
				}
				return time.Duration(v) * time.Millisecond
			}
			if d := pttl(); d < 59*time.Minute || d > time.Hour {
				t.Fatalf("TTL after create = %v; want about 1h (the refresh TTL)", d)
			}
			// a rotation moves the expiry to its own refresh token's end
			if _, err := st.Rotate(ctx, session.Step{ID: id, Gen: 0, Now: now.Add(30 * time.Minute), Idle: time.Hour}); err != nil {
				t.Fatal(err)
			}
			if d := pttl(); d < 89*time.Minute || d > 90*time.Minute {
				t.Fatalf("TTL after a rotation at +30m = %v; want about 1h30m (+30m plus the refresh TTL)", d)
			}
			if _, err := st.Rotate(ctx, session.Step{ID: id, Gen: 1, Now: now.Add(90 * time.Minute), Idle: time.Hour}); err != nil {
				t.Fatal(err)
			}
			// +90m plus the 1h refresh TTL would be +150m: capped at the end, +2h
			if d := pttl(); d < 119*time.Minute || d > 2*time.Hour {
				t.Fatalf("TTL after rotation near the end = %v; want about 2h (capped at the session's end)", d)
			}
		})
	}
}

// A store that is down answers ErrUnavailable within its timeout, and serves
// again once Redis is back, with no new client.
func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t)
	st := dial(t, srv.Addr)
	ctx := context.Background()
	if err := st.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	_, err := st.Rotate(ctx, session.Step{ID: "x", Gen: 0, Now: time.Now(), Idle: time.Hour})
	if !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Rotate with Redis down: %v; want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Rotate with Redis down took %v; want about the 200ms timeout", d)
	}
	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for st.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("store did not recover within 5s of Redis coming back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	now := time.Now()
	s := session.Session{ID: "back", Subject: "alice", Created: now, Rotated: now, Expires: now.Add(time.Hour)}
	if err := st.Create(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Rotate(ctx, session.Step{ID: "back", Gen: 0, Now: now, Idle: time.Hour}); err != nil {
		t.Fatalf("Rotate after recovery: %v", err)
	}
}

// A Redis that answers, but slower than the timeout, is ErrUnavailable
// after the timeout (plus at most one shared-deadline window), for calls
// one at a time and many at once; the session is rotated once it answers.
func TestRedisSlowerThanTimeout(t *testing.T) {
	srv := redistest.Start(t)
	st := dial(t, srv.Addr) // 200ms timeout
	admin, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	now := time.Now()
	s := session.Session{ID: "slow", Subject: "alice", Created: now, Rotated: now, Expires: now.Add(time.Hour)}
	if err := st.Create(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	// CLIENT PAUSE WRITE holds every script (they write) for 1.5s
	if err := admin.Do(ctx, admin.B().ClientPause().Timeout(1500).Write().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for _, callers := range []int{1, 16} {
		start := time.Now()
		errs := make(chan error, callers)
		for range callers {
			go func() {
				_, err := st.Rotate(ctx, session.Step{ID: "slow", Gen: 0, Now: time.Now(), Idle: time.Hour})
				errs <- err
			}()
		}
		for range callers {
			if err := <-errs; !errors.Is(err, session.ErrUnavailable) {
				t.Fatalf("%d callers: Rotate while Redis is paused: %v; want ErrUnavailable", callers, err)
			}
		}
		if d := time.Since(start); d < 200*time.Millisecond || d > 600*time.Millisecond {
			t.Fatalf("%d callers: Rotate while Redis is paused took %v; want the 200ms timeout", callers, d)
		}
	}
	// once the pause is over the store answers again
	time.Sleep(time.Until(now.Add(1600 * time.Millisecond)))
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Ping after the pause: %v", err)
	}
}

// A follower waits through quiet spells longer than one blocking read (and
// than the client's 200ms timeout) and still hears the next revocation.
func TestRedisFollowThroughQuiet(t *testing.T) {
	srv := redistest.Start(t)
	st := dial(t, srv.Addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan session.Revocation, 1)
	ready := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- st.Follow(ctx, time.Now(), func(r session.Revocation) { got <- r }, func() { once.Do(func() { close(ready) }) })
	}()
	<-ready
	time.Sleep(2500 * time.Millisecond)
	now := time.Now()
	s := session.Session{ID: "quiet", Subject: "alice", Created: now, Rotated: now, Expires: now.Add(time.Hour)}
	if err := st.Create(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := st.Revoke(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.ID != "quiet" {
			t.Fatalf("heard %+v", r)
		}
	case err := <-done:
		t.Fatalf("Follow stopped during a quiet spell: %v", err)
	case <-time.After(3 * time.Second):
		t.Fatal("revocation not heard within 3s")
	}
}

// A follower whose last entry is gone from the stream (a failover or a
// restart onto a node without the stream's tail, which numbers new entries
// from its own clock) stops with ErrFeedGap instead of reading on after an
// ID the node may never reach, and says it is current no more.
func TestRedisFollowGap(t *testing.T) {
	for name, addrs := range map[string]func(t *testing.T) []string{
		"standalone": func(t *testing.T) []string { return []string{redistest.Start(t).Addr} },
		"cluster":    func(t *testing.T) []string { return redistest.StartCluster(t, 3).Addrs() },
	} {
		t.Run(name, func(t *testing.T) {
			addrs := addrs(t)
			st := dial(t, addrs...)
			c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			var heard []string
			currents := 0
			done := make(chan error, 1)
			go func() {
				done <- st.Follow(ctx, time.Now(), func(r session.Revocation) { mu.Lock(); heard = append(heard, r.ID); mu.Unlock() },
					func() { mu.Lock(); currents++; mu.Unlock() })
			}()
			now := time.Now()
			s := session.Session{ID: "first", Subject: "alice", Created: now, Rotated: now, Expires: now.Add(time.Hour)}
			if err := st.Create(ctx, s, time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := st.Revoke(ctx, s.ID); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				mu.Lock()
				n := len(heard)
				mu.Unlock()
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the first revocation was not heard within 5s")
				}
			}
			if err := c.Do(ctx, c.B().Del().Key("tokend:revocations").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			before := currents
			mu.Unlock()
			select {
			case err := <-done:
				if !errors.Is(err, session.ErrFeedGap) || !errors.Is(err, session.ErrUnavailable) {
					t.Fatalf("Follow after its last entry went: %v; want ErrFeedGap (an ErrUnavailable)", err)
				}
			case <-time.After(3 * time.Second):
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("Follow went on after its last entry went, and said it was current %d times more", currents-before)
			}
		})
	}
}
