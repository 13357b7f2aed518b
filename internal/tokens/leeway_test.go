package tokens

import (
	"context"
	"errors"
	"testing"
	"time"
)

// tokend sets nbf = iat, its clock's second truncated: a checker whose
// clock is a little behind the issuer's must still accept a fresh token.
// Issue 25, item 13: a Verifier 100 ms behind refused it (ErrInvalid).
func TestNotBeforeLeeway(t *testing.T) {
	ks := testKeys(t, "es256-1")
	at := now.Add(50 * time.Millisecond) // the issuer's clock: nbf = now
	signer := NewCodec(ks, "", fixedClock(at))
	fresh := mint(t, signer, Access, claimsAt(at))
	ahead := func(d time.Duration) []byte { return mint(t, signer, Access, claimsAt(now.Add(d))) }
	dflt := time.Duration(-1 << 63) // the Verifier's default: no SetLeeway
	for _, tc := range []struct {
		name   string
		leeway time.Duration // SetLeeway's argument, or dflt
		behind time.Duration // the checker's clock behind the issuer's
		token  []byte
		want   error
	}{
		{"in step", dflt, 0, fresh, nil},
		{"100 ms behind", dflt, 100 * time.Millisecond, fresh, nil},
		{"2 s behind", dflt, 2 * time.Second, fresh, nil},
		{"nbf 59 s ahead", dflt, 0, ahead(59 * time.Second), nil},
		{"nbf 2 min ahead", dflt, 0, ahead(2 * time.Minute), ErrInvalid},
		{"expired 1 s ago: exp takes no leeway", dflt, 0, mint(t, signer, Access, claimsAt(now.Add(-30*time.Minute-time.Second))), ErrExpired},
		{"leeway 0, in step", 0, 0, fresh, nil},
		{"leeway 0, 100 ms behind", 0, 100 * time.Millisecond, fresh, ErrInvalid},
		{"leeway -1 s is 0", -time.Second, 100 * time.Millisecond, fresh, ErrInvalid},
		{"leeway 5 min, nbf 2 min ahead", 5 * time.Minute, 0, ahead(2 * time.Minute), nil},
		{"leeway 5 min, nbf 6 min ahead", 5 * time.Minute, 0, ahead(6 * time.Minute), ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVerifier(publicHalf(t, ks), "", fixedClock(at.Add(-tc.behind)))
			if tc.leeway != dflt {
				v.SetLeeway(tc.leeway)
			}
			err := v.Verify(context.Background(), tc.token, &Claims{})
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v; want %v", err, tc.want)
			}
		})
	}
}

// An aspnet refresh presents its Token to tokend, which checks it: an
// instance whose clock is 100 ms behind the one that issued the Token
// refused it (issue 25, item 13: invalid_token).
func TestIssuerAccessTokenNotBeforeLeeway(t *testing.T) {
	is, _ := newAspnetIssuer(t)
	clock := is.codec.clock.(*movingClock)
	ctx := context.Background()
	var p Pair
	clock.t = now.Add(50 * time.Millisecond)
	if err := is.Start(ctx, "alice", &p); err != nil {
		t.Fatal(err)
	}
	access, refresh := append([]byte(nil), p.Access...), append([]byte(nil), p.Refresh...)
	clock.t = now.Add(-50 * time.Millisecond) // another instance, 100 ms behind
	if err := is.Refresh(ctx, refresh, access, &p); err != nil {
		t.Fatalf("refresh 100 ms behind the issuing clock: %v", err)
	}
}
