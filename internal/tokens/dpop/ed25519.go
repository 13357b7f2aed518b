package dpop

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"

	"filippo.io/edwards25519"
)

// edKey is an Ed25519 public key whose point is decoded once, when its
// proof key is cached: crypto/ed25519.Verify decodes the point (a square
// root) and negates it on every call, a tenth of a verification.
type edKey struct {
	raw    ed25519.PublicKey  // the 32 bytes, hashed into every check
	minusA edwards25519.Point // -A, as the check below needs it
}

// newEdKey decodes pub, refusing what crypto/ed25519 refuses.
func newEdKey(pub ed25519.PublicKey) (*edKey, error) {
	a, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, err
	}
	k := &edKey{raw: bytes.Clone(pub)}
	k.minusA.Negate(a)
	return k, nil
}

// verify is crypto/ed25519's Verify (RFC 8032 §5.1.7, as Go checks it:
// S canonical, the top bits of the signature clear, [S]B = R + [k]A
// without the cofactor), line for line but with the decoded point. The
// SHA-512 state and digest are st's, so the check allocates nothing.
func (k *edKey) verify(message, sig []byte, st *scratch) bool {
	if len(sig) != ed25519.SignatureSize || sig[63]&224 != 0 {
		return false
	}
	if st.sha512 == nil {
		st.sha512 = sha512.New()
	}
	h := st.sha512
	h.Reset()
	h.Write(sig[:32])
	h.Write(k.raw)
	h.Write(message)
	var kScalar, s edwards25519.Scalar // on the stack: no allocation
	if _, err := kScalar.SetUniformBytes(h.Sum(st.digest[:0])); err != nil {
		return false // 64 bytes always set: unreachable
	}
	if _, err := s.SetCanonicalBytes(sig[32:]); err != nil {
		return false
	}
	// [S]B = R + [k]A  <=>  [k](-A) + [S]B = R
	var r edwards25519.Point
	r.VarTimeDoubleScalarBaseMult(&kScalar, &k.minusA, &s)
	return bytes.Equal(sig[:32], r.Bytes())
}
