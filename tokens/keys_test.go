package tokens_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	core "github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/tokens"
)

// TestKeySets: the ways a resource server gets tokend's keys, and what each
// gives for a good and a bad document.
func TestKeySets(t *testing.T) {
	td := newTokend(t)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwks.json":
			w.Write(td.keys.JWKS())
		case "/garbage":
			w.Write([]byte("{"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer jwks.Close()
	kid := td.keys.Signing().ID
	for _, tc := range []struct {
		name   string
		load   func() (*tokens.KeySet, error)
		want   []string // the kids; nil: an error
		verify bool     // verifies td's tokens
	}{
		{"ParseVerificationKeys", func() (*tokens.KeySet, error) { return tokens.ParseVerificationKeys(td.keys.JWKS()) }, []string{kid}, true},
		{"ParseVerificationKeys of garbage", func() (*tokens.KeySet, error) { return tokens.ParseVerificationKeys([]byte("{")) }, nil, false},
		{"LoadVerificationKeys", func() (*tokens.KeySet, error) {
			return tokens.LoadVerificationKeys("../internal/tokens/testdata/keys.jwks")
		}, []string{"ed-1", "hs256-1", "hs384-1", "hs512-1", "es256-1", "rs256-1"}, false},
		{"LoadVerificationKeys of no file", func() (*tokens.KeySet, error) { return tokens.LoadVerificationKeys("testdata/none.jwks") }, nil, false},
		{"FetchJWKS", func() (*tokens.KeySet, error) {
			return tokens.FetchJWKS(context.Background(), http.DefaultClient, jwks.URL+"/jwks.json")
		}, []string{kid}, true},
		{"FetchJWKS of a 404", func() (*tokens.KeySet, error) {
			return tokens.FetchJWKS(context.Background(), http.DefaultClient, jwks.URL+"/none")
		}, nil, false},
		{"FetchJWKS of garbage", func() (*tokens.KeySet, error) {
			return tokens.FetchJWKS(context.Background(), http.DefaultClient, jwks.URL+"/garbage")
		}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := tc.load()
			if tc.want == nil {
				if err == nil || ks != nil {
					t.Fatalf("= %v, %v; want an error", ks.KIDs(), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ks.KIDs(); !sameSet(got, tc.want) {
				t.Fatalf("KIDs = %v; want %v", got, tc.want)
			}
			if !tc.verify {
				return
			}
			v := tokens.NewVerifier(ks, issuer, at(now))
			var cl tokens.Claims
			if err := v.Verify(context.Background(), td.mint(t, core.Access, claims(now)), &cl); err != nil {
				t.Fatalf("Verify with these keys: %v", err)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestSetKeys: keys swapped in at run time take effect at once; a Verifier
// without keys refuses everything.
func TestSetKeys(t *testing.T) {
	td, next := newTokend(t), newTokend(t)
	v := tokens.NewVerifier(nil, issuer, at(now))
	if v.Keys() != nil || v.Keys().KIDs() != nil {
		t.Fatalf("a Verifier made without keys has %v", v.Keys().KIDs())
	}
	token, nextToken := td.mint(t, core.Access, claims(now)), next.mint(t, core.Access, claims(now))
	var cl tokens.Claims
	for _, step := range []struct {
		keys       *tokens.KeySet
		first, sec error
	}{
		{nil, tokens.ErrInvalid, tokens.ErrInvalid},
		{td.public(t), nil, tokens.ErrInvalid},
		{next.public(t), tokens.ErrInvalid, nil},
	} {
		if step.keys != nil {
			v.SetKeys(step.keys)
			if !slices.Equal(v.Keys().KIDs(), step.keys.KIDs()) {
				t.Fatalf("Keys = %v after SetKeys(%v)", v.Keys().KIDs(), step.keys.KIDs())
			}
		}
		for i, c := range []struct {
			token []byte
			want  error
		}{{token, step.first}, {nextToken, step.sec}} {
			if err := v.Verify(context.Background(), c.token, &cl); c.want == nil && err != nil || !errors.Is(err, c.want) {
				t.Errorf("keys %v, token %d: Verify = %v; want %v", v.Keys().KIDs(), i, err, c.want)
			}
		}
	}
}

// TestJWKSFollower: the keys of tokend's JWKS URL, fetched at start and
// again as soon as a token names a key the Verifier does not know (a
// rotation on tokend); a URL that gives no keys at start is an error.
func TestJWKSFollower(t *testing.T) {
	first, second := newTokend(t), newTokend(t)
	var serving atomic.Pointer[tokend]
	serving.Store(first)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(serving.Load().keys.JWKS())
	}))
	defer jwks.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	v := tokens.NewVerifier(nil, issuer, at(now))
	f := &tokens.JWKSFollower{URL: jwks.URL, Every: time.Hour, MinWait: 10 * time.Millisecond}
	if err := f.Follow(ctx, v); err != nil {
		t.Fatal(err)
	}
	var cl tokens.Claims
	if err := v.Verify(ctx, first.mint(t, core.Access, claims(now)), &cl); err != nil || f.Fetches() != 1 {
		t.Fatalf("Verify = %v after %d fetches", err, f.Fetches())
	}
	serving.Store(second) // the rotation: tokend now publishes another key
	token := second.mint(t, core.Access, claims(now))
	for deadline := time.Now().Add(5 * time.Second); v.Verify(ctx, token, &cl) != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a token of the new key still refused after %d fetches", f.Fetches())
		}
	}
	if f.Fetches() < 2 {
		t.Fatalf("%d fetches", f.Fetches())
	}

	// Fetches read while Follow starts (a metrics scrape at start-up): no
	// data race (go test -race)
	again := &tokens.JWKSFollower{URL: jwks.URL, Every: time.Hour}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_ = again.Fetches()
		}
	}()
	if err := again.Follow(ctx, tokens.NewVerifier(nil, issuer, at(now))); err != nil {
		t.Fatal(err)
	}
	<-done

	gone := &tokens.JWKSFollower{URL: jwks.URL, Client: &http.Client{Timeout: time.Second}}
	jwks.Close()
	if err := gone.Follow(ctx, tokens.NewVerifier(nil, issuer, nil)); err == nil {
		t.Fatal("Follow of an unreachable JWKS URL succeeded")
	}
}
