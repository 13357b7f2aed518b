package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	core "github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
	"github.com/tokend/tokend/tokens"
)

// TestFollowRevocations: with tokend's Redis, a revoked session's token is
// refused within a bounded time, the others still pass, and sessions
// revoked before the Verifier started are known from its start.
func TestFollowRevocations(t *testing.T) {
	redis := redistest.Start(t)
	store, err := session.DialRedis([]string{redis.Addr}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ks, err := core.EphemeralKeySet()
	if err != nil {
		t.Fatal(err)
	}
	codec := core.NewCodec(ks, issuer, core.SystemClock)
	is := core.NewIssuer(codec, core.JWTRefresh{Codec: codec}, store,
		core.Config{AccessTTL: 30 * time.Minute, RefreshTTL: time.Hour, SessionMax: 24 * time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	login := func(sub string) []byte {
		var p core.Pair
		if err := is.Start(ctx, sub, &p); err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), p.Access...)
	}
	earlier, alice, bob := login("earlier"), login("alice"), login("bob")
	if _, err := is.RevokeSubject(ctx, "earlier", false); err != nil {
		t.Fatal(err)
	}

	pub, err := tokens.ParseVerificationKeys(ks.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	v := tokens.NewVerifier(pub, issuer, tokens.SystemClock)
	if err := v.FollowRevocations(ctx, tokens.RevocationsConfig{Addrs: []string{redis.Addr}, AccessTTL: 30 * time.Minute, Size: 1000}); err != nil {
		t.Fatal(err)
	}
	verify := func(token []byte) error {
		var cl tokens.Claims
		return v.Verify(ctx, token, &cl)
	}
	for name, c := range map[string]struct {
		token []byte
		want  error
	}{
		"revoked before the start": {earlier, tokens.ErrRevoked},
		"alice":                    {alice, nil},
		"bob":                      {bob, nil},
	} {
		if err := verify(c.token); c.want == nil && err != nil || !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v; want %v", name, err, c.want)
		}
	}

	revoked := time.Now()
	if _, err := is.RevokeSubject(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	for err := verify(alice); !errors.Is(err, tokens.ErrRevoked); err = verify(alice) {
		if time.Since(revoked) > 5*time.Second {
			t.Fatalf("alice's token 5 s after her logout: %v; want ErrRevoked", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("refused %v after the revocation", time.Since(revoked).Round(time.Millisecond))
	if err := verify(bob); err != nil {
		t.Fatalf("bob's token after alice's logout: %v", err)
	}
}

// TestFollowRevocationsStart: what keeps FollowRevocations from starting
// is an error, at once or within StartTimeout, never a silent Verifier
// that hears nothing.
func TestFollowRevocationsStart(t *testing.T) {
	nobody := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)) // nothing listens there
	ended, end := context.WithCancel(context.Background())
	end()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		cfg  tokens.RevocationsConfig
	}{
		{"no address", context.Background(), tokens.RevocationsConfig{}},
		{"an unreachable Redis", context.Background(), tokens.RevocationsConfig{Addrs: []string{nobody}, Timeout: 200 * time.Millisecond}},
		{"a context ended", ended, tokens.RevocationsConfig{Addrs: []string{redistest.Start(t).Addr}, StartTimeout: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tokens.NewVerifier(nil, issuer, nil)
			start := time.Now()
			if err := v.FollowRevocations(tc.ctx, tc.cfg); err == nil {
				t.Fatal("FollowRevocations = nil; want an error")
			} else if time.Since(start) > 10*time.Second {
				t.Fatalf("the error took %v", time.Since(start))
			} else {
				t.Log(err)
			}
		})
	}
}

// TestFollowRevocationsFailsClosed: when a session's token needs Redis to
// be confirmed (a bloom filter hit) and Redis does not answer, Verify says
// ErrUnavailable, which is no verdict: never nil, never a refusal.
func TestFollowRevocationsFailsClosed(t *testing.T) {
	redis := redistest.Start(t)
	store, err := session.DialRedis([]string{redis.Addr}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ks, _ := core.EphemeralKeySet()
	codec := core.NewCodec(ks, issuer, core.SystemClock)
	is := core.NewIssuer(codec, core.JWTRefresh{Codec: codec}, store,
		core.Config{AccessTTL: 30 * time.Minute, RefreshTTL: time.Hour, SessionMax: 24 * time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// a filter sized for one revocation, given sixty: every session hits it
	for i := range 60 {
		var p core.Pair
		if err := is.Start(ctx, fmt.Sprint("gone", i), &p); err != nil {
			t.Fatal(err)
		}
		if _, err := is.RevokeSubject(ctx, fmt.Sprint("gone", i), false); err != nil {
			t.Fatal(err)
		}
	}
	var bob core.Pair
	if err := is.Start(ctx, "bob", &bob); err != nil {
		t.Fatal(err)
	}
	pub, _ := tokens.ParseVerificationKeys(ks.JWKS())
	v := tokens.NewVerifier(pub, issuer, tokens.SystemClock)
	if err := v.FollowRevocations(ctx, tokens.RevocationsConfig{Addrs: []string{redis.Addr}, Size: 1, Timeout: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	redis.Stop()
	var cl tokens.Claims
	err = v.Verify(ctx, bob.Access, &cl)
	if !errors.Is(err, tokens.ErrUnavailable) {
		t.Fatalf("Verify with Redis stopped = %v; want ErrUnavailable", err)
	}
	for _, verdict := range []error{tokens.ErrMalformed, tokens.ErrInvalid, tokens.ErrExpired, tokens.ErrRevoked} {
		if errors.Is(err, verdict) {
			t.Fatalf("Verify = %v, a %v: an unanswered check read as a verdict", err, verdict)
		}
	}
}

// TestFollowRevocationsWhileServing: FollowRevocations called while
// tokens are being verified (a retry after Redis was down at start, or a
// second call after the first's ctx ended) installs its revocations
// without a data race (run with -race).
func TestFollowRevocationsWhileServing(t *testing.T) {
	redis := redistest.Start(t)
	store, err := session.DialRedis([]string{redis.Addr}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ks, _ := core.EphemeralKeySet()
	codec := core.NewCodec(ks, issuer, core.SystemClock)
	is := core.NewIssuer(codec, core.JWTRefresh{Codec: codec}, store,
		core.Config{AccessTTL: 30 * time.Minute, RefreshTTL: time.Hour, SessionMax: 24 * time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var bob core.Pair
	if err := is.Start(ctx, "bob", &bob); err != nil {
		t.Fatal(err)
	}
	pub, _ := tokens.ParseVerificationKeys(ks.JWKS())
	v := tokens.NewVerifier(pub, issuer, tokens.SystemClock)
	stop := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		var cl tokens.Claims
		for {
			select {
			case <-stop:
				served <- nil
				return
			default:
			}
			if err := v.Verify(ctx, bob.Access, &cl); err != nil {
				served <- err
				return
			}
		}
	}()
	for range 2 {
		if err := v.FollowRevocations(ctx, tokens.RevocationsConfig{Addrs: []string{redis.Addr}, Size: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-served; err != nil {
		t.Fatalf("bob's token while the revocations were installed: %v", err)
	}
}

// TestFollowRevocationsAfterCtx: once the ctx given to FollowRevocations
// ends, the revocations are no longer heard; a revocation made after must
// not let its session's token through unrefused (fail closed with
// ErrUnavailable), unless a later FollowRevocations follows them.
func TestFollowRevocationsAfterCtx(t *testing.T) {
	for _, tc := range []struct {
		name   string
		second bool // a second FollowRevocations, on a live ctx, replaced the first
		want   error
	}{
		{"the only follower's ctx ended", false, tokens.ErrUnavailable},
		{"a replaced follower's ctx ended", true, tokens.ErrRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redis := redistest.Start(t)
			store, err := session.DialRedis([]string{redis.Addr}, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			ks, _ := core.EphemeralKeySet()
			codec := core.NewCodec(ks, issuer, core.SystemClock)
			is := core.NewIssuer(codec, core.JWTRefresh{Codec: codec}, store,
				core.Config{AccessTTL: 30 * time.Minute, RefreshTTL: time.Hour, SessionMax: 24 * time.Hour})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var alice core.Pair
			if err := is.Start(ctx, "alice", &alice); err != nil {
				t.Fatal(err)
			}
			pub, _ := tokens.ParseVerificationKeys(ks.JWKS())
			v := tokens.NewVerifier(pub, issuer, tokens.SystemClock)
			first, end := context.WithCancel(ctx)
			cfg := tokens.RevocationsConfig{Addrs: []string{redis.Addr}, Size: 1000}
			if err := v.FollowRevocations(first, cfg); err != nil {
				t.Fatal(err)
			}
			if tc.second {
				if err := v.FollowRevocations(ctx, cfg); err != nil {
					t.Fatal(err)
				}
			}
			end()
			time.Sleep(200 * time.Millisecond) // the first feed has stopped
			if _, err := is.RevokeSubject(ctx, "alice", false); err != nil {
				t.Fatal(err)
			}
			var cl tokens.Claims
			deadline := time.Now().Add(3 * time.Second)
			err = v.Verify(ctx, alice.Access, &cl)
			for ; !errors.Is(err, tc.want) && time.Now().Before(deadline); err = v.Verify(ctx, alice.Access, &cl) {
				time.Sleep(10 * time.Millisecond)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("alice's token, revoked after the first follower's ctx ended: Verify = %v; want %v", err, tc.want)
			}
		})
	}
}
