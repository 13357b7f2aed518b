package session

import (
	"context"
	_ "embed"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// rotateLua010 is tokend 0.1.0's rotation script, which keeps a key per
// DPoP proof and reads no proof in a record.
//
//go:embed testdata/record_rotate_0.1.0.lua
var rotateLua010 string

// TestRedisProofUpgrade is a rolling upgrade from tokend 0.1.0, one
// session refreshed in turn by each version running: 0.1.0 beside this
// tokend with ProofKeys (the first restart), then ProofKeys beside this
// tokend without (the second). Every proof any of them accepted is refused
// by all the others, and each reads and rotates what the others wrote;
// 0.1.0 cannot read a record that keeps its proof, which is why the first
// restart keeps keys, and ProofKeys writes such a record back as 0.1.0
// reads it.
func TestRedisProofUpgrade(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	open := func(keys bool) *Redis {
		r, err := DialRedis([]string{srv.Addr}, time.Second, ProofKeys(keys))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	keys, record := open(true), open(false)
	old := rueidis.NewLuaScript(rotateLua010)

	now := time.Now().Truncate(time.Second)
	k := "2f5ra1dDQbTzbSAEpY4KK8GrC4W6bgH4Ib1xA0kVxYU"
	raw, _ := base64.RawURLEncoding.DecodeString(k)
	s := Session{ID: "AAAAAAAAAAAAAAAAAAAAAA", Subject: "4ef1c711-06ff-41ea-888a-456579e447d6", Created: now, Rotated: now,
		Expires: now.Add(24 * time.Hour), Key: k}
	step := func(gen int64, jti string) Step {
		at := now.Add(time.Duration(gen+1) * time.Minute) // a refresh a minute, within the proofs' time
		return Step{ID: s.ID, Gen: gen, Now: at, Grace: 5 * time.Second, Idle: time.Hour, Key: k,
			Proof: jti, ProofIssued: at, ProofTTL: 2 * time.Minute}
	}
	// rotate010 is 0.1.0's refresh: its script, its arguments; it returns
	// the script's code (1 an advance)
	rotate010 := func(st Step) int64 {
		t.Helper()
		rec := recordKey(st.ID)
		msg, err := old.Exec(ctx, c, []string{rec, proofKey(rec, st.Key, st.Proof, false)},
			[]string{string(appendRotateArg(nil, st, false, true)), "", "", "", string(raw), strconv.FormatInt(st.ProofTTL.Milliseconds(), 10)}).ToMessage()
		if err != nil {
			t.Fatalf("0.1.0's script: %v", err)
		}
		if msg.IsString() {
			return 1
		}
		if a, err := msg.ToArray(); err == nil {
			n, _ := a[0].AsInt64()
			return n
		}
		n, _ := msg.AsInt64()
		return n
	}
	size := func() int {
		n, _ := strconv.Atoi(srv.Do(t, "STRLEN", recordKey(s.ID)))
		return n
	}
	advance := func(who *Redis, st Step) {
		t.Helper()
		if r, err := who.Rotate(ctx, st); err != nil || r.Retry || r.Gen != st.Gen+1 || r.Key != k {
			t.Fatalf("Rotate(gen %d, %s) = %+v, %v; want an advance bound to the key", st.Gen, st.Proof, r, err)
		}
	}
	replayed := func(who *Redis, st Step) {
		t.Helper()
		if _, err := who.Rotate(ctx, st); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay of %s with token %d: %v; want ErrReplay", st.Proof, st.Gen, err)
		}
	}

	// the first restart: 0.1.0 and ProofKeys, records as 0.1.0 writes them
	if err := keys.Create(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := size(); n != 76 {
		t.Fatalf("created with ProofKeys: %d bytes; want 76, 0.1.0's", n)
	}
	if code := rotate010(step(0, "p")); code != 1 {
		t.Fatalf("0.1.0 refreshing a record ProofKeys created: code %d", code)
	}
	replayed(keys, step(1, "p"))
	advance(keys, step(1, "q"))
	if n := size(); n != 76 {
		t.Fatalf("rotated with ProofKeys: %d bytes; want 76, 0.1.0's", n)
	}
	for _, jti := range []string{"p", "q"} {
		if code := rotate010(step(2, jti)); code != 10 {
			t.Fatalf("0.1.0 given proof %s again: code %d; want 10 (replay)", jti, code)
		}
	}
	if code := rotate010(step(2, "r")); code != 1 {
		t.Fatalf("0.1.0 refreshing a record ProofKeys rotated: code %d", code)
	}

	// the second restart: ProofKeys and this tokend; a record in 0.1.0's
	// form rotates and keeps its newest proof from then on
	replayed(record, step(3, "r"))
	advance(record, step(3, "s"))
	if n := size(); n != 96 {
		t.Fatalf("rotated keeping its proof: %d bytes; want 96", n)
	}
	// what 0.1.0 makes of it: the key it reads is not the session's
	if code := rotate010(step(4, "t")); code != 11 {
		t.Fatalf("0.1.0 refreshing a record that keeps its proof: code %d; want 11 (another key)", code)
	}
	replayed(keys, step(4, "s"))
	// ProofKeys writes the record back as 0.1.0 reads it (a rollback's
	// first step), the proof it kept to its key
	advance(keys, step(4, "u"))
	if n := size(); n != 76 {
		t.Fatalf("rotated with ProofKeys: %d bytes; want 76, 0.1.0's", n)
	}
	for _, jti := range []string{"s", "u"} {
		if code := rotate010(step(5, jti)); code != 10 {
			t.Fatalf("0.1.0 given proof %s again: code %d; want 10 (replay)", jti, code)
		}
	}
	for _, jti := range []string{"p", "q", "r", "s", "u"} {
		replayed(record, step(5, jti))
	}
	advance(record, step(5, "v"))
	replayed(keys, step(6, "v"))
	replayed(record, step(6, "v"))
}

// TestRedisProofKeysRecordsAge: with ProofKeys, every write of a record that
// keeps its proof either writes it back as 0.1.0 reads it or leaves its
// expiry alone, so that none is left one refresh-token lifetime after the
// last instance without ProofKeys stopped: when a rollback to 0.1.0, which
// can neither refresh nor revoke such a record, may go ahead
// (docs/operations.md).
func TestRedisProofKeysRecordsAge(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	open := func(keys bool) *Redis {
		r, err := DialRedis([]string{srv.Addr}, time.Second, ProofKeys(keys))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	keys, record := open(true), open(false)
	now := time.Now().Truncate(time.Second)
	k := "2f5ra1dDQbTzbSAEpY4KK8GrC4W6bgH4Ib1xA0kVxYU"
	step := func(id string, gen int64, at time.Duration, jti string) Step {
		return Step{ID: id, Gen: gen, Now: now.Add(at), Grace: 5 * time.Second, Idle: time.Hour, Key: k,
			Proof: jti, ProofIssued: now.Add(at), ProofTTL: 2 * time.Minute}
	}
	for _, tc := range []struct {
		name string
		do   func(id string) error
	}{
		{"advance", func(id string) error { _, err := keys.Rotate(ctx, step(id, 1, 2*time.Second, "q")); return err }},
		{"retry", func(id string) error { _, err := keys.Rotate(ctx, step(id, 0, 2*time.Second, "q")); return err }},
		{"reuse", func(id string) error { _, err := keys.Rotate(ctx, step(id, 0, time.Minute, "q")); return err }},
		{"replay", func(id string) error { _, err := keys.Rotate(ctx, step(id, 1, 2*time.Second, "p")); return err }},
		{"revoke", func(id string) error { return keys.Revoke(ctx, id) }},
		{"revoke as", func(id string) error {
			return keys.RevokeAs(ctx, Step{ID: id, Now: now.Add(2 * time.Second), Key: k, Proof: "q", ProofTTL: 2 * time.Minute})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "age-" + strings.ReplaceAll(tc.name, " ", "-")
			s := Session{ID: id, Subject: "alice", Created: now, Rotated: now, Expires: now.Add(24 * time.Hour), Key: k}
			if err := record.Create(ctx, s, time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, err := record.Rotate(ctx, step(id, 0, time.Second, "p")); err != nil {
				t.Fatal(err)
			}
			rec := recordKey(id)
			before := srv.Do(t, "PEXPIRETIME", rec)
			_ = tc.do(id) // refused or not: what it left is the point
			v := srv.Do(t, "GET", rec)
			if unpacked, _, err := unpackRecord(id, v); err != nil || unpacked.Key != k {
				t.Fatalf("record after %s: %+v, %v", tc.name, unpacked, err)
			}
			if keeps := v[recKind+1] == keySize+proofSize; keeps && srv.Do(t, "PEXPIRETIME", rec) != before {
				t.Fatalf("%s kept the record's proof and moved its expiry from %s to %s", tc.name, before, srv.Do(t, "PEXPIRETIME", rec))
			}
		})
	}
}
