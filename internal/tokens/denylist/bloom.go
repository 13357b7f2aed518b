package denylist

import (
	"hash/maphash"
	"math"
	"math/bits"
	"sync/atomic"
)

// bloom is a fixed-size bloom filter safe for concurrent use without locks:
// bits are set with atomic OR and read with atomic loads.
type bloom struct {
	bits []atomic.Uint64
	m    uint64 // number of bits
	k    int    // probes per key
	seed maphash.Seed
}

// newBloom sizes a filter for n keys at false-positive rate p:
// m = -n ln p / (ln 2)², k = (m/n) ln 2.
func newBloom(n int, p float64, seed maphash.Seed) *bloom {
	n = max(n, 1)
	m := uint64(math.Ceil(-float64(n) * math.Log(p) / (math.Ln2 * math.Ln2)))
	m = max((m+63)/64*64, 64)
	k := max(int(math.Round(float64(m)/float64(n)*math.Ln2)), 1)
	return &bloom{bits: make([]atomic.Uint64, m/64), m: m, k: k, seed: seed}
}

// probes derives the k bit positions from one 64-bit hash by double hashing
// (Kirsch and Mitzenmacher): h1 + i·h2.
func (b *bloom) probes(key string) (h1, h2 uint64) {
	h := maphash.String(b.seed, key)
	return h, h>>32 | h<<32 | 1 // odd: every probe differs
}

func (b *bloom) add(key string) {
	h1, h2 := b.probes(key)
	for i := range b.k {
		bit := (h1 + uint64(i)*h2) % b.m
		b.bits[bit/64].Or(1 << (bit % 64))
	}
}

func (b *bloom) has(key string) bool {
	h1, h2 := b.probes(key)
	for i := range b.k {
		bit := (h1 + uint64(i)*h2) % b.m
		if b.bits[bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// bytes is the filter's memory.
func (b *bloom) bytes() int { return len(b.bits) * 8 }

// fill is the share of bits set: the false-positive rate is about fill^k.
func (b *bloom) fill() float64 {
	n := 0
	for i := range b.bits {
		n += bits.OnesCount64(b.bits[i].Load())
	}
	return float64(n) / float64(b.m)
}
