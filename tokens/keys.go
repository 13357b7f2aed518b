package tokens

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	core "github.com/tokend/tokend/internal/tokens"
)

// KeySet is the set of keys a Verifier checks signatures with: tokend's
// public keys (or, for HMAC tokens, the shared secrets). It never changes;
// a new set replaces it whole (SetKeys, JWKSFollower).
type KeySet struct {
	ks *core.KeySet
}

// KIDs returns the key ids of the set, in the document's order.
func (k *KeySet) KIDs() []string {
	if k == nil || k.ks == nil {
		return nil
	}
	keys := k.ks.Keys()
	ids := make([]string, len(keys))
	for i, key := range keys {
		ids[i] = key.ID
	}
	return ids
}

func wrapKeys(ks *core.KeySet) *KeySet {
	if ks == nil {
		return nil
	}
	return &KeySet{ks: ks}
}

func (k *KeySet) core() *core.KeySet {
	if k == nil {
		return nil
	}
	return k.ks
}

// ParseVerificationKeys reads a JWKS document: the public keys tokend
// publishes at /.well-known/jwks.json, private keys (their public halves
// are used) or shared HMAC secrets. Every key needs a kid and an alg.
func ParseVerificationKeys(data []byte) (*KeySet, error) {
	ks, err := core.ParseVerificationKeys(data)
	return wrapKeys(ks), err
}

// LoadVerificationKeys reads a JWKS file (see ParseVerificationKeys).
func LoadVerificationKeys(path string) (*KeySet, error) {
	ks, err := core.LoadVerificationKeys(path)
	return wrapKeys(ks), err
}

// FetchJWKS gets and parses a JWKS document once, such as tokend's
// /.well-known/jwks.json. JWKSFollower keeps a Verifier's keys current.
func FetchJWKS(ctx context.Context, client *http.Client, url string) (*KeySet, error) {
	ks, err := core.FetchJWKS(ctx, client, url)
	return wrapKeys(ks), err
}

// JWKSFollower keeps a Verifier's keys equal to a JWKS URL's (tokend's
// /.well-known/jwks.json): fetched at start, every Every, and again (at
// most once per MinWait) when a token names a key the Verifier does not
// know, as after a key rotation on tokend.
type JWKSFollower struct {
	URL     string
	Client  *http.Client  // default: a 10 s timeout
	Every   time.Duration // default 15m
	MinWait time.Duration // default 10s
	Logger  *slog.Logger  // a failed refresh is a warning; default: none

	f atomic.Pointer[core.JWKSFollower] // set by Follow, read by Fetches at any time
}

// Follow fetches the keys once and installs them (an error here is
// returned: the Verifier would have nothing to verify with), then keeps
// them fresh in the background until ctx ends. A failed refresh keeps the
// keys in force.
func (f *JWKSFollower) Follow(ctx context.Context, v *Verifier) error {
	c := &core.JWKSFollower{URL: f.URL, Client: f.Client, Every: f.Every, MinWait: f.MinWait, Logger: f.Logger}
	f.f.Store(c)
	return c.Follow(ctx, v.v)
}

// Fetches reports how many times the JWKS was fetched.
func (f *JWKSFollower) Fetches() int64 {
	c := f.f.Load()
	if c == nil {
		return 0
	}
	return c.Fetches()
}
