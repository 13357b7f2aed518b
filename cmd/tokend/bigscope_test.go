package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// maxScope is a scope of exactly 4096 bytes, the most POST /admin/sessions
// takes.
func maxScope() string {
	var b strings.Builder
	for i := 0; b.Len() < 4096-6; i++ {
		fmt.Fprintf(&b, "s%04d ", i)
	}
	b.WriteString(strings.Repeat("x", 4096-b.Len()))
	return b.String()
}

// TestLargeScopeRefreshes: a session the admin API starts can be refreshed
// on every endpoint, whatever its scope, dialect and signing algorithm: the
// request bodies that carry a token admit any token tokend issues, and a
// session whose tokens would be too large to be read back (over
// tokens.MaxTokenSize) is refused at login instead.
func TestLargeScopeRefreshes(t *testing.T) {
	scope := maxScope()
	for _, dialect := range []string{"spring", "aspnet"} {
		for _, kid := range []string{"hs256-1", "hs512-1", "es256-1", "ed-1", "rs256-1"} {
			t.Run(dialect+"/"+kid, func(t *testing.T) {
				in := start(t, "memory", oauthEnv("TOKEND_DIALECT", dialect, "TOKEND_HMAC_SECRET", "",
					"TOKEND_KEYS_FILE", "../../internal/tokens/testdata/keys.jwks", "TOKEND_SIGNING_KID", kid))
				access, rt := in.startFor("alice", "app", scope, "")
				if dialect == "spring" {
					_, rt = pair(t, in.refresh(rt))
				} else {
					_, rt = aspnetPair(t, in.aspnetRefresh(access, rt))
				}
				access, rt = oauthPair(t, in.token(refreshForm(rt, "app")), "Bearer", scope)
				if dialect == "aspnet" {
					access, _ = aspnetPair(t, in.aspnetRefresh(access, rt))
				}
				v := url.Values{"token": {access}, "client_id": {"app"}}
				if r := in.do(http.MethodPost, in.public+"/oauth2/revoke", "application/x-www-form-urlencoded", []byte(v.Encode())); r.status != 200 {
					t.Fatalf("revoke of the access token: %d %s", r.status, r.raw)
				}
				// a subject that JSON escapes six-fold, and the largest client
				// and scope: its access token would be over 8 KiB
				sub := strings.Repeat("\x01", 256)
				b, _ := json.Marshal(map[string]string{"sub": sub, "client_id": strings.Repeat("c", 255), "scope": scope})
				if r := in.postJSON(in.admin+"/admin/sessions", string(b)); r.status != 400 {
					t.Fatalf("a session whose tokens cannot be read back: %d %.200s", r.status, r.raw)
				}
			})
		}
	}
}
