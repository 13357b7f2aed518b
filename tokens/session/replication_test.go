package session_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/tokens/session"
	"github.com/tokend/tokend/tokens/session/redistest"
)

func newSession(t *testing.T, st session.Store, id string) session.Session {
	t.Helper()
	now := time.Now()
	s := session.Session{ID: id, Subject: "alice", Created: now, Rotated: now, Expires: now.Add(time.Hour)}
	if err := st.Create(context.Background(), s, time.Hour); err != nil {
		t.Fatalf("Create %s: %v", id, err)
	}
	return s
}

// A Redis that cannot take a write for now (out of memory under
// noeviction, a replica since a failover) is ErrUnavailable, the 503 a
// client retries, not an internal error.
func TestRedisRefusalsAreUnavailable(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary, redistest.Config{})
	ctx := context.Background()
	st := dial(t, primary.Addr)
	newSession(t, st, "before")
	replica.WaitKey(t, session.RecordKey("before"), 5*time.Second) // it has it before it is written to below

	// a client that still writes to a server that became a replica
	now := time.Now()
	old := dial(t, replica.Addr)
	if _, err := old.Rotate(ctx, session.Step{ID: "before", Gen: 0, Now: now, Idle: time.Hour}); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Rotate on a replica: %v; want ErrUnavailable", err)
	}

	primary.Do(t, "CONFIG", "SET", "maxmemory", "1") // every write is now OOM
	err := st.Create(ctx, session.Session{ID: "oom", Subject: "alice", Created: now, Rotated: now, Expires: now.Add(time.Hour)}, time.Hour)
	if !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Create with Redis out of memory: %v; want ErrUnavailable", err)
	}
	if _, err := st.Rotate(ctx, session.Step{ID: "before", Gen: 0, Now: now, Idle: time.Hour}); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Rotate with Redis out of memory: %v; want ErrUnavailable", err)
	}
	primary.Do(t, "CONFIG", "SET", "maxmemory", "0")
}

// waiting starts a primary with one replica and a store on it that waits for
// that replica (WaitReplicas(1), a 200ms timeout: WAIT waits up to 100ms).
func waiting(t *testing.T) (primary, replica *redistest.Server, st *session.Redis) {
	return waitingFor(t, 200*time.Millisecond)
}

// waitingFor is waiting with a store timeout of its own (WAIT waits half).
func waitingFor(t *testing.T, timeout time.Duration) (primary, replica *redistest.Server, st *session.Redis) {
	primary = redistest.Start(t)
	replica = redistest.StartReplica(t, primary, redistest.Config{})
	st, err := session.DialRedis([]string{primary.Addr}, timeout, session.WaitReplicas(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return primary, replica, st
}

// TestRedisWaitReplicas: with WaitReplicas(1) a rotation is answered only
// once the replica holds it. With the replica stopped, the advance made on
// the primary is answered ErrNotReplicated (503) and undone there, so the
// client's retry with the same token, however late, is a fresh advance: not
// reuse once the grace window has passed, and the next generation once the
// replica is back.
func TestRedisWaitReplicas(t *testing.T) {
	primary, replica, st := waiting(t)
	ctx := context.Background()
	newSession(t, st, "w")
	const grace = 10 * time.Second
	step := session.Step{ID: "w", Gen: 0, Now: time.Now(), Idle: time.Hour, Grace: grace}
	rot, err := st.Rotate(ctx, step)
	if err != nil || rot.Gen != 1 {
		t.Fatalf("Rotate with the replica up: %+v, %v", rot, err)
	}
	if g := gen(replica.Do(t, "GET", session.RecordKey("w"))); g != 1 {
		t.Fatalf("the replica holds generation %d when the rotation is answered; want 1", g)
	}
	answered := primary.Do(t, "GET", session.RecordKey("w"))

	replica.Kill(syscall.SIGSTOP)
	step.Gen, step.Now = 1, time.Now()
	for _, late := range []time.Duration{0, 2 * grace} { // the retry after the grace window is not reuse
		step.Now = step.Now.Add(late)
		start := time.Now()
		if _, err := st.Rotate(ctx, step); !errors.Is(err, session.ErrNotReplicated) || !errors.Is(err, session.ErrUnavailable) {
			t.Fatalf("Rotate %v later with the replica stopped: %v; want ErrNotReplicated (an ErrUnavailable)", late, err)
		}
		if d := time.Since(start); d > 400*time.Millisecond {
			t.Fatalf("the unacknowledged rotation took %v; want about half the 200ms timeout", d)
		}
		if v := primary.Do(t, "GET", session.RecordKey("w")); v != answered {
			t.Fatalf("the primary's record after the unacknowledged rotation is at generation %d, not the one answered last (1)", gen(v))
		}
	}
	replica.Kill(syscall.SIGCONT)
	replica.WaitInfo(t, "replication", "master_link_status:up", 10*time.Second)
	step.Now = step.Now.Add(time.Second)
	rot, err = st.Rotate(ctx, step)
	if err != nil || rot.Gen != 2 || rot.Retry || rot.Lost != 0 {
		t.Fatalf("the same token once the replica is back: %+v, %v; want an advance to generation 2", rot, err)
	}
	if g := gen(replica.Do(t, "GET", session.RecordKey("w"))); g != 2 {
		t.Fatalf("replica generation %d after the retry; want 2", g)
	}
}

// TestRedisWaitReplicasLegacy: the same for a session still in the hash
// record of an earlier tokend, whose rotation stops at the packed record's
// lookup (its WAIT fails as well) before anything is written.
func TestRedisWaitReplicasLegacy(t *testing.T) {
	primary, replica, st := waiting(t)
	ctx := context.Background()
	const id, key = "legacy000000000000000W", "tokend:s:{legacy000000000000000W}"
	now := time.Now().Truncate(time.Millisecond)
	created := strconv.FormatInt(now.UnixMilli(), 10)
	primary.Do(t, "HSET", key, "u", "alice", "g", "0", "c", created, "e", strconv.FormatInt(now.Add(24*time.Hour).UnixMilli(), 10), "r", created, "x", "0")
	primary.Do(t, "PEXPIRE", key, "3600000")
	replica.WaitKey(t, key, 5*time.Second)
	const grace = 10 * time.Second
	step := session.Step{ID: id, Gen: 0, Now: now.Add(time.Second), Idle: time.Hour, Grace: grace}
	// the scripts loaded while the replica is up, as in a running tokend (a
	// first EVALSHA meets NOSCRIPT and is sent again, each with its WAIT)
	newSession(t, st, "warm")
	if _, err := st.Rotate(ctx, session.Step{ID: "warm", Gen: 0, Now: step.Now, Idle: time.Hour, Grace: grace}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Rotate(ctx, session.Step{ID: "missing0000000000000000", Gen: 0, Now: step.Now, Idle: time.Hour}); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Rotate of a missing session: %v; want ErrNotFound", err)
	}

	replica.Kill(syscall.SIGSTOP)
	for _, late := range []time.Duration{0, 2 * grace} {
		step.Now = step.Now.Add(late)
		if _, err := st.Rotate(ctx, step); !errors.Is(err, session.ErrNotReplicated) {
			t.Fatalf("Rotate %v later with the replica stopped: %v; want ErrNotReplicated", late, err)
		}
		if g, r := primary.Do(t, "HGET", key, "g"), primary.Do(t, "HGET", key, "r"); g != "0" || r != created {
			t.Fatalf("the primary's hash after the unacknowledged rotation: g %s, r %s; want 0 and %s", g, r, created)
		}
	}
	replica.Kill(syscall.SIGCONT)
	replica.WaitInfo(t, "replication", "master_link_status:up", 10*time.Second)
	step.Now = step.Now.Add(time.Second)
	rot, err := st.Rotate(ctx, step)
	if err != nil || rot.Gen != 1 || rot.Retry || rot.Lost != 0 {
		t.Fatalf("the same token once the replica is back: %+v, %v; want an advance to generation 1", rot, err)
	}
}

// TestUndoScript: record_undo.lua puts a record back only while it is what
// the advance made of it; anything that happened since stays.
func TestUndoScript(t *testing.T) {
	src, err := os.ReadFile("lua/record_undo.lua")
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t)
	st := dial(t, srv.Addr)
	const now = int64(1_700_000_000_123)
	newSession(t, st, "u")
	old := srv.Do(t, "GET", session.RecordKey("u")) // generation 0
	// advanced is old as record_rotate.lua writes it after an advance from gen at now
	advanced := func(gen uint32, state byte, rotated int64) string {
		b := []byte(old)
		binary.BigEndian.PutUint32(b, gen)
		b[4] = state
		session.Put48(b[17:], rotated)
		return string(b)
	}
	arg := func(gen int64) string { return session.RotateArg(session.Step{Gen: gen, Now: time.UnixMilli(now)}) }
	for _, tc := range []struct {
		name, record, arg string // record "": none
		undone            bool
	}{
		{"as the advance left it", advanced(1, 0, now), arg(0), true},
		{"advanced past rotations lost", advanced(5, 0, now), arg(4), true},
		{"advanced again since", advanced(2, 0, now+5), arg(0), false},
		{"advanced by another token in the same millisecond", advanced(2, 0, now), arg(0), false},
		{"revoked since (reuse)", advanced(1, 1, now), arg(0), false},
		{"another advance from the same generation later", advanced(1, 0, now+1), arg(0), false},
		{"gone", "", arg(0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := session.RecordKey("u")
			srv.Do(t, "DEL", key)
			if tc.record != "" {
				srv.Do(t, "SET", key, tc.record, "PX", "60000")
			}
			got := srv.Do(t, "EVAL", string(src), "1", key, tc.arg, old)
			want, after := "0", tc.record
			if tc.undone {
				want, after = "1", old
			}
			if got != want {
				t.Errorf("undo answered %s; want %s", got, want)
			}
			if v := srv.Do(t, "GET", key); v != after {
				t.Errorf("record after the undo at generation %d, state %d; want generation %d", gen(v), state(v), gen(after))
			}
			if tc.record != "" {
				if ttl, _ := strconv.Atoi(srv.Do(t, "PTTL", key)); ttl <= 0 || ttl > 60000 {
					t.Errorf("PTTL %d after the undo; want the record's own (KEEPTTL)", ttl)
				}
			}
		})
	}
}

func state(record string) int {
	if len(record) < 5 {
		return -1
	}
	return int(record[4])
}

// gen is the generation in a packed record (its first 4 bytes, big-endian).
func gen(record string) int64 {
	if len(record) < 4 {
		return -1
	}
	return int64(binary.BigEndian.Uint32([]byte(record[:4])))
}

// acked waits until every replica of primary has acknowledged all it was sent.
func acked(t *testing.T, primary *redistest.Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info := primary.Do(t, "INFO", "replication")
		var master string
		var replicas []string
		for _, line := range strings.Split(info, "\n") {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
				master = v
			}
			if strings.HasPrefix(line, "slave") && strings.Contains(line, ",offset=") {
				_, rest, _ := strings.Cut(line, ",offset=")
				off, _, _ := strings.Cut(rest, ",")
				replicas = append(replicas, off)
			}
		}
		done := len(replicas) > 0
		for _, off := range replicas {
			done = done && off == master
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas not caught up within 5s:\n%s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heard follows st's revocation feed from now and reports whether session
// id's revocation arrives within d.
func heard(t *testing.T, st *session.Redis) func(id string, d time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	got := map[string]bool{}
	ready := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		since := time.Now().Add(-time.Minute)
		for ctx.Err() == nil { // resumed, as the denylist does, when the feed fails
			_ = st.Follow(ctx, since, func(r session.Revocation) { mu.Lock(); got[r.ID] = true; mu.Unlock() },
				func() { once.Do(func() { close(ready) }) })
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	<-ready
	return func(id string, d time.Duration) bool {
		for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			ok := got[id]
			mu.Unlock()
			if ok {
				return true
			}
		}
		return false
	}
}

// TestRedisPublishWaits: with WaitReplicas, a revocation's publication is
// followed by WAIT like every other write, so that it survives a failover:
// a revoke whose entry the replica did not acknowledge is ErrNotReplicated
// (the admin's retry publishes it again), not a success.
func TestRedisPublishWaits(t *testing.T) {
	primary, replica, st := waitingFor(t, time.Second) // a slow machine's margin
	ctx := context.Background()
	newSession(t, st, "pub")
	if err := st.Revoke(ctx, "pub"); err != nil {
		t.Fatal(err)
	}
	acked(t, primary)
	replica.Kill(syscall.SIGSTOP)
	defer replica.Kill(syscall.SIGCONT)
	// revoked already: the script writes nothing its WAIT waits for; the
	// publication is a write, and the stopped replica cannot acknowledge it
	if err := st.Revoke(ctx, "pub"); !errors.Is(err, session.ErrNotReplicated) {
		t.Fatalf("Revoke with its publication unacknowledged: %v; want ErrNotReplicated", err)
	}
}

// TestRedisReuseUnacknowledgedPublished: a reuse detected while the
// replica cannot acknowledge is answered 503, but the session is revoked on
// the primary all the same: its revocation must be published, or no
// denylist ever hears of the theft (the retry meets a revoked record and
// publishes nothing).
func TestRedisReuseUnacknowledgedPublished(t *testing.T) {
	_, replica, st := waitingFor(t, time.Second) // a slow machine's margin
	ctx := context.Background()
	hears := heard(t, st)
	newSession(t, st, "stolen")
	now := time.Now()
	if _, err := st.Rotate(ctx, session.Step{ID: "stolen", Gen: 0, Now: now, Idle: time.Hour, Grace: time.Second}); err != nil {
		t.Fatal(err)
	}
	replica.Kill(syscall.SIGSTOP)
	_, err := st.Rotate(ctx, session.Step{ID: "stolen", Gen: 0, Now: now.Add(time.Minute), Idle: time.Hour, Grace: time.Second})
	if !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("reuse with the replica stopped: %v; want ErrUnavailable (503)", err)
	}
	replica.Kill(syscall.SIGCONT)
	if !hears("stolen", 5*time.Second) {
		t.Fatal("the revocation of a detected reuse was never published")
	}
}

// TestRedisReusePublishRetried: a reuse whose publication fails (here the
// stream cannot be written for a while) is published once it can be,
// without anyone presenting a token again.
func TestRedisReusePublishRetried(t *testing.T) {
	srv := redistest.Start(t)
	st := dial(t, srv.Addr)
	ctx := context.Background()
	newSession(t, st, "stolen")
	now := time.Now()
	if _, err := st.Rotate(ctx, session.Step{ID: "stolen", Gen: 0, Now: now, Idle: time.Hour, Grace: time.Second}); err != nil {
		t.Fatal(err)
	}
	srv.Do(t, "SET", "tokend:revocations", "not a stream") // every XADD fails for now
	if _, err := st.Rotate(ctx, session.Step{ID: "stolen", Gen: 0, Now: now.Add(time.Minute), Idle: time.Hour, Grace: time.Second}); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("reuse: %v; want ErrReuse", err)
	}
	time.Sleep(300 * time.Millisecond)
	srv.Do(t, "DEL", "tokend:revocations")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(srv.Do(t, "XRANGE", "tokend:revocations", "-", "+"), "stolen") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed publication of a detected reuse was never retried")
		}
	}
}

// TestRedisRevokeUnacknowledgedPublished: a revoke (of one session, or of
// a subject's) whose WAIT falls short is a 503, but the primary has revoked
// the sessions: their revocations are published all the same, so the
// denylists hear of them even if the admin never retries.
func TestRedisRevokeUnacknowledgedPublished(t *testing.T) {
	// a 1 s timeout (WAIT 500 ms) for a slow machine; a subject's sessions
	// are revoked one WAIT after another, so the subject has one
	_, replica, st := waitingFor(t, time.Second)
	ctx := context.Background()
	hears := heard(t, st)
	newSession(t, st, "one")
	now := time.Now()
	for _, id := range []string{"all-1"} {
		if err := st.Create(ctx, session.Session{ID: id, Subject: "carol", Created: now, Rotated: now, Expires: now.Add(time.Hour)}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	newSession(t, st, "warm") // the revoke script loaded while the replica is up, as in a running tokend
	if err := st.Revoke(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	replica.Kill(syscall.SIGSTOP)
	if err := st.Revoke(ctx, "one"); !errors.Is(err, session.ErrNotReplicated) {
		t.Fatalf("Revoke with the replica stopped: %v; want ErrNotReplicated", err)
	}
	if _, err := st.RevokeSubject(ctx, "carol", false); !errors.Is(err, session.ErrNotReplicated) {
		t.Fatalf("RevokeSubject with the replica stopped: %v; want ErrNotReplicated", err)
	}
	replica.Kill(syscall.SIGCONT)
	for _, id := range []string{"one", "all-1"} {
		if !hears(id, 5*time.Second) {
			t.Fatalf("the revocation of %s, made on the primary and answered 503, was never published", id)
		}
	}
}
