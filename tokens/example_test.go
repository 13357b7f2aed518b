package tokens_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/tokend/tokend/tokens"
)

type claimsKey struct{}

// requireToken is net/http middleware for a resource server: it lets a
// request through only with a valid tokend access token, a Bearer token or
// a DPoP-bound one with its proof, and hands the claims to next.
// publicURL is where clients reach this API (what DPoP proofs name).
func requireToken(v *tokens.Verifier, publicURL string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cl := new(tokens.Claims)
		auth := r.Header.Get("Authorization")
		var err error
		if token, ok := strings.CutPrefix(auth, "DPoP "); ok {
			if proofs := r.Header.Values("DPoP"); len(proofs) == 1 {
				err = v.VerifyDPoP(r.Context(), []byte(token), []byte(proofs[0]), r.Method, publicURL+r.URL.Path, cl)
			} else {
				err = fmt.Errorf("%w: not one DPoP header", tokens.ErrInvalidProof)
			}
		} else if token, ok := strings.CutPrefix(auth, "Bearer "); ok {
			err = v.VerifyBearer(r.Context(), []byte(token), cl)
		} else {
			err = fmt.Errorf("%w: no token", tokens.ErrMalformed)
		}
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, cl)))
		case errors.Is(err, tokens.ErrInvalidProof):
			w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof", error_description="`+tokens.ProofReason(err)+`"`)
			http.Error(w, "invalid DPoP proof", http.StatusUnauthorized)
		case errors.Is(err, tokens.ErrMalformed), errors.Is(err, tokens.ErrInvalid),
			errors.Is(err, tokens.ErrExpired), errors.Is(err, tokens.ErrRevoked):
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
		default: // the revocations could not be asked (ErrUnavailable): no answer rather than a wrong one
			w.Header().Set("Retry-After", "1")
			http.Error(w, "try again", http.StatusServiceUnavailable)
		}
	})
}

// A resource server checks tokend's access tokens in net/http middleware,
// with the keys tokend publishes at its JWKS URL.
func Example_middleware() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	auth := startTokend() // tokend, in miniature: its JWKS URL and logins
	defer auth.Close()

	verifier := tokens.NewVerifier(nil, auth.Issuer, tokens.SystemClock)
	follower := &tokens.JWKSFollower{URL: auth.JWKS}
	if err := follower.Follow(ctx, verifier); err != nil {
		log.Fatal(err)
	}
	api := httptest.NewServer(requireToken(verifier, "https://api.example", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Context().Value(claimsKey{}).(*tokens.Claims).Subject)
	})))
	defer api.Close()

	fmt.Println(get(api.URL, "Bearer "+auth.Login("alice")))
	fmt.Println(get(api.URL, "Bearer not-a-token"))
	fmt.Println(get(api.URL, ""))
	// Output:
	// 200 hello alice
	// 401 invalid token
	// 401 invalid token
}

func get(url, authorization string) string {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", authorization)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

// A Verifier follows tokend's JWKS URL: fetched at start, again on a
// schedule, and again as soon as a token names a key it does not know yet
// (a rotation on tokend).
func ExampleJWKSFollower() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	auth := startTokend()
	defer auth.Close()

	verifier := tokens.NewVerifier(nil, auth.Issuer, tokens.SystemClock)
	follower := &tokens.JWKSFollower{URL: auth.JWKS, Every: 15 * time.Minute}
	if err := follower.Follow(ctx, verifier); err != nil {
		fmt.Println("no keys:", err)
		return
	}
	var cl tokens.Claims
	fmt.Println(verifier.Verify(ctx, []byte(auth.Login("bob")), &cl), cl.Subject)
	// Output: <nil> bob
}

// FollowRevocations makes a logout on tokend end its sessions' access
// tokens at once: the Verifier follows the revocations in tokend's Redis,
// with tokend's own Redis settings.
func ExampleVerifier_FollowRevocations() {
	ctx, stop := context.WithCancel(context.Background()) // the process's life
	defer stop()
	verifier := tokens.NewVerifier(nil, "https://auth.example", tokens.SystemClock)
	err := verifier.FollowRevocations(ctx, tokens.RevocationsConfig{
		Addrs:     []string{"redis.internal:6379"},           // tokend's TOKEND_REDIS_ADDR
		Username:  "api",                                     // TOKEND_REDIS_USERNAME
		Password:  os.Getenv("REDIS_PASSWORD"),               // TOKEND_REDIS_PASSWORD
		TLS:       &tls.Config{MinVersion: tls.VersionTLS12}, // TOKEND_REDIS_TLS
		AccessTTL: 30 * time.Minute,                          // tokend's TOKEND_ACCESS_TTL
	})
	if err != nil {
		log.Fatal(err) // Redis unreachable: the revocations would go unheard
	}
}
