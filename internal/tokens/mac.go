package tokens

import (
	"crypto/hmac"
	"encoding"
	"hash"
	"sync"
)

// macPool computes HMACs (RFC 2104) with one key from hash states prepared
// once: the inner state after the key's ipad block, the outer one after its
// opad block, and, for each prefix the key's messages are known to start
// with, the inner state after the prefix's whole blocks. tokend's tokens
// start with a constant "base64url(header)." of 68 bytes and more, so an
// HS256 token is MACed from the state after its header's first 64 bytes:
// one compression fewer of about six per token. hmac.New would cost
// several allocations per call (jwsbb's SignHMAC makes one per token); the
// pooled states cost none. TestMACPool checks every path against
// crypto/hmac.
type macPool struct {
	inner, outer []byte   // marshaled states after the ipad and opad blocks
	after        [][]byte // inner state after each prefix's whole blocks
	skip         []int    // bytes of a message each state in after has read
	pool         sync.Pool
}

// macState is one pair of hashes to resume the prepared states into, with
// their unmarshalers asserted once (not on every MAC).
type macState struct {
	inner, outer   hash.Hash
	innerU, outerU encoding.BinaryUnmarshaler
	sum            [64]byte // large enough for SHA-512
}

// noPrefix is the prefix index of a message with none of the known ones.
const noPrefix = -1

// newMACPool prepares key's states for h, and one for each prefix.
func newMACPool(h func() hash.Hash, key []byte, prefixes ...string) *macPool {
	inner, outer := h(), h()
	if len(key) > inner.BlockSize() { // RFC 2104: a long key is hashed first
		inner.Write(key)
		key = inner.Sum(nil)
		inner.Reset()
	}
	ipad, opad := make([]byte, inner.BlockSize()), make([]byte, inner.BlockSize())
	copy(ipad, key)
	copy(opad, key)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	inner.Write(ipad)
	outer.Write(opad)
	p := &macPool{inner: marshal(inner), outer: marshal(outer)}
	for _, pre := range prefixes {
		n := len(pre) / inner.BlockSize() * inner.BlockSize()
		resume(inner.(encoding.BinaryUnmarshaler), p.inner)
		inner.Write([]byte(pre[:n]))
		p.after, p.skip = append(p.after, marshal(inner)), append(p.skip, n)
	}
	p.pool.New = func() any {
		in, out := h(), h()
		return &macState{inner: in, outer: out, innerU: in.(encoding.BinaryUnmarshaler), outerU: out.(encoding.BinaryUnmarshaler)}
	}
	return p
}

// The standard library's hashes marshal their state; a hash that does not
// is a programming error caught by the first key made with it.
func marshal(h hash.Hash) []byte {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err)
	}
	return b
}

func resume(h encoding.BinaryUnmarshaler, state []byte) {
	if err := h.UnmarshalBinary(state); err != nil {
		panic(err)
	}
}

// mac returns the MAC of msg and the state holding it; the slice is valid
// until the state is given back with put.
func (p *macPool) mac(msg []byte) ([]byte, *macState) { return p.macAfter(noPrefix, msg) }

// macAfter is mac of a message that starts with prefix number i (noPrefix:
// none): the caller knows it does, as a token's header is byte-equal to
// the one it was matched to.
func (p *macPool) macAfter(i int, msg []byte) ([]byte, *macState) {
	st := p.pool.Get().(*macState)
	state := p.inner
	if i != noPrefix {
		state, msg = p.after[i], msg[p.skip[i]:]
	}
	resume(st.innerU, state)
	st.inner.Write(msg)
	sum := st.inner.Sum(st.sum[:0])
	resume(st.outerU, p.outer)
	st.outer.Write(sum) // read before Sum overwrites st.sum
	return st.outer.Sum(st.sum[:0]), st
}

func (p *macPool) put(st *macState) { p.pool.Put(st) }

// equal reports in constant time whether sig is the MAC of msg, which
// starts with prefix number i (noPrefix: none).
func (p *macPool) equal(i int, msg, sig []byte) bool {
	sum, st := p.macAfter(i, msg)
	ok := hmac.Equal(sum, sig)
	p.put(st)
	return ok
}
