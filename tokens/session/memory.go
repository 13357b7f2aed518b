package session

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// state of a session record.
type state uint8

const (
	active state = iota
	revoked
	deleted
)

type record struct {
	Session
	until     time.Time
	state     state
	revokedAt time.Time
}

const memoryShards = 64

// Memory is a Store in process memory, for one instance and for development.
// Sessions are sharded by id so that refreshes of different sessions rarely
// contend; each Rotate is one critical section of one shard.
type Memory struct {
	seed   maphash.Seed
	shards [memoryShards]memoryShard

	mu       sync.Mutex
	subjects map[string]map[string]struct{}

	feed memoryFeed // revocations, to the denylists that follow this store

	proofMu sync.Mutex
	proofs  map[string]time.Time // DPoP proofs used (key thumbprint, jti) until when

	stop chan struct{}
	once sync.Once
}

type memoryShard struct {
	mu       sync.Mutex
	sessions map[string]*record
}

// NewMemory returns an empty store. A janitor forgets records past their
// time every sweep; Close stops it.
func NewMemory(sweep time.Duration) *Memory {
	m := &Memory{seed: maphash.MakeSeed(), subjects: map[string]map[string]struct{}{}, stop: make(chan struct{}),
		proofs: map[string]time.Time{}}
	for i := range m.shards {
		m.shards[i].sessions = map[string]*record{}
	}
	if sweep > 0 {
		go m.janitor(sweep)
	}
	return m
}

// Close stops the janitor.
func (m *Memory) Close() { m.once.Do(func() { close(m.stop) }) }

func (m *Memory) shard(id string) *memoryShard {
	return &m.shards[maphash.String(m.seed, id)%memoryShards]
}

// Create implements Store.
func (m *Memory) Create(_ context.Context, s Session, idle time.Duration) error {
	if err := checkOAuth(s); err != nil {
		return err
	}
	sh := m.shard(s.ID)
	sh.mu.Lock()
	if _, dup := sh.sessions[s.ID]; dup {
		sh.mu.Unlock()
		return fmt.Errorf("session %s: already exists", s.ID)
	}
	sh.sessions[s.ID] = &record{Session: s, until: until(s.Rotated, idle, s.Expires)}
	sh.mu.Unlock()
	m.index(s.Subject, s.ID)
	return nil
}

func (m *Memory) index(sub, id string) {
	m.mu.Lock()
	ids := m.subjects[sub]
	if ids == nil {
		ids = map[string]struct{}{}
		m.subjects[sub] = ids
	}
	ids[id] = struct{}{}
	m.mu.Unlock()
}

// Rotate implements Store.
func (m *Memory) Rotate(_ context.Context, st Step) (Rotation, error) {
	sh := m.shard(st.ID)
	sh.mu.Lock()
	r, ok := sh.sessions[st.ID]
	if ok && !st.Now.Before(r.until) {
		delete(sh.sessions, st.ID) // past its time: as good as missing, as in Redis
		ok = false
	}
	if !ok {
		if st.Gen != -1 {
			sh.mu.Unlock()
			return Rotation{}, fmt.Errorf("session %s: %w", st.ID, ErrNotFound)
		}
		if st.Proof != "" && !m.useProof(st) {
			sh.mu.Unlock()
			return Rotation{}, fmt.Errorf("session %s: %w", st.ID, ErrReplay)
		}
		// kept: copies of the step's strings, which are lent for the call
		r = &record{Session: Session{ID: strings.Clone(st.ID), Subject: strings.Clone(st.Subject), Created: st.Now, Expires: st.Expires,
			Rotated: st.Now, Key: strings.Clone(st.Key)}}
		r.until = until(st.Now, st.Idle, st.Expires)
		sh.sessions[r.ID] = r
		s := r.Session
		sh.mu.Unlock()
		m.index(s.Subject, s.ID)
		return Rotation{Session: s}, nil
	}
	err := check(&r.Session, r.state, st)
	if err == nil && st.Proof != "" && !m.useProof(st) {
		err = fmt.Errorf("session %s: %w", st.ID, ErrReplay)
	}
	var rot Rotation
	if err == nil {
		rot, err = decide(&r.Session, st)
	}
	if err == nil && !rot.Retry && st.Key != "" {
		// only an advance binds (for good): a retry is anyone's who holds
		// the used-up token, and must not change who holds the session
		if r.Key != st.Key {
			r.Key = strings.Clone(st.Key)
		}
		rot.Key = r.Key // an advance stores rot.Session: the record's copy, not the step's lent key
	}
	reuse := err != nil && errors.Is(err, ErrReuse)
	var rev Revocation
	switch {
	case err == nil && !rot.Retry:
		r.Session = rot.Session
		r.until = until(st.Now, st.Idle, r.Expires)
	case reuse:
		r.state, r.revokedAt = revoked, st.Now
		rev = r.revocation()
	}
	sh.mu.Unlock()
	if reuse {
		m.feed.publish(rev) // outside the shard lock: followers may call back into the store
	}
	return rot, err
}

// check refuses a step before the rotation rule, in the order the Redis
// script does: owner and client first (another's token learns nothing of
// the session's state), then the state, the expiry, the DPoP key and the
// scope.
func check(s *Session, st0 state, st Step) error {
	var err error
	switch {
	case st.Owner != "" && st.Owner != s.Subject:
		err = ErrNotOwner
	case st.Client != "" && s.Client != "" && st.Client != s.Client:
		err = ErrWrongClient
	case st0 == deleted:
		err = ErrDeleted
	case st0 == revoked:
		err = ErrRevoked
	case !st.Now.Before(s.Expires):
		err = ErrExpired
	case s.Key != "" && st.Key == "":
		err = ErrKeyRequired
	case s.Key != "" && st.Key != s.Key:
		err = ErrWrongKey
	case st.Scope != "" && !inScope(st.Scope, s.Scope):
		err = ErrScope
	default:
		return nil
	}
	return fmt.Errorf("session %s: %w", s.ID, err)
}

// useProof records st's DPoP proof, or reports it was used already.
func (m *Memory) useProof(st Step) bool {
	k := st.Key + "." + st.Proof
	m.proofMu.Lock()
	defer m.proofMu.Unlock()
	if t, ok := m.proofs[k]; ok && st.Now.Before(t) {
		return false
	}
	m.proofs[k] = st.Now.Add(st.ProofTTL)
	return true
}

// decide applies the rotation rule to the current record s, which check
// accepted. It changes nothing; the caller stores the advanced session or
// the revocation.
func decide(s *Session, st Step) (Rotation, error) {
	switch {
	case s.Gen <= st.Gen:
		// A token ahead of its record was signed for rotations the record
		// has lost (a failover, a restart, a restore): it advances past them.
		next := *s
		next.Gen = st.Gen + 1
		next.Rotated = st.Now
		return Rotation{Session: next, Lost: st.Gen - s.Gen}, nil
	case s.Gen == st.Gen+1 && st.Now.Sub(s.Rotated) < st.Grace:
		return Rotation{Session: *s, Retry: true}, nil
	}
	return Rotation{}, fmt.Errorf("session %s: generation %d presented, %d current: %w", s.ID, st.Gen, s.Gen, ErrReuse)
}

// Revoke implements Store.
func (m *Memory) Revoke(_ context.Context, id string) error {
	m.mark(id, revoked)
	return nil
}

// mark moves a session to state to (never back) and publishes the change;
// it reports whether the session was active.
func (m *Memory) mark(id string, to state) bool {
	sh := m.shard(id)
	sh.mu.Lock()
	r, ok := sh.sessions[id]
	if !ok || r.state >= to {
		sh.mu.Unlock()
		return false
	}
	was := r.state
	r.state, r.revokedAt = to, time.Now()
	rev := r.revocation()
	sh.mu.Unlock()
	m.feed.publish(rev)
	return was == active
}

// RevokeSubject implements Store.
func (m *Memory) RevokeSubject(_ context.Context, sub string, del bool) (int, error) {
	m.mu.Lock()
	ids := m.subjects[sub]
	if del {
		delete(m.subjects, sub)
	}
	list := make([]string, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	m.mu.Unlock()
	to := revoked
	if del {
		to = deleted
	}
	n := 0
	for _, id := range list {
		if m.mark(id, to) {
			n++
		}
	}
	return n, nil
}

// Ping implements Store; memory always answers.
func (m *Memory) Ping(context.Context) error { return nil }

// Len returns the number of session records held.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.sessions)
		sh.mu.Unlock()
	}
	return n
}

func (m *Memory) janitor(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.sweep(now)
		}
	}
}

// sweep forgets records past their time, and their subject index entries,
// and the DPoP proofs past theirs.
func (m *Memory) sweep(now time.Time) {
	m.proofMu.Lock()
	for k, t := range m.proofs {
		if !now.Before(t) {
			delete(m.proofs, k)
		}
	}
	m.proofMu.Unlock()
	for i := range m.shards {
		sh := &m.shards[i]
		var gone []*record
		sh.mu.Lock()
		for id, r := range sh.sessions {
			if !now.Before(r.until) {
				delete(sh.sessions, id)
				gone = append(gone, r)
			}
		}
		sh.mu.Unlock()
		m.mu.Lock()
		for _, r := range gone {
			if ids := m.subjects[r.Subject]; ids != nil {
				delete(ids, r.ID)
				if len(ids) == 0 {
					delete(m.subjects, r.Subject)
				}
			}
		}
		m.mu.Unlock()
	}
}
