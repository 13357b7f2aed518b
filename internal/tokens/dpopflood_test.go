package tokens

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/dpop/prover"
)

// dpopUsers makes DPoP users of one issuer, each a session bound to its
// own key, and their proofs for GET api.
type dpopUsers struct {
	t     *testing.T
	is    *Issuer
	clock *movingClock
}

type dpopUser struct {
	key   *prover.Key
	token []byte
}

const floodAPI = "https://api.example.com/orders"

func (d dpopUsers) user(sub string) dpopUser {
	d.t.Helper()
	k, err := prover.New("EdDSA")
	if err != nil {
		d.t.Fatal(err)
	}
	var p Pair
	if err := d.is.StartGrant(context.Background(), sub, Grant{Client: "app", Key: k.Thumbprint()}, &p); err != nil {
		d.t.Fatal(err)
	}
	return dpopUser{k, append([]byte(nil), p.Access...)}
}

func (d dpopUsers) proof(u dpopUser) []byte {
	d.t.Helper()
	p, err := u.key.Proof("GET", floodAPI, prover.Options{IssuedAt: d.clock.Now(), AccessToken: string(u.token)})
	if err != nil {
		d.t.Fatal(err)
	}
	return []byte(p)
}

func (v *Verifier) check(u dpopUser, proof []byte) error {
	return v.VerifyDPoP(context.Background(), u.token, proof, "GET", floodAPI, &Claims{})
}

// Issue 25, item 12: one DPoP user filled the Verifier's proof memory with
// its own valid proofs (fresh jtis), and then every new proof, anyone's,
// was refused as a replay. Now a key past its bound forgets its own oldest
// proofs: nothing fresh is refused, no other key's proof is forgotten.
func TestVerifyDPoPFlood(t *testing.T) {
	const perKey = 64
	is, clock, ks := newIssuer(t, false)
	d := dpopUsers{t, is, clock}
	v := NewVerifier(ks, "", clock)
	v.SetProofMemory(perKey, 1<<20)
	alice, mallory := d.user("alice"), d.user("mallory")
	early := d.proof(alice)
	if err := v.check(alice, early); err != nil {
		t.Fatal(err)
	}
	refused := 0
	var last []byte
	for range 2 * perKey { // mallory's own valid proofs, each once
		last = d.proof(mallory)
		if err := v.check(mallory, last); err != nil {
			refused++
		}
	}
	if refused > 0 {
		t.Errorf("%d of mallory's %d fresh proofs refused", refused, 2*perKey)
	}
	if err := v.check(alice, d.proof(alice)); err != nil {
		t.Fatalf("alice's fresh proof after mallory's flood: %v", err)
	}
	if err := v.check(alice, early); !errors.Is(err, ErrProofReplay) {
		t.Fatalf("alice's first proof replayed after mallory's flood: %v; want ErrProofReplay", err)
	}
	if err := v.check(mallory, last); !errors.Is(err, ErrProofReplay) {
		t.Fatalf("mallory's newest proof replayed: %v; want ErrProofReplay", err)
	}
	bob := d.user("bob")
	if err := v.check(bob, d.proof(bob)); err != nil {
		t.Fatalf("a new user's first proof after mallory's flood: %v", err)
	}
	if n := v.seen.total; n != perKey+3 {
		t.Fatalf("%d proofs remembered; want mallory's %d, alice's 2 and bob's 1", n, perKey)
	}
}

// Many keys flooding at once (one attacker holding many sessions): the
// memory stays within its total, the key holding the most forgetting its
// oldest, so a key holding fewer loses none of them.
func TestVerifyDPoPFloodManyKeys(t *testing.T) {
	const perKey, total, keys = 64, 256, 16
	is, clock, ks := newIssuer(t, false)
	d := dpopUsers{t, is, clock}
	v := NewVerifier(ks, "", clock)
	v.SetProofMemory(perKey, total)
	alice := d.user("alice")
	early := d.proof(alice)
	if err := v.check(alice, early); err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		m := d.user(fmt.Sprintf("mallory-%d", i))
		for range perKey {
			if err := v.check(m, d.proof(m)); err != nil {
				t.Fatalf("mallory %d's fresh proof: %v", i, err)
			}
		}
	}
	if err := v.check(alice, early); !errors.Is(err, ErrProofReplay) {
		t.Fatalf("alice's proof replayed after %d keys flooded: %v; want ErrProofReplay", keys, err)
	}
	if err := v.check(alice, d.proof(alice)); err != nil {
		t.Fatalf("alice's fresh proof: %v", err)
	}
	if n := v.seen.total; n != total {
		t.Fatalf("%d proofs remembered; want the bound, %d", n, total)
	}
}

// Proofs are forgotten when they could no longer be accepted anyway (twice
// the window), and so are keys: the memory empties without a sweep.
func TestVerifyDPoPProofExpiry(t *testing.T) {
	is, clock, ks := newIssuer(t, false)
	d := dpopUsers{t, is, clock}
	v := NewVerifier(ks, "", clock)
	alice, bob := d.user("alice"), d.user("bob")
	pa := d.proof(alice)
	if err := v.check(alice, pa); err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(time.Minute)
	pb := d.proof(bob)
	if err := v.check(bob, pb); err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(time.Minute) // alice's proof: 2 windows old
	if err := v.check(bob, pb); !errors.Is(err, ErrProofReplay) {
		t.Fatalf("bob's proof replayed a minute later: %v; want ErrProofReplay", err)
	}
	if _, ok := v.seen.keys[alice.key.Thumbprint()]; ok {
		t.Fatal("alice's key still remembered two windows after its last proof")
	}
	if err := v.check(alice, pa); err == nil || errors.Is(err, ErrProofReplay) {
		t.Fatalf("alice's proof two windows later: %v; want refused as stale, not as a replay", err)
	}
	clock.t = clock.t.Add(time.Minute)
	if err := v.check(alice, d.proof(alice)); err != nil {
		t.Fatal(err)
	}
	if len(v.seen.keys) != 1 || v.seen.total != 1 {
		t.Fatalf("%d keys, %d proofs remembered; want alice's one", len(v.seen.keys), v.seen.total)
	}
}

// Concurrent proofs of many keys, each replayed at once by another
// goroutine: exactly one of each pair is accepted (run with -race).
func TestVerifyDPoPConcurrentReplays(t *testing.T) {
	is, clock, ks := newIssuer(t, false)
	d := dpopUsers{t, is, clock}
	v := NewVerifier(ks, "", clock)
	v.SetProofMemory(16, 1<<10) // nothing forgotten early: every replay is caught
	users := make([]dpopUser, 8)
	for i := range users {
		users[i] = d.user(fmt.Sprintf("u%d", i))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := map[string]int{}
	for i := range users {
		for range 16 {
			u, p := users[i], d.proof(users[i])
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if v.check(u, p) == nil {
						mu.Lock()
						accepted[string(p)]++
						mu.Unlock()
					}
				}()
			}
		}
	}
	wg.Wait()
	if len(accepted) != 8*16 {
		t.Fatalf("%d proofs accepted; want every one of %d once", len(accepted), 8*16)
	}
	for p, n := range accepted {
		if n != 1 {
			t.Fatalf("a proof accepted %d times: %.20s…", n, p)
		}
	}
}

// The proof memory's bookkeeping under random use: its count, the heap and
// the list of keys agree with what it holds, and it stays within its
// bounds; a jti never seen is always accepted.
func TestSeenProofsInvariants(t *testing.T) {
	const perKey, total = 16, 200
	var s seenProofs
	s.setLimits(perKey, total)
	at := now
	rng := rand.New(rand.NewPCG(1, 2))
	fresh, full := 0, 0
	for i := range 20000 {
		at = at.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
		thumb := fmt.Sprintf("key-%d", rng.IntN(60))
		jti := fmt.Sprintf("replayed-%d", rng.IntN(100))
		if rng.IntN(2) == 0 {
			jti = fmt.Sprintf("fresh-%d", fresh)
			fresh++
			if !s.use(thumb, jti, at, 10*time.Second) {
				t.Fatalf("op %d: a jti never seen refused", i)
			}
		} else {
			s.use(thumb, jti, at, 10*time.Second)
		}
		sum, listed := 0, 0
		for k := s.oldest; k != nil; k = k.next {
			listed++
			if k.len() > perKey {
				t.Fatalf("op %d: a key holds %d proofs; the bound is %d", i, k.len(), perKey)
			}
		}
		for _, k := range s.keys {
			sum += k.len()
			if k.len() > s.largest[0].len() || s.largest[k.at] != k {
				t.Fatalf("op %d: the heap is off", i)
			}
		}
		if sum != s.total || listed != len(s.keys) || len(s.largest) != len(s.keys) {
			t.Fatalf("op %d: total %d, held %d; %d keys, %d listed, %d in the heap", i, s.total, sum, len(s.keys), listed, len(s.largest))
		}
		if s.total > total {
			t.Fatalf("op %d: %d proofs held; the bound is %d", i, s.total, total)
		}
		if s.total == total {
			full++
		}
	}
	if full < 1000 || len(s.keys) == 0 {
		t.Fatalf("the memory was full after %d operations only; the test does not exercise the bound", full)
	}
}
