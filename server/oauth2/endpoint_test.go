package oauth2_test

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/dpop"
	"github.com/tokend/tokend/internal/tokens/dpop/prover"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/server/oauth2"
)

const publicURL = "https://auth.example.test"

// endpoint is a real issuer on the memory store behind the endpoints, with
// one session started.
func endpoint(t testing.TB) (*oauth2.Endpoint, string) {
	ks, err := tokens.HMACKeySet([]byte("fuzz-secret-0123456789abcdef-0123456789"), "HS256")
	if err != nil {
		t.Fatal(err)
	}
	codec := tokens.NewCodec(ks, "tokend", tokens.SystemClock)
	store := session.NewMemory(0)
	t.Cleanup(store.Close)
	is := tokens.NewIssuer(codec, tokens.JWTRefresh{Codec: codec}, store, tokens.Config{
		AccessTTL: time.Minute, RefreshTTL: time.Hour, SessionMax: 2 * time.Hour, Grace: 10 * time.Second})
	var p tokens.Pair
	if err := is.StartGrant(context.Background(), "alice", tokens.Grant{Client: "app", Scope: "openid"}, &p); err != nil {
		t.Fatal(err)
	}
	v, err := dpop.NewVerifier(dpop.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := oauth2.New(oauth2.Config{Issuer: is, PublicURL: publicURL, Clients: []string{"app"}, DPoP: v})
	if err != nil {
		t.Fatal(err)
	}
	return e, string(p.Refresh)
}

var codes = []string{"invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type", "invalid_scope",
	"invalid_dpop_proof", "use_dpop_nonce", "temporarily_unavailable", "invalid_target"}

// FuzzToken: whatever the form and the DPoP header, the token endpoint
// answers 200 only for the session's own refresh token, and otherwise an
// RFC 6749 error of the documented codes; it never panics.
func FuzzToken(f *testing.F) {
	e, rt := endpoint(f)
	k, err := prover.New("ES256")
	if err != nil {
		f.Fatal(err)
	}
	proof, _ := k.Proof("POST", publicURL+"/oauth2/token", prover.Options{})
	valid := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}}.Encode()
	for _, seed := range [][2]string{
		{valid, ""}, {valid, proof}, {valid + "&scope=openid", ""}, {valid + "&scope=admin", ""},
		{"grant_type=password", ""}, {"client_id=app&client_id=app", ""}, {valid, "not.a.proof"}, {"%zz", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, body, proof string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/oauth2/token")
		ctx.Request.Header.SetContentType("application/x-www-form-urlencoded")
		ctx.Request.SetBodyString(body)
		if proof != "" && !strings.ContainsAny(proof, "\r\n") {
			ctx.Request.Header.Set("DPoP", proof)
		}
		var p tokens.Pair
		err := e.Token(&ctx, &p)
		status := ctx.Response.StatusCode()
		var answer map[string]any
		if json.Unmarshal(ctx.Response.Body(), &answer) != nil {
			t.Fatalf("answer %d is not JSON: %q", status, ctx.Response.Body())
		}
		if status == 200 {
			q, _ := url.ParseQuery(body)
			if err != nil || q.Get("refresh_token") != rt || answer["access_token"] == nil {
				t.Fatalf("200 for %q: %s", body, ctx.Response.Body())
			}
			return
		}
		if err == nil || (status != 400 && status != 401) || !slices.Contains(codes, answer["error"].(string)) {
			t.Fatalf("%q: %d %s (%v)", body, status, ctx.Response.Body(), err)
		}
	})
}
