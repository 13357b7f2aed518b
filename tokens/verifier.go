package tokens

import (
	"context"
	"fmt"
	"time"

	core "github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/dpop"
)

// Claims are what a verified access token says (RFC 9068 §2.2). Times are
// Unix seconds. A Claims may be reused from one Verify to the next; it
// holds no reference to the token. Verify writes into it: one Claims per
// goroutine, never shared by Verify calls running at once.
type Claims struct {
	Issuer    string // iss: tokend's issuer, its TOKEND_PUBLIC_URL
	Subject   string // sub: the user
	NameID    string // nameid: the aspnet dialect's copy of sub
	Session   string // sid: the session; revoking it revokes this token
	ID        string // jti
	IssuedAt  int64  // iat
	NotBefore int64  // nbf
	Expires   int64  // exp
	// Audience is aud, the one resource server the token is meant for
	// (empty: any; SetAudience makes it required).
	Audience string
	ClientID string // client_id: the OAuth client the session was started for
	Scope    string // scope: space-separated scope tokens (RFC 6749 §3.3)
	// Confirmation is cnf: the DPoP key the token is bound to, if any.
	Confirmation Confirmation

	raw core.Claims // decoded into in place, so Verify allocates nothing more
}

// Confirmation is the cnf claim of a sender-constrained token (RFC 7800,
// RFC 9449 §6).
type Confirmation struct {
	// JKT is the RFC 7638 thumbprint of the DPoP key the token is bound
	// to; empty for a Bearer token.
	JKT string
}

// fill copies what a resource server reads out of the decoded claims:
// string headers only, no allocation.
func (c *Claims) fill() {
	r := &c.raw
	c.Issuer, c.Subject, c.NameID, c.Session, c.ID = r.Issuer, r.Subject, r.NameID, r.Session, r.ID
	c.IssuedAt, c.NotBefore, c.Expires = r.IssuedAt, r.NotBefore, r.Expires
	c.Audience, c.ClientID, c.Scope = string(r.Audience), r.ClientID, r.Scope
	c.Confirmation.JKT = r.Confirmation.JKT
}

// Verifier checks tokend's access tokens offline: signature, type, issuer,
// audience, time, then (with FollowRevocations) whether the session was
// revoked, and for DPoP-bound tokens the request's proof. Configure it
// before use; Verify and its kin are then safe for concurrent use.
type Verifier struct {
	v     *core.Verifier
	clock Clock
}

// NewVerifier returns a Verifier of access tokens signed by a key of keys
// (nil: none yet, as before JWKSFollower.Follow), issued by issuer (tokend's
// TOKEND_PUBLIC_URL; empty accepts any issuer), with clock deciding expiry
// (nil: SystemClock).
func NewVerifier(keys *KeySet, issuer string, clock Clock) *Verifier {
	if clock == nil {
		clock = SystemClock
	}
	return &Verifier{v: core.NewVerifier(keys.core(), issuer, clock), clock: clock}
}

// AcceptIssuers makes tokens of former issuers acceptable beside the
// Verifier's own, across an upgrade or a change of issuer (tokend's
// TOKEND_ACCEPTED_ISSUERS; tokend before its issuer was its public URL
// wrote iss "tokend").
func (v *Verifier) AcceptIssuers(iss ...string) { v.v.AcceptIssuers(iss...) }

// SetAudience makes Verify refuse tokens whose aud is not aud, this
// resource server's identifier (one of tokend's TOKEND_AUDIENCE), as RFC
// 9068 §4 asks. Empty (the default) checks no audience.
func (v *Verifier) SetAudience(aud string) { v.v.SetAudience(aud) }

// SetLeeway sets how far a token's nbf may be ahead of the Verifier's
// clock, for a clock behind tokend's (DefaultLeeway unless set; negative
// is 0). exp takes no leeway: a token is refused once expired.
func (v *Verifier) SetLeeway(d time.Duration) { v.v.SetLeeway(d) }

// SetKeys replaces the keys in force; safe while tokens are verified.
func (v *Verifier) SetKeys(keys *KeySet) { v.v.SetKeys(keys.core()) }

// Keys returns the keys in force (nil: none).
func (v *Verifier) Keys() *KeySet { return wrapKeys(v.v.Keys()) }

// SetDPoP sets how VerifyDPoP checks proofs: the signature algorithms
// accepted (asymmetric only; default ES256 and EdDSA) and how far a
// proof's iat may be from the Verifier's clock, either way (default 60 s).
// Empty or zero values keep the defaults.
func (v *Verifier) SetDPoP(algs []string, window time.Duration) error {
	d, err := dpop.NewVerifier(dpop.Config{Algs: algs, Window: window, Clock: v.clock})
	if err != nil {
		return fmt.Errorf("tokens: DPoP: %w", err)
	}
	v.v.SetDPoP(d)
	return nil
}

// SetProofMemory bounds the proofs VerifyDPoP remembers to refuse replays:
// perKey per DPoP key (default 4096 within twice the window) and total in
// all (default 1<<20, about 80 MiB), past which the key holding the most
// forgets its oldest; zero or negative values keep the defaults. The
// memory is this process's: behind a load balancer, a proof replayed to
// another instance is caught there only if it reached it before.
func (v *Verifier) SetProofMemory(perKey, total int) { v.v.SetProofMemory(perKey, total) }

// Verify checks an access token however it was presented: size, header,
// signature, typ at+jwt, issuer, audience, nbf (with the leeway) and exp,
// then the revocations. It fills cl: on a refusal, with what the token
// claims if it got that far (unverified, for logs only), else empty; it
// returns nil or an error wrapping ErrMalformed, ErrInvalid, ErrExpired or
// ErrRevoked; any other error (ErrUnavailable) means the revocations could
// not be asked: refuse the request (fail closed). A resource server that
// accepts DPoP-bound tokens calls VerifyBearer or VerifyDPoP instead.
func (v *Verifier) Verify(ctx context.Context, token []byte, cl *Claims) error {
	err := v.v.Verify(ctx, token, &cl.raw)
	cl.fill()
	return err
}

// VerifyBearer is Verify for a token presented as `Authorization: Bearer`
// (RFC 6750): a DPoP-bound one is refused with ErrBound.
func (v *Verifier) VerifyBearer(ctx context.Context, token []byte, cl *Claims) error {
	err := v.v.VerifyBearer(ctx, token, &cl.raw)
	cl.fill()
	return err
}

// VerifyDPoP checks a token presented as `Authorization: DPoP` with its
// proof, the request's one DPoP header, as RFC 9449 §7 asks: the token as
// Verify does, bound to a key (else ErrInvalid), then the proof: signed by
// that key, ath the hash of this token, htm and htu this request's method
// and URL (as clients call it, scheme and host included; the query is not
// compared), iat within the window (SetDPoP), and its jti not seen by this
// Verifier before (SetProofMemory). A refused proof wraps ErrInvalidProof.
func (v *Verifier) VerifyDPoP(ctx context.Context, token, proof []byte, method, url string, cl *Claims) error {
	err := v.v.VerifyDPoP(ctx, token, proof, method, url, &cl.raw)
	cl.fill()
	return err
}
