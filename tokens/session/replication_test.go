package session_test

import (
	"context"
	"encoding/binary"
	"errors"
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

// TestRedisWaitReplicas: with WaitReplicas(1) a rotation is answered only
// once the replica holds it; with the replica stopped, the write is made on
// the primary but answered ErrNotReplicated (503), and the client's retry
// within the grace gets the same generation once the replica is back.
func TestRedisWaitReplicas(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary, redistest.Config{})
	st, err := session.DialRedis([]string{primary.Addr}, 200*time.Millisecond, session.WaitReplicas(1))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	newSession(t, st, "w")
	step := session.Step{ID: "w", Gen: 0, Now: time.Now(), Idle: time.Hour, Grace: 10 * time.Second}
	rot, err := st.Rotate(ctx, step)
	if err != nil || rot.Gen != 1 {
		t.Fatalf("Rotate with the replica up: %+v, %v", rot, err)
	}
	if g := gen(replica.Do(t, "GET", session.RecordKey("w"))); g != 1 {
		t.Fatalf("the replica holds generation %d when the rotation is answered; want 1", g)
	}

	replica.Kill(syscall.SIGSTOP)
	step.Gen, step.Now = 1, time.Now()
	start := time.Now()
	if _, err := st.Rotate(ctx, step); !errors.Is(err, session.ErrNotReplicated) || !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Rotate with the replica stopped: %v; want ErrNotReplicated (an ErrUnavailable)", err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Fatalf("the unacknowledged rotation took %v; want about half the 200ms timeout", d)
	}
	replica.Kill(syscall.SIGCONT)
	replica.WaitInfo(t, "replication", "master_link_status:up", 10*time.Second)
	step.Now = time.Now()
	rot, err = st.Rotate(ctx, step)
	if err != nil || rot.Gen != 2 || !rot.Retry {
		t.Fatalf("retry after ErrNotReplicated: %+v, %v; want the same generation 2 as a retry", rot, err)
	}
	if g := gen(replica.Do(t, "GET", session.RecordKey("w"))); g != 2 {
		t.Fatalf("replica generation %d after the retry; want 2", g)
	}
}

// gen is the generation in a packed record (its first 4 bytes, big-endian).
func gen(record string) int64 {
	if len(record) < 4 {
		return -1
	}
	return int64(binary.BigEndian.Uint32([]byte(record[:4])))
}
