package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"sync/atomic"
	"time"
)

// Nonces makes and checks server nonces (§8) without shared state: a
// nonce is an HMAC of the current time step, so every instance holding the
// same secrets hands out and accepts the same ones, and a nonce is good
// for one to two steps. Safe for concurrent use.
type Nonces struct {
	step    time.Duration
	clock   Clock
	secrets atomic.Pointer[[][]byte]
	cached  atomic.Pointer[nonceStep]
}

// nonceStep is what one time step accepts, computed once per step.
type nonceStep struct {
	n       int64
	secrets *[][]byte
	current string
	valid   []string // this step's and the previous step's, under every secret
}

// NewNonces makes nonces that change every step under secrets (the first
// makes them; all are accepted, so that instances on either side of a key
// rotation agree).
func NewNonces(step time.Duration, clock Clock, secrets ...[]byte) *Nonces {
	if clock == nil {
		clock = systemClock{}
	}
	n := &Nonces{step: step, clock: clock}
	n.SetSecrets(secrets...)
	return n
}

// SetSecrets replaces the secrets (after a key reload).
func (n *Nonces) SetSecrets(secrets ...[]byte) { n.secrets.Store(&secrets) }

// Current is the nonce to hand out now (the DPoP-Nonce header).
func (n *Nonces) Current() string { return n.now().current }

// Valid reports whether nonce is one of this step's or the previous one's.
func (n *Nonces) Valid(nonce string) bool {
	ok := 0
	for _, v := range n.now().valid {
		ok |= subtle.ConstantTimeCompare([]byte(v), []byte(nonce))
	}
	return ok == 1
}

func (n *Nonces) now() *nonceStep {
	step := n.clock.Now().UnixNano() / int64(n.step)
	secrets := n.secrets.Load()
	if c := n.cached.Load(); c != nil && c.n == step && c.secrets == secrets {
		return c
	}
	c := &nonceStep{n: step, secrets: secrets}
	for i, s := range *secrets {
		cur := nonceAt(s, step)
		if i == 0 {
			c.current = cur
		}
		c.valid = append(c.valid, cur, nonceAt(s, step-1))
	}
	n.cached.Store(c)
	return c
}

func nonceAt(secret []byte, step int64) string {
	m := hmac.New(sha256.New, secret)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(step))
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}
