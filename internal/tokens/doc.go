// Package tokens is tokend's machinery for minting and checking its tokens:
// the signing keys (KeySet), the JWT codec for access and refresh tokens
// (a jwsbb fast path for tokend's own tokens, jwx's jws/jwt for everything
// else), the opaque refresh tokens of the aspnet dialect (Opaque, MACKeys),
// the Issuer that turns a refresh token into a fresh pair through a
// session.Store, and the Verifier tokend's introspection uses. It knows
// nothing of HTTP: the server package decodes requests, calls the Issuer
// and maps its sentinel errors to a dialect's wire errors.
//
// It is internal: no compatibility promise. The library for resource
// servers is package github.com/tokend/tokend/tokens, a thin layer over
// this one whose errors are these values.
package tokens
