package session

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Snapshot remembers session id's record as it is now; the returned
// function puts it back (or removes it, if there was none): the memory
// store's rewind for the contract suite's lost-write cases.
func (m *Memory) Snapshot(id string) (restore func()) {
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.sessions[id]
	var saved record
	if ok {
		saved = *r
	}
	return func() {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if !ok {
			delete(sh.sessions, id)
			return
		}
		kept := saved
		sh.sessions[id] = &kept
	}
}

// Put48 writes v as 6 bytes big-endian, as the packed record keeps times.
var Put48 = put48

// Unacked reports whether a packed record is marked unacknowledged.
var Unacked = unacked

// LegacyKey is the key of session id's hash record (before the packed one).
var LegacyKey = legacyKey

// CreateHashRecord writes s as tokend wrote sessions before the packed
// record: a hash of six fields at generation 0, active, expiring with its
// first refresh token, and indexed under its subject as Create indexes.
// The conformance suite's Earlier for Redis (sessiontest.RunEarlier).
func (r *Redis) CreateHashRecord(ctx context.Context, s Session, idle time.Duration) error {
	key := legacyKey(s.ID)
	n := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	res := r.client.DoMulti(ctx,
		r.client.B().Hsetnx().Key(key).Field("u").Value(s.Subject).Build(),
		r.client.B().Hset().Key(key).FieldValue().FieldValue("g", "0").FieldValue("c", n(s.Created)).
			FieldValue("e", n(s.Expires)).FieldValue("r", n(s.Rotated)).FieldValue("x", "0").Build(),
		r.client.B().Pexpireat().Key(key).MillisecondsTimestamp(until(s.Rotated, idle, s.Expires).UnixMilli()).Build())
	for i, re := range res {
		if err := re.Error(); err != nil {
			return fmt.Errorf("hash record %s: %w", s.ID, err)
		}
		if v, _ := re.AsInt64(); i == 0 && v == 0 {
			return fmt.Errorf("hash record %s: already exists", s.ID)
		}
	}
	return r.index(ctx, s)
}

// RotateHashRecord rotates session st.ID in its hash record directly, as
// Rotate does once the packed lookup found no record (and its own WAIT
// was answered): a test can then make the hash script's WAIT alone fall short.
func (r *Redis) RotateHashRecord(ctx context.Context, st Step) (Rotation, error) {
	ctx, cancel := r.deadlines.bound(ctx)
	defer cancel()
	return r.legacyRotate(ctx, st)
}
