package session

import (
	"context"
	"sync"
	"time"
)

// Revocation is a session ended before its time, as every instance learns
// of it: a revoke, a subject revoked or deleted, or reuse detection.
// Revocations feed the denylist that refuses the session's tokens in flight.
type Revocation struct {
	ID      string
	Subject string
	Deleted bool      // the subject was deleted: refreshes get ErrDeleted
	At      time.Time // when it was published (millisecond precision)
	// Gone: Lookup found no record (expired, evicted, lost). Whether it was
	// revoked can no longer be told, so it counts as ended; refreshes get
	// ErrNotFound, and Subject is unknown ("").
	Gone bool
}

// Err is the outcome a refresh of the revoked session gets from a store.
func (r Revocation) Err() error {
	switch {
	case r.Gone:
		return ErrNotFound
	case r.Deleted:
		return ErrDeleted
	}
	return ErrRevoked
}

// A Feed publishes revocations to every instance. Both stores are Feeds.
//
// Follow calls fn for every revocation published at or after since (the
// catch-up), then caughtUp, then fn for each new revocation until ctx ends
// or the feed fails; it returns why it stopped. It calls caughtUp again at
// least every FeedHeartbeat while it knows it is current, so a silent feed
// can be told from a stuck one. The same revocation may
// be delivered more than once. Lookup asks the store itself whether id is
// revoked: the confirmation of a denylist hit. A session the store holds no
// record of is reported ended, Gone: its record expired, was evicted or was
// lost, perhaps with its revocation, and "not revoked" would fail open.
type Feed interface {
	Follow(ctx context.Context, since time.Time, fn func(Revocation), caughtUp func()) error
	Lookup(ctx context.Context, id string) (Revocation, bool, error)
}

// FeedHeartbeat is the longest a working Feed stays silent: it calls
// caughtUp at least this often.
const FeedHeartbeat = 2 * time.Second

// memoryFeed fans a Memory store's revocations out to its followers.
type memoryFeed struct {
	mu   sync.Mutex
	next int
	subs map[int]func(Revocation)
}

func (f *memoryFeed) subscribe(fn func(Revocation)) (cancel func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[int]func(Revocation){}
	}
	id := f.next
	f.next++
	f.subs[id] = fn
	return func() {
		f.mu.Lock()
		delete(f.subs, id)
		f.mu.Unlock()
	}
}

// publish calls every follower; callers hold no store lock.
func (f *memoryFeed) publish(r Revocation) {
	f.mu.Lock()
	fns := make([]func(Revocation), 0, len(f.subs))
	for _, fn := range f.subs {
		fns = append(fns, fn)
	}
	f.mu.Unlock()
	for _, fn := range fns {
		fn(r)
	}
}

// Follow implements Feed: the catch-up is every revoked record still held.
func (m *Memory) Follow(ctx context.Context, since time.Time, fn func(Revocation), caughtUp func()) error {
	cancel := m.feed.subscribe(fn)
	defer cancel()
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		var backlog []Revocation
		for _, r := range sh.sessions {
			if r.state != active && !r.revokedAt.Before(since) {
				backlog = append(backlog, r.revocation())
			}
		}
		sh.mu.Unlock()
		for _, r := range backlog {
			fn(r)
		}
	}
	caughtUp()
	tick := time.NewTicker(FeedHeartbeat / 2) // in process: always current
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			caughtUp()
		}
	}
}

// Lookup implements Feed.
func (m *Memory) Lookup(_ context.Context, id string) (Revocation, bool, error) {
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.sessions[id]
	switch {
	case !ok:
		return Revocation{ID: id, Gone: true}, true, nil
	case r.state == active:
		return Revocation{}, false, nil
	}
	return r.revocation(), true, nil
}

func (r *record) revocation() Revocation {
	return Revocation{ID: r.ID, Subject: r.Subject, Deleted: r.state == deleted, At: r.revokedAt}
}
