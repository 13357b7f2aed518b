package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"

	"github.com/goccy/go-json"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
)

// Type is the kind of a tokend JWT, carried in its `typ` header so that one
// kind is never accepted where the other is expected.
type Type uint8

const (
	// Access tokens (RFC 9068).
	Access Type = iota
	// Refresh tokens of the spring dialect.
	Refresh
	numTypes
)

// String returns the `typ` header value of t.
func (t Type) String() string {
	switch t {
	case Access:
		return "at+jwt"
	case Refresh:
		return "refresh+jwt"
	}
	return "unknown"
}

// family groups algorithms that share a signing primitive.
type family uint8

const (
	famHMAC family = iota + 1
	famECDSA
	famEdDSA
	famRSA
	famRSAPSS
)

// algorithms tokend accepts, with their primitive and hash. Anything else
// (notably "none") is refused when a key is loaded and when a header names it.
var algorithms = map[string]struct {
	fam  family
	hash crypto.Hash
}{
	"HS256": {famHMAC, crypto.SHA256},
	"HS384": {famHMAC, crypto.SHA384},
	"HS512": {famHMAC, crypto.SHA512},
	"ES256": {famECDSA, crypto.SHA256},
	"ES384": {famECDSA, crypto.SHA384},
	"ES512": {famECDSA, crypto.SHA512},
	"EdDSA": {famEdDSA, 0},
	"RS256": {famRSA, crypto.SHA256},
	"RS384": {famRSA, crypto.SHA384},
	"RS512": {famRSA, crypto.SHA512},
	"PS256": {famRSAPSS, crypto.SHA256},
	"PS384": {famRSAPSS, crypto.SHA384},
	"PS512": {famRSAPSS, crypto.SHA512},
}

// Key is one parsed signing key with everything the hot path needs prepared:
// the raw key handles and the base64url protected header of each token type.
type Key struct {
	ID  string
	Alg string

	fam  family
	hash crypto.Hash
	macs *macPool // HMAC keys: pooled keyed states, in place of jwsbb's per-call hmac.New
	priv any      // []byte, *ecdsa.PrivateKey, ed25519.PrivateKey or *rsa.PrivateKey
	pub  any      // []byte, *ecdsa.PublicKey, ed25519.PublicKey or *rsa.PublicKey
	jwk  jwk.Key

	header [numTypes]string // base64url(protected header JSON), per Type
}

// newKey validates raw and prepares a Key. raw is a private key or an HMAC
// secret; kid may be empty only for the one-key configurations.
func newKey(kid, alg string, raw any) (*Key, error) {
	a, ok := algorithms[alg]
	if !ok {
		return nil, fmt.Errorf("key %q: algorithm %q is not supported", kid, alg)
	}
	k := &Key{ID: kid, Alg: alg, fam: a.fam, hash: a.hash, priv: raw}
	switch a.fam {
	case famHMAC:
		secret, ok := raw.([]byte)
		if !ok {
			return nil, fmt.Errorf("key %q: %s needs a symmetric (oct) key", kid, alg)
		}
		if len(secret) < a.hash.Size() {
			return nil, fmt.Errorf("key %q: %s secret is %d bytes, at least %d are required", kid, alg, len(secret), a.hash.Size())
		}
		k.pub = secret
	case famECDSA:
		switch p := raw.(type) {
		case *ecdsa.PrivateKey:
			k.pub = &p.PublicKey
		case *ecdsa.PublicKey:
			k.pub, k.priv = p, nil // verifies only
		default:
			return nil, fmt.Errorf("key %q: %s needs an EC key", kid, alg)
		}
		p := k.pub.(*ecdsa.PublicKey)
		if want := curveFor(alg); p.Curve != want {
			return nil, fmt.Errorf("key %q: %s needs curve %s, the key is on %s", kid, alg, want.Params().Name, p.Curve.Params().Name)
		}
	case famEdDSA:
		switch p := raw.(type) {
		case ed25519.PrivateKey:
			k.pub = p.Public().(ed25519.PublicKey)
		case ed25519.PublicKey:
			k.pub, k.priv = p, nil
		default:
			return nil, fmt.Errorf("key %q: EdDSA needs an Ed25519 key", kid)
		}
	case famRSA, famRSAPSS:
		switch p := raw.(type) {
		case *rsa.PrivateKey:
			k.pub = &p.PublicKey
		case *rsa.PublicKey:
			k.pub, k.priv = p, nil
		default:
			return nil, fmt.Errorf("key %q: %s needs an RSA key", kid, alg)
		}
		if n := k.pub.(*rsa.PublicKey).N.BitLen(); n < 2048 {
			return nil, fmt.Errorf("key %q: RSA keys need at least 2048 bits, this one has %d", kid, n)
		}
	}
	j, err := jwk.Import(raw)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", kid, err)
	}
	if kid != "" {
		_ = j.Set(jwk.KeyIDKey, kid)
	}
	sa, _ := jwa.LookupSignatureAlgorithm(alg)
	_ = j.Set(jwk.AlgorithmKey, sa)
	k.jwk = j
	var prefixes [numTypes]string
	for t := Type(0); t < numTypes; t++ {
		k.header[t] = encodeHeader(alg, kid, t.String())
		prefixes[t] = k.header[t] + "."
	}
	if a.fam == famHMAC {
		// every token this key signs or verifies with a known header starts
		// with one of these: its MAC resumes after them (prefix index = Type)
		k.macs = newMACPool(hashFunc(a.hash), raw.([]byte), prefixes[:]...)
	}
	return k, nil
}

func hashFunc(h crypto.Hash) func() hash.Hash {
	switch h {
	case crypto.SHA384:
		return sha512.New384
	case crypto.SHA512:
		return sha512.New
	}
	return sha256.New
}

func curveFor(alg string) elliptic.Curve {
	switch alg {
	case "ES384":
		return elliptic.P384()
	case "ES512":
		return elliptic.P521()
	}
	return elliptic.P256()
}

// encodeHeader builds the protected header once per key and type; the hot
// path then only copies these bytes.
func encodeHeader(alg, kid, typ string) string {
	h := struct {
		Alg string `json:"alg"`
		Kid string `json:"kid,omitempty"`
		Typ string `json:"typ"`
	}{alg, kid, typ}
	b, _ := json.Marshal(h)
	return base64.RawURLEncoding.EncodeToString(b)
}

// appendSignature appends the base64url signature of input to dst. prefix
// is the Type whose header of k's input starts with, byte for byte, or
// noPrefix. input may alias dst: it is read before dst grows.
func (k *Key) appendSignature(dst, input []byte, prefix int) ([]byte, error) {
	if k.priv == nil {
		return dst, fmt.Errorf("tokens: key %q is a public key: it verifies, it cannot sign", k.ID)
	}
	if k.fam == famHMAC {
		sum, st := k.macs.macAfter(prefix, input)
		dst = base64.RawURLEncoding.AppendEncode(dst, sum)
		k.macs.put(st)
		return dst, nil
	}
	var sig []byte
	var err error
	switch k.fam {
	case famECDSA:
		sig, err = jwsbb.SignECDSA(k.priv.(*ecdsa.PrivateKey), input, k.hash, nil)
	case famEdDSA:
		sig, err = jwsbb.SignEdDSA(k.priv.(ed25519.PrivateKey), input)
	case famRSA, famRSAPSS:
		sig, err = jwsbb.SignRSA(k.priv.(*rsa.PrivateKey), input, k.hash, k.fam == famRSAPSS, nil)
	default:
		err = errors.New("tokens: key has no algorithm")
	}
	if err != nil {
		return dst, err
	}
	return base64.RawURLEncoding.AppendEncode(dst, sig), nil
}

// verify checks sig over input with the public half of k. HMAC signatures
// are compared in constant time. prefix is the Type whose header of k's
// input starts with, byte for byte, or noPrefix.
func (k *Key) verify(input, sig []byte, prefix int) error {
	switch k.fam {
	case famHMAC:
		if !k.macs.equal(prefix, input, sig) {
			return errors.New("HMAC mismatch")
		}
		return nil
	case famECDSA:
		return jwsbb.VerifyECDSA(k.pub.(*ecdsa.PublicKey), input, sig, k.hash)
	case famEdDSA:
		return jwsbb.VerifyEdDSA(k.pub.(ed25519.PublicKey), input, sig)
	case famRSA, famRSAPSS:
		return jwsbb.VerifyRSA(k.pub.(*rsa.PublicKey), input, sig, k.hash, k.fam == famRSAPSS)
	}
	return errors.New("tokens: key has no algorithm")
}

// Symmetric reports whether k is an HMAC secret (never published).
func (k *Key) Symmetric() bool { return k.fam == famHMAC }

// KeySet is the immutable set of keys in force: one signs, all verify.
// Reloading builds a new KeySet and swaps it in whole.
type KeySet struct {
	keys     []*Key
	byKID    map[string]*Key
	byHeader map[string]headerRef
	signing  *Key
	jwks     []byte
	mac      *MACKeys // the opaque format's keys derived from these
	// Ephemeral is true when the set holds a key generated at start.
	Ephemeral bool
}

type headerRef struct {
	key *Key
	typ Type
}

func newKeySet(keys []*Key, signingKID string) (*KeySet, error) {
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	ks := &KeySet{keys: keys, byKID: map[string]*Key{}, byHeader: map[string]headerRef{}}
	for _, k := range keys {
		if _, dup := ks.byKID[k.ID]; dup {
			return nil, fmt.Errorf("key id %q appears twice", k.ID)
		}
		ks.byKID[k.ID] = k
		for t := Type(0); t < numTypes; t++ {
			ks.byHeader[k.header[t]] = headerRef{k, t}
		}
	}
	ks.signing = keys[0]
	if signingKID != "" {
		k, ok := ks.byKID[signingKID]
		if !ok {
			return nil, fmt.Errorf("signing kid %q is not in the key set", signingKID)
		}
		ks.signing = k
	}
	if ks.signing.priv != nil { // a verifying set (public keys) mints nothing
		mac, err := deriveMACKeys(ks.signing, keys)
		if err != nil {
			return nil, err
		}
		ks.mac = mac
	}
	pub := jwk.NewSet()
	for _, k := range keys {
		if k.Symmetric() {
			continue // an oct key's public form is the secret itself
		}
		p, err := k.jwk.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		_ = p.Set(jwk.KeyUsageKey, "sig")
		if err := pub.AddKey(p); err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
	}
	b, err := json.Marshal(pub)
	if err != nil {
		return nil, err
	}
	ks.jwks = b
	return ks, nil
}

// headerRef finds the key and type of a header tokend wrote byte for byte.
// The signing key's header of the type expected comes first: it is what
// almost every token presented carries, and comparing its bytes costs less
// than hashing them for the map.
func (ks *KeySet) headerRef(hseg []byte, want Type) (headerRef, bool) {
	if want < numTypes && string(hseg) == ks.signing.header[want] {
		return headerRef{ks.signing, want}, true
	}
	ref, ok := ks.byHeader[string(hseg)] // no allocation: map lookup by string(bytes)
	return ref, ok
}

// Signing returns the key new tokens are signed with.
func (ks *KeySet) Signing() *Key { return ks.signing }

// Lookup returns the key with the given kid.
func (ks *KeySet) Lookup(kid string) (*Key, bool) {
	k, ok := ks.byKID[kid]
	return k, ok
}

// Keys returns every key of the set, signing key included.
func (ks *KeySet) Keys() []*Key { return ks.keys }

// JWKS returns the public keys as a JSON Web Key Set, oct keys left out.
func (ks *KeySet) JWKS() []byte { return ks.jwks }

// ParseJWKS builds a KeySet from a JWKS document of private keys. Every key
// needs a kid and an alg; signingKID picks the signer (default: the first).
func ParseJWKS(data []byte, signingKID string) (*KeySet, error) {
	return parseJWKS(data, signingKID, false)
}

// ParseVerificationKeys builds a KeySet that verifies only, from a JWKS
// document of public keys (what GET /.well-known/jwks.json publishes),
// private keys (their public halves are used) or shared HMAC secrets. Every
// key needs a kid and an alg.
func ParseVerificationKeys(data []byte) (*KeySet, error) {
	return parseJWKS(data, "", true)
}

func parseJWKS(data []byte, signingKID string, verifyOnly bool) (*KeySet, error) {
	set, err := jwk.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	keys := make([]*Key, 0, set.Len())
	for i := 0; i < set.Len(); i++ {
		j, _ := set.Key(i)
		kid, ok := j.KeyID()
		if !ok || kid == "" {
			return nil, fmt.Errorf("key #%d has no kid", i)
		}
		a, ok := j.Algorithm()
		if !ok {
			return nil, fmt.Errorf("key %q has no alg", kid)
		}
		var raw any
		if err := jwk.Export(j, &raw); err != nil {
			return nil, fmt.Errorf("key %q: %w", kid, err)
		}
		switch p := raw.(type) {
		case *ecdsa.PublicKey, ed25519.PublicKey, *rsa.PublicKey:
			if !verifyOnly {
				return nil, fmt.Errorf("key %q is a public key; the keys file holds private keys", kid)
			}
		case *ed25519.PrivateKey:
			raw = *p
		case *ed25519.PublicKey:
			raw = *p
		}
		if verifyOnly {
			raw = public(raw)
		}
		k, err := newKey(kid, a.String(), raw)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return newKeySet(keys, signingKID)
}

// public returns the public half of a private key; anything else as it is.
func public(raw any) any {
	switch p := raw.(type) {
	case *ecdsa.PrivateKey:
		return &p.PublicKey
	case ed25519.PrivateKey:
		return p.Public()
	case *rsa.PrivateKey:
		return &p.PublicKey
	}
	return raw
}

// HMACKeySet builds a KeySet from one shared secret, the way both legacy
// backends signed. Secrets shorter than the hash output are refused.
func HMACKeySet(secret []byte, alg string) (*KeySet, error) {
	if a, ok := algorithms[alg]; !ok || a.fam != famHMAC {
		return nil, fmt.Errorf("%q is not an HMAC algorithm (HS256, HS384, HS512)", alg)
	}
	k, err := newKey("hmac-"+alg, alg, append([]byte(nil), secret...))
	if err != nil {
		return nil, err
	}
	return newKeySet([]*Key{k}, "")
}

// EphemeralKeySet generates a fresh Ed25519 key. Tokens die with the process:
// for development only.
func EphemeralKeySet() (*KeySet, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	k, err := newKey("ephemeral-"+base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)[:6]), "EdDSA", priv)
	if err != nil {
		return nil, err
	}
	ks, err := newKeySet([]*Key{k}, "")
	if err != nil {
		return nil, err
	}
	ks.Ephemeral = true
	return ks, nil
}
