package tokens

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tokend/tokend/tokens/dpop"
)

// Errors of sender-constrained tokens (RFC 9449 §7).
var (
	// ErrBound: a DPoP-bound access token (cnf.jkt) presented as a Bearer
	// token, which a resource server must refuse: without the proof, the
	// binding would protect nothing.
	ErrBound = fmt.Errorf("%w: a DPoP-bound token presented without its proof", ErrInvalid)
	// ErrNotBound: a Bearer token presented with the DPoP scheme.
	ErrNotBound = fmt.Errorf("%w: the token is not bound to a DPoP key", ErrInvalid)
	// ErrProofReplay: a proof's jti this Verifier has seen within the window.
	ErrProofReplay = fmt.Errorf("%w: jti used already", dpop.ErrInvalidProof)
)

// SetDPoP sets how VerifyDPoP checks proofs (algorithms, window); by
// default ES256 and EdDSA within 60 s of the Verifier's clock.
func (v *Verifier) SetDPoP(d *dpop.Verifier) { v.proofs.Store(d) }

// VerifyBearer is Verify for a token presented as `Authorization: Bearer`:
// a DPoP-bound one is refused (ErrBound).
func (v *Verifier) VerifyBearer(ctx context.Context, token []byte, cl *Claims) error {
	if err := v.Verify(ctx, token, cl); err != nil {
		return err
	}
	if cl.Confirmation.JKT != "" {
		return ErrBound
	}
	return nil
}

// VerifyDPoP checks a token presented as `Authorization: DPoP` with its
// proof (the request's one DPoP header), as RFC 9449 §7 asks: the token as
// Verify does and bound to a key (ErrNotBound), then the proof: signed by
// that key (dpop.ErrWrongKey), ath the hash of this token, htm and htu the
// request's method and URL, iat within the window, and its jti not seen by
// this Verifier within twice the window (ErrProofReplay). Proof errors wrap
// dpop.ErrInvalidProof.
func (v *Verifier) VerifyDPoP(ctx context.Context, token, proof []byte, method, url string, cl *Claims) error {
	if err := v.Verify(ctx, token, cl); err != nil {
		return err
	}
	if cl.Confirmation.JKT == "" {
		return ErrNotBound
	}
	d := v.proofs.Load()
	p, err := d.Verify(proof, dpop.Request{Method: method, URL: url, AccessToken: token, Thumbprint: cl.Confirmation.JKT})
	if err != nil {
		return err
	}
	if !v.seen.use(p.Thumbprint+"."+p.ID, v.codec.clock.Now(), 2*d.Window()) {
		return ErrProofReplay
	}
	return nil
}

// seenProofs remembers the proofs of the last two windows, by key and jti.
// One process's memory: a resource server behind a load balancer shares
// nothing, so a proof replayed to another instance within the window and
// with the same token is caught only there (RFC 9449 §11.1 leaves the
// scope to the server; tokend's token endpoint records jti in Redis).
type seenProofs struct {
	mu    sync.Mutex
	m     map[string]time.Time
	swept time.Time
}

// maxSeen bounds the memory a flood of proofs can take.
const maxSeen = 1 << 20

// use records id until now+ttl, or reports that it is still recorded.
func (s *seenProofs) use(id string, now time.Time, ttl time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]time.Time{}
	}
	if until, ok := s.m[id]; ok && now.Before(until) {
		return false
	}
	if now.Sub(s.swept) > ttl || len(s.m) >= maxSeen {
		for k, until := range s.m {
			if !now.Before(until) {
				delete(s.m, k)
			}
		}
		s.swept = now
		if len(s.m) >= maxSeen {
			return false // full of live proofs: refuse rather than forget one
		}
	}
	s.m[id] = now.Add(ttl)
	return true
}
