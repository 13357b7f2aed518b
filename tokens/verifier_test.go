package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	core "github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/dpop/prover"
	"github.com/tokend/tokend/tokens"
)

const issuer = "https://tokend.test"

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func at(t time.Time) tokens.Clock { return tokens.ClockFunc(func() time.Time { return t }) }

// tokend is the issuing side, as tokend's own codec mints: its keys and a
// codec with its clock.
type tokend struct {
	keys  *core.KeySet
	codec *core.Codec
}

func newTokend(t testing.TB) *tokend {
	t.Helper()
	ks, err := core.EphemeralKeySet()
	if err != nil {
		t.Fatal(err)
	}
	return &tokend{keys: ks, codec: core.NewCodec(ks, issuer, at(now))}
}

// public is what a resource server gets: tokend's published JWKS.
func (td *tokend) public(t testing.TB) *tokens.KeySet {
	t.Helper()
	ks, err := tokens.ParseVerificationKeys(td.keys.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// claims are an access token's, issued at iat, valid 30 minutes.
func claims(iat time.Time) *core.Claims {
	return &core.Claims{Issuer: issuer, Subject: "alice", NameID: "alice", Session: "sid1", ID: "sid1.0",
		IssuedAt: iat.Unix(), NotBefore: iat.Unix(), Expires: iat.Add(30 * time.Minute).Unix(),
		Audience: "https://api.test", ClientID: "app", Scope: "read write"}
}

func (td *tokend) mint(t testing.TB, typ core.Type, cl *core.Claims) []byte {
	t.Helper()
	b, err := td.codec.AppendToken(nil, typ, cl)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerify: each check of Verify, over tokens tokend's codec minted, and
// every claim a resource server reads copied out.
func TestVerify(t *testing.T) {
	td := newTokend(t)
	other := newTokend(t)
	edit := func(f func(*core.Claims)) *core.Claims { cl := claims(now); f(cl); return cl }
	cases := []struct {
		name  string
		token []byte
		setup func(*tokens.Verifier)
		want  error
	}{
		{"valid", td.mint(t, core.Access, claims(now)), nil, nil},
		{"expired", td.mint(t, core.Access, claims(now.Add(-time.Hour))), nil, tokens.ErrExpired},
		{"nbf within the leeway", td.mint(t, core.Access, claims(now.Add(30*time.Second))), nil, nil},
		{"nbf past the leeway", td.mint(t, core.Access, claims(now.Add(2*time.Minute))), nil, tokens.ErrInvalid},
		{"nbf past a shorter leeway", td.mint(t, core.Access, claims(now.Add(30*time.Second))),
			func(v *tokens.Verifier) { v.SetLeeway(10 * time.Second) }, tokens.ErrInvalid},
		{"a refresh token", td.mint(t, core.Refresh, claims(now)), nil, tokens.ErrInvalid},
		{"another issuer", td.mint(t, core.Access, edit(func(c *core.Claims) { c.Issuer = "https://elsewhere.test" })), nil, tokens.ErrInvalid},
		{"a former issuer accepted", td.mint(t, core.Access, edit(func(c *core.Claims) { c.Issuer = "tokend" })),
			func(v *tokens.Verifier) { v.AcceptIssuers("tokend") }, nil},
		{"this API's audience", td.mint(t, core.Access, claims(now)),
			func(v *tokens.Verifier) { v.SetAudience("https://api.test") }, nil},
		{"another API's audience", td.mint(t, core.Access, claims(now)),
			func(v *tokens.Verifier) { v.SetAudience("https://orders.test") }, tokens.ErrInvalid},
		{"no audience where one is required", td.mint(t, core.Access, edit(func(c *core.Claims) { c.Audience = "" })),
			func(v *tokens.Verifier) { v.SetAudience("https://api.test") }, tokens.ErrInvalid},
		{"an unknown key", other.mint(t, core.Access, claims(now)), nil, tokens.ErrInvalid},
		{"tampered", tamper(td.mint(t, core.Access, claims(now))), nil, tokens.ErrInvalid},
		{"not a JWT", []byte("not.a.jwt"), nil, tokens.ErrMalformed},
		{"too large", make([]byte, 8<<10), nil, tokens.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := tokens.NewVerifier(td.public(t), issuer, at(now))
			if tc.setup != nil {
				tc.setup(v)
			}
			var cl tokens.Claims
			err := v.Verify(context.Background(), tc.token, &cl)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v; want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			want := claims(now)
			if tc.name == "nbf within the leeway" {
				want = claims(now.Add(30 * time.Second))
			}
			if tc.name == "a former issuer accepted" {
				want.Issuer = "tokend"
			}
			if got := (tokens.Claims{Issuer: cl.Issuer, Subject: cl.Subject, NameID: cl.NameID, Session: cl.Session, ID: cl.ID,
				IssuedAt: cl.IssuedAt, NotBefore: cl.NotBefore, Expires: cl.Expires, Audience: cl.Audience,
				ClientID: cl.ClientID, Scope: cl.Scope, Confirmation: cl.Confirmation}); got != public(want) {
				t.Fatalf("claims %+v; want %+v", got, public(want))
			}
		})
	}
}

// public is the tokens.Claims of c.
func public(c *core.Claims) tokens.Claims {
	return tokens.Claims{Issuer: c.Issuer, Subject: c.Subject, NameID: c.NameID, Session: c.Session, ID: c.ID,
		IssuedAt: c.IssuedAt, NotBefore: c.NotBefore, Expires: c.Expires, Audience: string(c.Audience),
		ClientID: c.ClientID, Scope: c.Scope, Confirmation: tokens.Confirmation{JKT: c.Confirmation.JKT}}
}

// TestClaimsReused: a Claims used again holds nothing of the token before.
func TestClaimsReused(t *testing.T) {
	td := newTokend(t)
	v := tokens.NewVerifier(td.public(t), issuer, at(now))
	bound := claims(now)
	bound.Confirmation.JKT = "thumb"
	var cl tokens.Claims
	if err := v.Verify(context.Background(), td.mint(t, core.Access, bound), &cl); err != nil || cl.Confirmation.JKT != "thumb" {
		t.Fatalf("Verify = %v, %+v", err, cl)
	}
	plain := &core.Claims{Issuer: issuer, Subject: "bob", Session: "sid2", IssuedAt: now.Unix(), Expires: now.Add(time.Minute).Unix()}
	if err := v.Verify(context.Background(), td.mint(t, core.Access, plain), &cl); err != nil {
		t.Fatal(err)
	}
	if cl.Subject != "bob" || cl.Confirmation.JKT != "" || cl.Scope != "" || cl.Audience != "" || cl.NameID != "" {
		t.Fatalf("claims of the second token: %+v", cl)
	}
}

// TestClaimsAfterRefusal: a Claims reused for a token refused before its
// claims were read holds nothing of the token before, so a log (or a
// caller reading cl on error) never names the previous request's user.
func TestClaimsAfterRefusal(t *testing.T) {
	td := newTokend(t)
	for _, tc := range []struct {
		name  string
		token []byte
		keys  bool
	}{
		{"not a JWT", []byte("not.a.jwt"), true},
		{"too large", make([]byte, 8<<10), true},
		{"no segments", []byte("garbage"), true},
		{"bad header", []byte("!!!." + strings.Repeat("A", 10) + ".AA"), true},
		{"no keys yet", td.mint(t, core.Access, claims(now)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tokens.NewVerifier(td.public(t), issuer, at(now))
			var cl tokens.Claims
			if err := v.Verify(context.Background(), td.mint(t, core.Access, claims(now)), &cl); err != nil || cl.Subject != "alice" {
				t.Fatalf("Verify = %v, %+v", err, cl)
			}
			if !tc.keys {
				v.SetKeys(nil)
			}
			if err := v.Verify(context.Background(), tc.token, &cl); err == nil {
				t.Fatal("Verify = nil; want a refusal")
			}
			if cl.Subject != "" || cl.Session != "" || cl.Issuer != "" || cl.Scope != "" || cl.Expires != 0 {
				t.Fatalf("claims after a refusal: %+v; want none (the previous token's user)", cl)
			}
		})
	}
}

// TestVerifyBearerAndDPoP: RFC 9449 §7 at a resource server. A bound token
// is accepted with a proof by its key for this request and token, once,
// and never as Bearer; a Bearer token never as DPoP.
func TestVerifyBearerAndDPoP(t *testing.T) {
	td := newTokend(t)
	device, _ := prover.New("ES256")
	thief, _ := prover.New("ES256")
	edKey, _ := prover.New("EdDSA")
	boundClaims := claims(now)
	boundClaims.Confirmation.JKT = device.Thumbprint()
	bound := td.mint(t, core.Access, boundClaims)
	plain := td.mint(t, core.Access, claims(now))
	edClaims := claims(now)
	edClaims.Confirmation.JKT = edKey.Thumbprint()
	edBound := td.mint(t, core.Access, edClaims)
	const api = "https://api.test/orders"
	proof := func(k *prover.Key, method, url string, token []byte, iat time.Time) []byte {
		p, err := k.Proof(method, url, prover.Options{AccessToken: string(token), IssuedAt: iat})
		if err != nil {
			t.Fatal(err)
		}
		return []byte(p)
	}
	ctx := context.Background()

	t.Run("Bearer", func(t *testing.T) {
		v := tokens.NewVerifier(td.public(t), issuer, at(now))
		for _, tc := range []struct {
			name  string
			token []byte
			want  error
		}{
			{"a Bearer token", plain, nil},
			{"a bound token", bound, tokens.ErrBound},
		} {
			var cl tokens.Claims
			if err := v.VerifyBearer(ctx, tc.token, &cl); tc.want == nil && err != nil || !errors.Is(err, tc.want) {
				t.Errorf("%s: VerifyBearer = %v; want %v", tc.name, err, tc.want)
			}
		}
		if !errors.Is(tokens.ErrBound, tokens.ErrInvalid) {
			t.Error("ErrBound is not an ErrInvalid: a caller branching on ErrInvalid would miss it")
		}
	})

	t.Run("DPoP", func(t *testing.T) {
		v := tokens.NewVerifier(td.public(t), issuer, at(now))
		good := proof(device, "GET", api, bound, now)
		var cl tokens.Claims
		if err := v.VerifyDPoP(ctx, bound, good, "GET", api, &cl); err != nil || cl.Confirmation.JKT != device.Thumbprint() {
			t.Fatalf("a valid proof: %v, %+v", err, cl)
		}
		for _, tc := range []struct {
			name          string
			token, proof  []byte
			method, url   string
			want          error
			reasonSubtext string
		}{
			{"the same proof again", bound, good, "GET", api, tokens.ErrInvalidProof, "used already"},
			{"another key", bound, proof(thief, "GET", api, bound, now), "GET", api, tokens.ErrInvalidProof, "key"},
			{"another URL", bound, proof(device, "GET", api+"/1", bound, now), "GET", api, tokens.ErrInvalidProof, "htu"},
			{"another method", bound, proof(device, "POST", api, bound, now), "GET", api, tokens.ErrInvalidProof, "htm"},
			{"another token", bound, proof(device, "GET", api, plain, now), "GET", api, tokens.ErrInvalidProof, "ath"},
			{"too old", bound, proof(device, "GET", api, bound, now.Add(-5*time.Minute)), "GET", api, tokens.ErrInvalidProof, "iat"},
			{"not a proof", bound, []byte("x.y.z"), "GET", api, tokens.ErrInvalidProof, ""},
			{"a Bearer token as DPoP", plain, proof(device, "GET", api, plain, now), "GET", api, tokens.ErrInvalid, ""},
			{"an expired token", td.mint(t, core.Access, func() *core.Claims {
				c := claims(now.Add(-time.Hour))
				c.Confirmation.JKT = device.Thumbprint()
				return c
			}()),
				nil, "GET", api, tokens.ErrExpired, ""},
		} {
			var cl tokens.Claims
			err := v.VerifyDPoP(ctx, tc.token, tc.proof, tc.method, tc.url, &cl)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: VerifyDPoP = %v; want %v", tc.name, err, tc.want)
				continue
			}
			if !errors.Is(tc.want, tokens.ErrInvalidProof) {
				continue
			}
			reason := tokens.ProofReason(err)
			if !strings.Contains(reason, tc.reasonSubtext) || reason == "" {
				t.Errorf("%s: ProofReason = %q; want it to name %q", tc.name, reason, tc.reasonSubtext)
			}
			for _, c := range reason { // RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E
				if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
					t.Errorf("%s: ProofReason %q has %q, which error_description may not", tc.name, reason, c)
				}
			}
		}
	})

	t.Run("SetDPoP", func(t *testing.T) {
		v := tokens.NewVerifier(td.public(t), issuer, at(now))
		if err := v.SetDPoP([]string{"HS256"}, 0); err == nil {
			t.Error("SetDPoP accepted HS256: a MAC proves nothing about a key")
		}
		if err := v.SetDPoP([]string{"EdDSA"}, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		var cl tokens.Claims
		for _, tc := range []struct {
			name         string
			token, proof []byte
			want         error
		}{
			{"an algorithm no longer accepted", bound, proof(device, "GET", api, bound, now), tokens.ErrInvalidProof},
			{"outside the narrower window", edBound, proof(edKey, "GET", api, edBound, now.Add(-30*time.Second)), tokens.ErrInvalidProof},
			{"the algorithm and window set", edBound, proof(edKey, "GET", api, edBound, now.Add(-5*time.Second)), nil},
		} {
			if err := v.VerifyDPoP(ctx, tc.token, tc.proof, "GET", api, &cl); tc.want == nil && err != nil || !errors.Is(err, tc.want) {
				t.Errorf("%s: VerifyDPoP = %v; want %v", tc.name, err, tc.want)
			}
		}
	})

	t.Run("SetProofMemory", func(t *testing.T) {
		v := tokens.NewVerifier(td.public(t), issuer, at(now))
		v.SetProofMemory(1, 1) // one proof remembered: the first is forgotten by the second
		first, second := proof(device, "GET", api, bound, now), proof(device, "GET", api, bound, now)
		var cl tokens.Claims
		for i, p := range [][]byte{first, second, first} {
			if err := v.VerifyDPoP(ctx, bound, p, "GET", api, &cl); err != nil {
				t.Fatalf("proof %d: %v (with a memory of one, the first is forgotten)", i, err)
			}
		}
	})
}

// TestErrorsAreTokends: the errors a caller branches on are tokend's own
// values, so errors.Is matches errors from either side; the default leeway
// is tokend's.
func TestErrorsAreTokends(t *testing.T) {
	for _, tc := range []struct {
		name           string
		public, intern error
	}{
		{"ErrMalformed", tokens.ErrMalformed, core.ErrMalformed},
		{"ErrInvalid", tokens.ErrInvalid, core.ErrInvalid},
		{"ErrExpired", tokens.ErrExpired, core.ErrExpired},
		{"ErrRevoked", tokens.ErrRevoked, core.ErrRevoked},
		{"ErrBound", tokens.ErrBound, core.ErrBound},
	} {
		if tc.public != tc.intern {
			t.Errorf("%s is not tokend's own value", tc.name)
		}
	}
	if tokens.DefaultLeeway != core.DefaultLeeway {
		t.Errorf("DefaultLeeway is %v; tokend's %v", tokens.DefaultLeeway, core.DefaultLeeway)
	}
	unanswered := fmt.Errorf("tokens: denylist: %w", tokens.ErrUnavailable) // as Verify returns it
	for _, err := range []error{tokens.ErrMalformed, tokens.ErrInvalid, tokens.ErrExpired, tokens.ErrRevoked, tokens.ErrInvalidProof} {
		if errors.Is(unanswered, err) {
			t.Errorf("ErrUnavailable wraps %v: an unanswered check would read as a verdict", err)
		}
	}
}

// TestVerifyAllocations: the public Verify allocates exactly what tokend's
// own does: the claims are copied, never allocated.
func TestVerifyAllocations(t *testing.T) {
	td := newTokend(t)
	token := td.mint(t, core.Access, claims(now))
	ctx := context.Background()
	inner := core.NewVerifier(td.keys, issuer, at(now))
	outer := tokens.NewVerifier(td.public(t), issuer, at(now))
	var icl core.Claims
	var ocl tokens.Claims
	want := testing.AllocsPerRun(200, func() {
		if err := inner.Verify(ctx, token, &icl); err != nil {
			t.Fatal(err)
		}
	})
	got := testing.AllocsPerRun(200, func() {
		if err := outer.Verify(ctx, token, &ocl); err != nil {
			t.Fatal(err)
		}
	})
	if got != want {
		t.Fatalf("public Verify allocates %v per token; tokend's own %v", got, want)
	}
	t.Logf("%v allocations per Verify, as tokend's own", got)
}

// tamper changes one character of a token's signature to another that
// carries different bits (not the last ones, which may be padding bits).
func tamper(token []byte) []byte {
	b := append([]byte(nil), token...)
	i := len(b) - 3
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return b
}
