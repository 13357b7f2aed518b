package dpop_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokend/tokend/internal/measure"
	"github.com/tokend/tokend/internal/tokens/dpop"
	"github.com/tokend/tokend/internal/tokens/dpop/prover"
)

// The client side is package prover, written from RFC 9449 §4.2 and RFC
// 7638 alone: it shares no code with the package's checks. An RS256 key,
// which prover does not make, signs by hand here.

var b64 = base64.RawURLEncoding

type clientKey struct {
	*prover.Key
	jwk  map[string]any
	alg  string
	sign func(input []byte) []byte // RS256 only
}

func newKey(t testing.TB, alg string) clientKey {
	k, err := prover.New(alg)
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{Key: k, jwk: k.JWK, alg: alg}
}

func ecKey(t testing.TB) clientKey { return newKey(t, "ES256") }
func edKey(t testing.TB) clientKey { return newKey(t, "EdDSA") }

var thumbprint = prover.Thumbprint

// proof makes a DPoP proof; edit may change the header and claims first.
func (k clientKey) proof(t testing.TB, method, url string, iat time.Time, edit func(h, c map[string]any)) string {
	if k.Key != nil {
		p, err := k.Proof(method, url, prover.Options{IssuedAt: iat, Edit: edit})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	h := map[string]any{"typ": "dpop+jwt", "alg": k.alg, "jwk": k.jwk}
	c := map[string]any{"jti": rand.Text(), "htm": method, "htu": url, "iat": iat.Unix()}
	if edit != nil {
		edit(h, c)
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	return input + "." + b64.EncodeToString(k.sign([]byte(input)))
}

type clock struct{ t time.Time }

func (c clock) Now() time.Time { return c.t }

const tokenURL = "https://auth.example.com/oauth2/token"

// RFC 7638 §3.1: the example key's thumbprint.
func TestThumbprintRFC7638(t *testing.T) {
	const n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	const want = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	key, err := jwk.ParseKey([]byte(`{"kty":"RSA","n":"` + n + `","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := dpop.Thumbprint(key)
	if err != nil || got != want {
		t.Fatalf("Thumbprint = %q, %v; want %q", got, err, want)
	}
	if c := thumbprint(map[string]any{"kty": "RSA", "n": n, "e": "AQAB"}); c != want {
		t.Fatalf("the test client's thumbprint %q; want %q", c, want)
	}
}

// Every check of RFC 9449 §4.3, each refusal its own case; then what a
// valid proof yields.
func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v, err := dpop.NewVerifier(dpop.Config{Clock: clock{now}})
	if err != nil {
		t.Fatal(err)
	}
	ec, ed, other := ecKey(t), edKey(t), ecKey(t)
	post := dpop.Request{Method: "POST", URL: tokenURL}
	accessToken := []byte("eyJhbGciOiJFUzI1NiJ9.e30.sig")
	ath := sha256.Sum256(accessToken)
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaKey := clientKey{alg: "RS256",
		jwk: map[string]any{"kty": "RSA", "n": b64.EncodeToString(rsaPriv.N.Bytes()), "e": "AQAB"},
		sign: func(input []byte) []byte {
			h := sha256.Sum256(input)
			s, _ := rsa.SignPKCS1v15(rand.Reader, rsaPriv, crypto.SHA256, h[:])
			return s
		}}

	for _, tc := range []struct {
		name  string
		proof string
		req   dpop.Request
		want  error
	}{
		{"valid ES256", ec.proof(t, "POST", tokenURL, now, nil), post, nil},
		{"valid EdDSA", ed.proof(t, "POST", tokenURL, now, nil), post, nil},
		{"iat 59 s ago", ec.proof(t, "POST", tokenURL, now.Add(-59*time.Second), nil), post, nil},
		{"iat 59 s ahead", ec.proof(t, "POST", tokenURL, now.Add(59*time.Second), nil), post, nil},
		{"jti of 256 bytes", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { c["jti"] = strings.Repeat("j", 256) }), post, nil},
		{"htu with query, fragment, upper-case host and default port", ec.proof(t, "POST", "https://AUTH.example.com:443/oauth2/token?x=1#f", now, nil), post, nil},
		{"ath of the access token", ec.proof(t, "GET", "https://api.example.com/me", now, func(h, c map[string]any) {
			c["ath"] = b64.EncodeToString(ath[:])
		}), dpop.Request{Method: "GET", URL: "https://api.example.com/me", AccessToken: accessToken}, nil},
		{"the server's nonce", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { c["nonce"] = "n-1" }),
			dpop.Request{Method: "POST", URL: tokenURL, Nonce: "n-1"}, nil},
		{"the bound key", ec.proof(t, "POST", tokenURL, now, nil), dpop.Request{Method: "POST", URL: tokenURL, Thumbprint: thumbprint(ec.jwk)}, nil},

		{"wrong htm", ec.proof(t, "GET", tokenURL, now, nil), post, dpop.ErrInvalidProof},
		{"wrong htu path", ec.proof(t, "POST", "https://auth.example.com/oauth2/revoke", now, nil), post, dpop.ErrInvalidProof},
		{"wrong htu host", ec.proof(t, "POST", "https://evil.example.com/oauth2/token", now, nil), post, dpop.ErrInvalidProof},
		{"wrong htu scheme", ec.proof(t, "POST", "http://auth.example.com/oauth2/token", now, nil), post, dpop.ErrInvalidProof},
		{"stale iat", ec.proof(t, "POST", tokenURL, now.Add(-61*time.Second), nil), post, dpop.ErrInvalidProof},
		{"future iat", ec.proof(t, "POST", tokenURL, now.Add(61*time.Second), nil), post, dpop.ErrInvalidProof},
		{"no iat", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { delete(c, "iat") }), post, dpop.ErrInvalidProof},
		{"no jti", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { delete(c, "jti") }), post, dpop.ErrInvalidProof},
		{"empty jti", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { c["jti"] = "" }), post, dpop.ErrInvalidProof},
		{"jti over 256 bytes", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { c["jti"] = strings.Repeat("j", 257) }), post, dpop.ErrInvalidProof},
		{"typ JWT", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { h["typ"] = "JWT" }), post, dpop.ErrInvalidProof},
		{"no typ", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { delete(h, "typ") }), post, dpop.ErrInvalidProof},
		{"alg none", func() string {
			h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": ec.jwk})
			c, _ := json.Marshal(map[string]any{"jti": "x", "htm": "POST", "htu": tokenURL, "iat": now.Unix()})
			return b64.EncodeToString(h) + "." + b64.EncodeToString(c) + "."
		}(), post, dpop.ErrInvalidProof},
		{"HS256 keyed with the public key", func() string {
			h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": ec.jwk})
			c, _ := json.Marshal(map[string]any{"jti": "x", "htm": "POST", "htu": tokenURL, "iat": now.Unix()})
			in := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
			m := hmac.New(sha256.New, []byte(ec.jwk["x"].(string)))
			m.Write([]byte(in))
			return in + "." + b64.EncodeToString(m.Sum(nil))
		}(), post, dpop.ErrInvalidProof},
		{"RS256, not accepted by default", rsaKey.proof(t, "POST", tokenURL, now, nil), post, dpop.ErrInvalidProof},
		{"alg of another key type", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { h["alg"] = "EdDSA" }), post, dpop.ErrInvalidProof},
		{"private key in the jwk", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) {
			k := map[string]any{}
			for m, v := range ec.jwk {
				k[m] = v
			}
			k["d"] = b64.EncodeToString(make([]byte, 32))
			h["jwk"] = k
		}), post, dpop.ErrInvalidProof},
		{"symmetric jwk", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) {
			h["jwk"] = map[string]any{"kty": "oct", "k": "c2VjcmV0"}
		}), post, dpop.ErrInvalidProof},
		{"no jwk", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { delete(h, "jwk") }), post, dpop.ErrInvalidProof},
		{"jwk of another key", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { h["jwk"] = other.jwk }), post, dpop.ErrInvalidProof},
		{"flipped signature bit", func() string {
			p := ec.proof(t, "POST", tokenURL, now, nil)
			i := strings.LastIndexByte(p, '.') + 5
			return p[:i] + string(rune(p[i]^1)) + p[i+1:]
		}(), post, dpop.ErrInvalidProof},
		{"two segments", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30", post, dpop.ErrInvalidProof},
		{"empty", "", post, dpop.ErrInvalidProof},
		{"over 8 KiB", strings.Repeat("a", 9000), post, dpop.ErrInvalidProof},
		{"ath missing", ec.proof(t, "GET", "https://api.example.com/me", now, nil),
			dpop.Request{Method: "GET", URL: "https://api.example.com/me", AccessToken: accessToken}, dpop.ErrInvalidProof},
		{"ath of another token", ec.proof(t, "GET", "https://api.example.com/me", now, func(h, c map[string]any) {
			s := sha256.Sum256([]byte("another"))
			c["ath"] = b64.EncodeToString(s[:])
		}), dpop.Request{Method: "GET", URL: "https://api.example.com/me", AccessToken: accessToken}, dpop.ErrInvalidProof},
		{"no nonce", ec.proof(t, "POST", tokenURL, now, nil), dpop.Request{Method: "POST", URL: tokenURL, Nonce: "n-1"}, dpop.ErrUseNonce},
		{"an old nonce", ec.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { c["nonce"] = "n-0" }),
			dpop.Request{Method: "POST", URL: tokenURL, Nonce: "n-1"}, dpop.ErrUseNonce},
		{"another key than the bound one", other.proof(t, "POST", tokenURL, now, nil),
			dpop.Request{Method: "POST", URL: tokenURL, Thumbprint: thumbprint(ec.jwk)}, dpop.ErrWrongKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify([]byte(tc.proof), tc.req)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v; want %v", err, tc.want)
			}
			if tc.want != nil {
				t.Log(err) // which check refused it
				// RFC 6749 §5.2: what a client is told is fixed text of
				// %x20-21 / %x23-5B / %x5D-7E
				for _, c := range []byte(dpop.Reason(err)) {
					if c < 0x20 || c > 0x7E || c == '"' || c == '\\' {
						t.Fatalf("Reason %q: %q outside RFC 6749 §5.2's characters", dpop.Reason(err), c)
					}
				}
				return
			}
			var h struct {
				JWK map[string]any `json:"jwk"`
			}
			seg, _ := b64.DecodeString(strings.Split(tc.proof, ".")[0])
			json.Unmarshal(seg, &h)
			if p.Thumbprint != thumbprint(h.JWK) || p.ID == "" || p.IssuedAt.IsZero() {
				t.Fatalf("proof %+v; want the key's thumbprint %s, the jti and iat", p, thumbprint(h.JWK))
			}
		})
	}
}

func TestConfig(t *testing.T) {
	for _, algs := range [][]string{{"HS256"}, {"none"}, {"ES256", "XX"}} {
		if _, err := dpop.NewVerifier(dpop.Config{Algs: algs}); err == nil {
			t.Errorf("algorithms %v accepted", algs)
		}
	}
	v, err := dpop.NewVerifier(dpop.Config{Algs: []string{"ES256", "RS256", "PS256"}})
	if err != nil || len(v.Algs()) != 3 || v.Window() != time.Minute {
		t.Fatalf("%v %v", v, err)
	}
	// the caller's slice, changed later, changes nothing: an alg is
	// checked against asymmetric only in NewVerifier
	algs := []string{"ES256"}
	v, err = dpop.NewVerifier(dpop.Config{Algs: algs})
	if err != nil {
		t.Fatal(err)
	}
	algs[0] = "E"
	if got := v.Algs(); got[0] != "ES256" {
		t.Fatalf("Algs %v after the caller's slice changed", got)
	}
}

// FuzzVerify: whatever the proof, Verify answers without panicking, and a
// proof it accepts names the key that signed it.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	ec, ed := ecKey(f), edKey(f)
	f.Add(ec.proof(f, "POST", tokenURL, now, nil), "POST", tokenURL)
	f.Add(ed.proof(f, "POST", tokenURL, now, nil), "POST", tokenURL)
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2In0.e30.", "POST", tokenURL)
	f.Add("..", "GET", "https://x/")
	v, err := dpop.NewVerifier(dpop.Config{Clock: clock{now}, Algs: []string{"ES256", "EdDSA", "RS256", "PS256"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, proof, method, url string) {
		p, err := v.Verify([]byte(proof), dpop.Request{Method: method, URL: url})
		if err != nil {
			if !errors.Is(err, dpop.ErrInvalidProof) {
				t.Fatalf("a refusal that is not ErrInvalidProof: %v", err)
			}
			return
		}
		if _, err := v.Verify([]byte(proof), dpop.Request{Method: method, URL: url, Thumbprint: p.Thumbprint}); err != nil {
			t.Fatalf("accepted, then refused with its own thumbprint: %v", err)
		}
	})
}

// BenchmarkVerify: one proof checked, ES256 and EdDSA; what a DPoP refresh
// adds to a plain one before any store work. The crypto- runs verify the
// same proof's signature with crypto/ecdsa or crypto/ed25519 alone: the
// floor a check cannot go under, measured in the same run. cpu-ns/op is
// the process's CPU time: on a shared machine, the figure to compare.
func BenchmarkVerify(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	v, err := dpop.NewVerifier(dpop.Config{Clock: clock{now}})
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range []clientKey{ecKey(b), edKey(b)} {
		proof := []byte(k.proof(b, "POST", tokenURL, now, nil))
		req := dpop.Request{Method: "POST", URL: tokenURL}
		b.Run(k.alg, func(b *testing.B) {
			b.ReportAllocs()
			start := measure.ProcessCPU()
			for b.Loop() {
				if _, err := v.Verify(proof, req); err != nil {
					b.Fatal(err)
				}
			}
			measure.ReportCPU(b, start)
		})
		bare := signatureCheck(b, string(proof))
		b.Run("crypto-"+k.alg, func(b *testing.B) {
			b.ReportAllocs()
			start := measure.ProcessCPU()
			for b.Loop() {
				if !bare() {
					b.Fatal("the signature does not verify")
				}
			}
			measure.ReportCPU(b, start)
		})
	}
}

// BenchmarkVerifyCost: a check and a bare verification of the same
// proof's signature in turn, each timed, so that both see the same
// machine; the means of each one's fastest 90% (fastMean), and
// check/verify, their ratio.
func BenchmarkVerifyCost(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	v, err := dpop.NewVerifier(dpop.Config{Clock: clock{now}})
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range []clientKey{ecKey(b), edKey(b)} {
		proof := []byte(k.proof(b, "POST", tokenURL, now, nil))
		req := dpop.Request{Method: "POST", URL: tokenURL, Thumbprint: thumbprint(k.jwk)}
		bare := signatureCheck(b, string(proof))
		b.Run(k.alg, func(b *testing.B) {
			took := [2][]time.Duration{make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)}
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := v.Verify(proof, req); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if !bare() {
					b.Fatal("the signature does not verify")
				}
				t2 := time.Now()
				took[0], took[1] = append(took[0], t1.Sub(t0)), append(took[1], t2.Sub(t1))
			}
			b.StopTimer()
			var mean [2]float64
			for i, d := range took {
				mean[i] = measure.FastMean(d)
			}
			b.ReportMetric(mean[0], "check-ns")
			b.ReportMetric(mean[1], "verify-ns")
			b.ReportMetric(mean[0]/mean[1], "check/verify")
		})
	}
}

// Nonces: one per step, accepted for this step and the next, under any of
// the secrets; another instance with the same secrets agrees.
func TestNonces(t *testing.T) {
	c := &clock{time.Unix(1_800_000_000, 0)}
	a := dpop.NewNonces(time.Minute, c, []byte("new"), []byte("old"))
	b := dpop.NewNonces(time.Minute, c, []byte("old"))
	n := a.Current()
	if n == "" || !a.Valid(n) || !b.Valid(b.Current()) || !a.Valid(b.Current()) {
		t.Fatalf("nonce %q not accepted", n)
	}
	if b.Valid(n) {
		t.Fatal("an instance without the new secret accepted its nonce")
	}
	for _, bad := range []string{"", "x", n + "x"} {
		if a.Valid(bad) {
			t.Fatalf("%q accepted", bad)
		}
	}
	c.t = c.t.Add(time.Minute)
	if !a.Valid(n) || a.Current() == n {
		t.Fatal("the previous step's nonce must still be accepted, and a new one handed out")
	}
	c.t = c.t.Add(time.Minute)
	if a.Valid(n) {
		t.Fatal("a nonce two steps old accepted")
	}
	a.SetSecrets([]byte("newer"))
	if a.Valid(b.Current()) {
		t.Fatal("a nonce of a secret no longer held accepted")
	}
}

// maxVerifyAllocs bounds a proof check's own allocations: the jti it
// returns, and the nonce when the proof's is not the request's string.
// The crypto's own allocations (crypto/ecdsa converts the key and the
// signature for each verification; crypto/ed25519 allocates none) are
// measured apart in the same test, by a verification of the same
// signature by the crypto alone (prover.SignatureCheck), and subtracted.
const maxVerifyAllocs = 2

func TestVerifyAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	now := time.Unix(1_800_000_000, 0)
	v, err := dpop.NewVerifier(dpop.Config{Clock: clock{now}})
	if err != nil {
		t.Fatal(err)
	}
	accessToken := []byte("eyJhbGciOiJFUzI1NiJ9.e30.sig")
	ath := sha256.Sum256(accessToken)
	for _, k := range []clientKey{ecKey(t), edKey(t)} {
		for _, tc := range []struct {
			name string
			edit func(h, c map[string]any)
			req  dpop.Request
		}{
			{"token endpoint", nil, dpop.Request{Method: "POST", URL: tokenURL}},
			{"bound key", nil, dpop.Request{Method: "POST", URL: tokenURL, Thumbprint: thumbprint(k.jwk)}},
			{"resource server, nonce", func(h, c map[string]any) {
				c["ath"], c["nonce"] = b64.EncodeToString(ath[:]), "n-1"
			}, dpop.Request{Method: "POST", URL: tokenURL, AccessToken: accessToken, Nonce: "n-1", Thumbprint: thumbprint(k.jwk)}},
			{"nonce, checked by the caller", func(h, c map[string]any) { c["nonce"] = "n-1" }, dpop.Request{Method: "POST", URL: tokenURL}},
		} {
			t.Run(k.alg+"/"+tc.name, func(t *testing.T) {
				proof := []byte(k.proof(t, "POST", tokenURL, now, tc.edit))
				bare := signatureCheck(t, string(proof))
				crypto := testing.AllocsPerRun(200, func() { bare() })
				total := testing.AllocsPerRun(200, func() {
					if _, err := v.Verify(proof, tc.req); err != nil {
						t.Fatal(err)
					}
				})
				if own := total - crypto; own > maxVerifyAllocs {
					t.Fatalf("a check allocates %.0f times, %.0f of them the crypto's: %.0f its own; the bound is %d", total, crypto, own, maxVerifyAllocs)
				}
				t.Logf("%.0f allocations, %.0f of them the crypto's", total, crypto)
			})
		}
	}
}

// ecHandKey is an ECDSA key signing by hand, on curve with the hash of
// alg: for proofs of raw JSON, and of curves prover does not make.
func ecHandKey(t testing.TB, curve elliptic.Curve, hash crypto.Hash, alg string) clientKey {
	priv, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	size := (curve.Params().BitSize + 7) / 8
	pt, _ := priv.PublicKey.Bytes()
	crv := curve.Params().Name
	return clientKey{alg: alg,
		jwk: map[string]any{"kty": "EC", "crv": crv, "x": b64.EncodeToString(pt[1 : 1+size]), "y": b64.EncodeToString(pt[1+size:])},
		sign: func(input []byte) []byte {
			h := hash.New()
			h.Write(input)
			r, s, err := ecdsa.Sign(rand.Reader, priv, h.Sum(nil))
			if err != nil {
				t.Fatal(err)
			}
			sig := make([]byte, 2*size)
			r.FillBytes(sig[:size])
			s.FillBytes(sig[size:])
			return sig
		}}
}

// raw signs a proof of header and claims as written; the header's first
// JWK is replaced by the key's JWK.
func (k clientKey) raw(header, claims string) string {
	j, _ := json.Marshal(k.jwk)
	header = strings.Replace(header, "JWK", string(j), 1)
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	return input + "." + b64.EncodeToString(k.sign([]byte(input)))
}

// The header and claims are read by hand: JSON as RFC 8259 writes it,
// escapes included, is read as encoding/json reads it; what is not JSON,
// a member named twice, and a claim of the wrong type are refused.
func TestVerifyJSON(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v, err := dpop.NewVerifier(dpop.Config{Clock: clock{now}, Algs: []string{"ES256", "ES384", "EdDSA"}})
	if err != nil {
		t.Fatal(err)
	}
	ec := ecHandKey(t, elliptic.P256(), crypto.SHA256, "ES256")
	const hdr = `{"typ":"dpop+jwt","alg":"ES256","jwk":JWK}`
	const cl = `{"jti":"j-1","htm":"POST","htu":"` + tokenURL + `","iat":1800000000}`
	post := dpop.Request{Method: "POST", URL: tokenURL}
	for _, tc := range []struct {
		name, header, claims string
		ok                   bool
		jti                  string
	}{
		{"plain", hdr, cl, true, "j-1"},
		{"white space everywhere", " {\n\t\"typ\" : \"dpop+jwt\" , \"alg\":\"ES256\",\"jwk\": JWK } ", "\r\n" + `{ "jti" : "j-1" , "htm":"POST","htu":"` + tokenURL + `" , "iat" : 1800000000 }` + "\n", true, "j-1"},
		{"escapes in names and values", `{"t\u0079p":"dpop\u002Bjwt","alg":"ES\u0032\u0035\u0036","jwk":JWK}`,
			`{"jti":"a\"b\\c\/d\n\u00e9\ud83d\ude00\ud800","h\u0074m":"POST","htu":"https:\/\/auth.example.com\/oauth2\/token","iat":1800000000}`, true, "a\"b\\c/d\né😀\uFFFD"},
		{"unknown members of every type", `{"typ":"dpop+jwt","x":[1,-2.5e+3,true,false,null,{"a":[{}]},[]],"alg":"ES256","jwk":JWK,"kid":"k"}`,
			`{"jti":"j-1","htm":"POST","htu":"` + tokenURL + `","iat":1800000000,"extra":{"nested":{"deeper":[0.0,1E9]}}}`, true, "j-1"},
		{"iat with a fraction", hdr, `{"jti":"j-1","htm":"POST","htu":"` + tokenURL + `","iat":1800000000.75}`, true, "j-1"},
		{"iat in exponent form", hdr, `{"jti":"j-1","htm":"POST","htu":"` + tokenURL + `","iat":1.8e9}`, true, "j-1"},
		{"htu normalised", hdr, `{"jti":"j-1","htm":"POST","htu":"HTTPS://Auth.Example.com:443/oauth2/token?q#f","iat":1800000000}`, true, "j-1"},

		{"typ twice", `{"typ":"JWT","typ":"dpop+jwt","alg":"ES256","jwk":JWK}`, cl, false, ""},
		{"jwk twice", `{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"oct","k":"c2VjcmV0"},"jwk":JWK}`, cl, false, ""},
		{"jti twice", hdr, `{"jti":"j-1","jti":"j-2","htm":"POST","htu":"` + tokenURL + `","iat":1800000000}`, false, ""},
		{"iat twice", hdr, `{"jti":"j-1","htm":"POST","htu":"` + tokenURL + `","iat":1,"iat":1800000000}`, false, ""},
		{"typ of another case", `{"TYP":"dpop+jwt","alg":"ES256","jwk":JWK}`, cl, false, ""},
		{"typ not a string", `{"typ":["dpop+jwt"],"alg":"ES256","jwk":JWK}`, cl, false, ""},
		{"jwk not an object", `{"typ":"dpop+jwt","alg":"ES256","jwk":"k"}`, cl, false, ""},
		{"jwk null", `{"typ":"dpop+jwt","alg":"ES256","jwk":null}`, cl, false, ""},
		{"header an array", `["dpop+jwt"]`, cl, false, ""},
		{"header with trailing bytes", hdr + `x`, cl, false, ""},
		{"header with a trailing comma", `{"typ":"dpop+jwt","alg":"ES256","jwk":JWK,}`, cl, false, ""},
		{"header not closed", `{"typ":"dpop+jwt","alg":"ES256","jwk":JWK`, cl, false, ""},
		{"a raw control character", `{"typ":"dpop+jwt","alg":"ES256","jwk":JWK,"x":"a` + "\x01" + `"}`, cl, false, ""},
		{"a bad escape", `{"typ":"dpop+jwt","alg":"ES256","jwk":JWK,"x":"\q"}`, cl, false, ""},
		{"a short unicode escape", `{"typ":"dpop+jwt","alg":"ES256","jwk":JWK,"x":"\u12"}`, cl, false, ""},
		{"a number with a leading zero", `{"typ":"dpop+jwt","alg":"ES256","jwk":JWK,"x":012}`, cl, false, ""},
		{"a bare word", `{"typ":"dpop+jwt","alg":"ES256","jwk":JWK,"x":nope}`, cl, false, ""},
		{"nested past the bound", `{"typ":"dpop+jwt","alg":"ES256","jwk":JWK,"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, cl, false, ""},
		{"iat a string", hdr, `{"jti":"j-1","htm":"POST","htu":"` + tokenURL + `","iat":"1800000000"}`, false, ""},
		{"iat null", hdr, `{"jti":"j-1","htm":"POST","htu":"` + tokenURL + `","iat":null}`, false, ""},
		{"iat out of any range", hdr, `{"jti":"j-1","htm":"POST","htu":"` + tokenURL + `","iat":1e400}`, false, ""},
		{"iat far past, as an integer", hdr, `{"jti":"j-1","htm":"POST","htu":"` + tokenURL + `","iat":-99999999999999999999}`, false, ""},
		{"jti a number", hdr, `{"jti":1,"htm":"POST","htu":"` + tokenURL + `","iat":1800000000}`, false, ""},
		{"jti null", hdr, `{"jti":null,"htm":"POST","htu":"` + tokenURL + `","iat":1800000000}`, false, ""},
		{"jti over 256 bytes once unescaped", hdr, `{"jti":"` + strings.Repeat(`\u00e9`, 129) + `","htm":"POST","htu":"` + tokenURL + `","iat":1800000000}`, false, ""},
		{"htu a relative URL", hdr, `{"jti":"j-1","htm":"POST","htu":"/oauth2/token","iat":1800000000}`, false, ""},
		{"claims not closed", hdr, cl[:len(cl)-1], false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify([]byte(ec.raw(tc.header, tc.claims)), post)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, dpop.ErrInvalidProof)) {
				t.Fatalf("Verify = %v; want it accepted: %v", err, tc.ok)
			}
			if tc.ok && p.ID != tc.jti {
				t.Fatalf("jti %q; want %q", p.ID, tc.jti)
			}
			t.Log(err)
		})
	}

	// ES256 is P-256 with SHA-256 (RFC 7518 §3.4): a P-384 key signing
	// with SHA-256 under ES256 is refused, and accepted under ES384 only
	// with SHA-384.
	p384 := ecHandKey(t, elliptic.P384(), crypto.SHA256, "ES256")
	if _, err := v.Verify([]byte(p384.raw(hdr, cl)), post); !errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("ES256 by a P-384 key: %v", err)
	}
	p384 = ecHandKey(t, elliptic.P384(), crypto.SHA384, "ES384")
	if _, err := v.Verify([]byte(p384.raw(strings.Replace(hdr, "ES256", "ES384", 1), cl)), post); err != nil {
		t.Fatalf("ES384 by a P-384 key: %v", err)
	}

	// a URL the request names that is not absolute is never matched, even
	// by an htu of the same bytes
	for _, u := range []string{"", "/oauth2/token", "auth.example.com/oauth2/token", "https://", "https://a b/"} {
		proof := ec.raw(hdr, `{"jti":"j-1","htm":"POST","htu":"`+u+`","iat":1800000000}`)
		if _, err := v.Verify([]byte(proof), dpop.Request{Method: "POST", URL: u}); err == nil {
			t.Errorf("htu %q accepted for the request URL %q", u, u)
		}
	}
}

// Checks running at once share the pooled buffers and the caches: each
// gets its own proof's jti and key back, never another's.
func TestVerifyConcurrent(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v, err := dpop.NewVerifier(dpop.Config{Clock: clock{now}})
	if err != nil {
		t.Fatal(err)
	}
	keys := []clientKey{ecKey(t), edKey(t), ecKey(t), edKey(t)}
	errs := make(chan error, len(keys))
	for i, k := range keys {
		go func() {
			for j := range 50 {
				jti := fmt.Sprintf("k%d-p%d-%s", i, j, strings.Repeat("x", j))
				proof := k.proof(t, "POST", tokenURL, now, func(h, c map[string]any) { c["jti"] = jti })
				p, err := v.Verify([]byte(proof), dpop.Request{Method: "POST", URL: tokenURL, Thumbprint: thumbprint(k.jwk)})
				if err == nil && (p.ID != jti || p.Thumbprint != thumbprint(k.jwk)) {
					err = fmt.Errorf("proof %q of key %d: got jti %q, key %s", jti, i, p.ID, p.Thumbprint)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range keys {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// signatureCheck is prover.SignatureCheck for a proof the test made.
func signatureCheck(tb testing.TB, proof string) func() bool {
	tb.Helper()
	check, err := prover.SignatureCheck(proof)
	if err != nil {
		tb.Fatal(err)
	}
	return check
}
