package session_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
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

// TestRedisWaitReplicas: with WaitReplicas(1) a rotation is answered only
// once the replica holds it. With the replica stopped, the advance made on
// the primary is answered ErrNotReplicated (503) and stays there marked
// unacknowledged, so the client's retry with the same token, however late,
// is answered: a retry inside the grace window, the rotation made again
// after it, never reuse; and the next generation once the replica is back.
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
	if session.Unacked(primary.Do(t, "GET", session.RecordKey("w"))) {
		t.Fatal("the rotation answered is still marked unacknowledged")
	}

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
		if v := primary.Do(t, "GET", session.RecordKey("w")); gen(v) != 2 || !session.Unacked(v) || !rotated(v).Equal(step.Now.Truncate(time.Millisecond)) {
			t.Fatalf("the primary's record after the unacknowledged rotation: generation %d, rotated %v, unacknowledged %v; want 2, %v, true",
				gen(v), rotated(v), session.Unacked(v), step.Now)
		}
	}
	replica.Kill(syscall.SIGCONT)
	replica.WaitInfo(t, "replication", "master_link_status:up", 10*time.Second)
	made := step.Now // the rotation the last 503 left unacknowledged
	step.Now = step.Now.Add(time.Second)
	rot, err = st.Rotate(ctx, step)
	if err != nil || rot.Gen != 2 || !rot.Rotated.Equal(made.Truncate(time.Millisecond)) || rot.Lost != 0 {
		t.Fatalf("the same token once the replica is back: %+v, %v; want the generation-2 pair made at %v", rot, err, made)
	}
	if v := replica.Do(t, "GET", session.RecordKey("w")); gen(v) != 2 {
		t.Fatalf("replica generation %d after the retry; want 2", gen(v))
	}
	if session.Unacked(primary.Do(t, "GET", session.RecordKey("w"))) {
		t.Fatal("the rotation answered is still marked unacknowledged")
	}
	// answered now: the used-up token is reuse once its grace window has passed
	step.Now = made.Add(grace)
	if _, err := st.Rotate(ctx, step); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("generation 1 after the grace window of its answered rotation: %v; want ErrReuse", err)
	}
}

// TestRedisWaitReplicasLegacy: the same for a session still in the hash
// record of an earlier tokend, whose rotation stops at the packed record's
// lookup (its WAIT fails as well) before anything is written.
func TestRedisWaitReplicasLegacy(t *testing.T) {
	primary, replica, st := waitingFor(t, time.Second) // two WAITs in a row (the packed lookup, then the hash script): a loaded machine's margin
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

// TestAckScript: record_ack.lua marks a rotation acknowledged only while
// the record is that rotation (generation and rotated time as answered),
// active and marked; anything that happened since stays, expiry included.
func TestAckScript(t *testing.T) {
	src, err := os.ReadFile("lua/record_ack.lua")
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t)
	st := dial(t, srv.Addr)
	const now = int64(1_700_000_000_123)
	newSession(t, st, "u")
	plain := srv.Do(t, "GET", session.RecordKey("u"))
	// record is plain as record_rotate.lua leaves it at gen, rotated, in state, marked or not
	record := func(gen uint32, state byte, rotated int64, marked bool) string {
		b := []byte(plain)
		binary.BigEndian.PutUint32(b, gen)
		b[4] = state
		session.Put48(b[17:], rotated)
		if marked {
			b[23] |= 4
		}
		return string(b)
	}
	arg := func(gen uint32, rotated int64) string {
		b := binary.BigEndian.AppendUint32(nil, gen)
		b = append(b, 0, 0, 0, 0, 0, 0)
		session.Put48(b[4:], rotated)
		return string(b)
	}
	for _, tc := range []struct {
		name, record string // "": none
		acked        bool
	}{
		{"the rotation answered", record(1, 0, now, true), true},
		{"advanced again since", record(2, 0, now+5, true), false},
		{"advanced again in the same millisecond", record(2, 0, now, true), false},
		{"made again since (unacknowledged, from a later time)", record(1, 0, now+1, true), false},
		{"revoked since (reuse)", record(1, 1, now, true), false},
		{"acknowledged already", record(1, 0, now, false), false},
		{"gone", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := session.RecordKey("u")
			srv.Do(t, "DEL", key)
			if tc.record != "" {
				srv.Do(t, "SET", key, tc.record, "PX", "60000")
			}
			got := srv.Do(t, "EVAL", string(src), "1", key, arg(1, now))
			want, after := "0", tc.record
			if tc.acked {
				want, after = "1", record(1, 0, now, false)
			}
			if got != want {
				t.Errorf("ack answered %s; want %s", got, want)
			}
			if v := srv.Do(t, "GET", key); v != after {
				t.Errorf("record after the ack at generation %d, state %d, unacknowledged %v; want generation %d, unacknowledged %v",
					gen(v), state(v), session.Unacked(v), gen(after), session.Unacked(after))
			}
			if tc.record != "" {
				if ttl, _ := strconv.Atoi(srv.Do(t, "PTTL", key)); ttl <= 0 || ttl > 60000 {
					t.Errorf("PTTL %d after the ack; want the record's own (KEEPTTL)", ttl)
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

// waitingOn is a store on primary that waits for one replica (WaitReplicas(1)),
// WAIT lasting up to half of timeout, with its scripts loaded (as in a
// running tokend) while the replica is up.
func waitingOn(t *testing.T, primary *redistest.Server, timeout time.Duration) *session.Redis {
	t.Helper()
	st, err := session.DialRedis([]string{primary.Addr}, timeout, session.WaitReplicas(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	id := "warm" + strconv.FormatInt(time.Now().UnixNano(), 36)
	s := newSession(t, st, id)
	if _, err := st.Rotate(context.Background(), session.Step{ID: id, Gen: 0, Now: s.Created, Idle: time.Hour, Grace: time.Second}); err != nil {
		t.Fatalf("warm-up rotation: %v", err)
	}
	return st
}

// stall stops the replica (SIGSTOP) until the returned resume, which waits
// for its link to come back; a failed test resumes it in its cleanup.
func stall(t *testing.T, replica *redistest.Server) (resume func()) {
	t.Helper()
	replica.Kill(syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			replica.Kill(syscall.SIGCONT)
		}
	})
	return func() {
		t.Helper()
		replica.Kill(syscall.SIGCONT)
		stopped = false
		replica.WaitInfo(t, "replication", "master_link_status:up", 10*time.Second)
	}
}

// waitGen polls the primary until key's record is at generation g.
func waitGen(t *testing.T, primary *redistest.Server, key string, g int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); gen(primary.Do(t, "GET", key)) != g; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the primary's record never reached generation %d", g)
		}
	}
}

// TestRedisWaitAnsweredElsewhere (issue 25, item 3): two instances, WAIT 1,
// the only replica stalled. Instance A advances generation 0 to 1, its
// WAIT times out and it answers 503; the client's duplicate reaches
// instance B inside the grace window, a retry, which B answers 200 with the
// generation-1 pair once the replica is back. Whatever A does after its 503
// must not revert that rotation: the used-up generation-0 token is reuse
// after the grace window (not a second advance, a fork nobody detects), and
// the client's generation-1 token advances with no rotation counted lost.
func TestRedisWaitAnsweredElsewhere(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary, redistest.Config{})
	a := waitingOn(t, primary, time.Second) // WAIT up to 500ms
	b := waitingOn(t, primary, 8*time.Second)
	ctx := context.Background()
	const grace = 10 * time.Second

	// answered runs the scenario on a new session and returns it, with the
	// time of A's advance
	answered := func(id string) time.Time {
		t.Helper()
		s := newSession(t, a, id)
		now := s.Created.Add(time.Second)
		resume := stall(t, replica)
		aErr := make(chan error, 1)
		go func() {
			_, err := a.Rotate(ctx, session.Step{ID: id, Gen: 0, Now: now, Idle: time.Hour, Grace: grace})
			aErr <- err
		}()
		waitGen(t, primary, session.RecordKey(id), 1) // A's advance is on the primary, its WAIT pending
		type answer struct {
			rot session.Rotation
			err error
		}
		bDone := make(chan answer, 1)
		go func() {
			rot, err := b.Rotate(ctx, session.Step{ID: id, Gen: 0, Now: now.Add(time.Second), Idle: time.Hour, Grace: grace})
			bDone <- answer{rot, err}
		}()
		if err := <-aErr; !errors.Is(err, session.ErrNotReplicated) {
			t.Fatalf("A's rotation with the replica stalled: %v; want ErrNotReplicated", err)
		}
		resume()
		got := <-bDone
		if got.err != nil || got.rot.Gen != 1 {
			t.Fatalf("B's answer to the duplicate: %+v, %v; want the generation-1 pair", got.rot, got.err)
		}
		return now
	}

	t.Run("used-up token", func(t *testing.T) {
		now := answered("elsewhere0")
		rot, err := a.Rotate(ctx, session.Step{ID: "elsewhere0", Gen: 0, Now: now.Add(2 * grace), Idle: time.Hour, Grace: grace})
		if !errors.Is(err, session.ErrReuse) {
			t.Fatalf("the used-up generation-0 token after the grace window: %+v, %v; want ErrReuse (B answered the generation-1 pair)", rot, err)
		}
	})
	t.Run("answered token", func(t *testing.T) {
		now := answered("elsewhere1")
		rot, err := a.Rotate(ctx, session.Step{ID: "elsewhere1", Gen: 1, Now: now.Add(time.Minute), Idle: time.Hour, Grace: grace})
		if err != nil || rot.Gen != 2 || rot.Retry || rot.Lost != 0 {
			t.Fatalf("the generation-1 token B answered: %+v, %v; want an advance to 2 with no rotation lost", rot, err)
		}
	})
}

// TestRedisWaitAnswerUnread: the advance reached the primary but its
// store never read WAIT's answer (its deadline passed first, as on a
// CPU-starved machine), so nothing could be undone or told apart after
// the fact. The client's retry with the same token, after the grace
// window, once the replica is back, must not be taken for reuse.
func TestRedisWaitAnswerUnread(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary, redistest.Config{})
	st := waitingOn(t, primary, time.Second) // WAIT up to 500ms
	ctx := context.Background()
	const grace = time.Second
	s := newSession(t, st, "unread")
	step := session.Step{ID: "unread", Gen: 0, Now: s.Created.Add(time.Second), Idle: time.Hour, Grace: grace}
	resume := stall(t, replica)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := st.Rotate(short, step)
	cancel()
	if !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Rotate whose deadline passed during WAIT: %v; want ErrUnavailable", err)
	}
	waitGen(t, primary, session.RecordKey("unread"), 1)
	resume()
	for _, late := range []time.Duration{2 * grace, 2*grace + 100*time.Millisecond} {
		step.Now = s.Created.Add(late)
		rot, err := st.Rotate(ctx, step)
		if err != nil || rot.Gen != 1 {
			t.Fatalf("the client's retry %v later: %+v, %v; want the generation-1 pair (the 503'd rotation was never answered)", late, rot, err)
		}
	}
	// answered now: the used-up token is reuse after the grace window again
	step.Now = step.Now.Add(2 * grace)
	if _, err := st.Rotate(ctx, step); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("generation 0 after its answered rotation's grace window: %v; want ErrReuse", err)
	}
}

// TestRedisWaitUnacknowledgedTTL: the record a rotation left behind, answered
// or not, expires with the newest refresh token it stands for (its rotated
// time plus the refresh TTL), not later.
func TestRedisWaitUnacknowledgedTTL(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary, redistest.Config{})
	st := waitingOn(t, primary, time.Second)
	now := time.Now()
	s := session.Session{ID: "ttl", Subject: "alice", Created: now, Rotated: now, Expires: now.Add(24 * time.Hour)}
	if err := st.Create(context.Background(), s, time.Hour); err != nil {
		t.Fatal(err)
	}
	resume := stall(t, replica)
	defer resume()
	const idle = time.Hour
	// a rotation ten minutes into the session, which no replica acknowledges
	_, err := st.Rotate(context.Background(), session.Step{ID: "ttl", Gen: 0, Now: s.Created.Add(10 * time.Minute), Idle: idle, Grace: time.Second})
	if !errors.Is(err, session.ErrNotReplicated) {
		t.Fatalf("Rotate with the replica stalled: %v; want ErrNotReplicated", err)
	}
	key := session.RecordKey("ttl")
	v := primary.Do(t, "GET", key)
	pexpireat, _ := strconv.ParseInt(primary.Do(t, "PEXPIRETIME", key), 10, 64)
	if want := rotated(v).Add(idle); time.UnixMilli(pexpireat).After(want) {
		t.Fatalf("the record (generation %d, rotated %v) expires at %v; want at most its rotated time plus the refresh TTL, %v",
			gen(v), rotated(v), time.UnixMilli(pexpireat), want)
	}
}

// rotated is the rotated time of a packed record.
func rotated(record string) time.Time {
	if len(record) < 23 {
		return time.Time{}
	}
	var ms int64
	for _, c := range []byte(record[17:23]) {
		ms = ms<<8 | int64(c)
	}
	return time.UnixMilli(ms)
}

// TestRedisWaitUnacknowledgedBound: what a rotation left unacknowledged lets
// a thief holding its parent token do, and where that ends. Here the
// owner's refresh was answered but its acknowledgement lost (a deadline, a
// failover to a replica that missed it): the worst case, an answered
// rotation the record still calls unacknowledged. The thief's parent token
// after the grace window gets the rotation made again, as the owner's retry
// would, but binds nothing and changes nobody's token; once the child is
// presented the parent is reuse again, and either party's used-up token
// after its grace window revokes the session.
func TestRedisWaitUnacknowledgedBound(t *testing.T) {
	primary := redistest.Start(t)
	redistest.StartReplica(t, primary, redistest.Config{})
	st := waitingOn(t, primary, time.Second)
	ctx := context.Background()
	const grace = time.Second
	now := time.Now().Truncate(time.Millisecond)
	s := session.Session{ID: "bound", Subject: "6f1c8e2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b", Created: now, Rotated: now, Expires: now.Add(24 * time.Hour)}
	if err := st.Create(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	key := session.RecordKey("bound")
	ackLost := func() {
		t.Helper()
		v := []byte(primary.Do(t, "GET", key))
		v[23] |= 4 // kindUnacked (record.go)
		primary.Do(t, "SET", key, string(v), "KEEPTTL")
	}
	step := func(gen int64, at time.Duration) session.Step {
		return session.Step{ID: "bound", Gen: gen, Now: now.Add(at), Idle: time.Hour, Grace: grace}
	}
	sum := sha256.Sum256([]byte("thief key"))
	thief := step(0, 10*time.Second)
	thief.Client, thief.Key, thief.Proof, thief.ProofTTL = "app", base64.RawURLEncoding.EncodeToString(sum[:]), "jti-1", time.Minute

	if rot, err := st.Rotate(ctx, step(0, time.Second)); err != nil || rot.Gen != 1 {
		t.Fatalf("the owner's refresh: %+v, %v", rot, err)
	}
	ackLost()
	rot, err := st.Rotate(ctx, thief)
	if err != nil || rot.Gen != 1 || rot.Retry || rot.Key != "" || !rot.Rotated.Equal(thief.Now) {
		t.Fatalf("the thief's parent token after the grace window: %+v, %v; want the generation-1 rotation made again, bound to nothing", rot, err)
	}
	if session.Unacked(primary.Do(t, "GET", key)) {
		t.Fatal("the rotation made again and answered is still marked unacknowledged")
	}
	// the owner's generation-1 token (the first pair) still advances, Bearer
	if rot, err := st.Rotate(ctx, step(1, 20*time.Second)); err != nil || rot.Gen != 2 || rot.Lost != 0 || rot.Key != "" {
		t.Fatalf("the owner's generation-1 token: %+v, %v; want an unbound advance to 2", rot, err)
	}
	// the child was presented: the parent is reuse, even with the mark lost again
	ackLost()
	thief.Now, thief.Proof = now.Add(30*time.Second), "jti-2"
	if _, err := st.Rotate(ctx, thief); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("the parent token once the child was presented: %v; want ErrReuse", err)
	}
	if _, err := st.Rotate(ctx, step(1, 31*time.Second)); !errors.Is(err, session.ErrRevoked) {
		t.Fatalf("after the reuse: %v; want ErrRevoked", err)
	}
}

// TestRedisWaitUnacknowledgedProof: a DPoP refresh whose WAIT fell short
// (503, the record marked unacknowledged, its proof kept in it) retried by
// its client with a new proof gets the rotation made again; the request
// replayed as it was, proof and all, gets nothing, before the retry or
// after it, with the used-up token or the new one.
func TestRedisWaitUnacknowledgedProof(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary, redistest.Config{})
	st := waitingOn(t, primary, time.Second) // its scripts loaded: no NOSCRIPT round trip while the replica is stopped
	ctx := context.Background()
	const grace = time.Second
	now := time.Now().Truncate(time.Second)
	sum := sha256.Sum256([]byte("device key"))
	k := base64.RawURLEncoding.EncodeToString(sum[:])
	s := session.Session{ID: "dpop", Subject: "6f1c8e2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b", Created: now, Rotated: now, Expires: now.Add(time.Hour), Key: k}
	if err := st.Create(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	// each proof's iat is when its client made it: a replay carries it as is
	iat := map[string]time.Duration{"p": time.Second, "q": 7 * time.Second, "r": 9 * time.Second}
	step := func(gen int64, at time.Duration, jti string) session.Step {
		return session.Step{ID: "dpop", Gen: gen, Now: now.Add(at), Idle: time.Hour, Grace: grace, Client: "app", Key: k,
			Proof: jti, ProofIssued: now.Add(iat[jti]), ProofTTL: time.Minute}
	}
	replica.Kill(syscall.SIGSTOP)
	if _, err := st.Rotate(ctx, step(0, time.Second, "p")); !errors.Is(err, session.ErrNotReplicated) {
		t.Fatalf("the refresh with the replica stopped: %v; want ErrNotReplicated", err)
	}
	// refused, and said so once WAIT answers (until then a 503, as any
	// answer while WAIT falls short); nothing written either way
	before := primary.Do(t, "GET", session.RecordKey("dpop"))
	if _, err := st.Rotate(ctx, step(0, 5*time.Second, "p")); !errors.Is(err, session.ErrReplay) && !errors.Is(err, session.ErrNotReplicated) {
		t.Fatalf("the request replayed after the grace window, replica stopped: %v; want ErrReplay or ErrNotReplicated", err)
	}
	if after := primary.Do(t, "GET", session.RecordKey("dpop")); after != before {
		t.Fatal("the replayed request changed the record")
	}
	replica.Kill(syscall.SIGCONT)
	replica.WaitInfo(t, "replication", "master_link_status:up", 10*time.Second)
	if _, err := st.Rotate(ctx, step(0, 6*time.Second, "p")); !errors.Is(err, session.ErrReplay) {
		t.Fatalf("the request replayed once the replica is back: %v; want ErrReplay", err)
	}
	rot, err := st.Rotate(ctx, step(0, 7*time.Second, "q"))
	if err != nil || rot.Gen != 1 || rot.Retry || !rot.Rotated.Equal(now.Add(7*time.Second)) {
		t.Fatalf("the client's retry with a new proof: %+v, %v; want the rotation made again", rot, err)
	}
	for _, replay := range []session.Step{step(0, 8*time.Second, "p"), step(0, 8*time.Second, "q"),
		step(1, 8*time.Second, "p"), step(1, 8*time.Second, "q")} {
		if _, err := st.Rotate(ctx, replay); !errors.Is(err, session.ErrReplay) {
			t.Fatalf("proof %s replayed with token %d: %v; want ErrReplay", replay.Proof, replay.Gen, err)
		}
	}
	if rot, err := st.Rotate(ctx, step(1, 9*time.Second, "r")); err != nil || rot.Gen != 2 {
		t.Fatalf("the client's next refresh: %+v, %v", rot, err)
	}
}

// TestRedisWaitReuseWithoutReplica: a used-up token presented while WAIT
// fails is still reuse. The script revoked the session on the primary; the
// presenter is told ErrReuse (tokend logs the reuse) and the revocation is
// published for every instance's denylist, not hidden behind a 503.
func TestRedisWaitReuseWithoutReplica(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary, redistest.Config{})
	st := waitingOn(t, primary, time.Second)
	ctx := context.Background()
	s := newSession(t, st, "reused")
	step := session.Step{ID: "reused", Gen: 0, Now: s.Created.Add(time.Second), Idle: time.Hour, Grace: time.Second}
	if _, err := st.Rotate(ctx, step); err != nil {
		t.Fatal(err)
	}
	resume := stall(t, replica)
	defer resume()
	step.Now = step.Now.Add(time.Minute)
	if _, err := st.Rotate(ctx, step); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("the used-up token with the replica stalled: %v; want ErrReuse", err)
	}
	if stream := primary.Do(t, "XRANGE", "tokend:revocations", "-", "+"); !strings.Contains(stream, "reused") {
		t.Fatalf("the revocation is not in the stream: %q", stream)
	}
}

// TestRedisWaitAcknowledgedStays: a retry of a rotation already answered
// (and acknowledged) whose own WAIT fails does not make the rotation
// unacknowledged again: its parent is reuse after the grace window, as
// without WAIT. Otherwise whoever holds the parent inside the grace window
// while the replicas lag would keep it retryable past the window.
func TestRedisWaitAcknowledgedStays(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary, redistest.Config{})
	st := waitingOn(t, primary, time.Second)
	ctx := context.Background()
	s := newSession(t, st, "acked")
	step := session.Step{ID: "acked", Gen: 0, Now: s.Created.Add(time.Second), Idle: time.Hour, Grace: time.Second}
	if _, err := st.Rotate(ctx, step); err != nil {
		t.Fatal(err)
	}
	resume := stall(t, replica)
	retry := step
	retry.Now = step.Now.Add(500 * time.Millisecond)
	if _, err := st.Rotate(ctx, retry); !errors.Is(err, session.ErrNotReplicated) {
		t.Fatalf("the retry with the replica stalled: %v; want ErrNotReplicated", err)
	}
	if session.Unacked(primary.Do(t, "GET", session.RecordKey("acked"))) {
		t.Fatal("a retry whose WAIT failed marked the answered rotation unacknowledged")
	}
	resume()
	step.Now = step.Now.Add(time.Minute)
	if _, err := st.Rotate(ctx, step); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("the parent after the grace window: %v; want ErrReuse", err)
	}
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
// replica cannot acknowledge is told as reuse, not a 503: the session is
// revoked on the primary all the same, and its revocation is published, or
// no denylist would ever hear of the theft.
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
	if !errors.Is(err, session.ErrReuse) {
		t.Fatalf("reuse with the replica stopped: %v; want ErrReuse (told, not a 503)", err)
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

// TestRedisRevokeAsUnacknowledgedPublished: RevokeAs (/oauth2/revoke) and
// RevokeLegacy (a legacy token's logout) whose WAIT falls short are a 503,
// but the primary has revoked the session: the revocation is published all
// the same, as Revoke's is, or no denylist hears of it unless the client
// retries.
func TestRedisRevokeAsUnacknowledgedPublished(t *testing.T) {
	_, replica, st := waitingFor(t, time.Second) // a slow machine's margin
	ctx := context.Background()
	hears := heard(t, st)
	now := time.Now()
	newSession(t, st, "as")
	adopt := session.Step{ID: "legacy-revoked", Gen: -1, Now: now, Idle: time.Hour, Grace: time.Second,
		Subject: "alice", Expires: now.Add(time.Hour), TokenExpires: now.Add(time.Hour)}
	if _, err := st.Rotate(ctx, adopt); err != nil {
		t.Fatalf("adoption: %v", err)
	}
	// the scripts loaded while the replica is up, as in a running tokend
	newSession(t, st, "warm")
	if err := st.RevokeAs(ctx, session.Step{ID: "warm", Now: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeLegacy(ctx, session.Step{ID: "legacy-warm", Gen: -1, Now: now, Subject: "alice", TokenExpires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	replica.Kill(syscall.SIGSTOP)
	defer replica.Kill(syscall.SIGCONT)
	if err := st.RevokeAs(ctx, session.Step{ID: "as", Now: now}); !errors.Is(err, session.ErrNotReplicated) {
		t.Errorf("RevokeAs with the replica stopped: %v; want ErrNotReplicated", err)
	}
	adopt.Now = now.Add(time.Millisecond)
	if err := st.RevokeLegacy(ctx, adopt); !errors.Is(err, session.ErrNotReplicated) {
		t.Errorf("RevokeLegacy with the replica stopped: %v; want ErrNotReplicated", err)
	}
	replica.Kill(syscall.SIGCONT)
	for _, id := range []string{"as", "legacy-revoked"} {
		if !hears(id, 5*time.Second) {
			t.Errorf("the revocation of %s, made on the primary and answered 503, was never published", id)
		}
	}
}

// TestRedisRevokeAsUnacknowledgedRecord: a plain session whose rotation is
// still marked unacknowledged (kind bit 2: its WAIT fell short, or its ack
// was lost) is revoked by RevokeAs as any plain session is. The mark is not
// the OAuth extension's bit: read as one, the subject's bytes became a
// bound key and a client, and the user's logout was refused.
func TestRedisRevokeAsUnacknowledgedRecord(t *testing.T) {
	primary, replica, st := waitingFor(t, time.Second) // a slow machine's margin
	ctx := context.Background()
	w := newSession(t, st, "warm") // the rotate script loaded while the replica is up, as in a running tokend
	if _, err := st.Rotate(ctx, session.Step{ID: w.ID, Gen: 0, Now: w.Created, Idle: time.Hour, Grace: time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"alice", "6f1c8e2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b"} {
		for _, client := range []string{"", "web"} {
			id := "unacked-" + sub[:5] + "-" + client
			now := time.Now()
			if err := st.Create(ctx, session.Session{ID: id, Subject: sub, Created: now, Rotated: now, Expires: now.Add(time.Hour)}, time.Hour); err != nil {
				t.Fatal(err)
			}
			replica.Kill(syscall.SIGSTOP)
			_, err := st.Rotate(ctx, session.Step{ID: id, Gen: 0, Now: now.Add(time.Millisecond), Idle: time.Hour, Grace: time.Second})
			replica.Kill(syscall.SIGCONT)
			if !errors.Is(err, session.ErrUnavailable) {
				t.Fatalf("rotation with the replica stopped: %v; want ErrNotReplicated", err)
			}
			if v := primary.Do(t, "GET", session.RecordKey(id)); len(v) < 24 || v[23]&4 == 0 {
				t.Fatalf("record %q not marked unacknowledged", v)
			}
			if err := st.RevokeAs(ctx, session.Step{ID: id, Now: now.Add(2 * time.Millisecond), Client: client}); err != nil {
				t.Errorf("RevokeAs(subject %s, client %q) of an unacknowledged plain session: %v; want it revoked", sub, client, err)
				continue
			}
			_, err = st.Rotate(ctx, session.Step{ID: id, Gen: 1, Now: now.Add(3 * time.Millisecond), Idle: time.Hour, Grace: time.Second})
			if !errors.Is(err, session.ErrRevoked) {
				t.Errorf("refresh after RevokeAs: %v; want ErrRevoked", err)
			}
		}
	}
}

// TestRedisWaitHashRecordUnacknowledged: a session still in the hash
// record of an earlier tokend meets WAIT as a packed one does. Its
// rotation's own WAIT falls short (the packed lookup's was answered, then
// the replica stalled): a 503, the hash advanced on the primary. The
// client's retry of the same token after the grace window, once the
// replica is back, is the rotation made again, not reuse; once an answer
// went out (acknowledged), the parent is reuse after the grace window again.
func TestRedisWaitHashRecordUnacknowledged(t *testing.T) {
	primary, replica, st := waitingFor(t, time.Second) // a slow machine's margin
	ctx := context.Background()
	const grace = 10 * time.Second
	now := time.Now().Truncate(time.Millisecond)
	for _, id := range []string{"hash-unacked", "hash-warm"} {
		s := session.Session{ID: id, Subject: "alice", Created: now, Rotated: now, Expires: now.Add(24 * time.Hour)}
		if err := st.CreateHashRecord(ctx, s, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	step := session.Step{ID: "hash-unacked", Gen: 0, Now: now.Add(time.Second), Idle: time.Hour, Grace: grace}
	// the script loaded while the replica is up, as in a running tokend
	if _, err := st.RotateHashRecord(ctx, session.Step{ID: "hash-warm", Gen: 0, Now: step.Now, Idle: time.Hour, Grace: grace}); err != nil {
		t.Fatal(err)
	}
	replica.Kill(syscall.SIGSTOP)
	_, err := st.RotateHashRecord(ctx, step)
	replica.Kill(syscall.SIGCONT)
	if !errors.Is(err, session.ErrNotReplicated) {
		t.Fatalf("hash rotation with the replica stopped: %v; want ErrNotReplicated", err)
	}
	if g := primary.Do(t, "HGET", session.LegacyKey("hash-unacked"), "g"); g != "1" {
		t.Fatalf("the primary's hash after the unacknowledged rotation: g %s; want 1", g)
	}
	replica.WaitInfo(t, "replication", "master_link_status:up", 10*time.Second)
	late := step
	late.Now = step.Now.Add(2 * grace)
	rot, err := st.Rotate(ctx, late)
	if err != nil || rot.Gen != 1 || rot.Retry || !rot.Rotated.Equal(late.Now) {
		t.Fatalf("the 503'd token after the grace window: %+v, %v; want the rotation made again (gen 1, rotated now)", rot, err)
	}
	// answered: acknowledged, so the parent is reuse after the grace window
	later := late
	later.Now = late.Now.Add(2 * grace)
	if _, err := st.Rotate(ctx, later); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("the parent after an acknowledged answer and the grace window: %v; want ErrReuse", err)
	}
}
