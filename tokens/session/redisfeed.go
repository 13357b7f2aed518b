package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Revocations travel through one Redis stream. A stream, not pub/sub: an
// instance that starts, or reconnects, reads what it missed from the stream
// itself, and XADD trims it to the revocations that can still matter (those
// younger than the longest access-token life), so it stays small.
//
// In a Cluster the stream lives on one node, in its own slot; the scripts
// that revoke touch only their session's slot, so the store publishes after
// the script answers, one XADD per revocation (pipelined for a subject).
const revocationStream = "tokend:revocations"

// followBlock is how long one XREAD waits for news before asking again
// (under FeedHeartbeat: an empty answer is the heartbeat).
const followBlock = time.Second

// publish appends revocations to the stream, trimming entries older than
// the retention. The session records are the truth; the stream only tells
// other instances sooner.
func (r *Redis) publish(ctx context.Context, revs ...Revocation) error {
	if len(revs) == 0 {
		return nil
	}
	cmds := make(rueidis.Commands, len(revs))
	for i, rev := range revs {
		d := "0"
		if rev.Deleted {
			d = "1"
		}
		minID := rev.At.Add(-r.retention()).UnixMilli()
		cmds[i] = r.client.B().Xadd().Key(revocationStream).Minid().Almost().Threshold(strconv.FormatInt(minID, 10)).
			Id("*").FieldValue().FieldValue("i", rev.ID).FieldValue("u", rev.Subject).FieldValue("d", d).Build()
	}
	for _, res := range r.client.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil {
			return unavailable("xadd", err)
		}
	}
	return nil
}

func (r *Redis) retention() time.Duration {
	if r.Retention > 0 {
		return r.Retention
	}
	return DefaultRetention
}

// DefaultRetention is how long revocations stay in the stream when
// Redis.Retention is not set: the default access-token life.
const DefaultRetention = 30 * time.Minute

// Follow implements Feed: XRANGE from since for the catch-up, then XREAD
// BLOCK from the last entry seen (rueidis gives blocking commands their own
// connection, so refreshes never queue behind it).
func (r *Redis) Follow(ctx context.Context, since time.Time, fn func(Revocation), caughtUp func()) error {
	from := max(since.UnixMilli(), 1)
	start := strconv.FormatInt(from, 10)  // XRANGE: every entry of that millisecond on
	last := strconv.FormatInt(from-1, 10) // XREAD: entries after this one
	for {
		entries, err := r.client.Do(ctx, r.client.B().Xrange().Key(revocationStream).Start(start).End("+").Count(512).Build()).AsXRange()
		if err != nil {
			return unavailable("xrange", err)
		}
		for _, e := range entries {
			fn(entryRevocation(e))
			last = e.ID
		}
		if len(entries) < 512 {
			break
		}
		start = "(" + last
	}
	caughtUp()
	for {
		res := r.client.Do(ctx, r.client.B().Xread().Count(512).Block(followBlock.Milliseconds()).Streams().Key(revocationStream).Id(last).Build())
		streams, err := res.AsXRead()
		if rueidis.IsRedisNil(err) {
			caughtUp() // no news within followBlock: current
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return unavailable("xread", err)
		}
		for _, e := range streams[revocationStream] {
			fn(entryRevocation(e))
			last = e.ID
		}
	}
}

// entryRevocation decodes a stream entry; its ID's first part is the
// publication time in milliseconds.
func entryRevocation(e rueidis.XRangeEntry) Revocation {
	ms, _, _ := strings.Cut(e.ID, "-")
	at, _ := strconv.ParseInt(ms, 10, 64)
	return Revocation{ID: e.FieldValues["i"], Subject: e.FieldValues["u"], Deleted: e.FieldValues["d"] == "1", At: time.UnixMilli(at)}
}

// Lookup implements Feed: the session record says whether it is revoked;
// no record at all is Gone.
func (r *Redis) Lookup(ctx context.Context, id string) (Revocation, bool, error) {
	ctx, cancel := r.deadlines.bound(ctx)
	defer cancel()
	v, err := r.client.Do(ctx, r.client.B().Get().Key(recordKey(id)).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return r.legacyLookup(ctx, id)
	}
	if err != nil {
		return Revocation{}, false, unavailable("get", err)
	}
	s, state, err := unpackRecord(id, v)
	if err != nil {
		return Revocation{}, false, fmt.Errorf("redis get: %w", err)
	}
	if state == stateActive {
		return Revocation{}, false, nil
	}
	return Revocation{ID: id, Subject: s.Subject, Deleted: state == stateDeleted}, true, nil
}

// legacyLookup reads the hash record of an earlier tokend.
func (r *Redis) legacyLookup(ctx context.Context, id string) (Revocation, bool, error) {
	v, err := r.client.Do(ctx, r.client.B().Hmget().Key(legacyKey(id)).Field("u", "x").Build()).ToArray()
	if err != nil {
		return Revocation{}, false, unavailable("hmget", err)
	}
	if len(v) != 2 {
		return Revocation{}, false, errors.New("redis hmget: bad reply length")
	}
	sub, err := v[0].ToString()
	if rueidis.IsRedisNil(err) {
		return Revocation{ID: id, Gone: true}, true, nil // no record in either form: ended (Feed)
	}
	x, err2 := v[1].ToString()
	if err := errors.Join(err, err2); err != nil || x == "" {
		return Revocation{}, false, fmt.Errorf("redis hmget: bad reply: %v", err)
	}
	if x == "0" {
		return Revocation{}, false, nil
	}
	return Revocation{ID: id, Subject: sub, Deleted: x == "2"}, true, nil
}
