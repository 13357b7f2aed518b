package tokens

import (
	"crypto/hmac"
	"hash"
	"sync"
)

// macPool hands out HMAC states keyed once. hmac.New costs several
// allocations per call (jwsbb's SignHMAC makes one per token); a pooled
// state costs none: Reset brings it back to the keyed initial state.
type macPool struct{ pool sync.Pool }

type macState struct {
	h   hash.Hash
	sum [64]byte // large enough for SHA-512
}

func newMACPool(h func() hash.Hash, key []byte) *macPool {
	key = append([]byte(nil), key...)
	p := &macPool{}
	p.pool.New = func() any { return &macState{h: hmac.New(h, key)} }
	return p
}

// mac returns the MAC of msg and the state holding it; the slice is valid
// until the state is given back with put.
func (p *macPool) mac(msg []byte) ([]byte, *macState) {
	st := p.pool.Get().(*macState)
	st.h.Reset()
	st.h.Write(msg)
	return st.h.Sum(st.sum[:0]), st
}

func (p *macPool) put(st *macState) { p.pool.Put(st) }

// equal reports in constant time whether sig is the MAC of msg.
func (p *macPool) equal(msg, sig []byte) bool {
	sum, st := p.mac(msg)
	ok := hmac.Equal(sum, sig)
	p.put(st)
	return ok
}
