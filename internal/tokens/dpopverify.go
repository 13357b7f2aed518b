package tokens

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/tokend/tokend/internal/tokens/dpop"
)

// Errors of sender-constrained tokens (RFC 9449 §7).
var (
	// ErrBound: a DPoP-bound access token (cnf.jkt) presented as a Bearer
	// token, which a resource server must refuse: without the proof, the
	// binding would protect nothing.
	ErrBound = fmt.Errorf("%w: a DPoP-bound token presented without its proof", ErrInvalid)
	// ErrNotBound: a Bearer token presented with the DPoP scheme.
	ErrNotBound = fmt.Errorf("%w: the token is not bound to a DPoP key", ErrInvalid)
	// ErrProofReplay: a proof's jti this Verifier has seen within the
	// window; a dpop.Refusal, so that dpop.Reason names it to the client.
	ErrProofReplay error = &dpop.Refusal{Reason: "the DPoP proof was used already (jti)"}
)

// SetDPoP sets how VerifyDPoP checks proofs (algorithms, window); by
// default ES256 and EdDSA within 60 s of the Verifier's clock.
func (v *Verifier) SetDPoP(d *dpop.Verifier) { v.proofs.Store(d) }

// VerifyBearer is Verify for a token presented as `Authorization: Bearer`:
// a DPoP-bound one is refused (ErrBound).
func (v *Verifier) VerifyBearer(ctx context.Context, token []byte, cl *Claims) error {
	if err := v.Verify(ctx, token, cl); err != nil {
		return err
	}
	if cl.Confirmation.JKT != "" {
		return ErrBound
	}
	return nil
}

// VerifyDPoP checks a token presented as `Authorization: DPoP` with its
// proof (the request's one DPoP header), as RFC 9449 §7 asks: the token as
// Verify does and bound to a key (ErrNotBound), then the proof: signed by
// that key (dpop.ErrWrongKey), ath the hash of this token, htm and htu the
// request's method and URL, iat within the window, and its jti not seen by
// this Verifier within twice the window (ErrProofReplay; SetProofMemory
// says what it remembers). Proof errors wrap
// dpop.ErrInvalidProof.
func (v *Verifier) VerifyDPoP(ctx context.Context, token, proof []byte, method, url string, cl *Claims) error {
	if err := v.Verify(ctx, token, cl); err != nil {
		return err
	}
	if cl.Confirmation.JKT == "" {
		return ErrNotBound
	}
	d := v.proofs.Load()
	p, err := d.Verify(proof, dpop.Request{Method: method, URL: url, AccessToken: token, Thumbprint: cl.Confirmation.JKT})
	if err != nil {
		return err
	}
	if !v.seen.use(p.Thumbprint, p.ID, v.codec.clock.Now(), 2*d.Window()) {
		return ErrProofReplay
	}
	return nil
}

// Defaults of the proofs a Verifier remembers (SetProofMemory).
const (
	// DefaultProofsPerKey: a key making more proofs than this within twice
	// the DPoP window forgets its own oldest (34 a second at 60 s).
	DefaultProofsPerKey = 4096
	// DefaultProofs bounds the proofs remembered in all (about 80 MiB).
	DefaultProofs = 1 << 20
)

// SetProofMemory bounds the proofs VerifyDPoP remembers to refuse replays:
// perKey per DPoP key, and total in all, past which the key holding the
// most forgets its oldest; zero or negative values keep the defaults.
func (v *Verifier) SetProofMemory(perKey, total int) { v.seen.setLimits(perKey, total) }

// seenProofs remembers, per DPoP key, the proofs VerifyDPoP accepted, for
// twice the window (as long as a proof could be accepted), so that each jti
// is accepted once. It never refuses a proof it has not seen. A key past
// its bound forgets its own oldest proofs, and when the memory is full the
// key holding the most does: a key's holder flooding its own proofs gives
// up only its own replay protection, never another key's (unless that key
// holds as many, which takes total/n keys for one holding n). Each proof
// costs a fixed size (a keyed 64-bit hash of its jti, whatever its length)
// and every call a bounded amount of work: no sweep, expired proofs go
// oldest first.
//
// One process's memory: a resource server behind a load balancer shares
// nothing, so a proof replayed to another instance within the window and
// with the same token is caught only there (RFC 9449 §11.1 leaves the
// scope to the server; tokend's token endpoint records jti in Redis).
type seenProofs struct {
	mu             sync.Mutex
	seed           maphash.Seed
	keys           map[string]*keyProofs // by thumbprint
	oldest, newest *keyProofs            // keys by their newest proof: wholly expired ones at the oldest end
	largest        keyHeap               // keys by proofs held, the most first
	total          int                   // proofs remembered, all keys
	perKey, most   int
}

// keyProofs are one key's proofs, oldest first.
type keyProofs struct {
	thumb      string
	ids        map[uint64]int64 // jti hash → until (Unix ns)
	fifo       []seenProof      // fifo[head:], in the order they came
	head       int
	prev, next *keyProofs
	at         int // index in largest
}

type seenProof struct {
	id    uint64
	until int64
}

func (s *seenProofs) setLimits(perKey, total int) {
	s.mu.Lock()
	s.perKey, s.most = perKey, total
	s.mu.Unlock()
}

// use records the proof of key thumb with jti until now+ttl, or reports
// that it is still recorded (a replay).
func (s *seenProofs) use(thumb, jti string, now time.Time, ttl time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys, s.seed = map[string]*keyProofs{}, maphash.MakeSeed()
	}
	n := now.UnixNano()
	for k := s.oldest; k != nil && k.newestUntil() <= n; k = s.oldest {
		s.drop(k) // every proof of k has expired
	}
	k := s.keys[thumb]
	if k == nil {
		k = &keyProofs{thumb: thumb, ids: make(map[uint64]int64, 4)}
		s.keys[thumb] = k
		heap.Push(&s.largest, k)
		s.link(k)
	} else {
		s.pop(k, k.expired(n))
	}
	id := maphash.String(s.seed, jti)
	if until, ok := k.ids[id]; ok && n < until {
		return false
	}
	s.unlink(k) // to the newest end: its newest proof is the newest of all
	s.link(k)
	if perKey := cmp.Or(max(s.perKey, 0), DefaultProofsPerKey); k.len() >= perKey {
		s.pop(k, k.len()-perKey+1) // the key's own oldest
	}
	if s.total >= cmp.Or(max(s.most, 0), DefaultProofs) {
		s.pop(s.largest[0], 1) // holds at least as many as k: never one of fewer
	}
	k.push(id, n+int64(ttl))
	s.total++
	heap.Fix(&s.largest, k.at)
	return true
}

// pop makes k forget its c oldest proofs.
func (s *seenProofs) pop(k *keyProofs, c int) {
	if c <= 0 {
		return
	}
	for range c {
		k.pop()
	}
	s.total -= c
	heap.Fix(&s.largest, k.at)
}

func (s *seenProofs) drop(k *keyProofs) {
	s.unlink(k)
	heap.Remove(&s.largest, k.at)
	s.total -= k.len()
	delete(s.keys, k.thumb)
}

func (s *seenProofs) link(k *keyProofs) {
	k.prev, k.next = s.newest, nil
	if s.newest != nil {
		s.newest.next = k
	} else {
		s.oldest = k
	}
	s.newest = k
}

func (s *seenProofs) unlink(k *keyProofs) {
	if k.prev != nil {
		k.prev.next = k.next
	} else {
		s.oldest = k.next
	}
	if k.next != nil {
		k.next.prev = k.prev
	} else {
		s.newest = k.prev
	}
	k.prev, k.next = nil, nil
}

func (k *keyProofs) len() int { return len(k.fifo) - k.head }

// newestUntil is when the key's newest proof expires (0: it has none).
func (k *keyProofs) newestUntil() int64 {
	if k.len() == 0 {
		return 0
	}
	return k.fifo[len(k.fifo)-1].until
}

func (k *keyProofs) push(id uint64, until int64) {
	if k.head > 32 && k.head > len(k.fifo)/2 { // reuse the front the pops freed
		k.fifo = k.fifo[:copy(k.fifo, k.fifo[k.head:])]
		k.head = 0
	}
	k.fifo = append(k.fifo, seenProof{id, until})
	k.ids[id] = until
}

// pop forgets the oldest proof.
func (k *keyProofs) pop() {
	p := k.fifo[k.head]
	k.head++
	if k.ids[p.id] == p.until { // else the jti was accepted again since, after expiring
		delete(k.ids, p.id)
	}
}

// expired counts the oldest proofs expired at n.
func (k *keyProofs) expired(n int64) int {
	c := 0
	for c < k.len() && k.fifo[k.head+c].until <= n {
		c++
	}
	return c
}

// keyHeap orders keys by proofs held, the most first (container/heap).
type keyHeap []*keyProofs

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].len() > h[j].len() }
func (h keyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].at, h[j].at = i, j
}
func (h *keyHeap) Push(x any) {
	k := x.(*keyProofs)
	k.at = len(*h)
	*h = append(*h, k)
}
func (h *keyHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return k
}
