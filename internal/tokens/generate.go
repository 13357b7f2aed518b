package tokens

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"slices"

	"github.com/goccy/go-json"
)

// Algorithms lists the signing algorithms tokend accepts, sorted.
func Algorithms() []string {
	algs := make([]string, 0, len(algorithms))
	for a := range algorithms {
		algs = append(algs, a)
	}
	slices.Sort(algs)
	return algs
}

// GenerateJWK makes a new private key for alg and returns it as a JWK (kid,
// alg and use set) ready for a keys file. HMAC secrets are as long as the
// hash output; RSA keys have rsaBits bits (2048 when 0).
func GenerateJWK(alg, kid string, rsaBits int) ([]byte, error) {
	a, ok := algorithms[alg]
	if !ok {
		return nil, fmt.Errorf("algorithm %q is not supported (one of %v)", alg, Algorithms())
	}
	if kid == "" {
		return nil, fmt.Errorf("a key needs a kid")
	}
	var raw any
	var err error
	switch a.fam {
	case famHMAC:
		secret := make([]byte, a.hash.Size())
		_, err = rand.Read(secret)
		raw = secret
	case famECDSA:
		raw, err = ecdsa.GenerateKey(curveFor(alg), rand.Reader)
	case famEdDSA:
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	case famRSA, famRSAPSS:
		if rsaBits == 0 {
			rsaBits = 2048
		}
		raw, err = rsa.GenerateKey(rand.Reader, rsaBits)
	}
	if err != nil {
		return nil, fmt.Errorf("generating a %s key: %w", alg, err)
	}
	k, err := newKey(kid, alg, raw) // the same checks a keys file gets
	if err != nil {
		return nil, err
	}
	_ = k.jwk.Set("use", "sig")
	return json.Marshal(k.jwk)
}
