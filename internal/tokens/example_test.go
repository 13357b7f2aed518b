package tokens_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/denylist"
	"github.com/tokend/tokend/internal/tokens/session"
)

type claimsKey struct{}

// requireToken is net/http middleware for a resource server: it lets a
// request through only with a valid tokend access token, and hands the
// claims to the next handler.
func requireToken(v *tokens.Verifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		cl := new(tokens.Claims)
		if !ok || v.Verify(r.Context(), []byte(token), cl) != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, cl)))
	})
}

func get(url, token string) string {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

// A resource server embeds a Verifier as net/http middleware: keys from
// tokend's published JWKS, and a denylist following the same store (Redis
// in production: session.DialRedis), so a revoked session's access tokens
// stop working at once instead of at their expiry.
func Example_middleware() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// tokend's side, in miniature: keys, a store, an issuer, one login.
	keys, _ := tokens.EphemeralKeySet()
	codec := tokens.NewCodec(keys, "https://auth.example", tokens.SystemClock)
	store := session.NewMemory(0)
	defer store.Close()
	issuer := tokens.NewIssuer(codec, tokens.JWTRefresh{Codec: codec}, store,
		tokens.Config{AccessTTL: 30 * time.Minute, RefreshTTL: time.Hour, SessionMax: 24 * time.Hour})
	var pair tokens.Pair
	_ = issuer.Start(ctx, "alice", &pair)

	// The resource server: public keys only, and the denylist.
	public, _ := tokens.ParseVerificationKeys(keys.JWKS())
	verifier := tokens.NewVerifier(public, "https://auth.example", tokens.SystemClock)
	deny, _ := denylist.New(store, denylist.Config{})
	defer deny.Close()
	go deny.Run(ctx)
	<-deny.Ready()
	verifier.SetDenylist(deny)

	api := httptest.NewServer(requireToken(verifier, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Context().Value(claimsKey{}).(*tokens.Claims).Subject)
	})))
	defer api.Close()

	fmt.Println(get(api.URL, string(pair.Access)))
	_, _ = issuer.RevokeSubject(ctx, "alice", false) // logout everywhere
	fmt.Println(get(api.URL, string(pair.Access)))
	fmt.Println(get(api.URL, "not-a-token"))
	// Output:
	// 200 hello alice
	// 401 invalid token
	// 401 invalid token
}

// A Verifier can follow tokend's JWKS URL: fetched once at start, again on
// a schedule, and again when a token names a key it does not know yet (a
// rotation).
func ExampleJWKSFollower() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys, _ := tokens.EphemeralKeySet()
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(keys.JWKS()) // tokend serves this at /.well-known/jwks.json
	}))
	defer jwks.Close()

	verifier := tokens.NewVerifier(nil, "", tokens.SystemClock)
	follower := &tokens.JWKSFollower{URL: jwks.URL, Every: 15 * time.Minute}
	if err := follower.Follow(ctx, verifier); err != nil {
		fmt.Println("no keys:", err)
		return
	}
	codec := tokens.NewCodec(keys, "", tokens.SystemClock)
	now := time.Now()
	token, _ := codec.AppendToken(nil, tokens.Access, &tokens.Claims{
		Subject: "bob", Session: "s1", IssuedAt: now.Unix(), Expires: now.Add(time.Minute).Unix()})
	var cl tokens.Claims
	fmt.Println(verifier.Verify(ctx, token, &cl), cl.Subject)
	// Output: <nil> bob
}
