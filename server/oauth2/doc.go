// Package oauth2 is tokend's standard OAuth 2.0 face, beside the two legacy
// dialects: the refresh_token grant of RFC 6749 §6 at POST /oauth2/token for
// public clients, sender-constrained with DPoP (RFC 9449); token revocation
// (RFC 7009) at POST /oauth2/revoke; and authorization server metadata
// (RFC 8414). It reads forms and DPoP headers and writes RFC 6749's JSON;
// the rotation, the binding and the proof's single use are the issuer's
// and the store's. Its errors map to the wire in one table (errors.go).
//
// Part of tokend's HTTP layer, not a library: no compatibility promise.
// The public Go API is package github.com/tokend/tokend/tokens.
package oauth2
