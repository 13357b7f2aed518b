package prover

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestKeyFileRoundTrip(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		k, err := New(alg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := k.MarshalPrivate()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParsePrivate(b)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if back.Thumbprint() != k.Thumbprint() || back.Alg != alg {
			t.Fatalf("%s: thumbprint %s, alg %s after the round trip; want %s", alg, back.Thumbprint(), back.Alg, k.Thumbprint())
		}
	}
	for _, bad := range []string{`{}`, `not json`, `{"kty":"EC","crv":"P-384","d":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`, `{"kty":"RSA","d":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`} {
		if _, err := ParsePrivate([]byte(bad)); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
	if _, err := New("RS256"); err == nil {
		t.Error("New(RS256) made a key")
	}
}

// The proof's header and claims, as RFC 9449 §4.2 lists them.
func TestProofShape(t *testing.T) {
	k, err := New("ES256")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_800_000_000, 0)
	p, err := k.Proof("GET", "https://api.example.com/me", Options{IssuedAt: at, ID: "j1", AccessToken: "tok", Nonce: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(p, ".")
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	var h, c map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil || len(sig) != 64 {
		t.Fatalf("proof %s", p)
	}
	if h["typ"] != "dpop+jwt" || h["alg"] != "ES256" || h["jwk"].(map[string]any)["d"] != nil {
		t.Fatalf("header %v", h)
	}
	// ath: base64url SHA-256 of the ASCII access token (§4.2; sha256sum agrees)
	if c["htm"] != "GET" || c["htu"] != "https://api.example.com/me" || c["iat"] != float64(1_800_000_000) ||
		c["jti"] != "j1" || c["nonce"] != "n1" || c["ath"] != "GnZ0607njffhrEOak8P6jjyUV4TU3sn9jjARc4svHWI" {
		t.Fatalf("claims %v", c)
	}
}
