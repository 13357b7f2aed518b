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
	// proof is the newest DPoP proof a bound session accepted, as the
	// Redis record keeps it (nil: none kept, every proof is decided by
	// Memory.proofs, as for a record an earlier tokend wrote)
	proof *newestProof
}

// newestProof is the proof a bound record keeps: its iat in whole seconds
// and its name in Memory.proofs.
type newestProof struct {
	iat  int64
	name string
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
	// cutoffs: per subject, the legacy tokens issued until when are refused
	// (RevokeLegacySubject). Never forgotten: the old backend's tokens carry
	// their own expiry, unknown until presented.
	cutoffs map[string]cutoff

	feed memoryFeed // revocations, to the denylists that follow this store

	proofMu sync.Mutex
	proofs  map[string]time.Time // DPoP proofs used (key thumbprint, jti) until when

	stop chan struct{}
	once sync.Once
}

type memoryShard struct {
	mu       sync.Mutex
	sessions map[string]*record
	adopted  map[string]adoption // legacy tokens adopted or revoked, by session id
}

// adoption remembers a legacy token adopted (active) or revoked until it
// expires, however soon its session's record goes: it is accepted once.
type adoption struct {
	state state
	until time.Time
}

// cutoff refuses the adoption of a subject's legacy tokens issued at or
// before at, as revoked or deleted (state).
type cutoff struct {
	at    time.Time
	state state
}

// NewMemory returns an empty store. A janitor forgets records past their
// time every sweep; Close stops it.
func NewMemory(sweep time.Duration) *Memory {
	m := &Memory{seed: maphash.MakeSeed(), subjects: map[string]map[string]struct{}{}, stop: make(chan struct{}),
		proofs: map[string]time.Time{}, cutoffs: map[string]cutoff{}}
	for i := range m.shards {
		m.shards[i].sessions = map[string]*record{}
		m.shards[i].adopted = map[string]adoption{}
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
	// generation 0 and times at the millisecond, as the packed record keeps them (Rotate)
	s.Gen, s.Created, s.Expires, s.Rotated = 0, milli(s.Created), milli(s.Expires), milli(s.Rotated)
	sh := m.shard(s.ID)
	sh.mu.Lock()
	if _, dup := sh.sessions[s.ID]; dup {
		sh.mu.Unlock()
		return fmt.Errorf("session %s: already exists", s.ID)
	}
	r := &record{Session: s, until: milli(until(s.Rotated, idle, s.Expires))}
	if s.Key != "" {
		r.proof = &newestProof{} // iat 0: every proof is newer
	}
	sh.sessions[s.ID] = r
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

// milli is t at the start of its millisecond.
func milli(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()) }

// Rotate implements Store. Its times are whole milliseconds, as Redis
// compares them: a retry, an expiry and the grace window end at the same
// millisecond on both stores.
func (m *Memory) Rotate(_ context.Context, st Step) (Rotation, error) {
	st.Now, st.Expires = milli(st.Now), milli(st.Expires)
	st.Grace = st.Grace.Truncate(time.Millisecond)
	if st.Key != "" && !thumbprint(st.Key) { // refused before any lock, as Redis does
		return Rotation{}, errors.New("session: step key is not a base64url SHA-256 thumbprint")
	}
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
		// adopted or revoked already: the token is accepted once, however
		// soon the record it made went
		if a, seen := sh.adopted[st.ID]; seen && st.Now.Before(a.until) {
			sh.mu.Unlock()
			return Rotation{}, fmt.Errorf("session %s: legacy token used or revoked: %w", st.ID, adoptionErr(a.state))
		}
		// the new session has no scope (a legacy token carries none): any
		// item asked is refused before anything changes, as Redis does
		if !inScope(st.Scope, "") {
			sh.mu.Unlock()
			return Rotation{}, fmt.Errorf("session %s: %w", st.ID, ErrScope)
		}
		if st.Proof != "" && !m.useProof(st) {
			sh.mu.Unlock()
			return Rotation{}, fmt.Errorf("session %s: %w", st.ID, ErrReplay)
		}
		// kept: copies of the step's strings, which are lent for the call
		r = &record{Session: Session{ID: strings.Clone(st.ID), Subject: strings.Clone(st.Subject), Created: st.Now, Expires: st.Expires,
			Rotated: st.Now, Key: strings.Clone(st.Key)}}
		r.until = milli(until(st.Now, st.Idle, st.Expires))
		sh.sessions[r.ID] = r
		sh.adopted[r.ID] = adoption{until: later(st.TokenExpires, r.until)}
		s := r.Session
		sh.mu.Unlock()
		// indexed after the record is made, and the subject's cutoff read in
		// the same step: a deletion racing this finds the session, or this
		// finds the deletion
		if c, refused := m.indexAdopted(s.Subject, s.ID, st.TokenIssued); refused {
			m.markLegacy(s.ID, c, st.TokenExpires)
			return Rotation{}, fmt.Errorf("session %s: legacy token issued before its subject's revocation: %w", s.ID, adoptionErr(c))
		}
		return Rotation{Session: s}, nil
	}
	err := check(&r.Session, r.state, st)
	if err == nil && st.Proof != "" && !m.admitProof(r, st) {
		err = fmt.Errorf("session %s: %w", st.ID, ErrReplay)
	}
	var rot Rotation
	if err == nil {
		rot, err = decide(&r.Session, st)
	}
	if err == nil && st.Proof != "" {
		m.keepProof(r, st, !rot.Retry && r.Key == "" && st.Key != "")
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
		r.until = milli(until(st.Now, st.Idle, r.Expires))
	case reuse:
		r.state, r.revokedAt = revoked, st.Now
		rev = r.revocation()
	}
	sh.mu.Unlock()
	if reuse {
		m.feed.publish(rev) // outside the shard lock: followers may call back into the store
	}
	if err == nil && st.Gen == -1 {
		// a retry of an adoption meets its subject's cutoff as the adoption
		// did (the Redis store writes the index again): a deletion between
		// the two hands out no pair
		if c, refused := m.indexAdopted(rot.Subject, rot.ID, st.TokenIssued); refused {
			m.markLegacy(rot.ID, c, st.TokenExpires)
			return Rotation{}, fmt.Errorf("session %s: legacy token issued before its subject's revocation: %w", rot.ID, adoptionErr(c))
		}
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

// admitProof reports whether st's proof may be used on r, as
// record_rotate.lua decides: the record's newest proof is a replay, a
// newer one is new, and any other is used once in m.proofs.
func (m *Memory) admitProof(r *record, st Step) bool {
	if r.proof != nil && r.proof.name == proofName(st) {
		return false
	}
	if r.proof == nil || proofIat(st) <= r.proof.iat {
		return m.useProof(st)
	}
	return true
}

// keepProof makes st's proof, just used on r for an advance or a retry,
// r's newest if it is (binds: this advance binds r), as record_rotate.lua
// does; the proof it replaces is kept in m.proofs while an instance could
// still take it.
func (m *Memory) keepProof(r *record, st Step, binds bool) {
	if r.Key == "" && !binds {
		return
	}
	iat, now, ttl := proofIat(st), st.Now.UnixMilli(), proofTTL(st)
	switch {
	case r.proof != nil && iat > r.proof.iat:
		if now < r.proof.iat*1000+ttl {
			m.proofMu.Lock()
			m.proofs[r.proof.name] = st.Now.Add(time.Duration(ttl) * time.Millisecond)
			m.proofMu.Unlock()
		}
		r.proof = &newestProof{iat: iat, name: proofName(st)}
	case r.proof == nil:
		// proofs used before have their entries, iat up to a window past now
		r.proof = &newestProof{iat: max(iat, (now+ttl+999)/1000), name: proofName(st)}
	}
}

// proofName names st's proof in Memory.proofs: by key and jti, as proofKey.
func proofName(st Step) string { return st.Key + "." + st.Proof }

// proofIat is st's proof's iat in whole seconds as the Redis record keeps
// it (uint32), 0 when unknown.
func proofIat(st Step) int64 {
	if st.ProofIssued.IsZero() || st.ProofIssued.Unix() <= 0 {
		return 0
	}
	return min(st.ProofIssued.Unix(), 1<<32-1)
}

// useProof records st's DPoP proof, or reports it was used already.
func (m *Memory) useProof(st Step) bool {
	k := proofName(st)
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

// adoptionErr is the refusal of a legacy token whose adoption is
// remembered in state: adopted once (its session since gone), or revoked
// or deleted.
func adoptionErr(s state) error {
	switch s {
	case revoked:
		return ErrRevoked
	case deleted:
		return ErrDeleted
	}
	return ErrExpired
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// indexAdopted puts adopted session id in sub's index unless sub's cutoff
// refuses a legacy token issued at issued (zero: unknown), which it
// returns.
func (m *Memory) indexAdopted(sub, id string, issued time.Time) (state, bool) {
	m.mu.Lock()
	defer m.mu.Unlock() // one step: RevokeSubject reads the index under the same lock
	if c, ok := m.cutoffs[sub]; ok && (issued.IsZero() || !issued.After(c.at)) {
		return c.state, true
	}
	ids := m.subjects[sub]
	if ids == nil {
		ids = map[string]struct{}{}
		m.subjects[sub] = ids
	}
	ids[id] = struct{}{}
	return active, false
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

// RevokeLegacy implements Store: a session the adoption bound to a DPoP
// key is checked as RevokeAs checks it, in the same critical section.
func (m *Memory) RevokeLegacy(_ context.Context, st Step) error {
	if st.Key != "" && !thumbprint(st.Key) { // refused before any lock, as Redis does
		return errors.New("session: step key is not a base64url SHA-256 thumbprint")
	}
	return m.markLegacyAs(st.ID, revoked, st.TokenExpires, &st)
}

// markLegacy moves the session legacy token id starts to state to, adopted
// or not, and remembers that until the token expires; a session that was
// there is published.
func (m *Memory) markLegacy(id string, to state, expires time.Time) {
	_ = m.markLegacyAs(id, to, expires, nil)
}

// markLegacyAs is markLegacy for the token's holder st (nil: the store
// itself): an adopted session bound to a DPoP key is ended only with a
// proof by that key, its jti used once; a refusal changes nothing.
func (m *Memory) markLegacyAs(id string, to state, expires time.Time, st *Step) error {
	sh := m.shard(id)
	sh.mu.Lock()
	if r, ok := sh.sessions[id]; ok && st != nil && st.Now.Before(r.until) {
		var err error
		switch {
		case r.Key != "" && st.Key == "":
			err = ErrKeyRequired
		case r.Key != "" && st.Key != r.Key:
			err = ErrWrongKey
		case st.Proof != "" && r.proof != nil && r.proof.name == proofName(*st), st.Proof != "" && !m.useProof(*st):
			err = ErrReplay
		}
		if err != nil {
			sh.mu.Unlock()
			return fmt.Errorf("session %s: %w", id, err)
		}
	}
	a := sh.adopted[id]
	if a.state < to {
		a.state = to
	}
	a.until = later(a.until, expires)
	sh.adopted[strings.Clone(id)] = a
	var rev Revocation
	r, ok := sh.sessions[id]
	changed := ok && r.state < to
	if changed {
		r.state, r.revokedAt = to, time.Now()
		rev = r.revocation()
	}
	sh.mu.Unlock()
	if changed {
		m.feed.publish(rev)
	}
	return nil
}

// RevokeLegacySubject implements Store. The latest cutoff stands.
func (m *Memory) RevokeLegacySubject(_ context.Context, sub string, at time.Time, del bool) error {
	to := revoked
	if del {
		to = deleted
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.cutoffs[sub]; ok && (c.at.After(at) || c.at.Equal(at) && c.state >= to) {
		return nil
	}
	m.cutoffs[strings.Clone(sub)] = cutoff{at: at, state: to}
	return nil
}

// RevokeSubject implements Store. Like Redis, it takes effect when it
// reads the index, and a deletion removes from it only the sessions it
// read, once they are marked: a concurrent deletion still finds them, and
// does not return before they are marked.
func (m *Memory) RevokeSubject(_ context.Context, sub string, del bool) (int, error) {
	m.mu.Lock()
	ids := m.subjects[sub]
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
	if del {
		m.mu.Lock()
		if ids := m.subjects[sub]; ids != nil {
			for _, id := range list {
				delete(ids, id)
			}
			if len(ids) == 0 {
				delete(m.subjects, sub)
			}
		}
		m.mu.Unlock()
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
		for id, a := range sh.adopted {
			if !now.Before(a.until) {
				delete(sh.adopted, id)
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
