// Command resource-server is an example API that accepts tokend's access
// tokens: a net/http server whose middleware verifies each request's
// Bearer token with tokens.Verifier, keys followed from tokend's JWKS URL
// (fetched again when a token names a new key, as after a rotation), and,
// with -redis, the revocations followed in tokend's Redis so that a revoked
// session's access tokens stop working at once rather than at their expiry.
// It imports only package tokens, tokend's library for resource servers. Tokens
// bound to a DPoP key (tokend's /oauth2/token with a proof) are accepted
// only as `Authorization: DPoP` with a proof for each request (RFC 9449 §7).
//
//	go run . -jwks http://127.0.0.1:8080/.well-known/jwks.json
//	curl -H "Authorization: Bearer $ACCESS_TOKEN" localhost:9000/me
//	curl -H "Authorization: DPoP $ACCESS_TOKEN" -H "DPoP: $(tokend dpop-proof device.jwk --method GET \
//	  --url http://localhost:9000/me --access-token $ACCESS_TOKEN)" localhost:9000/me
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tokend/tokend/tokens"
)

// config is what the example needs to know.
type config struct {
	Addr   string
	JWKS   string // tokend's /.well-known/jwks.json
	Issuer string // tokend's issuer (its TOKEND_PUBLIC_URL); empty accepts any
	// Former are iss values of tokens issued before an upgrade or a change
	// of issuer (tokend's TOKEND_ACCEPTED_ISSUERS).
	Former []string
	// Audience is this API's identifier, one of tokend's TOKEND_AUDIENCE:
	// tokens for another resource server are refused (RFC 9068 §4).
	Audience string
	Redis    string        // tokend's Redis, for the revocations; empty: none
	Every    time.Duration // JWKS refresh period
	MinWait  time.Duration // least time between two fetches for unknown keys
	Capacity int           // denylist size (tokend's TOKEND_DENYLIST_SIZE)
	Window   time.Duration // the longest access-token life (tokend's TOKEND_ACCESS_TTL)
	// PublicURL is this API's URL as clients call it (behind any load
	// balancer): a DPoP proof's htu names it.
	PublicURL string
}

func main() {
	var c config
	flag.StringVar(&c.Addr, "addr", ":9000", "listen address")
	flag.StringVar(&c.JWKS, "jwks", "http://127.0.0.1:8080/.well-known/jwks.json", "tokend's JWKS URL")
	flag.StringVar(&c.Issuer, "issuer", "", "iss the tokens must carry: tokend's issuer, its TOKEND_PUBLIC_URL (empty: any signed by the JWKS's keys)")
	flag.StringVar(&c.Audience, "audience", "", "this API's identifier, one of tokend's TOKEND_AUDIENCE: the aud tokens must carry (empty: no check)")
	former := flag.String("accepted-issuers", "tokend", "former iss values still accepted, comma-separated (tokend's TOKEND_ACCEPTED_ISSUERS)")
	flag.StringVar(&c.Redis, "redis", "", "tokend's Redis (host:port; Cluster seeds comma-separated) for the revocations; empty: tokens live until they expire")
	flag.DurationVar(&c.Every, "jwks-refresh", 15*time.Minute, "how often the JWKS is fetched again")
	flag.DurationVar(&c.MinWait, "jwks-min-wait", 10*time.Second, "least time between fetches caused by tokens of unknown keys")
	flag.IntVar(&c.Capacity, "denylist-size", 1_000_000, "revocations the denylist holds per access-token lifetime")
	flag.DurationVar(&c.Window, "access-ttl", 30*time.Minute, "the longest access-token life (tokend's TOKEND_ACCESS_TTL)")
	flag.StringVar(&c.PublicURL, "public-url", "http://localhost:9000", "this API's URL as clients call it (what DPoP proofs name)")
	flag.Parse()
	c.Former = strings.Split(*former, ",")
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	h, err := newHandler(ctx, c, log)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	srv := &http.Server{Addr: c.Addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("listening", "addr", c.Addr, "jwks", c.JWKS, "denylist", c.Redis != "")
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

// newHandler wires the Verifier (and the revocations) and returns the API. The
// background work stops when ctx ends.
func newHandler(ctx context.Context, c config, log *slog.Logger) (http.Handler, error) {
	verifier := tokens.NewVerifier(nil, c.Issuer, tokens.SystemClock)
	verifier.AcceptIssuers(c.Former...)
	verifier.SetAudience(c.Audience)
	follower := &tokens.JWKSFollower{URL: c.JWKS, Every: c.Every, MinWait: c.MinWait, Logger: log}
	if err := follower.Follow(ctx, verifier); err != nil {
		return nil, fmt.Errorf("tokend's JWKS at %s: %w", c.JWKS, err)
	}
	if c.Redis != "" { // the revocations of the last Window, then each new one, until ctx ends
		err := verifier.FollowRevocations(ctx, tokens.RevocationsConfig{
			Addrs: strings.Split(c.Redis, ","), AccessTTL: c.Window, Size: c.Capacity, Logger: log})
		if err != nil {
			return nil, err
		}
	}

	mux := http.NewServeMux()
	mux.Handle("GET /me", requireToken(verifier, strings.TrimSuffix(c.PublicURL, "/"), log, http.HandlerFunc(me)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	return mux, nil
}

type claimsKey struct{}

// requireToken lets a request through only with a valid access token of
// tokend, and hands its claims to next: a Bearer token (RFC 6750), or a
// DPoP-bound one with its proof (RFC 9449 §7), never a bound one as Bearer.
// publicURL is where clients reach this API, for the proofs' htu.
func requireToken(v *tokens.Verifier, publicURL string, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		cl := new(tokens.Claims)
		var err error
		if token, ok := strings.CutPrefix(auth, "DPoP "); ok && token != "" {
			proofs := r.Header.Values("DPoP")
			if len(proofs) != 1 {
				refuse(w, "invalid_dpop_proof", "exactly one DPoP proof is required")
				return
			}
			err = v.VerifyDPoP(r.Context(), []byte(token), []byte(proofs[0]), r.Method, publicURL+r.URL.Path, cl)
		} else if token, ok := strings.CutPrefix(auth, "Bearer "); ok && token != "" {
			err = v.VerifyBearer(r.Context(), []byte(token), cl)
		} else {
			refuse(w, "invalid_request", "a Bearer or DPoP token is required")
			return
		}
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, cl)))
		case errors.Is(err, tokens.ErrInvalidProof):
			log.Debug("DPoP proof refused", "err", err)
			refuse(w, "invalid_dpop_proof", tokens.ProofReason(err)) // fixed text: RFC 6749 §5.2's characters
		case errors.Is(err, tokens.ErrMalformed), errors.Is(err, tokens.ErrInvalid),
			errors.Is(err, tokens.ErrExpired), errors.Is(err, tokens.ErrRevoked):
			refuse(w, "invalid_token", "")
		default: // ErrUnavailable: Redis could not confirm a revocation: no answer rather than a wrong one
			log.Warn("token check unavailable", "err", err)
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		}
	})
}

// refuse answers 401 with a challenge for both schemes (RFC 6750 §3, RFC
// 9449 §7.1).
func refuse(w http.ResponseWriter, code, desc string) {
	w.Header().Add("WWW-Authenticate", `Bearer realm="example", error="`+code+`"`)
	w.Header().Add("WWW-Authenticate", `DPoP realm="example", algs="ES256 EdDSA", error="`+code+`"`)
	body := map[string]string{"error": code}
	if desc != "" {
		body["error_description"] = desc
	}
	writeJSON(w, http.StatusUnauthorized, body)
}

// me answers who the token says the caller is.
func me(w http.ResponseWriter, r *http.Request) {
	cl := r.Context().Value(claimsKey{}).(*tokens.Claims)
	writeJSON(w, http.StatusOK, map[string]any{"sub": cl.Subject, "sid": cl.Session, "exp": cl.Expires})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
