package tokens

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The aspnet refresh token: 64 bytes, standard base64 with padding (88
// characters), as the ASP.NET backend's random tokens looked.
//
//	0      version (1)
//	1..3   MAC key tag: which key of the ring made the MAC
//	4..19  session id (16 random bytes)
//	20..23 generation, big endian
//	24..31 expiry, Unix seconds, big endian
//	32..63 HMAC-SHA256 of bytes 0..31
//
// The MAC makes a forged, truncated or bit-flipped token fail before any
// store round trip. Nothing in it is random, so equal inputs give the equal
// token and a retry inside the grace window hands back the same one.
const (
	OpaqueSize    = 64
	OpaqueLen     = 88 // base64.StdEncoding.EncodedLen(OpaqueSize)
	opaqueVersion = 1
	opaqueBody    = 32
	tagSize       = 3
	sidSize       = 16
)

// opaqueEncoding refuses the non-zero padding bits plain StdEncoding allows,
// so every token has exactly one spelling.
var opaqueEncoding = base64.StdEncoding.Strict()

// MACKeys is the ring of MAC keys of the opaque format: the first makes new
// tokens, all verify (so keys rotate with overlap).
type MACKeys struct {
	keys  []*macKey
	byTag map[[tagSize]byte]*macKey
}

type macKey struct {
	tag  [tagSize]byte
	macs *macPool
}

const (
	macInfo    = "tokend opaque refresh token v1"
	minMACSize = 32
)

// NewMACKeys derives a ring from secrets (TOKEND_REFRESH_KEY); the first one
// makes new tokens. Each secret must be at least 32 bytes.
func NewMACKeys(secrets ...[]byte) (*MACKeys, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no refresh key")
	}
	for i, s := range secrets {
		if len(s) < minMACSize {
			return nil, fmt.Errorf("refresh key #%d is %d bytes, at least %d are required", i+1, len(s), minMACSize)
		}
	}
	return newMACKeys(secrets)
}

// deriveMACKeys derives a ring from the private material of every key in a
// key set, the signing key's first: tokens minted under a key that is still in
// the set keep verifying after a rotation.
func deriveMACKeys(signing *Key, keys []*Key) (*MACKeys, error) {
	secrets, err := materials(signing, keys, false)
	if err != nil {
		return nil, err
	}
	return newMACKeys(secrets)
}

// materials is the private material of signing, then of the other keys in
// their order. A key without any is an error, or skipped when skip is set.
func materials(signing *Key, keys []*Key, skip bool) ([][]byte, error) {
	out := make([][]byte, 0, len(keys))
	for i, k := range append([]*Key{signing}, keys...) {
		if i > 0 && k == signing {
			continue
		}
		m, err := k.material()
		switch {
		case err != nil && skip:
			continue
		case err != nil:
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func newMACKeys(secrets [][]byte) (*MACKeys, error) {
	r := &MACKeys{byTag: make(map[[tagSize]byte]*macKey, len(secrets))}
	for i, s := range secrets {
		key, err := hkdf.Key(sha256.New, s, nil, macInfo, sha256.Size)
		if err != nil {
			return nil, err
		}
		m := &macKey{}
		tagMAC := hmac.New(sha256.New, key)
		tagMAC.Write([]byte("key tag"))
		copy(m.tag[:], tagMAC.Sum(nil))
		if _, dup := r.byTag[m.tag]; dup {
			return nil, fmt.Errorf("refresh key #%d is a duplicate (or its tag collides)", i+1)
		}
		m.macs = newMACPool(sha256.New, key)
		r.byTag[m.tag] = m
		r.keys = append(r.keys, m)
	}
	return r, nil
}

// material is the secret a MAC key is derived from: the HMAC secret, or the
// PKCS #8 encoding of a private key.
func (k *Key) material() ([]byte, error) {
	switch p := k.priv.(type) {
	case []byte:
		return p, nil
	case *ecdsa.PrivateKey, ed25519.PrivateKey, *rsa.PrivateKey:
		return x509.MarshalPKCS8PrivateKey(p)
	}
	return nil, errors.New("no private key material")
}

// Opaque is the aspnet refresh format. Its MAC keys are Fixed when set
// (TOKEND_REFRESH_KEY), otherwise derived from the codec's key set in force,
// so a SIGHUP key reload carries the MAC keys along.
type Opaque struct {
	Codec *Codec
	Fixed *MACKeys
}

func (o Opaque) ring() *MACKeys {
	if o.Fixed != nil {
		return o.Fixed
	}
	return o.Codec.Keys().mac
}

// AppendRefresh implements RefreshFormat. The session id must be the
// base64url form of 16 bytes, as Issuer.Start makes them.
func (o Opaque) AppendRefresh(dst []byte, cl *Claims) ([]byte, error) {
	s := scratchPool.Get().(*scratch) // a stack array would escape through the MAC's hash.Hash
	defer scratchPool.Put(s)
	raw := s.sig[:OpaqueSize]
	if len(cl.Session) != base64.RawURLEncoding.EncodedLen(sidSize) {
		return dst, fmt.Errorf("tokens: session id %q does not fit an opaque token", cl.Session)
	}
	if n, err := strictB64.Decode(raw[4:4+sidSize], []byte(cl.Session)); err != nil || n != sidSize {
		return dst, fmt.Errorf("tokens: session id %q does not fit an opaque token", cl.Session)
	}
	if cl.Gen < 0 || cl.Gen > math.MaxUint32 {
		return dst, fmt.Errorf("tokens: generation %d does not fit an opaque token", cl.Gen)
	}
	k := o.ring().keys[0]
	raw[0] = opaqueVersion
	copy(raw[1:4], k.tag[:])
	binary.BigEndian.PutUint32(raw[20:24], uint32(cl.Gen))
	binary.BigEndian.PutUint64(raw[24:32], uint64(cl.Expires))
	sum, st := k.macs.mac(raw[:opaqueBody])
	copy(raw[opaqueBody:], sum)
	k.macs.put(st)
	return opaqueEncoding.AppendEncode(dst, raw), nil
}

// ParseRefresh implements RefreshFormat: cl gets the session id, generation
// and expiry (an opaque token names no subject). Errors wrap ErrMalformed
// (not 88 characters of canonical base64 holding a version 1 token),
// ErrInvalid (unknown key, MAC mismatch) or ErrExpired (MAC good, expired).
// The MAC is compared in constant time; nothing else depends on a secret.
func (o Opaque) ParseRefresh(token []byte, now time.Time, cl *Claims) error {
	return o.parseRefreshKept(token, now, cl, nil)
}

// parseRefreshKept implements keptParser: with kept, the session id is
// spelled onto its end and cl.Session shares those bytes.
func (o Opaque) parseRefreshKept(token []byte, now time.Time, cl *Claims, kept *[]byte) error {
	cl.reset()
	if len(token) != OpaqueLen {
		return fmt.Errorf("%w: an opaque refresh token is %d characters, not %d", ErrMalformed, OpaqueLen, len(token))
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	raw := s.sig[:OpaqueSize+2] // DecodedLen(88) = 66 before padding is removed
	if n, err := opaqueEncoding.Decode(raw, token); err != nil || n != OpaqueSize {
		return fmt.Errorf("%w: not canonical base64 of %d bytes", ErrMalformed, OpaqueSize)
	}
	if raw[0] != opaqueVersion {
		return fmt.Errorf("%w: opaque token version %d", ErrMalformed, raw[0])
	}
	k, ok := o.ring().byTag[[tagSize]byte(raw[1:4])]
	if !ok {
		return fmt.Errorf("%w: opaque token made with an unknown key", ErrInvalid)
	}
	if !k.macs.equal(noPrefix, raw[:opaqueBody], raw[opaqueBody:OpaqueSize]) {
		return fmt.Errorf("%w: opaque token MAC does not match", ErrInvalid)
	}
	if kept != nil {
		start := len(*kept)
		*kept = base64.RawURLEncoding.AppendEncode(*kept, raw[4:4+sidSize])
		cl.Session = text((*kept)[start:], true)
	} else {
		cl.Session = base64.RawURLEncoding.EncodeToString(raw[4 : 4+sidSize])
	}
	cl.Gen = int64(binary.BigEndian.Uint32(raw[20:24]))
	cl.Expires = int64(binary.BigEndian.Uint64(raw[24:32]))
	if now.Unix() >= cl.Expires {
		return fmt.Errorf("%w: expired at %d", ErrExpired, cl.Expires)
	}
	return nil
}

// Secrets derives one secret per key of ks for purpose (HKDF-SHA256 of its
// private material), the signing key's first: what instances sharing a
// keys file agree on without talking, such as DPoP nonces. Keys without
// private material are skipped.
func (ks *KeySet) Secrets(purpose string) [][]byte {
	ms, _ := materials(ks.signing, ks.keys, true)
	out := make([][]byte, 0, len(ms))
	for _, m := range ms {
		if s, err := hkdf.Key(sha256.New, m, nil, "tokend "+purpose, sha256.Size); err == nil {
			out = append(out, s)
		}
	}
	return out
}
