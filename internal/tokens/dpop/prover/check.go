package prover

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
)

// SignatureCheck returns a check of proof's signature by Go's crypto alone
// (crypto/ecdsa.VerifyASN1 of SHA-256, or crypto/ed25519.Verify), its key
// and signature decoded beforehand: one verification and nothing else, what
// benchmarks measure a server's whole DPoP check against. ES256 and EdDSA
// proofs only.
func SignatureCheck(proof string) (func() bool, error) {
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		return nil, errors.New("prover: not a compact JWS")
	}
	seg, err0 := b64.DecodeString(parts[0])
	var h struct {
		JWK struct{ X, Y string } `json:"jwk"`
	}
	err1 := json.Unmarshal(seg, &h)
	sig, err2 := b64.DecodeString(parts[2])
	x, err3 := b64.DecodeString(h.JWK.X)
	if err := errors.Join(err0, err1, err2, err3); err != nil {
		return nil, err
	}
	input := []byte(parts[0] + "." + parts[1])
	if h.JWK.Y == "" {
		pub := ed25519.PublicKey(x)
		return func() bool { return ed25519.Verify(pub, input, sig) }, nil
	}
	y, err := b64.DecodeString(h.JWK.Y)
	if err != nil {
		return nil, err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, err
	}
	if len(sig) != 64 {
		return nil, errors.New("prover: an ES256 signature is 64 bytes")
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
	if err != nil {
		return nil, err
	}
	return func() bool {
		sum := sha256.Sum256(input)
		return ecdsa.VerifyASN1(pub, sum[:], der)
	}, nil
}
