package session

import (
	"context"
	"errors"
	"time"
)

// Outcomes a caller branches on; every Store error wraps one of them.
var (
	ErrNotFound = errors.New("session: not found")
	ErrExpired  = errors.New("session: expired")
	ErrRevoked  = errors.New("session: revoked")
	ErrDeleted  = errors.New("session: subject deleted")
	ErrReuse    = errors.New("session: refresh token reuse")
	// ErrNotOwner: the session belongs to another subject than Step.Owner;
	// the session is left as it was.
	ErrNotOwner    = errors.New("session: belongs to another subject")
	ErrUnavailable = errors.New("session: store unavailable")
)

// Session is one login session. Each refresh token names (ID, Gen).
type Session struct {
	ID      string
	Subject string
	Gen     int64
	Created time.Time
	Expires time.Time // absolute end of the session
	Rotated time.Time // last time Gen advanced (Created at first)
}

// Step asks a store to rotate the session ID from generation Gen.
//
// Gen -1 adopts a legacy refresh token: a missing session is created at
// generation 0 with Subject and Expires; the token is then generation -1 of
// that session, so a second use is a retry inside Grace and reuse after.
type Step struct {
	ID    string
	Gen   int64
	Now   time.Time
	Grace time.Duration // how long the immediate parent may be retried
	Idle  time.Duration // refresh-token lifetime: the record lives until Now+Idle, capped at Expires
	// Owner, when set, must be the session's subject: checked before
	// anything else, so another user's token learns nothing and burns nothing.
	Owner string

	Subject string    // adoption only
	Expires time.Time // adoption only
}

// Rotation is the answer to a Step.
type Rotation struct {
	Session
	// Retry is true when the session did not move: the caller reissues the
	// pair for Gen, which it already issued once.
	Retry bool
	// Lost counts the rotations the record had lost: the token presented was
	// that many generations ahead of it. Only a store that lost acknowledged
	// writes (asynchronous replication, a failover, fsync every second, a
	// restore) is ever behind a token tokend signed.
	Lost int64
}

// Store keeps sessions. Rotate is one atomic check-and-advance: of many
// concurrent Steps with the same (ID, Gen), exactly one advances.

type Store interface {
	// Create records a new session at generation 0; it lives until
	// s.Rotated+idle, capped at s.Expires, unless rotated.
	Create(ctx context.Context, s Session, idle time.Duration) error
	// Rotate applies the rotation rule.
	Rotate(ctx context.Context, st Step) (Rotation, error)
	// Revoke ends one session. Revoking a missing session is not an error.
	Revoke(ctx context.Context, id string) error
	// RevokeSubject ends every session of sub and returns how many it ended;
	// deleted marks them so that later refreshes report ErrDeleted.
	RevokeSubject(ctx context.Context, sub string, deleted bool) (int, error)
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
}

// until is the instant a session record may be forgotten: when its newest
// refresh token expires, or when the session ends, whichever comes first.
func until(now time.Time, idle time.Duration, expires time.Time) time.Time {
	u := now.Add(idle)
	if u.After(expires) {
		return expires
	}
	return u
}
