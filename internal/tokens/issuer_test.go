package tokens

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

type movingClock struct{ t time.Time }

func (c *movingClock) Now() time.Time { return c.t }

func newIssuer(t *testing.T, legacy bool) (*Issuer, *movingClock, *KeySet) {
	t.Helper()
	ks, err := HMACKeySet([]byte("0123456789abcdef0123456789abcdef"), "HS256")
	if err != nil {
		t.Fatal(err)
	}
	clock := &movingClock{now}
	codec := NewCodec(ks, "", clock)
	store := session.NewMemory(0)
	cfg := Config{AccessTTL: 30 * time.Minute, RefreshTTL: 720 * time.Hour, SessionMax: 2160 * time.Hour, Grace: 10 * time.Second, Legacy: legacy}
	return NewIssuer(codec, JWTRefresh{Codec: codec, Legacy: legacy}, store, cfg), clock, ks
}

func TestIssuerRotation(t *testing.T) {
	is, clock, _ := newIssuer(t, false)
	ctx := context.Background()
	var first, second, retry Pair
	if err := is.Start(ctx, "alice", &first); err != nil {
		t.Fatal(err)
	}
	if first.AccessExpiresIn != 30*time.Minute || first.RefreshExpiresIn != 720*time.Hour {
		t.Fatalf("lifetimes %v, %v", first.AccessExpiresIn, first.RefreshExpiresIn)
	}
	clock.t = clock.t.Add(time.Minute)
	if err := is.Refresh(ctx, first.Refresh, nil, &second); err != nil || second.Retry || second.Session.Gen != 1 {
		t.Fatalf("Refresh = %v, %+v", err, second.Session)
	}
	// the answer was lost; the client retries 3s later with the same token
	clock.t = clock.t.Add(3 * time.Second)
	if err := is.Refresh(ctx, first.Refresh, nil, &retry); err != nil || !retry.Retry {
		t.Fatalf("retry = %v, retry=%v", err, retry.Retry)
	}
	if !bytes.Equal(retry.Access, second.Access) || !bytes.Equal(retry.Refresh, second.Refresh) {
		t.Fatal("a retry inside the grace window must hand back the same pair")
	}
	// the same tokens, 3 s older: their lifetimes are announced as they are
	if second.AccessExpiresIn != 30*time.Minute || retry.AccessExpiresIn != 30*time.Minute-3*time.Second ||
		retry.RefreshExpiresIn != second.RefreshExpiresIn-3*time.Second {
		t.Fatalf("retry 3 s after the rotation announces %v and %v; the rotation announced %v and %v",
			retry.AccessExpiresIn, retry.RefreshExpiresIn, second.AccessExpiresIn, second.RefreshExpiresIn)
	}
	// an access token is never a refresh token
	if err := is.Refresh(ctx, second.Access, nil, &retry); !errors.Is(err, ErrInvalid) {
		t.Fatalf("access token as refresh token: %v", err)
	}
	clock.t = clock.t.Add(10 * time.Second)
	if err := is.Refresh(ctx, first.Refresh, nil, &retry); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("replay after grace: %v; want ErrReuse", err)
	}
	if err := is.Refresh(ctx, second.Refresh, nil, &retry); !errors.Is(err, session.ErrRevoked) {
		t.Fatalf("newest token after reuse: %v; want ErrRevoked", err)
	}
}

func TestIssuerLegacyOnce(t *testing.T) {
	is, clock, ks := newIssuer(t, true)
	ctx := context.Background()
	legacy := forge(t, ks.Signing(), `{"alg":"HS256"}`, `{"sub":"7f36a89d","iat":`+itoa(now.Unix())+`,"exp":`+itoa(now.Add(time.Hour).Unix())+`}`)
	var p Pair
	if err := is.Refresh(ctx, legacy, nil, &p); err != nil || p.Session.Subject != "7f36a89d" || p.Session.Gen != 0 {
		t.Fatalf("legacy refresh = %v, %+v", err, p.Session)
	}
	next := append([]byte(nil), p.Refresh...)
	if err := is.Refresh(ctx, next, nil, &p); err != nil || p.Session.Gen != 1 {
		t.Fatalf("refresh of the adopted session = %v, %+v", err, p.Session)
	}
	clock.t = clock.t.Add(time.Minute)
	if err := is.Refresh(ctx, legacy, nil, &p); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("legacy token again: %v; want ErrReuse", err)
	}

	expired := forge(t, ks.Signing(), `{"alg":"HS256"}`, `{"sub":"x","iat":1,"exp":`+itoa(now.Add(-time.Hour).Unix())+`}`)
	if err := is.Refresh(ctx, expired, nil, &p); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired legacy token: %v; want ErrExpired", err)
	}
	off, _, _ := newIssuer(t, false)
	if err := off.Refresh(ctx, legacy, nil, &p); !errors.Is(err, ErrInvalid) {
		t.Fatalf("legacy token with legacy off: %v; want ErrInvalid", err)
	}
}

func TestIssuerRevoke(t *testing.T) {
	is, _, _ := newIssuer(t, false)
	ctx := context.Background()
	var p Pair
	if err := is.Start(ctx, "alice", &p); err != nil {
		t.Fatal(err)
	}
	tok := append([]byte(nil), p.Refresh...)
	for _, junk := range [][]byte{nil, []byte("x.y.z"), p.Access} {
		if err := is.Revoke(ctx, junk); err != nil {
			t.Fatalf("Revoke(junk): %v", err)
		}
	}
	if err := is.Revoke(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := is.Refresh(ctx, tok, nil, &p); !errors.Is(err, session.ErrRevoked) {
		t.Fatalf("refresh after revoke: %v", err)
	}
}

// A replay of a revoked session's refresh token is refused by the denylist
// with the store's own answer and no rotation reaching the store.
func TestIssuerDenylist(t *testing.T) {
	is, _, _ := newIssuer(t, false)
	store := &countingStore{Store: is.store}
	is.store = store
	ctx := context.Background()
	var p, next Pair
	if err := is.Start(ctx, "alice", &p); err != nil {
		t.Fatal(err)
	}
	is.SetDenylist(fixedDenylistOf{p.Session.ID: {ID: p.Session.ID, Subject: "alice"}})
	for range 100 {
		if err := is.Refresh(ctx, p.Refresh, nil, &next); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("refresh of a denied session: %v; want ErrRevoked", err)
		}
	}
	if store.calls.Load() != 0 {
		t.Fatalf("%d rotations reached the store; want 0", store.calls.Load())
	}
	is.SetDenylist(fixedDenylistOf{p.Session.ID: {ID: p.Session.ID, Subject: "alice", Deleted: true}})
	if err := is.Refresh(ctx, p.Refresh, nil, &next); !errors.Is(err, session.ErrDeleted) {
		t.Fatalf("refresh of a deleted subject's session: %v; want ErrDeleted", err)
	}
	// a session whose record the denylist found gone: the store answers (a
	// legacy token's session is adopted where no record is)
	is.SetDenylist(fixedDenylistOf{p.Session.ID: {ID: p.Session.ID, Gone: true}})
	if err := is.Refresh(ctx, p.Refresh, nil, &next); err != nil || store.calls.Load() != 1 {
		t.Fatalf("refresh of a session the denylist found gone: %v, %d rotations; want the store to decide", err, store.calls.Load())
	}
	is.SetDenylist(fixedDenylistOf{})
	if err := is.Refresh(ctx, append([]byte(nil), next.Refresh...), nil, &next); err != nil || store.calls.Load() != 2 {
		t.Fatalf("refresh of a session not denied: %v, %d rotations; want it to reach the store", err, store.calls.Load())
	}
}

type fixedDenylistOf map[string]session.Revocation

func (d fixedDenylistOf) Check(_ context.Context, sid string) (session.Revocation, bool, error) {
	r, ok := d[sid]
	return r, ok, nil
}

// An access token never outlives its session: its exp is the rotation's
// time plus AccessTTL, capped at the session's absolute end, as the
// refresh token's and the record's are. Past the end it is refused even
// where the record is gone and no denylist remembers the session.
func TestIssuerAccessCappedAtSessionEnd(t *testing.T) {
	const accessTTL, sessionMax = 30 * time.Minute, 2 * time.Hour
	for _, tc := range []struct {
		name    string
		refresh time.Duration // after the start; 0: the start's own pair
		max     time.Duration // SessionMax
		want    time.Duration // access token lifetime from its rotation
	}{
		{"start", 0, sessionMax, accessTTL},
		{"start of a session shorter than an access token", 0, 10 * time.Minute, 10 * time.Minute},
		{"refresh well before the end", time.Hour, sessionMax, accessTTL},
		{"refresh exactly one lifetime before the end", sessionMax - accessTTL, sessionMax, accessTTL},
		{"refresh 10 minutes before the end", sessionMax - 10*time.Minute, sessionMax, 10 * time.Minute},
		{"refresh 1 second before the end", sessionMax - time.Second, sessionMax, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is, clock, _ := newIssuer(t, false)
			is.cfg.SessionMax = tc.max
			ctx := context.Background()
			var p Pair
			if err := is.Start(ctx, "alice", &p); err != nil {
				t.Fatal(err)
			}
			end := p.Session.Expires
			if tc.refresh > 0 {
				clock.t = clock.t.Add(tc.refresh)
				if err := is.Refresh(ctx, append([]byte(nil), p.Refresh...), nil, &p); err != nil {
					t.Fatal(err)
				}
			}
			var cl Claims
			if err := is.codec.ParseAt(p.Access, Access, clock.t, &cl); err != nil {
				t.Fatal(err)
			}
			if exp := time.Unix(cl.Expires, 0); exp.After(end) {
				t.Fatalf("access token exp %v is %v past the session's end", exp, exp.Sub(end))
			}
			if got := time.Unix(cl.Expires, 0).Sub(p.Session.Rotated.Truncate(time.Second)); got != tc.want {
				t.Fatalf("access token lives %v from its rotation; want %v", got, tc.want)
			}
			if p.AccessExpiresIn > tc.want || p.AccessExpiresIn < tc.want-time.Second {
				t.Fatalf("AccessExpiresIn %v; want the token's own, about %v", p.AccessExpiresIn, tc.want)
			}
			if err := is.codec.ParseAt(p.Access, Access, end, &cl); !errors.Is(err, ErrExpired) {
				t.Fatalf("the access token at the session's end: %v; want ErrExpired", err)
			}
		})
	}
}

// TestIssuerLegacyRevokeBound: a legacy token adopted with a DPoP proof
// bound its session to the proof's key; the token's logout passes the
// revoking request's proof to the store, which ends the session only with
// a proof by that key (the dialects' revoke, with none, is refused).
func TestIssuerLegacyRevokeBound(t *testing.T) {
	is, clock, ks := newIssuer(t, true)
	ctx := context.Background()
	thumb := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return base64.RawURLEncoding.EncodeToString(sum[:])
	}
	key, other := thumb("device"), thumb("attacker")
	legacy := forge(t, ks.Signing(), `{"alg":"HS256"}`, `{"sub":"7f36a89d","iat":`+itoa(now.Unix())+`,"exp":`+itoa(now.Add(time.Hour).Unix())+`}`)
	var p Pair
	if err := is.RefreshGrant(ctx, legacy, Grant{Key: key, Proof: "adopt", ProofTTL: time.Minute}, &p); err != nil || p.Session.Key != key {
		t.Fatalf("adoption with a proof = %v, %+v; want it bound", err, p.Session)
	}
	clock.t = clock.t.Add(time.Second)
	if err := is.Revoke(ctx, legacy); !errors.Is(err, session.ErrKeyRequired) {
		t.Fatalf("dialect revoke of the bound adopted session: %v; want ErrKeyRequired", err)
	}
	if err := is.RevokeAny(ctx, legacy, Grant{Key: other, Proof: "thief", ProofTTL: time.Minute}); !errors.Is(err, session.ErrWrongKey) {
		t.Fatalf("revoke with another key's proof: %v; want ErrWrongKey", err)
	}
	if err := is.RevokeAny(ctx, legacy, Grant{Key: key, Proof: "logout", ProofTTL: time.Minute}); err != nil {
		t.Fatalf("revoke with a proof by the session's key: %v", err)
	}
	if err := is.RefreshGrant(ctx, legacy, Grant{Key: key, Proof: "again", ProofTTL: time.Minute}, &p); !errors.Is(err, session.ErrRevoked) {
		t.Fatalf("the legacy token after its logout: %v; want ErrRevoked", err)
	}
}
