// Package prover makes DPoP proofs (RFC 9449 §4.2) the way a client does:
// a key of the client's own, and one signed JWT per request naming the
// method and URL. It is written from RFC 9449 and RFC 7638 alone, with the
// standard library, and shares no code with package dpop's checks, whose
// tests use it as their independent client. Go clients of tokend, and
// `tokend dpop-proof`, use it too.
package prover

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

var b64 = base64.RawURLEncoding

// Key is a client's DPoP key.
type Key struct {
	Alg  string         // ES256 or EdDSA
	JWK  map[string]any // the public key, as the proof's header carries it
	priv crypto.Signer
}

// New makes a fresh key for alg (ES256 or EdDSA).
func New(alg string) (*Key, error) {
	switch alg {
	case "ES256":
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return FromSigner(priv)
	case "EdDSA":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return FromSigner(priv)
	}
	return nil, fmt.Errorf("prover: %q is not ES256 or EdDSA", alg)
}

// FromSigner wraps a P-256 ECDSA or an Ed25519 private key.
func FromSigner(s crypto.Signer) (*Key, error) {
	switch p := s.(type) {
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return nil, errors.New("prover: only P-256 ECDSA keys (ES256)")
		}
		pt, err := p.PublicKey.Bytes() // 0x04 || x || y, 32 bytes each
		if err != nil {
			return nil, err
		}
		return &Key{Alg: "ES256", priv: p,
			JWK: map[string]any{"kty": "EC", "crv": "P-256", "x": b64.EncodeToString(pt[1:33]), "y": b64.EncodeToString(pt[33:])}}, nil
	case ed25519.PrivateKey:
		return &Key{Alg: "EdDSA", priv: p,
			JWK: map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64.EncodeToString(p.Public().(ed25519.PublicKey))}}, nil
	}
	return nil, fmt.Errorf("prover: a %T cannot sign DPoP proofs here", s)
}

// Thumbprint is the key's RFC 7638 SHA-256 thumbprint: what a session or a
// token is bound to (cnf.jkt).
func (k *Key) Thumbprint() string { return Thumbprint(k.JWK) }

// Thumbprint is RFC 7638 §3 for a public JWK: its required members in
// lexicographic order, no white space, hashed.
func Thumbprint(jwk map[string]any) string {
	var members []string
	switch jwk["kty"] {
	case "EC":
		members = []string{"crv", "kty", "x", "y"}
	case "OKP":
		members = []string{"crv", "kty", "x"}
	case "RSA":
		members = []string{"e", "kty", "n"}
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		v, _ := jwk[m].(string)
		b.WriteString(`"` + m + `":"` + v + `"`)
	}
	b.WriteByte('}')
	sum := sha256.Sum256([]byte(b.String()))
	return b64.EncodeToString(sum[:])
}

// Options are a proof's optional claims; zero values take the defaults.
type Options struct {
	IssuedAt    time.Time // default now
	ID          string    // jti, default 16 random bytes
	AccessToken string    // sets ath, for a request to a resource server (§7)
	Nonce       string    // the server's nonce (§8)
	// Edit may change the header and claims before signing, for tests of
	// proofs a server must refuse.
	Edit func(header, claims map[string]any)
}

// Proof signs a proof for a request of method to url.
func (k *Key) Proof(method, url string, o Options) (string, error) {
	if o.IssuedAt.IsZero() {
		o.IssuedAt = time.Now()
	}
	if o.ID == "" {
		o.ID = rand.Text()
	}
	h := map[string]any{"typ": "dpop+jwt", "alg": k.Alg, "jwk": k.JWK}
	c := map[string]any{"jti": o.ID, "htm": method, "htu": url, "iat": o.IssuedAt.Unix()}
	if o.AccessToken != "" {
		sum := sha256.Sum256([]byte(o.AccessToken))
		c["ath"] = b64.EncodeToString(sum[:])
	}
	if o.Nonce != "" {
		c["nonce"] = o.Nonce
	}
	if o.Edit != nil {
		o.Edit(h, c)
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	sig, err := k.sign([]byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// sign makes a JWS signature: r || s for ES256 (RFC 7518 §3.4), not ASN.1.
func (k *Key) sign(input []byte) ([]byte, error) {
	switch p := k.priv.(type) {
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, p, h[:])
		if err != nil {
			return nil, err
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	case ed25519.PrivateKey:
		return ed25519.Sign(p, input), nil
	}
	return nil, errors.New("prover: no private key")
}

// MarshalPrivate is the key as a private JWK, for a key file.
func (k *Key) MarshalPrivate() ([]byte, error) {
	m := map[string]any{}
	for n, v := range k.JWK {
		m[n] = v
	}
	switch p := k.priv.(type) {
	case *ecdsa.PrivateKey:
		d, err := p.Bytes()
		if err != nil {
			return nil, err
		}
		m["d"] = b64.EncodeToString(d)
	case ed25519.PrivateKey:
		m["d"] = b64.EncodeToString(p.Seed())
	}
	m["alg"] = k.Alg
	return json.MarshalIndent(m, "", "  ")
}

// ParsePrivate reads a key MarshalPrivate wrote (an EC P-256 or an OKP
// Ed25519 private JWK).
func ParsePrivate(b []byte) (*Key, error) {
	var m struct{ Kty, Crv, X, Y, D string }
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("prover: key file: %w", err)
	}
	d, err := b64.DecodeString(m.D)
	if err != nil || len(d) != 32 {
		return nil, errors.New("prover: key file: d is not 32 bytes of base64url")
	}
	switch {
	case m.Kty == "EC" && m.Crv == "P-256":
		priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
		if err != nil {
			return nil, fmt.Errorf("prover: key file: %w", err)
		}
		return FromSigner(priv)
	case m.Kty == "OKP" && m.Crv == "Ed25519":
		return FromSigner(ed25519.NewKeyFromSeed(d))
	}
	return nil, fmt.Errorf("prover: key file: kty %q crv %q is not EC P-256 or OKP Ed25519", m.Kty, m.Crv)
}
