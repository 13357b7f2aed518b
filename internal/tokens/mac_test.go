package tokens

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"math/rand/v2"
	"testing"
)

// TestMACPool checks the prepared states against crypto/hmac: keys shorter
// than, as long as and longer than the block (RFC 2104 hashes those),
// prefixes shorter than a block and spanning several, messages that end
// inside the prefix's last partial block or far past it, and each state
// used again after the others.
func TestMACPool(t *testing.T) {
	hashes := []struct {
		name string
		h    func() hash.Hash
	}{{"SHA-256", sha256.New}, {"SHA-384", sha512.New384}, {"SHA-512", sha512.New}}
	rng := rand.New(rand.NewPCG(1, 2))
	bytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for _, hc := range hashes {
		for _, keyLen := range []int{1, 32, 64, 127, 128, 129, 300} {
			key := bytes(keyLen)
			prefixes := []string{"", string(bytes(10)), string(bytes(64)), string(bytes(70)), string(bytes(200))}
			p := newMACPool(hc.h, key, prefixes...)
			for round := range 2 {
				for i, pre := range prefixes {
					for _, tail := range []int{0, 1, 55, 64, 500} {
						msg := append([]byte(pre), bytes(tail)...)
						want := hmac.New(hc.h, key)
						want.Write(msg)
						sum := want.Sum(nil)
						for _, idx := range []int{i, noPrefix} {
							got, st := p.macAfter(idx, msg)
							if !hmac.Equal(got, sum) {
								t.Fatalf("%s key %d prefix %d (%d bytes) tail %d round %d: got %x, want %x",
									hc.name, keyLen, idx, len(pre), tail, round, got, sum)
							}
							p.put(st)
							if !p.equal(idx, msg, sum) || p.equal(idx, msg, sum[1:]) || p.equal(idx, append(msg, 0), sum) {
								t.Fatalf("%s key %d prefix %d tail %d: equal disagrees", hc.name, keyLen, idx, tail)
							}
						}
					}
				}
			}
		}
	}
}
