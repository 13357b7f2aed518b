package session_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// after is s presented again d later.
func after(s session.Step, d time.Duration) session.Step {
	s.Now = s.Now.Add(d)
	return s
}

// owner is the node of cl that serves key's slot now.
func owner(t *testing.T, cl *redistest.Cluster, key string) *redistest.Server {
	t.Helper()
	slot, err := strconv.Atoi(cl.Nodes[0].Do(t, "CLUSTER", "KEYSLOT", key))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cl.Nodes {
		for _, line := range strings.Split(s.Do(t, "CLUSTER", "NODES"), "\n") {
			f := strings.Fields(line)
			if len(f) < 9 || !strings.Contains(f[2], "myself") {
				continue
			}
			for _, r := range f[8:] {
				lo, hi, _ := strings.Cut(r, "-")
				a, err1 := strconv.Atoi(lo)
				b, err2 := strconv.Atoi(hi)
				if err1 == nil && err2 == nil && a <= slot && slot <= b {
					return s
				}
			}
		}
	}
	t.Fatalf("no node serves the slot of %q", key)
	return nil
}

// TestRedisClusterAdoptionIndexed: a legacy adoption whose index write
// fails (the subject's index on another node, down for less than the node
// timeout) is a 503 while its record exists; the client's retry inside the
// grace window must leave the session in its subject's index, so that
// "log out everywhere" and deletion find it (issue 25, item 16).
func TestRedisClusterAdoptionIndexed(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	st := dial(t, cl.Addrs()...)
	ctx := context.Background()
	id := "legacy-adoption-index"
	rec := owner(t, cl, session.RecordKey(id))
	sub := ""
	for i := 0; sub == ""; i++ {
		if s := fmt.Sprintf("dave-%d", i); owner(t, cl, "tokend:u:{"+s+"}") != rec {
			sub = s
		}
	}
	index := owner(t, cl, "tokend:u:{"+sub+"}")
	now := time.Now().Truncate(time.Millisecond)
	adopt := session.Step{ID: id, Gen: -1, Now: now, Grace: time.Minute, Idle: time.Hour,
		Subject: sub, Expires: now.Add(24 * time.Hour)}

	index.Stop()
	if _, err := st.Rotate(ctx, adopt); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("adoption with the index node down: %v; want ErrUnavailable", err)
	}
	// a retry while the index still cannot be written hands out no pair
	if rot, err := st.Rotate(ctx, after(adopt, 500*time.Millisecond)); !errors.Is(err, session.ErrUnavailable) {
		t.Errorf("retry with the index node still down = %+v, %v; want ErrUnavailable", rot, err)
	}
	index.Start() // its nodes.conf keeps its slots: back well inside the node timeout
	cl.WaitOK(t, 20*time.Second)

	// the client retries with the same legacy token, inside the grace window
	adopt.Now = now.Add(time.Second)
	var rot session.Rotation
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if rot, err = st.Rotate(ctx, adopt); !errors.Is(err, session.ErrUnavailable) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || rot.Gen != 0 {
		t.Fatalf("retry of the adoption = %+v, %v; want gen 0", rot, err)
	}
	if n, err := st.RevokeSubject(ctx, sub, true); err != nil || n != 1 {
		t.Errorf("RevokeSubject(%s) = %d, %v; want 1: the adopted session is not in its subject's index", sub, n, err)
	}
	if _, err := st.Rotate(ctx, session.Step{ID: id, Gen: 0, Now: now.Add(2 * time.Second), Grace: time.Minute, Idle: time.Hour}); !errors.Is(err, session.ErrDeleted) {
		t.Errorf("refresh of the adopted session after its subject's deletion: %v; want ErrDeleted", err)
	}
}
