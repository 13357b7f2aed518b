package main

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/oauth2"
)

// A standard client, golang.org/x/oauth2, keeps a session alive through
// /oauth2/token: with access tokens that live 1 s (under its 10 s expiry
// margin) every Token call refreshes, so 50 calls are 50 rotations. Then a
// revoked session's refresh is an invalid_grant x/oauth2 understands.
func TestGolangOAuth2Client(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, oauthEnv("TOKEND_ACCESS_TTL", "1s", "TOKEND_REUSE_GRACE", "0s", "TOKEND_CLIENTS", "go-client"))
			_, rt := in.startFor("alice", "go-client", "openid orders:read", "")
			conf := &oauth2.Config{
				ClientID: "go-client",
				Endpoint: oauth2.Endpoint{TokenURL: in.public + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
			}
			// every exchange x/oauth2 makes goes through the contract check
			ctx := context.WithValue(context.Background(), oauth2.HTTPClient, in.checked())
			src := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt})
			seen := map[string]bool{rt: true}
			var tok *oauth2.Token
			for i := range 50 {
				var err error
				if tok, err = src.Token(); err != nil {
					t.Fatalf("refresh %d: %v", i, err)
				}
				if seen[tok.RefreshToken] || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.Extra("scope") != "openid orders:read" {
					t.Fatalf("refresh %d: %+v (scope %v); want a new rotated pair", i, tok, tok.Extra("scope"))
				}
				seen[tok.RefreshToken] = true
			}
			if _, claims := decodeJWT(t, tok.AccessToken); claims["client_id"] != "go-client" || claims["gen"] != nil {
				t.Fatalf("claims %v", claims)
			}
			if r := in.postJSON(in.admin+"/admin/subjects/alice/revoke", ""); r.status != 200 {
				t.Fatalf("revoke: %d %s", r.status, r.raw)
			}
			_, err := src.Token()
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || re.ErrorDescription != invalidGrant {
				t.Fatalf("after revocation: %v; want an invalid_grant RetrieveError", err)
			}
		})
	}
}
