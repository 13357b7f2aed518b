package tokens

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

// fixedDenylist denies the sessions it holds.
type fixedDenylist map[string]bool

func (d fixedDenylist) Check(_ context.Context, sid string) (session.Revocation, bool, error) {
	return session.Revocation{ID: sid}, d[sid], nil
}

// brokenDenylist cannot answer.
type brokenDenylist struct{}

func (brokenDenylist) Check(context.Context, string) (session.Revocation, bool, error) {
	return session.Revocation{}, false, session.ErrUnavailable
}

// publicHalf is what a resource server gets: the published JWKS.
func publicHalf(t *testing.T, ks *KeySet) *KeySet {
	t.Helper()
	pub, err := ParseVerificationKeys(ks.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestVerifier(t *testing.T) {
	ks := testKeys(t, "es256-1")
	signer := NewCodec(ks, "https://tokend.test", fixedClock(now))
	v := NewVerifier(publicHalf(t, ks), "https://tokend.test", fixedClock(now))
	v.SetDenylist(fixedDenylist{"revoked-sid": true})
	revoked := claimsAt(now)
	revoked.Session = "revoked-sid"
	foreign := claimsAt(now)
	foreign.Issuer = "https://elsewhere.test"
	cases := []struct {
		name  string
		token []byte
		want  error
	}{
		{"valid", mint(t, signer, Access, claimsAt(now)), nil},
		{"expired", mint(t, signer, Access, claimsAt(now.Add(-time.Hour))), ErrExpired},
		{"not yet valid", mint(t, signer, Access, claimsAt(now.Add(time.Hour))), ErrInvalid},
		{"refresh token", mint(t, signer, Refresh, claimsAt(now)), ErrInvalid},
		{"other issuer", mint(t, signer, Access, foreign), ErrInvalid},
		{"revoked session", mint(t, signer, Access, revoked), ErrRevoked},
		{"garbage", []byte("not.a.jwt"), ErrMalformed},
		{"too large", make([]byte, MaxTokenSize), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cl Claims
			err := v.Verify(context.Background(), tc.token, &cl)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v; want %v", err, tc.want)
			}
			if tc.want == nil && (cl.Subject != "alice" || cl.Session != "sid1") {
				t.Fatalf("claims %+v", cl)
			}
		})
	}
	t.Run("public keys cannot sign", func(t *testing.T) {
		if _, err := v.Keys().Signing().appendSignature(nil, []byte("x"), noPrefix); err == nil {
			t.Fatal("a public key signed")
		}
	})
	t.Run("denylist down fails closed", func(t *testing.T) {
		v := NewVerifier(publicHalf(t, ks), "", fixedClock(now))
		v.SetDenylist(brokenDenylist{})
		if err := v.Verify(context.Background(), mint(t, signer, Access, claimsAt(now)), &Claims{}); err == nil {
			t.Fatal("a token was accepted while the denylist could not answer")
		}
	})
	t.Run("no keys yet", func(t *testing.T) {
		v := NewVerifier(nil, "", fixedClock(now))
		if err := v.Verify(context.Background(), mint(t, signer, Access, claimsAt(now)), &Claims{}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Verify with no keys = %v; want ErrInvalid", err)
		}
	})
}

// A Verifier following a JWKS URL learns a rotated-in key when a token
// first names it, and forgets a key the JWKS dropped.
func TestJWKSFollower(t *testing.T) {
	oldKeys := testKeys(t, "es256-1")
	pick := func(signing string, kids ...string) *KeySet {
		var keys []*Key
		for _, kid := range kids {
			k, _ := oldKeys.Lookup(kid)
			keys = append(keys, k)
		}
		ks, err := newKeySet(keys, signing)
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	only := func(kid string) *KeySet { return pick(kid, kid) }
	both := pick("ed-1", "es256-1", "ed-1")
	var published atomic.Pointer[[]byte]
	set := func(ks *KeySet) { b := ks.JWKS(); published.Store(&b) }
	set(only("es256-1"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(*published.Load())
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := NewVerifier(nil, "", fixedClock(now))
	f := &JWKSFollower{URL: srv.URL, Every: time.Hour, MinWait: time.Millisecond}
	if err := f.Follow(ctx, v); err != nil {
		t.Fatal(err)
	}
	verify := func(c *Codec) error { return v.Verify(ctx, mint(t, c, Access, claimsAt(now)), &Claims{}) }
	if err := verify(NewCodec(only("es256-1"), "", fixedClock(now))); err != nil {
		t.Fatalf("token of the published key: %v", err)
	}
	// rotation: the JWKS now has both; tokens of the new key
	set(both)
	newSigner := NewCodec(both, "", fixedClock(now))
	if err := verify(newSigner); !errors.Is(err, ErrInvalid) {
		t.Fatalf("first token of an unknown kid: %v; want ErrInvalid (and a refetch)", err)
	}
	waitFor(t, func() bool { return verify(newSigner) == nil })
	// the old key leaves the JWKS; after the next fetch its tokens fail
	set(only("ed-1"))
	v.stale <- struct{}{}
	waitFor(t, func() bool { return errors.Is(verify(NewCodec(only("es256-1"), "", fixedClock(now))), ErrInvalid) })
	if f.Fetches() < 3 {
		t.Fatalf("%d fetches; want at least 3", f.Fetches())
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
