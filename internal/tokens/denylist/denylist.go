package denylist

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/tokend/tokend/internal/tokens/session"
)

// Config sizes a Denylist. Zero fields take the defaults.
type Config struct {
	// Capacity is how many revocations one Window may hold before the bloom
	// filter's false-positive rate rises above FalsePositive (default 1e6).
	Capacity int
	// FalsePositive is the filter's rate at Capacity (default 0.001: one
	// session in a thousand that was never revoked costs a store lookup).
	FalsePositive float64
	// Window is how long a revocation is surely remembered: the longest
	// access-token life (default 30m).
	Window time.Duration
	// CacheEntries bounds the ristretto cache of confirmed answers
	// (default 100,000).
	CacheEntries int64
	// NegativeTTL is how long a confirmed "not revoked" (a false positive)
	// is cached (default 1s; a revocation published meanwhile replaces it).
	NegativeTTL time.Duration
	// Now is the clock that ages the filter's generations (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// OnHeard, when set, is told how long each revocation took from its
	// publication to this instance, once caught up (for a lag histogram).
	OnHeard func(lag time.Duration)
}

func (c *Config) defaults() {
	if c.Capacity <= 0 {
		c.Capacity = 1_000_000
	}
	if c.FalsePositive <= 0 || c.FalsePositive >= 1 {
		c.FalsePositive = 0.001
	}
	if c.Window <= 0 {
		c.Window = 30 * time.Minute
	}
	if c.CacheEntries <= 0 {
		c.CacheEntries = 100_000
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Denylist is the local view of revoked sessions. Check is safe for
// concurrent use; Run feeds it.
type Denylist struct {
	feed session.Feed
	cfg  Config
	seed maphash.Seed

	rotate sync.Mutex                  // serialises generation changes
	gens   atomic.Pointer[generations] // read lock-free by Check
	cache  *ristretto.Cache[string, answer]

	events   atomic.Uint64 // revocations heard: a lookup that overlapped one is not cached
	lastAt   atomic.Int64  // unix ms of the newest revocation heard (Stats)
	current  atomic.Int64  // unix ms when the feed last delivered or said it was current
	catching atomic.Bool   // reading the Window again: old news, no lag to report
	// following is Run's ctx's Done: once closed, the feed is no longer heard
	following atomic.Pointer[<-chan struct{}]
	// order queues a cached "not revoked" before a revocation's entries or
	// not at all: ristretto applies Sets as queued, and one queued after
	// the revocation's would hide it for NegativeTTL.
	order sync.Mutex

	// Counters of the slow path only: a check the filter answers counts nothing.
	filterHits, cacheHits, lookups, falsePositives, lookupErrors, generationsStarted atomic.Uint64

	ready     chan struct{}
	readyOnce sync.Once
}

// generations are two bloom filters: revocations go into cur; prev is the
// previous Window's, still consulted.
type generations struct {
	cur, prev *bloom
	since     time.Time
}

type answer struct {
	rev     session.Revocation
	revoked bool
}

// New returns a Denylist over feed; it knows nothing until Run has caught up.
func New(feed session.Feed, cfg Config) (*Denylist, error) {
	cfg.defaults()
	cache, err := ristretto.NewCache(&ristretto.Config[string, answer]{
		NumCounters:        cfg.CacheEntries * 10,
		MaxCost:            cfg.CacheEntries,
		BufferItems:        64,
		IgnoreInternalCost: true, // cost 1 per entry: MaxCost counts entries
	})
	if err != nil {
		return nil, fmt.Errorf("denylist cache: %w", err)
	}
	d := &Denylist{feed: feed, cfg: cfg, seed: maphash.MakeSeed(), cache: cache, ready: make(chan struct{})}
	d.gens.Store(&generations{cur: d.newBloom(), prev: d.newBloom(), since: cfg.Now()})
	d.generationsStarted.Store(1)
	return d, nil
}

func (d *Denylist) newBloom() *bloom { return newBloom(d.cfg.Capacity, d.cfg.FalsePositive, d.seed) }

// Close releases the cache.
func (d *Denylist) Close() { d.cache.Close() }

// Ready is closed once Run has read the revocations of the last Window.
func (d *Denylist) Ready() <-chan struct{} { return d.ready }

// Run follows the feed until ctx ends: first the revocations of the last
// Window (a new instance catches up), then each new one. When the feed
// fails it follows again from the start of the Window, after a pause: not
// from the newest revocation heard, because a failover onto a node whose
// clock is behind numbers new revocations below it (repeats are harmless).
func (d *Denylist) Run(ctx context.Context) error {
	// from the moment ctx ends, a revocation is no longer heard: every
	// check fails closed rather than answer from a filter going stale
	done := ctx.Done()
	d.following.Store(&done)
	const first = 50 * time.Millisecond
	pause := first
	for {
		d.catching.Store(true)
		err := d.feed.Follow(ctx, d.cfg.Now().Add(-d.cfg.Window), d.Add, d.caughtUp)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.catching.Load() {
			pause = first // it was current: a new failure, not the same one again
		}
		d.cfg.Logger.Warn("revocation feed interrupted; reading the window again", "err", err, "pause", pause.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(pause*2, 5*time.Second)
	}
}

// caughtUp is the feed saying it is current: the first time, the denylist
// is ready; every time, it is alive.
func (d *Denylist) caughtUp() {
	d.current.Store(d.cfg.Now().UnixMilli())
	d.catching.Store(false)
	d.readyOnce.Do(func() { close(d.ready) })
}

// Add records a revocation heard from the feed: into the filter, and into
// the cache as a confirmed answer (it comes from the store itself).
func (d *Denylist) Add(r session.Revocation) {
	now := d.cfg.Now()
	d.current.Store(now.UnixMilli())
	if d.cfg.OnHeard != nil && !d.catching.Load() { // the catch-up's old news is no lag
		d.cfg.OnHeard(now.Sub(r.At))
	}
	if ms := r.At.UnixMilli(); ms > d.lastAt.Load() {
		d.lastAt.Store(ms) // one feed goroutine writes: no lost update
	}
	d.generation().cur.add(r.ID)
	d.order.Lock()
	d.events.Add(1)
	d.cache.Del(r.ID) // a cached "not revoked" must not outlive this
	d.cache.Set(r.ID, answer{rev: r, revoked: true}, 1)
	d.order.Unlock()
}

// generation returns the filters in force, starting a new generation once
// the current one is Window old.
func (d *Denylist) generation() *generations {
	g := d.gens.Load()
	now := d.cfg.Now()
	if now.Sub(g.since) < d.cfg.Window {
		return g
	}
	d.rotate.Lock()
	defer d.rotate.Unlock()
	if g = d.gens.Load(); now.Sub(g.since) >= d.cfg.Window {
		g = &generations{cur: d.newBloom(), prev: g.cur, since: now}
		d.gens.Store(g)
		d.generationsStarted.Add(1)
	}
	return g
}

// ErrUnconfirmed wraps a store failure while confirming a filter hit.
var ErrUnconfirmed = errors.New("denylist: could not confirm with the store")

// Check reports whether session id is revoked, and how. A session the
// filter never saw is answered from memory with no I/O; a hit is answered
// from the cache, or confirmed with the store once and cached. A hit whose
// record is gone is revoked (Revocation.Gone): the cache may have dropped
// its answer, and the record may have expired with its revocation.
func (d *Denylist) Check(ctx context.Context, id string) (session.Revocation, bool, error) {
	if f := d.following.Load(); f != nil {
		select {
		case <-*f:
			return session.Revocation{}, false, fmt.Errorf("%w: the feed is no longer followed (Run's ctx ended)", ErrUnconfirmed)
		default:
		}
	}
	g := d.gens.Load() // generations move on Add; a read needs no clock
	if !g.cur.has(id) && !g.prev.has(id) {
		return session.Revocation{}, false, nil
	}
	d.filterHits.Add(1)
	if a, ok := d.cache.Get(id); ok {
		d.cacheHits.Add(1)
		return a.rev, a.revoked, nil
	}
	heard := d.events.Load()
	d.lookups.Add(1)
	rev, revoked, err := d.feed.Lookup(ctx, id)
	if err != nil {
		d.lookupErrors.Add(1)
		return session.Revocation{}, false, fmt.Errorf("%w: %w", ErrUnconfirmed, err)
	}
	if !revoked {
		d.falsePositives.Add(1)
	}
	if revoked {
		d.cache.Set(id, answer{rev: rev, revoked: true}, 1)
		return rev, revoked, nil
	}
	d.order.Lock()                // rare: false positives only
	if d.events.Load() == heard { // no revocation arrived while we asked
		d.cache.SetWithTTL(id, answer{}, 1, d.cfg.NegativeTTL)
	}
	d.order.Unlock()
	return rev, revoked, nil
}

func (d *Denylist) isReady() bool {
	select {
	case <-d.ready:
		return true
	default:
		return false
	}
}

// Stats are the denylist's state and counters, for metrics.
type Stats struct {
	Ready       bool      // caught up with the revocations published before it started
	Heard       uint64    // revocations heard from the feed (repeats included)
	LastHeard   time.Time // publication time of the newest revocation heard (zero: none yet)
	LastCurrent time.Time // when the feed last delivered or said it was current (zero: never)

	FilterHits     uint64 // checks the filter could not answer alone
	CacheHits      uint64 // filter hits answered from the cache
	Lookups        uint64 // filter hits confirmed with the store
	FalsePositives uint64 // confirmations that found the session not revoked
	LookupErrors   uint64 // confirmations the store did not answer

	Generations uint64     // filter generations started, the first included
	Fill        [2]float64 // share of bits set in the current and the previous generation
	BloomBytes  int        // memory of the two filter generations
	BloomProbes int        // hash probes per key
}

// Stats returns the state and counters. Fill counts bits: call it per
// scrape, not per request.
func (d *Denylist) Stats() Stats {
	g := d.gens.Load()
	st := Stats{
		Ready: d.isReady(), Heard: d.events.Load(),
		FilterHits: d.filterHits.Load(), CacheHits: d.cacheHits.Load(), Lookups: d.lookups.Load(),
		FalsePositives: d.falsePositives.Load(), LookupErrors: d.lookupErrors.Load(),
		Generations: d.generationsStarted.Load(), Fill: [2]float64{g.cur.fill(), g.prev.fill()},
		BloomBytes: g.cur.bytes() + g.prev.bytes(), BloomProbes: g.cur.k,
	}
	if ms := d.lastAt.Load(); ms > 0 {
		st.LastHeard = time.UnixMilli(ms)
	}
	if ms := d.current.Load(); ms > 0 {
		st.LastCurrent = time.UnixMilli(ms)
	}
	return st
}
