package tokens

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/tokend/tokend/internal/tokens/dpop"
	"github.com/tokend/tokend/internal/tokens/session"
)

// Denylist answers, from local memory where it can, whether a session was
// revoked (denylist.Denylist is one). Declared here, where it is used.
type Denylist interface {
	Check(ctx context.Context, sid string) (session.Revocation, bool, error)
}

// Verifier checks tokend's access tokens: in tokend's introspection
// endpoint, and under package tokens' Verifier, the one resource servers
// import. It needs the keys (a JWKS file or URL), and, optionally, a
// Denylist fed from the same Redis so that a revoked session's tokens stop
// working before they expire.
type Verifier struct {
	codec *Codec
	// deny is SetDenylist's; atomic, as package tokens' FollowRevocations
	// may install it while tokens are verified
	deny  atomic.Pointer[Denylist]
	aud   string        // SetAudience
	stale chan struct{} // a token named an unknown kid: fetch the JWKS again
	// leeway is how far nbf may be ahead of the clock (SetLeeway); its
	// own, not the codec's, which tokend's issuer may share.
	leeway atomic.Int64

	proofs atomic.Pointer[dpop.Verifier] // VerifyDPoP's checks (SetDPoP)
	seen   seenProofs                    // the proofs VerifyDPoP accepted, for jti once
}

// NewVerifier returns a Verifier of access tokens signed by a key of ks,
// issued by issuer (any issuer if empty), with clock deciding expiry.
func NewVerifier(ks *KeySet, issuer string, clock Clock) *Verifier {
	if clock == nil {
		clock = SystemClock
	}
	return newVerifier(NewCodec(ks, issuer, clock))
}

// NewVerifierFor shares an Issuer's codec: the keys tokend signs with, the
// reloads included.
func NewVerifierFor(c *Codec) *Verifier { return newVerifier(c) }

func newVerifier(c *Codec) *Verifier {
	v := &Verifier{codec: c, stale: make(chan struct{}, 1)}
	v.leeway.Store(int64(DefaultLeeway))
	d, err := dpop.NewVerifier(dpop.Config{Clock: c.clock}) // the defaults: ES256, EdDSA, 60 s
	if err != nil {
		panic(err) // the defaults are valid
	}
	v.proofs.Store(d)
	return v
}

// SetDenylist makes Verify refuse tokens of revoked sessions; safe while
// tokens are verified.
func (v *Verifier) SetDenylist(d Denylist) { v.deny.Store(&d) }

// SetLeeway sets how far a token's nbf may be ahead of the Verifier's
// clock, for clocks behind the issuer's (DefaultLeeway, 60 s, unless set;
// negative is 0). exp takes no leeway: a token is refused once expired.
func (v *Verifier) SetLeeway(d time.Duration) { v.leeway.Store(int64(max(d, 0))) }

// AcceptIssuers makes tokens of former issuers acceptable beside the
// Verifier's own, across an upgrade or a change of issuer: tokend wrote
// iss "tokend" before its iss became the metadata's issuer (RFC 9068
// §2.2). Call it before use.
func (v *Verifier) AcceptIssuers(iss ...string) { v.codec.AcceptIssuers(iss...) }

// SetAudience makes Verify refuse tokens whose aud is not aud, this
// resource server's identifier, as RFC 9068 §4 asks ("": no check). Call
// it before use.
func (v *Verifier) SetAudience(aud string) { v.aud = aud }

// SetKeys replaces the keys in force.
func (v *Verifier) SetKeys(ks *KeySet) { v.codec.SetKeys(ks) }

// Keys returns the keys in force.
func (v *Verifier) Keys() *KeySet { return v.codec.Keys() }

// Verify checks an access token: size, header, signature, typ at+jwt,
// issuer, nbf (with the leeway of SetLeeway) and exp, then the denylist. It fills cl and returns an error
// wrapping ErrMalformed, ErrInvalid, ErrExpired or ErrRevoked; a denylist
// that could not answer is an error too (fail closed).
func (v *Verifier) Verify(ctx context.Context, token []byte, cl *Claims) error {
	if err := v.codec.parseAt(token, Access, v.codec.clock.Now(), time.Duration(v.leeway.Load()), cl, nil); err != nil {
		if errors.Is(err, errUnknownKID) {
			select { // wake the JWKS follower, if any; never wait for it
			case v.stale <- struct{}{}:
			default:
			}
		}
		return err
	}
	if v.aud != "" && string(cl.Audience) != v.aud {
		return fmt.Errorf("%w: aud %q is not this resource server's", ErrInvalid, cl.Audience)
	}
	deny := v.deny.Load()
	if deny == nil || *deny == nil {
		return nil
	}
	_, revoked, err := (*deny).Check(ctx, cl.Session)
	if err != nil {
		return fmt.Errorf("tokens: denylist: %w", err)
	}
	if revoked {
		return fmt.Errorf("%w: session %s", ErrRevoked, cl.Session)
	}
	return nil
}

// LoadVerificationKeys reads a JWKS file for a Verifier (public keys,
// private keys or HMAC secrets; see ParseVerificationKeys).
func LoadVerificationKeys(path string) (*KeySet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ks, err := ParseVerificationKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ks, nil
}

// FetchJWKS gets and parses a JWKS document (tokend's
// /.well-known/jwks.json).
func FetchJWKS(ctx context.Context, client *http.Client, url string) (*KeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks %s: status %d", url, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", url, err)
	}
	ks, err := ParseVerificationKeys(b)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", url, err)
	}
	return ks, nil
}

// JWKSFollower keeps a Verifier's keys equal to a JWKS URL's: parsed once
// per fetch, fetched every Every, and again (at most once per MinWait) when
// a token names a kid the Verifier does not know, as after a key rotation.
type JWKSFollower struct {
	URL     string
	Client  *http.Client  // default: 10s timeout
	Every   time.Duration // default 15m
	MinWait time.Duration // default 10s
	Logger  *slog.Logger

	fetches atomic.Int64
}

// Follow fetches the keys once (an error here is returned: the Verifier
// has nothing to verify with), then keeps them fresh in the background
// until ctx ends. A failed refresh keeps the keys in force.
func (f *JWKSFollower) Follow(ctx context.Context, v *Verifier) error {
	if f.Client == nil {
		f.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if f.Every <= 0 {
		f.Every = 15 * time.Minute
	}
	if f.MinWait <= 0 {
		f.MinWait = 10 * time.Second
	}
	if f.Logger == nil {
		f.Logger = slog.New(slog.DiscardHandler)
	}
	if err := f.fetch(ctx, v); err != nil {
		return err
	}
	go func() {
		tick := time.NewTicker(f.Every)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case <-v.stale:
				if wait := f.MinWait - time.Since(last); wait > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
				}
			}
			last = time.Now()
			if err := f.fetch(ctx, v); err != nil && ctx.Err() == nil {
				f.Logger.Warn("JWKS refresh failed; keeping the keys in force", "err", err)
			}
		}
	}()
	return nil
}

// Fetches reports how many times the JWKS was fetched.
func (f *JWKSFollower) Fetches() int64 { return f.fetches.Load() }

func (f *JWKSFollower) fetch(ctx context.Context, v *Verifier) error {
	f.fetches.Add(1)
	ks, err := FetchJWKS(ctx, f.Client, f.URL)
	if err != nil {
		return err
	}
	v.SetKeys(ks)
	return nil
}
