package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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
// other instances sooner. With WaitReplicas, WAIT follows the entries on
// their connection, as it follows every write: a revocation the store
// acknowledged is on the replicas a failover promotes.
func (r *Redis) publish(ctx context.Context, revs ...Revocation) error {
	if len(revs) == 0 {
		return nil
	}
	cmds := make(rueidis.Commands, len(revs), len(revs)+1)
	for i, rev := range revs {
		d := "0"
		if rev.Deleted {
			d = "1"
		}
		minID := rev.At.Add(-r.retention()).UnixMilli()
		cmds[i] = r.client.B().Xadd().Key(revocationStream).Minid().Almost().Threshold(strconv.FormatInt(minID, 10)).
			Id("*").FieldValue().FieldValue("i", rev.ID).FieldValue("u", rev.Subject).FieldValue("d", d).Build()
	}
	if r.replicas > 0 { // keyless: rueidis sends it down the stream's connection
		cmds = append(cmds, r.client.B().Wait().Numreplicas(r.replicas).Timeout(r.waitMS).Build())
	}
	res := r.client.DoMulti(ctx, cmds...)
	for _, res := range res[:len(revs)] {
		if err := res.Error(); err != nil {
			return unavailable("xadd", err)
		}
	}
	if r.replicas > 0 {
		n, err := res[len(revs)].AsInt64()
		if err != nil {
			return unavailable("wait", err)
		}
		if n < r.replicas {
			return fmt.Errorf("redis xadd: WAIT %d: %d acknowledged: %w", r.replicas, n, ErrNotReplicated)
		}
	}
	return nil
}

// publishOrKeep publishes revs under a deadline of its own, not the
// caller's (a reuse is detected with the rotation's deadline nearly spent),
// and keeps what fails for the outbox to publish again: a revocation the
// store made must reach the denylists even if nobody asks again.
func (r *Redis) publishOrKeep(ctx context.Context, revs ...Revocation) error {
	ctx, cancel := r.deadlines.bound(context.WithoutCancel(ctx))
	defer cancel()
	err := r.publish(ctx, revs...)
	if err != nil {
		r.out.keep(r, revs)
	}
	return err
}

// outbox holds revocations whose publication failed. One goroutine,
// started by the first failure, publishes them again with backoff until
// it succeeds or they no longer matter (older than the retention: every
// access token of their sessions has expired).
type outbox struct {
	mu    sync.Mutex
	revs  []Revocation
	once  sync.Once
	wake  chan struct{}
	stop  chan struct{}
	close sync.Once
}

func newOutbox() *outbox {
	return &outbox{wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// keep queues revs (copies: a step's strings are lent) for r's outbox.
func (o *outbox) keep(r *Redis, revs []Revocation) {
	o.mu.Lock()
	for _, rev := range revs {
		rev.ID, rev.Subject = strings.Clone(rev.ID), strings.Clone(rev.Subject)
		o.revs = append(o.revs, rev)
	}
	o.mu.Unlock()
	o.once.Do(func() { go o.run(r) })
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// pending reports how many revocations wait in the outbox.
func (o *outbox) pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.revs)
}

func (o *outbox) shut() { o.close.Do(func() { close(o.stop) }) }

func (o *outbox) run(r *Redis) {
	const first, most = 100 * time.Millisecond, 5 * time.Second
	pause := first
	for {
		var retry <-chan time.Time
		if o.pending() > 0 {
			retry = time.After(pause)
		}
		select {
		case <-o.stop:
			return
		case <-o.wake:
			continue // something new: wait the pause from here
		case <-retry:
		}
		o.mu.Lock()
		revs := o.revs
		o.revs = nil
		o.mu.Unlock()
		live := revs[:0]
		for _, rev := range revs { // by wall time, as the stream's MINID trims
			if time.Since(rev.At) < r.retention() {
				live = append(live, rev)
			}
		}
		ctx, cancel := r.deadlines.bound(context.Background())
		err := r.publish(ctx, live...)
		cancel()
		if err == nil {
			pause = first
			continue
		}
		o.mu.Lock()
		o.revs = append(live, o.revs...)
		o.mu.Unlock()
		pause = min(2*pause, most)
	}
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

// ErrFeedGap: the stream no longer holds the entry a follower read last (a
// failover or a restart onto a node without the stream's tail). That node
// numbers new revocations from its own clock, perhaps below what was read,
// where reading on after it would never see them: the follower must read
// the whole retention again (the denylist does).
var ErrFeedGap = fmt.Errorf("%w: the revocation stream lost the entries this follower read", ErrUnavailable)

// Follow implements Feed: XREAD from since, without blocking for the
// catch-up and with BLOCK after it. Each read after an entry is pipelined
// behind an XRANGE of that entry on the same connection: while it is there,
// the node has the tail and numbers new entries above it; once it is not,
// Follow returns ErrFeedGap. (rueidis gives blocking commands their own
// connections, so refreshes never queue behind it.)
func (r *Redis) Follow(ctx context.Context, since time.Time, fn func(Revocation), caughtUp func()) error {
	from := max(since.UnixMilli(), 1)
	last := strconv.FormatInt(from-1, 10) // entries after this one
	read, current := false, false         // read: last is an entry, not a time
	for {
		var xread rueidis.Completed
		if current {
			xread = r.client.B().Xread().Count(512).Block(followBlock.Milliseconds()).Streams().Key(revocationStream).Id(last).Build()
		} else {
			xread = r.client.B().Xread().Count(512).Streams().Key(revocationStream).Id(last).Build()
		}
		cmds := rueidis.Commands{xread}
		if read {
			cmds = rueidis.Commands{r.client.B().Xrange().Key(revocationStream).Start(last).End(last).Build(), xread}
		}
		res := r.client.DoMulti(ctx, cmds...)
		if read {
			there, err := res[0].AsXRange()
			if err != nil {
				return r.followErr(ctx, "xrange", err)
			}
			if len(there) == 0 {
				return fmt.Errorf("redis follow after %s: %w", last, ErrFeedGap)
			}
		}
		streams, err := res[len(res)-1].AsXRead()
		if rueidis.IsRedisNil(err) { // nothing after last: current
			current = true
			caughtUp()
			continue
		}
		if err != nil {
			return r.followErr(ctx, "xread", err)
		}
		entries := streams[revocationStream]
		for _, e := range entries {
			fn(entryRevocation(e))
			last, read = e.ID, true
		}
		if !current && len(entries) < 512 {
			current = true
			caughtUp()
		}
	}
}

func (r *Redis) followErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return unavailable(op, err)
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
