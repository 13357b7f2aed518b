package session

import (
	"context"
	"errors"
	"slices"
	"strings"
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

	// The refusals of OAuth 2.0 refreshes (Step.Client, Scope, Key, Proof).
	// Like ErrNotOwner, each leaves the session as it was: a refused
	// client, scope or proof burns nothing.
	ErrWrongClient = errors.New("session: started for another client")
	ErrScope       = errors.New("session: scope requested exceeds the session's")
	ErrKeyRequired = errors.New("session: bound to a DPoP key; a proof by that key is required")
	ErrWrongKey    = errors.New("session: bound to another DPoP key")
	ErrReplay      = errors.New("session: DPoP proof used already")
)

// Session is one login session. Each refresh token names (ID, Gen).
type Session struct {
	ID      string
	Subject string
	Gen     int64
	Created time.Time
	Expires time.Time // absolute end of the session
	Rotated time.Time // last time Gen advanced (Created at first)

	// OAuth 2.0 (server/oauth2): the public client the session was started
	// for ("": any), its scope (space-separated; "": none), and the RFC 7638
	// thumbprint (base64url) of the DPoP key it is bound to ("": unbound).
	Client string
	Scope  string
	Key    string
}

// Step asks a store to rotate the session ID from generation Gen.
//
// Gen -1 adopts a legacy refresh token: a missing session is created at
// generation 0 with Subject and Expires; the token is then generation -1 of
// that session, so a second use is a retry inside Grace and reuse after.
// The store remembers the adoption until TokenExpires, however soon the
// record goes, so that the token is accepted at most once.
//
// A Step's strings are valid during the call only (the issuer's refresh
// path lends them from a pooled buffer): a store that keeps one, or hands
// it to a command that may still be written after the call returns (a
// pipelined client whose call timed out), copies it first.
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

	// Adoption only: the legacy token's own iat (zero: it has none) and
	// exp. The store refuses the token until TokenExpires once it was
	// adopted or revoked, and when its subject was revoked or deleted at
	// or after TokenIssued (RevokeLegacySubject).
	TokenIssued  time.Time
	TokenExpires time.Time

	// OAuth 2.0 token endpoint only. The checks come before the rotation
	// rule, so a refused one changes nothing.

	// Client is the client refreshing: a session started for another
	// client is ErrWrongClient.
	Client string
	// Scope is the scope requested: each of its space-separated items must
	// be in the session's (ErrScope).
	Scope string
	// Key is the thumbprint of the DPoP proof's key ("": no proof). A
	// session bound to another key is ErrWrongKey, a bound session and no
	// proof ErrKeyRequired; an unbound session is bound to Key for good.
	Key string
	// Proof, when set, is the proof's jti: the store accepts it once per
	// session for at least ProofTTL, across every instance (ErrReplay), in
	// the rotation's own atomic step (docs/design.md, DPoP proofs).
	Proof    string
	ProofTTL time.Duration
	// ProofIssued is the proof's iat (zero: unknown). A proof newer than
	// every other its session has accepted is checked against the session's
	// record alone; an older one, or one without it, costs a key of its own.
	ProofIssued time.Time
}

// oauth reports whether st carries OAuth 2.0 checks.
func (st *Step) oauth() bool {
	return st.Client != "" || st.Scope != "" || st.Key != "" || st.Proof != ""
}

// copied is st with its own copies of the strings it was lent.
func (st Step) copied() Step {
	st.ID, st.Subject, st.Owner = strings.Clone(st.ID), strings.Clone(st.Subject), strings.Clone(st.Owner)
	st.Client, st.Scope, st.Key, st.Proof = strings.Clone(st.Client), strings.Clone(st.Scope), strings.Clone(st.Key), strings.Clone(st.Proof)
	return st
}

// inScope reports whether every item of requested is in have (both
// separated by ASCII white space: what Lua's %s matches in
// record_rotate.lua, so that both stores read a scope alike).
func inScope(requested, have string) bool {
	granted := strings.FieldsFunc(have, asciiSpace)
	for _, s := range strings.FieldsFunc(requested, asciiSpace) {
		if !slices.Contains(granted, s) {
			return false
		}
	}
	return true
}

// asciiSpace reports whether r is a white-space character of C's isspace.
func asciiSpace(r rune) bool {
	return r == ' ' || '\t' <= r && r <= '\r'
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
	// s.Rotated+idle, capped at s.Expires, unless rotated. A Key, when
	// set, is a base64url SHA-256 thumbprint; Client and Scope fit
	// MaxClientSize and MaxScopeSize.
	Create(ctx context.Context, s Session, idle time.Duration) error
	// Rotate applies the rotation rule.
	Rotate(ctx context.Context, st Step) (Rotation, error)
	// Revoke ends one session. Revoking a missing session is not an error.
	Revoke(ctx context.Context, id string) error
	// RevokeAs ends session st.ID for whoever presents one of its tokens
	// (RFC 7009 §2.1), checked as a rotation's step: st.Client is the
	// client asking ("": an endpoint that names none), st.Key the
	// thumbprint of its DPoP proof's key ("": no proof), st.Proof its jti,
	// accepted once for st.ProofTTL. Another client's session is
	// ErrWrongClient; a session bound to a key is ErrKeyRequired without a
	// proof and ErrWrongKey with another key's; a used proof is ErrReplay.
	// Each refusal changes nothing; a missing session is not an error.
	RevokeAs(ctx context.Context, st Step) error
	// RevokeSubject ends every session of sub and returns how many it ended;
	// deleted marks them so that later refreshes report ErrDeleted.
	RevokeSubject(ctx context.Context, sub string, deleted bool) (int, error)
	// RevokeLegacy ends the session legacy token st (an adoption Step: ID,
	// Subject, Now, TokenExpires) starts, adopted already or not: from then
	// on its adoption is ErrRevoked, until TokenExpires. A session its
	// adoption bound to a DPoP key is ended only with st.Key, st.Proof and
	// st.ProofTTL as RevokeAs takes them (ErrKeyRequired, ErrWrongKey,
	// ErrReplay; each refusal changes nothing, the adoption mark included).
	RevokeLegacy(ctx context.Context, st Step) error
	// RevokeLegacySubject refuses from now on the adoption of sub's legacy
	// tokens issued at or before at (ErrDeleted if deleted, else
	// ErrRevoked): the sessions the old backend started and tokend has not
	// seen yet. RevokeSubject ends the others; calling this first means an
	// adoption racing both is refused by one or the other.
	RevokeLegacySubject(ctx context.Context, sub string, at time.Time, deleted bool) error
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
