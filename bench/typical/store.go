package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The refusals of a rotation; the handlers answer each in their dialect.
var (
	errUnknown  = errors.New("unknown session or generation")
	errRevoked  = errors.New("session revoked")
	errReuse    = errors.New("refresh token reused: session revoked")
	errClient   = errors.New("session of another client")
	errBinding  = errors.New("session bound to another DPoP key")
	errProofJTI = errors.New("DPoP proof used already")
)

// outcomes maps rotate.lua's answers to the errors above.
var outcomes = []error{nil, errUnknown, errRevoked, errReuse, errClient, errBinding}

// store keeps sessions and DPoP proof jtis.
type store interface {
	// create starts a session at generation 0.
	create(ctx context.Context, sid, sub, client string, ttl time.Duration) error
	// rotate advances the session from gen, the whole rotation rule at once.
	rotate(ctx context.Context, sid string, gen int64, client, jkt string, ttl time.Duration) error
	// once records a proof's jti; errProofJTI if it was recorded already.
	once(ctx context.Context, jti string, ttl time.Duration) error
}

// memSession is one session of the memory store.
type memSession struct {
	sub, client, jkt string
	gen              int64
	revoked          bool
	expires          time.Time
}

// memoryStore is the in-process store: maps behind one mutex.
type memoryStore struct {
	now      func() time.Time
	mu       sync.Mutex
	sessions map[string]*memSession
	jtis     map[string]time.Time
	inserts  int
}

func newMemoryStore(now func() time.Time) *memoryStore {
	return &memoryStore{now: now, sessions: map[string]*memSession{}, jtis: map[string]time.Time{}}
}

func (m *memoryStore) create(_ context.Context, sid, sub, client string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[sid] = &memSession{sub: sub, client: client, expires: m.now().Add(ttl)}
	return nil
}

func (m *memoryStore) rotate(_ context.Context, sid string, gen int64, client, jkt string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	s, ok := m.sessions[sid]
	switch {
	case !ok || now.After(s.expires):
		return errUnknown
	case s.revoked:
		return errRevoked
	case client != "" && s.client != "" && s.client != client:
		return errClient
	case gen < s.gen:
		s.revoked = true
		return errReuse
	case gen > s.gen:
		return errUnknown
	case s.jkt != "" && s.jkt != jkt:
		return errBinding
	}
	if s.jkt == "" {
		s.jkt = jkt
	}
	s.gen++
	s.expires = now.Add(ttl)
	return nil
}

func (m *memoryStore) once(_ context.Context, jti string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if exp, seen := m.jtis[jti]; seen && now.Before(exp) {
		return errProofJTI
	}
	m.jtis[jti] = now.Add(ttl)
	// an occasional sweep keeps the map to the jtis of one window
	if m.inserts++; m.inserts%4096 == 0 {
		for k, exp := range m.jtis {
			if !now.Before(exp) {
				delete(m.jtis, k)
			}
		}
	}
	return nil
}

//go:embed rotate.lua
var rotateSrc string

// rotateScript runs by EVALSHA (EVAL the first time a server lacks it).
var rotateScript = redis.NewScript(rotateSrc)

// redisStore keeps sessions as hashes in Redis through go-redis.
type redisStore struct{ rdb *redis.Client }

func sessionKey(sid string) string { return "typical:session:{" + sid + "}" }

func (r redisStore) create(ctx context.Context, sid, sub, client string, ttl time.Duration) error {
	k := sessionKey(sid)
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k, "sub", sub, "gen", 0, "client", client)
		p.PExpire(ctx, k, ttl)
		return nil
	})
	return err
}

func (r redisStore) rotate(ctx context.Context, sid string, gen int64, client, jkt string, ttl time.Duration) error {
	n, err := rotateScript.Run(ctx, r.rdb, []string{sessionKey(sid)},
		strconv.FormatInt(gen, 10), ttl.Milliseconds(), client, jkt).Int()
	if err != nil {
		return err
	}
	if n < 0 || n >= len(outcomes) {
		return fmt.Errorf("rotate.lua answered %d", n)
	}
	return outcomes[n]
}

func (r redisStore) once(ctx context.Context, jti string, ttl time.Duration) error {
	fresh, err := r.rdb.SetNX(ctx, "typical:jti:"+jti, "", ttl).Result()
	if err != nil {
		return err
	}
	if !fresh {
		return errProofJTI
	}
	return nil
}
