// Package tokens mints and checks tokend's tokens: the signing keys, the JWT
// codec for access and refresh tokens (a jwsbb fast path for tokend's own
// tokens, jwx's jws/jwt for everything else), and the Issuer that turns a
// refresh token into a fresh pair through a session.Store.
//
// It knows nothing of HTTP: the server package decodes requests, calls the
// Issuer and maps its sentinel errors to a dialect's wire errors.
package tokens
