package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// subOf is the sub claim of a JWT, read without verifying it.
func subOf(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var cl struct {
		Sub string `json:"sub"`
	}
	if err == nil {
		err = json.Unmarshal(b, &cl)
	}
	if err != nil {
		t.Fatalf("claims of %q: %v", tok, err)
	}
	return cl.Sub
}

// TestAspnetLookalikeSubjects: a subject spelled like another user's UUID
// with its dashes moved is its own user on every store (issue 25 item 1):
// its refreshed Token names it, the other user's Token does not own its
// session, revoking it ends its sessions, and a fifth dash answers no 500.
func TestAspnetLookalikeSubjects(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := startAspnet(t, store, nil)
			for _, tc := range []struct{ sub, lookalike string }{
				{"00-00-00-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"},
				{"4ef1c711-06ff-41ea-888a-45-6579e4-47", "4ef1c711-06ff-41ea-888a-456579e44700"},
				{"4ef1c711-06ff-41ea-888a-456579e447-7", "4ef1c711-06ff-41ea-888a-456579e44770"},
			} {
				tok, rt := in.aspnetLogin(tc.sub)
				tok, rt = aspnetPair(t, in.aspnetRefresh(tok, rt))
				if got := subOf(t, tok); got != tc.sub {
					t.Fatalf("the refreshed Token of %q names %q", tc.sub, got)
				}
				other, _ := in.aspnetLogin(tc.lookalike)
				aspnetError(t, in.aspnetRefresh(other, rt), 404, invalidRefreshToken)
				tok, rt = aspnetPair(t, in.aspnetRefresh(tok, rt)) // the refusal burnt nothing
				if r := in.do(http.MethodDelete, in.admin+"/admin/subjects/"+url.PathEscape(tc.sub), "", nil); r.status != 200 || r.body["revoked"] != float64(1) {
					t.Fatalf("delete %q = %d %s", tc.sub, r.status, r.raw)
				}
				aspnetError(t, in.aspnetRefresh(tok, rt), 404, userNotFound)
			}
		})
	}
}
