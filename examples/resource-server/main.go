// Command resource-server is an example API that accepts tokend's access
// tokens: a net/http server whose middleware verifies each request's
// Bearer token with tokens.Verifier, keys followed from tokend's JWKS URL
// (fetched again when a token names a new key, as after a rotation), and,
// with -redis, a denylist fed by tokend's Redis so that a revoked session's
// access tokens stop working at once rather than at their expiry.
//
//	go run . -jwks http://127.0.0.1:8080/.well-known/jwks.json
//	curl -H "Authorization: Bearer $ACCESS_TOKEN" localhost:9000/me
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
	"github.com/tokend/tokend/tokens/denylist"
	"github.com/tokend/tokend/tokens/session"
)

// config is what the example needs to know.
type config struct {
	Addr     string
	JWKS     string        // tokend's /.well-known/jwks.json
	Issuer   string        // tokend's TOKEND_ISSUER; empty accepts any
	Redis    string        // tokend's Redis, for the denylist; empty: none
	Every    time.Duration // JWKS refresh period
	MinWait  time.Duration // least time between two fetches for unknown keys
	Capacity int           // denylist size (tokend's TOKEND_DENYLIST_SIZE)
	Window   time.Duration // the longest access-token life (tokend's TOKEND_ACCESS_TTL)
}

func main() {
	var c config
	flag.StringVar(&c.Addr, "addr", ":9000", "listen address")
	flag.StringVar(&c.JWKS, "jwks", "http://127.0.0.1:8080/.well-known/jwks.json", "tokend's JWKS URL")
	flag.StringVar(&c.Issuer, "issuer", "tokend", "iss the tokens must carry (tokend's TOKEND_ISSUER; empty: any)")
	flag.StringVar(&c.Redis, "redis", "", "tokend's Redis (host:port) for the denylist of revoked sessions; empty: tokens live until they expire")
	flag.DurationVar(&c.Every, "jwks-refresh", 15*time.Minute, "how often the JWKS is fetched again")
	flag.DurationVar(&c.MinWait, "jwks-min-wait", 10*time.Second, "least time between fetches caused by tokens of unknown keys")
	flag.IntVar(&c.Capacity, "denylist-size", 1_000_000, "revocations the denylist holds per access-token lifetime")
	flag.DurationVar(&c.Window, "access-ttl", 30*time.Minute, "the longest access-token life (tokend's TOKEND_ACCESS_TTL)")
	flag.Parse()
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

// newHandler wires the Verifier (and the denylist) and returns the API. The
// background work stops when ctx ends.
func newHandler(ctx context.Context, c config, log *slog.Logger) (http.Handler, error) {
	verifier := tokens.NewVerifier(nil, c.Issuer, tokens.SystemClock)
	follower := &tokens.JWKSFollower{URL: c.JWKS, Every: c.Every, MinWait: c.MinWait, Logger: log}
	if err := follower.Follow(ctx, verifier); err != nil {
		return nil, fmt.Errorf("tokend's JWKS at %s: %w", c.JWKS, err)
	}
	if c.Redis != "" {
		store, err := session.DialRedis([]string{c.Redis}, time.Second)
		if err != nil {
			return nil, fmt.Errorf("redis %s: %w", c.Redis, err)
		}
		deny, err := denylist.New(store, denylist.Config{Capacity: c.Capacity, Window: c.Window, Logger: log})
		if err != nil {
			store.Close()
			return nil, err
		}
		go func() {
			_ = deny.Run(ctx)
			deny.Close()
			store.Close()
		}()
		select {
		case <-deny.Ready(): // the revocations of the last Window are known
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		verifier.SetDenylist(deny)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /me", requireToken(verifier, log, http.HandlerFunc(me)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	return mux, nil
}

type claimsKey struct{}

// requireToken lets a request through only with a valid access token of
// tokend, and hands its claims to next. Refusals follow RFC 6750.
func requireToken(v *tokens.Verifier, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="example"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "a Bearer token is required"})
			return
		}
		cl := new(tokens.Claims)
		err := v.Verify(r.Context(), []byte(token), cl)
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, cl)))
		case errors.Is(err, tokens.ErrMalformed), errors.Is(err, tokens.ErrInvalid),
			errors.Is(err, tokens.ErrExpired), errors.Is(err, tokens.ErrRevoked):
			w.Header().Set("WWW-Authenticate", `Bearer realm="example", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		default: // the denylist could not confirm with Redis: no answer rather than a wrong one
			log.Warn("token check unavailable", "err", err)
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		}
	})
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
