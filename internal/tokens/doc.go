// Package tokens mints and checks tokend's tokens.
//
// # For resource servers
//
// A service that accepts tokend's access tokens needs only the Verifier:
// build it with NewVerifier, give it keys from tokend's JWKS URL
// (JWKSFollower keeps them current, FetchJWKS fetches once) or a file
// (LoadVerificationKeys), then call Verify for Bearer tokens and VerifyDPoP
// for DPoP-bound ones. SetDenylist adds a denylist.Denylist following
// tokend's Redis, so tokens of revoked sessions are refused before they
// expire. Example_middleware shows net/http middleware;
// examples/resource-server is a whole service.
//
// # Inside tokend
//
// The rest is tokend's own machinery: the signing keys (KeySet), the JWT
// codec for access and refresh tokens (a jwsbb fast path for tokend's own
// tokens, jwx's jws/jwt for everything else), the opaque refresh tokens of
// the aspnet dialect (Opaque, MACKeys), and the Issuer that turns a refresh
// token into a fresh pair through a session.Store. It knows nothing of
// HTTP: the server package decodes requests, calls the Issuer and maps its
// sentinel errors to a dialect's wire errors.
package tokens
