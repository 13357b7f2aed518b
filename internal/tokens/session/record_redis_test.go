package session_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// TestRedisLegacyRecords: sessions an earlier tokend wrote as hashes
// (tokend:s:{id}, fields u g c e r x) keep working after an upgrade: they
// rotate, retry, detect reuse, revoke and show in lookups where they are,
// beside sessions in the packed record.
func TestRedisLegacyRecords(t *testing.T) {
	srv := redistest.Start(t)
	st := dial(t, srv.Addr)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	legacy := func(id, sub string) {
		t.Helper()
		ms := strconv.FormatInt(now.UnixMilli(), 10)
		srv.Do(t, "HSET", "tokend:s:{"+id+"}", "u", sub, "g", "0", "c", ms, "e", strconv.FormatInt(now.Add(24*time.Hour).UnixMilli(), 10), "r", ms, "x", "0")
		srv.Do(t, "PEXPIREAT", "tokend:s:{"+id+"}", strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10))
		srv.Do(t, "SADD", "tokend:u:{"+sub+"}", id)
	}
	step := func(id string, gen int64, at time.Duration) session.Step {
		return session.Step{ID: id, Gen: gen, Now: now.Add(at), Grace: 10 * time.Second, Idle: time.Hour}
	}
	const old = "legacy000000000000000A"
	legacy(old, "alice")

	rot, err := st.Rotate(ctx, step(old, 0, time.Second))
	if err != nil || rot.Gen != 1 || rot.Retry || rot.Subject != "alice" || !rot.Created.Equal(now) {
		t.Fatalf("advance: %+v %v", rot, err)
	}
	if g := srv.Do(t, "HGET", "tokend:s:{"+old+"}", "g"); g != "1" {
		t.Fatalf("the legacy record holds generation %q; want 1 (rotated where it is)", g)
	}
	if rot, err := st.Rotate(ctx, step(old, 0, 2*time.Second)); err != nil || !rot.Retry || rot.Gen != 1 {
		t.Fatalf("retry: %+v %v", rot, err)
	}
	if _, err := st.Rotate(ctx, step(old, 0, time.Minute)); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("reuse: %v", err)
	}
	if rev, ok, err := st.Lookup(ctx, old); !ok || err != nil || rev.Subject != "alice" {
		t.Fatalf("lookup: %+v %v %v", rev, ok, err)
	}

	// revocation: a legacy and a packed session of one subject
	const other = "legacy000000000000000B"
	legacy(other, "bob")
	fresh := session.Session{ID: "AAAAAAAAAAAAAAAAAAAAAA", Subject: "bob", Created: now, Rotated: now, Expires: now.Add(24 * time.Hour)}
	if err := st.Create(ctx, fresh, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, err := st.RevokeSubject(ctx, "bob", true); n != 2 || err != nil {
		t.Fatalf("RevokeSubject = %d, %v; want both sessions", n, err)
	}
	for _, id := range []string{other, fresh.ID} {
		if _, err := st.Rotate(ctx, step(id, 0, time.Second)); !errors.Is(err, session.ErrDeleted) {
			t.Fatalf("%s after the subject's deletion: %v", id, err)
		}
	}
	// the legacy record's refusals come in the packed record's order: a
	// scope asked of a revoked or another's session is not a scope refusal,
	// and an active one's is, burning nothing
	if _, err := st.Rotate(ctx, session.Step{ID: other, Gen: 0, Now: now.Add(time.Second), Scope: "openid"}); !errors.Is(err, session.ErrDeleted) {
		t.Fatalf("a scope asked of a deleted legacy session: %v; want ErrDeleted", err)
	}
	legacy("legacy000000000000000D", "dora")
	scoped := step("legacy000000000000000D", 0, time.Second)
	scoped.Scope, scoped.Owner = "openid", "eve"
	if _, err := st.Rotate(ctx, scoped); !errors.Is(err, session.ErrNotOwner) {
		t.Fatalf("a scope asked of another's legacy session: %v; want ErrNotOwner", err)
	}
	scoped.Owner = "dora"
	if _, err := st.Rotate(ctx, scoped); !errors.Is(err, session.ErrScope) {
		t.Fatalf("a scope asked of a legacy session: %v; want ErrScope", err)
	}
	scoped.Scope = " "
	if r, err := st.Rotate(ctx, scoped); err != nil || r.Gen != 1 {
		t.Fatalf("an empty scope asked of a legacy session: %+v, %v; want an advance (the refusals burnt nothing)", r, err)
	}
	legacy("legacy000000000000000C", "carol")
	if err := st.Revoke(ctx, "legacy000000000000000C"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Rotate(ctx, step("legacy000000000000000C", 0, time.Second)); !errors.Is(err, session.ErrRevoked) {
		t.Fatalf("a revoked legacy session: %v", err)
	}
}

// TestRedisRecordMemory: what a session costs Redis (MEMORY USAGE of its
// record) at creation and after rotations, and what its subject's index
// costs.
func TestRedisRecordMemory(t *testing.T) {
	srv := redistest.Start(t)
	st := dial(t, srv.Addr)
	ctx := context.Background()
	now := time.Now()
	for _, tc := range []struct {
		sub string
		max int
	}{
		{"4ef1c711-06ff-41ea-888a-456579e447d6", 120}, // a UUID
		{"load-42", 120},
		{"user-0123456789abcde", 120},  // 20 bytes: the longest that keeps the record an embedded string
		{"user-0123456789abcdef", 136}, // 21 bytes
		{"someone@example.com/with-a-longer-subject", 152},
		// OAuth 2.0: bound to a DPoP key, with a client and a scope
		{"4ef1c711-06ff-41ea-888a-456579e447d6 bound", 200}, // its newest proof: 20 bytes more than a key per proof
		// bound to a DPoP key, no client or scope: the smallest DPoP record
		{"4ef1c711-06ff-41ea-888a-456579e447d6 key", 184},
	} {
		id := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("session-%08d", len(tc.sub)))) // as tokend makes them: 16 bytes
		s := session.Session{ID: id, Subject: tc.sub, Created: now, Rotated: now, Expires: now.Add(2160 * time.Hour)}
		var key string
		if sub, ok := strings.CutSuffix(tc.sub, " bound"); ok {
			key = "2f5ra1dDQbTzbSAEpY4KK8GrC4W6bgH4Ib1xA0kVxYU"
			s.Subject, s.Client, s.Scope, s.Key = sub, "ios-app", "openid orders:read", key
		}
		if sub, ok := strings.CutSuffix(tc.sub, " key"); ok {
			key = "2f5ra1dDQbTzbSAEpY4KK8GrC4W6bgH4Ib1xA0kVxYU"
			s.Subject, s.Key = sub, key
		}
		if err := st.Create(ctx, s, 720*time.Hour); err != nil {
			t.Fatal(err)
		}
		usage := func() int {
			n, _ := strconv.Atoi(srv.Do(t, "MEMORY", "USAGE", session.RecordKey(id), "SAMPLES", "0"))
			return n
		}
		created := usage()
		for g := int64(0); g < 1000; g++ {
			at := now.Add(time.Duration(g) * 5 * time.Minute) // an access token's life apart
			step := session.Step{ID: id, Gen: g, Now: at, Grace: 10 * time.Second, Idle: 720 * time.Hour, Key: key}
			if key != "" { // a proof per refresh, as /oauth2/token's
				step.Proof, step.ProofIssued, step.ProofTTL = fmt.Sprintf("jti-%d", g), at.Truncate(time.Second), 2*time.Minute
			}
			if _, err := st.Rotate(ctx, step); err != nil {
				t.Fatal(err)
			}
		}
		rotated := usage()
		if created > tc.max || rotated > tc.max {
			t.Errorf("%q: %d bytes at creation, %d after 1000 rotations; want at most %d", tc.sub, created, rotated, tc.max)
		}
		t.Logf("subject %q: %d bytes at creation, %d after 1000 rotations (%s bytes, %s); subject index %s bytes; %s keys",
			tc.sub, created, rotated, srv.Do(t, "STRLEN", session.RecordKey(id)), srv.Do(t, "OBJECT", "ENCODING", session.RecordKey(id)),
			srv.Do(t, "MEMORY", "USAGE", "tokend:u:{"+s.Subject+"}", "SAMPLES", "0"), srv.Do(t, "DBSIZE"))
		srv.Flush(t)
	}
}
