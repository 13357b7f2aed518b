package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/server/aspnet"
	"github.com/tokend/tokend/server/spring"
)

// jwksPath holds one key of every algorithm benchmarked (and tested).
const jwksPath = "../internal/tokens/testdata/keys.jwks"

// rawKey exports the private key kid of the test key set, for the floors.
func rawKey(b *testing.B, kid string) any {
	data, err := os.ReadFile(jwksPath)
	if err != nil {
		b.Fatal(err)
	}
	set, err := jwk.Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	k, ok := set.LookupKeyID(kid)
	if !ok {
		b.Fatalf("no key %s", kid)
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		b.Fatal(err)
	}
	if p, ok := raw.(*ed25519.PrivateKey); ok {
		return *p
	}
	return raw
}

// floor returns the raw crypto of one signature and one verification of
// input with key, in the cheapest form the standard library offers (HMAC:
// one keyed state reset per use).
func floor(b *testing.B, kid string, input []byte) (sign func() []byte, verify func(sig []byte) bool) {
	sum := func(h crypto.Hash) []byte { d := h.New(); d.Write(input); return d.Sum(nil) }
	switch k := rawKey(b, kid).(type) {
	case []byte:
		newHash := map[string]func() hash.Hash{"hs256-1": sha256.New, "hs512-1": sha512.New}[kid]
		m := hmac.New(newHash, k)
		buf := make([]byte, 0, 64)
		sign = func() []byte { m.Reset(); m.Write(input); return m.Sum(buf[:0]) }
		return sign, func(sig []byte) bool { return hmac.Equal(sign(), sig) }
	case *ecdsa.PrivateKey:
		return func() []byte {
				sig, _ := ecdsa.SignASN1(rand.Reader, k, sum(crypto.SHA256))
				return sig
			}, func(sig []byte) bool {
				return ecdsa.VerifyASN1(&k.PublicKey, sum(crypto.SHA256), sig)
			}
	case ed25519.PrivateKey:
		pub := k.Public().(ed25519.PublicKey)
		return func() []byte { return ed25519.Sign(k, input) },
			func(sig []byte) bool { return ed25519.Verify(pub, input, sig) }
	case *rsa.PrivateKey:
		return func() []byte {
				sig, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA256, sum(crypto.SHA256))
				return sig
			}, func(sig []byte) bool {
				return rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, sum(crypto.SHA256), sig) == nil
			}
	}
	b.Fatalf("key %s: unexpected type", kid)
	return nil, nil
}

// BenchmarkJWT signs and verifies one access token per algorithm through
// tokend's codec (keys parsed once, headers prepared once), beside the raw
// crypto of the same signing input: read each codec row as a ratio to its
// floor row. verify-general is jwx's jws.Parse + jws.Verify, the reference.
func BenchmarkJWT(b *testing.B) {
	data, err := os.ReadFile(jwksPath)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	cl := tokens.Claims{Issuer: "tokend", Subject: "7f36a89d-1234-4567-8901-234567890abc", Session: "kw-pkqvf8FGCBXF1UAqlyg", Gen: 7,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(time.Hour).Unix()}
	for _, tc := range []struct{ alg, kid string }{
		{"HS256", "hs256-1"}, {"HS512", "hs512-1"}, {"ES256", "es256-1"}, {"EdDSA", "ed-1"}, {"RS256", "rs256-1"},
	} {
		ks, err := tokens.ParseJWKS(data, tc.kid)
		if err != nil {
			b.Fatal(err)
		}
		codec := tokens.NewCodec(ks, "tokend", tokens.SystemClock)
		tok, err := codec.AppendToken(nil, tokens.Access, &cl)
		if err != nil {
			b.Fatal(err)
		}
		input := tok[:strings.LastIndexByte(string(tok), '.')]
		floorSign, floorVerify := floor(b, tc.kid, input)
		floorSig := floorSign()
		b.Run(tc.alg+"/sign", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 1024)
			for b.Loop() {
				buf, _ = codec.AppendToken(buf[:0], tokens.Access, &cl)
			}
		})
		b.Run(tc.alg+"/sign-floor", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				floorSign()
			}
		})
		b.Run(tc.alg+"/verify", func(b *testing.B) {
			b.ReportAllocs()
			var out tokens.Claims
			for b.Loop() {
				if err := codec.Parse(tok, tokens.Access, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.alg+"/verify-floor", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !floorVerify(floorSig) {
					b.Fatal("floor verify failed")
				}
			}
		})
		if tc.alg == "HS256" {
			b.Run(tc.alg+"/verify-general", func(b *testing.B) {
				b.ReportAllocs()
				var out tokens.Claims
				for b.Loop() {
					if err := codec.ParseGeneral(tok, tokens.Access, &out); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkOpaque mints and parses one aspnet refresh token, beside the
// HMAC-SHA256 of its 32 bytes (the floor).
func BenchmarkOpaque(b *testing.B) {
	ks, err := tokens.HMACKeySet([]byte(aspnetSecret), "HS512")
	if err != nil {
		b.Fatal(err)
	}
	o := tokens.Opaque{Codec: tokens.NewCodec(ks, "tokend", tokens.SystemClock)}
	cl := tokens.Claims{Session: "kw-pkqvf8FGCBXF1UAqlyg", Gen: 7, Expires: time.Now().Add(time.Hour).Unix()}
	tok, err := o.AppendRefresh(nil, &cl)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 128)
		for b.Loop() {
			buf, _ = o.AppendRefresh(buf[:0], &cl)
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		var out tokens.Claims
		for b.Loop() {
			if err := o.ParseRefresh(tok, time.Now(), &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor-hmac-sha256", func(b *testing.B) {
		b.ReportAllocs()
		m := hmac.New(sha256.New, []byte(aspnetSecret))
		msg, buf := make([]byte, 32), make([]byte, 0, 32)
		for b.Loop() {
			m.Reset()
			m.Write(msg)
			buf = m.Sum(buf[:0])
		}
	})
}

// BenchmarkDialect is the request decode and the response encode alone.
func BenchmarkDialect(b *testing.B) {
	var p tokens.Pair
	p.Access = []byte(strings.Repeat("a", 300))
	p.Refresh = []byte(strings.Repeat("r", 88))
	p.AccessExpiresIn, p.RefreshExpiresIn = 30*time.Minute, 720*time.Hour
	for _, tc := range []struct {
		name string
		d    server.Dialect
		body string
	}{
		{"spring", spring.Dialect{}, `{"refreshToken":"` + strings.Repeat("t", 300) + `"}`},
		{"aspnet", aspnet.Dialect{}, `{"Token":"` + strings.Repeat("t", 300) + `","RefreshToken":"` + strings.Repeat("r", 86) + `=="}`},
	} {
		body := []byte(tc.body)
		b.Run(tc.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			var r server.Request
			for b.Loop() {
				if err := tc.d.DecodeRefresh(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 1024)
			now := time.Now()
			for b.Loop() {
				buf = tc.d.AppendPair(buf[:0], &p, now)
			}
		})
	}
}
