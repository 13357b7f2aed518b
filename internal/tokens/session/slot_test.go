package session

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

func TestKeySlot(t *testing.T) {
	if got := crc16("123456789"); got != 0x31C3 { // CRC-16/XMODEM's check value (Redis Cluster spec)
		t.Fatalf("crc16 = %#x; want 0x31c3", got)
	}
	for key, hashed := range map[string]string{ // the Cluster specification's examples
		"{user1000}.following": "user1000",
		"foo{}{bar}":           "foo{}{bar}", // an empty tag is no tag
		"foo{{bar}}zap":        "{bar",
		"foo{bar}{zap}":        "bar",
		"tokend:b\x00{":        "tokend:b\x00{",
	} {
		if keySlot(key) != crc16(hashed)%slots {
			t.Errorf("keySlot(%q) = %d; want the slot of %q", key, keySlot(key), hashed)
		}
	}
	for slot, tag := range slotTags() {
		if tag == "" || len(tag) > 3 || keySlot("{"+tag+"}x") != uint16(slot) {
			t.Fatalf("slot %d: tag %q", slot, tag)
		}
	}
}

// The slot of every kind of key, as a real Cluster node computes it, and a
// proof's key in its session's slot.
func TestKeySlotMatchesRedis(t *testing.T) {
	srv := redistest.StartCluster(t, 3).Master(t)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 300 {
		id := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("session-%08d", i*7919)))
		rec := recordKey(id)
		for _, key := range []string{rec, recordKey(fmt.Sprintf("legacy-%d", i)), legacyKey(id), proofKey(rec, "k", strconv.Itoa(i), true)} {
			want, err := c.Do(context.Background(), c.B().ClusterKeyslot().Key(key).Build()).AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			if int64(keySlot(key)) != want {
				t.Fatalf("keySlot(%q) = %d; Redis says %d", key, keySlot(key), want)
			}
		}
		if keySlot(proofKey(rec, "k", "j", true)) != keySlot(rec) {
			t.Fatalf("proof key not in the slot of %q", rec)
		}
	}
}

// Outside a Cluster a proof is once per key across every session; in a
// Cluster, across the sessions of one slot (docs/design.md).
func TestProofAcrossSessions(t *testing.T) {
	srv := redistest.Start(t)
	cl := redistest.StartCluster(t, 3)
	dial := func(addrs ...string) *Redis {
		r, err := DialRedis(addrs, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	m := NewMemory(0)
	defer m.Close()
	key := "2f5ra1dDQbTzbSAEpY4KK8GrC4W6bgH4Ib1xA0kVxYU"
	now := time.Now().Truncate(time.Millisecond)
	for _, tc := range []struct {
		name  string
		store Store
		ids   func(i int) string
	}{
		{"memory", m, func(i int) string { return fmt.Sprintf("memory-%d", i) }},
		{"redis", dial(srv.Addr), func(i int) string { return fmt.Sprintf("redis-%d", i) }},
		// the {tag} puts both records in one slot
		{"cluster", dial(cl.Addrs()...), func(i int) string { return fmt.Sprintf("{same}-%d", i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ids [2]string
			for i := range ids {
				ids[i] = tc.ids(i)
				s := Session{ID: ids[i], Subject: "alice", Created: now, Rotated: now, Expires: now.Add(time.Hour), Key: key}
				if err := tc.store.Create(context.Background(), s, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			st := Step{ID: ids[0], Now: now, Idle: time.Hour, Key: key, Proof: "jti-1", ProofTTL: time.Minute}
			if _, err := tc.store.Rotate(context.Background(), st); err != nil {
				t.Fatal(err)
			}
			st.ID = ids[1]
			if _, err := tc.store.Rotate(context.Background(), st); !errors.Is(err, ErrReplay) {
				t.Fatalf("the proof again on another session: %v; want ErrReplay", err)
			}
		})
	}
}

// TestCutoffKeySlot: a subject's legacy cutoff is in its index's Cluster
// slot whatever the subject, braces included, so one script reads both.
func TestCutoffKeySlot(t *testing.T) {
	for _, sub := range []string{"alice", "}", "}x{y}", "{", "a{b}c", "{}", "x}", "4ef1c711-06ff-41ea-888a-456579e44700", ""} {
		if a, b := keySlot(subjectKey(sub)), keySlot(cutoffKey(sub)); a != b {
			t.Errorf("subject %q: index in slot %d, cutoff in slot %d", sub, a, b)
		}
	}
}
