package tokens

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/dpop"
	"github.com/tokend/tokend/internal/tokens/dpop/prover"
)

// RFC 9449 §7 at a resource server: a DPoP-bound access token is accepted
// with a proof by its key for this request and this token, once; never as
// a Bearer token.
func TestVerifyDPoP(t *testing.T) {
	is, clock, ks := newIssuer(t, false)
	device, err := prover.New("ES256")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := prover.New("EdDSA")
	ctx := context.Background()
	var bound, plain Pair
	if err := is.StartGrant(ctx, "alice", Grant{Client: "app", Key: device.Thumbprint()}, &bound); err != nil {
		t.Fatal(err)
	}
	if err := is.Start(ctx, "bob", &plain); err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(ks, "", clock) // HMAC: the resource server holds the secret
	const api = "https://api.example.com/orders"
	token := string(bound.Access)
	proof := func(k *prover.Key, o prover.Options) []byte {
		if o.IssuedAt.IsZero() {
			o.IssuedAt = clock.Now()
		}
		if o.AccessToken == "" {
			o.AccessToken = token
		}
		p, err := k.Proof("GET", api, o)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(p)
	}
	var cl Claims
	good := proof(device, prover.Options{})
	if err := v.VerifyDPoP(ctx, bound.Access, good, "GET", api, &cl); err != nil {
		t.Fatalf("a valid proof: %v", err)
	}
	if cl.Confirmation.JKT != device.Thumbprint() || cl.ClientID != "app" {
		t.Fatalf("claims %+v", cl)
	}
	for _, tc := range []struct {
		name   string
		token  []byte
		proof  []byte
		method string
		want   error
	}{
		{"the same proof again", bound.Access, good, "GET", ErrProofReplay},
		{"another key", bound.Access, proof(other, prover.Options{}), "GET", dpop.ErrWrongKey},
		{"a proof for another token", bound.Access, proof(device, prover.Options{AccessToken: string(plain.Access)}), "GET", dpop.ErrInvalidProof},
		{"no ath", bound.Access, proof(device, prover.Options{Edit: func(h, c map[string]any) { delete(c, "ath") }}), "GET", dpop.ErrInvalidProof},
		{"another method", bound.Access, proof(device, prover.Options{}), "POST", dpop.ErrInvalidProof},
		{"stale", bound.Access, proof(device, prover.Options{IssuedAt: clock.Now().Add(-2 * time.Minute)}), "GET", dpop.ErrInvalidProof},
		{"no proof", bound.Access, nil, "GET", dpop.ErrInvalidProof},
		{"a Bearer token with the DPoP scheme", plain.Access, proof(device, prover.Options{AccessToken: string(plain.Access)}), "GET", ErrNotBound},
		{"a forged token", append([]byte(token[:len(token)-4]), "AAAA"...), good, "GET", ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := v.VerifyDPoP(ctx, tc.token, tc.proof, tc.method, api, &cl); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
		})
	}
	if err := v.VerifyDPoP(ctx, bound.Access, proof(device, prover.Options{}), "GET", "https://API.example.com:443/orders?page=2", &cl); err != nil {
		t.Fatalf("the same URL spelled otherwise: %v", err)
	}
	if err := v.VerifyBearer(ctx, bound.Access, &cl); !errors.Is(err, ErrBound) {
		t.Fatalf("a bound token as Bearer: %v; want ErrBound", err)
	}
	if err := v.VerifyBearer(ctx, plain.Access, &cl); err != nil {
		t.Fatalf("a Bearer token: %v", err)
	}
	// a proof is remembered for twice the window, then forgotten
	clock.t = clock.t.Add(30 * time.Second)
	if err := v.VerifyDPoP(ctx, bound.Access, good, "GET", api, &cl); err == nil {
		t.Fatal("a proof replayed 30 s later accepted")
	}
}
