package tokens

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

const testSID = "AAECAwQFBgcICQoLDA0ODw" // base64url of bytes 0..15

func opaqueFixture(t *testing.T) (Opaque, *movingClock) {
	t.Helper()
	ks, err := HMACKeySet([]byte(strings.Repeat("s", 64)), "HS512")
	if err != nil {
		t.Fatal(err)
	}
	clock := &movingClock{now}
	return Opaque{Codec: NewCodec(ks, "", clock)}, clock
}

func mintOpaque(t *testing.T, o Opaque, sid string, gen int64, exp time.Time) []byte {
	t.Helper()
	tok, err := o.AppendRefresh(nil, &Claims{Session: sid, Gen: gen, Expires: exp.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestOpaqueRoundTrip(t *testing.T) {
	o, _ := opaqueFixture(t)
	exp := now.Add(720 * time.Hour)
	tok := mintOpaque(t, o, testSID, 41, exp)
	if len(tok) != OpaqueLen || !bytes.HasSuffix(tok, []byte("==")) {
		t.Fatalf("token %q: want %d characters of padded standard base64", tok, OpaqueLen)
	}
	raw, err := base64.StdEncoding.DecodeString(string(tok))
	if err != nil || len(raw) != OpaqueSize {
		t.Fatalf("decodes to %d bytes, %v", len(raw), err)
	}
	var cl Claims
	if err := o.ParseRefresh(tok, o.Codec.Clock().Now(), &cl); err != nil {
		t.Fatal(err)
	}
	if cl.Session != testSID || cl.Gen != 41 || cl.Expires != exp.Unix() || cl.Subject != "" {
		t.Fatalf("claims %+v", cl)
	}
	if again := mintOpaque(t, o, testSID, 41, exp); !bytes.Equal(again, tok) {
		t.Fatal("equal inputs must give the equal token (retries hand back the same one)")
	}
	if other := mintOpaque(t, o, testSID, 42, exp); bytes.Equal(other, tok) {
		t.Fatal("another generation gave the same token")
	}
}

func TestOpaqueRejects(t *testing.T) {
	o, clock := opaqueFixture(t)
	good := mintOpaque(t, o, testSID, 3, now.Add(time.Hour))
	raw, _ := base64.StdEncoding.DecodeString(string(good))
	reencode := func(f func(b []byte)) []byte {
		b := append([]byte(nil), raw...)
		f(b)
		return []byte(base64.StdEncoding.EncodeToString(b))
	}
	other, _ := opaqueFixture(t)
	otherKeys, _ := NewMACKeys([]byte(strings.Repeat("k", 32)))
	other.Fixed = otherKeys
	// the character before "==" carries 2 bits of data and 4 zero bits: set one
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	nonCanonical := append([]byte(nil), good...)
	nonCanonical[OpaqueLen-3] = alphabet[strings.IndexByte(alphabet, good[OpaqueLen-3])|1]

	tests := []struct {
		name  string
		token []byte
		want  error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", good[:OpaqueLen-4], ErrMalformed},
		{"one character more", append(append([]byte(nil), good...), 'A'), ErrMalformed},
		{"unpadded", []byte(base64.RawStdEncoding.EncodeToString(raw) + "AA"), ErrMalformed},
		{"url alphabet", []byte(base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 64))), ErrMalformed},
		{"newline inside", append(append(append([]byte(nil), good[:40]...), '\n'), good[41:]...), ErrMalformed},
		{"non-zero padding bits", nonCanonical, ErrMalformed},
		{"65 bytes", []byte(base64.StdEncoding.EncodeToString(append(raw, 0))), ErrMalformed},
		{"version 2", reencode(func(b []byte) { b[0] = 2 }), ErrMalformed},
		{"unknown key tag", reencode(func(b []byte) { b[1] ^= 1 }), ErrInvalid},
		{"session id flipped", reencode(func(b []byte) { b[10] ^= 0x80 }), ErrInvalid},
		{"generation raised", reencode(func(b []byte) { b[23]++ }), ErrInvalid},
		{"expiry extended", reencode(func(b []byte) { b[24] = 0x7f }), ErrInvalid},
		{"MAC flipped", reencode(func(b []byte) { b[63] ^= 1 }), ErrInvalid},
		{"MAC zeroed", reencode(func(b []byte) { clear(b[32:]) }), ErrInvalid},
		{"another key's token", mintOpaque(t, other, testSID, 3, now.Add(time.Hour)), ErrInvalid},
		{"a JWT", []byte("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cl Claims
			if err := o.ParseRefresh(tc.token, o.Codec.Clock().Now(), &cl); !errors.Is(err, tc.want) {
				t.Fatalf("ParseRefresh = %v; want %v", err, tc.want)
			}
		})
	}

	t.Run("every single bit flip", func(t *testing.T) {
		for i := range OpaqueSize * 8 {
			tok := reencode(func(b []byte) { b[i/8] ^= 1 << (i % 8) })
			var cl Claims
			if err := o.ParseRefresh(tok, o.Codec.Clock().Now(), &cl); err == nil {
				t.Fatalf("bit %d flipped: accepted", i)
			}
		}
	})
	t.Run("expired", func(t *testing.T) {
		clock.t = now.Add(time.Hour)
		defer func() { clock.t = now }()
		var cl Claims
		if err := o.ParseRefresh(good, o.Codec.Clock().Now(), &cl); !errors.Is(err, ErrExpired) || cl.Session != testSID {
			t.Fatalf("ParseRefresh = %v, %+v; want ErrExpired with the claims", err, cl)
		}
	})
}

func TestOpaqueAppendRefuses(t *testing.T) {
	o, _ := opaqueFixture(t)
	for _, cl := range []Claims{
		{Session: "legacy-abc", Gen: 0},
		{Session: testSID + "A", Gen: 0},
		{Session: "AAECAwQFBgcICQoLDA0OD_", Gen: 0}, // non-canonical last character
		{Session: testSID, Gen: -1},
		{Session: testSID, Gen: 1 << 32},
	} {
		if tok, err := o.AppendRefresh(nil, &cl); err == nil {
			t.Errorf("AppendRefresh(%+v) = %q; want an error", cl, tok)
		}
	}
}

// Keys derived from a key set follow it: a rotation keeps tokens of the keys
// still in the set, a removed key's tokens stop verifying.
func TestOpaqueKeyRotation(t *testing.T) {
	jwks, err := os.ReadFile("testdata/keys.jwks")
	if err != nil {
		t.Fatal(err)
	}
	ks1, err := ParseJWKS(jwks, "ed-1")
	if err != nil {
		t.Fatal(err)
	}
	o := Opaque{Codec: NewCodec(ks1, "", &movingClock{now})}
	old := mintOpaque(t, o, testSID, 1, now.Add(time.Hour))

	ks2, err := ParseJWKS(jwks, "hs512-1")
	if err != nil {
		t.Fatal(err)
	}
	o.Codec.SetKeys(ks2)
	fresh := mintOpaque(t, o, testSID, 1, now.Add(time.Hour))
	if bytes.Equal(old, fresh) {
		t.Fatal("a new signing key must make new MACs")
	}
	var cl Claims
	for _, tok := range [][]byte{old, fresh} {
		if err := o.ParseRefresh(tok, o.Codec.Clock().Now(), &cl); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
	}
	hmacOnly, err := HMACKeySet([]byte(strings.Repeat("s", 64)), "HS512")
	if err != nil {
		t.Fatal(err)
	}
	o.Codec.SetKeys(hmacOnly)
	if err := o.ParseRefresh(old, o.Codec.Clock().Now(), &cl); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token of a removed key: %v; want ErrInvalid", err)
	}

	// a fixed ring (TOKEND_REFRESH_KEY) ignores the key set
	fixed, err := NewMACKeys([]byte(strings.Repeat("n", 32)), []byte(strings.Repeat("o", 40)))
	if err != nil {
		t.Fatal(err)
	}
	oldRing, _ := NewMACKeys([]byte(strings.Repeat("o", 40)))
	byOld := mintOpaque(t, Opaque{Codec: o.Codec, Fixed: oldRing}, testSID, 1, now.Add(time.Hour))
	f := Opaque{Codec: o.Codec, Fixed: fixed}
	if err := f.ParseRefresh(byOld, f.Codec.Clock().Now(), &cl); err != nil {
		t.Fatalf("second key of the ring: %v", err)
	}
	if err := f.ParseRefresh(fresh, f.Codec.Clock().Now(), &cl); !errors.Is(err, ErrInvalid) {
		t.Fatalf("derived-key token under a fixed ring: %v; want ErrInvalid", err)
	}
	if _, err := NewMACKeys([]byte("short")); err == nil {
		t.Fatal("a 5-byte refresh key was accepted")
	}
	if _, err := NewMACKeys([]byte(strings.Repeat("n", 32)), []byte(strings.Repeat("n", 32))); err == nil {
		t.Fatal("a duplicate refresh key was accepted")
	}
}

// countingStore is a real memory store that counts the calls reaching it.
type countingStore struct {
	session.Store
	calls atomic.Int64
}

func (c *countingStore) Rotate(ctx context.Context, st session.Step) (session.Rotation, error) {
	c.calls.Add(1)
	return c.Store.Rotate(ctx, st)
}

func (c *countingStore) Revoke(ctx context.Context, id string) error {
	c.calls.Add(1)
	return c.Store.Revoke(ctx, id)
}

// Random tokens of the right shape never cost a store round trip.
func TestOpaqueRandomTokensNeverReachTheStore(t *testing.T) {
	is, store := newAspnetIssuer(t)
	ctx := context.Background()
	var p Pair
	if err := is.Start(ctx, "alice", &p); err != nil {
		t.Fatal(err)
	}
	access := append([]byte(nil), p.Access...)
	raw := make([]byte, OpaqueSize)
	tok := make([]byte, OpaqueLen)
	for i := range 10000 {
		rand.Read(raw)
		if i%2 == 0 {
			raw[0] = opaqueVersion // get past the version byte half the time
		}
		base64.StdEncoding.Encode(tok, raw)
		err := is.Refresh(ctx, tok, access, &p)
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("random token %d: %v; want ErrInvalid or ErrMalformed", i, err)
		}
		if err := is.Revoke(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.calls.Load(); n != 0 {
		t.Fatalf("%d store calls for 10,000 random tokens; want 0", n)
	}
}

func newAspnetIssuer(t *testing.T) (*Issuer, *countingStore) {
	t.Helper()
	ks, err := HMACKeySet([]byte(strings.Repeat("s", 64)), "HS512")
	if err != nil {
		t.Fatal(err)
	}
	codec := NewCodec(ks, "", &movingClock{now})
	store := &countingStore{Store: session.NewMemory(0)}
	cfg := Config{AccessTTL: 30 * time.Minute, RefreshTTL: 720 * time.Hour, SessionMax: 2160 * time.Hour, Grace: 10 * time.Second, NameID: true}
	return NewIssuer(codec, Opaque{Codec: codec}, store, cfg), store
}

func TestIssuerWithAccessToken(t *testing.T) {
	is, _ := newAspnetIssuer(t)
	clock := is.codec.clock.(*movingClock)
	ctx := context.Background()
	var alice, bob, p Pair
	if err := is.Start(ctx, "alice", &alice); err != nil {
		t.Fatal(err)
	}
	if err := is.Start(ctx, "bob", &bob); err != nil {
		t.Fatal(err)
	}
	var cl Claims
	if err := is.codec.Parse(alice.Access, Access, &cl); err != nil || cl.NameID != "alice" || cl.Subject != "alice" {
		t.Fatalf("access claims %+v, %v; want nameid = sub = alice", cl, err)
	}
	// another user's refresh token: refused, and bob's session is untouched
	if err := is.Refresh(ctx, bob.Refresh, alice.Access, &p); !errors.Is(err, session.ErrNotOwner) {
		t.Fatalf("bob's refresh token with alice's access token: %v; want ErrNotOwner", err)
	}
	// the access token expired long ago: that is why it is refreshed
	clock.t = now.Add(2 * time.Hour)
	if err := is.Refresh(ctx, bob.Refresh, bob.Access, &p); err != nil || p.Session.Gen != 1 {
		t.Fatalf("refresh with an expired access token: %v, gen %d", err, p.Session.Gen)
	}
	// a refresh token where the access token belongs
	for _, bad := range [][]byte{alice.Refresh, []byte("x.y.z"), p.Refresh, {}} {
		err := is.Refresh(ctx, alice.Refresh, bad, &p)
		if !errors.Is(err, ErrAccessToken) {
			t.Fatalf("access token %q: %v; want ErrAccessToken", bad, err)
		}
	}
}
