package session_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// TestRedisAdoptionIndexedOnRetry: an adoption whose record was written but
// whose index write failed answered an error; the client's retry inside
// grace must index the session, or deleting its subject misses it.
func TestRedisAdoptionIndexedOnRetry(t *testing.T) {
	srv := redistest.Start(t)
	st := dial(t, srv.Addr)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	const id, sub = "adopted0000000000000A", "lena"
	adopt := session.Step{ID: id, Gen: -1, Now: now, Grace: 10 * time.Second, Idle: time.Hour, Subject: sub, Expires: now.Add(time.Hour)}
	srv.Do(t, "SET", "tokend:u:{"+sub+"}", "not a set") // the index write fails (WRONGTYPE)
	if _, err := st.Rotate(ctx, adopt); err == nil {
		t.Fatal("adoption with a broken index answered no error")
	}
	srv.Do(t, "DEL", "tokend:u:{"+sub+"}")
	adopt.Now = now.Add(time.Second)
	if r, err := st.Rotate(ctx, adopt); err != nil || !r.Retry {
		t.Fatalf("retried adoption = %+v, %v; want a retry", r, err)
	}
	if n, err := st.RevokeSubject(ctx, sub, true); err != nil || n != 1 {
		t.Fatalf("RevokeSubject(%s) = %d, %v; want 1: the retry indexes the adopted session", sub, n, err)
	}
	if _, err := st.Rotate(ctx, session.Step{ID: id, Gen: 0, Now: now.Add(2 * time.Second), Grace: 10 * time.Second, Idle: time.Hour}); !errors.Is(err, session.ErrDeleted) {
		t.Fatalf("adopted session after its subject's deletion: %v; want ErrDeleted", err)
	}
}

// TestRedisDeletionFailedIsRepeatable: a deletion that fails half way (one
// record cannot be revoked) leaves the index whole, so that repeating it
// ends every session.
func TestRedisDeletionFailedIsRepeatable(t *testing.T) {
	srv := redistest.Start(t)
	st := dial(t, srv.Addr)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	var ids []string
	for i := range 5 {
		id := "deleted000000000000000" + strconv.Itoa(i)
		s := session.Session{ID: id, Subject: "mona", Created: now, Rotated: now, Expires: now.Add(time.Hour)}
		if err := st.Create(ctx, s, time.Hour); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	broken := session.RecordKey(ids[2])
	srv.Do(t, "RENAME", broken, "saved")
	srv.Do(t, "SADD", broken, "x") // the revoke script fails on it (WRONGTYPE)
	if _, err := st.RevokeSubject(ctx, "mona", true); err == nil {
		t.Fatal("deletion over a broken record answered no error")
	}
	srv.Do(t, "DEL", broken)
	srv.Do(t, "RENAME", "saved", broken)
	if _, err := st.RevokeSubject(ctx, "mona", true); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := st.Rotate(ctx, session.Step{ID: id, Gen: 0, Now: now.Add(time.Second), Grace: 10 * time.Second, Idle: time.Hour}); !errors.Is(err, session.ErrDeleted) {
			t.Fatalf("%s after the repeated deletion: %v; want ErrDeleted", id, err)
		}
	}
}
