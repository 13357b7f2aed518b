// Package tokens is the library a Go resource server (an API) uses to
// accept tokend's access tokens: it checks each request's token offline,
// with tokend's public keys, and hears tokend's revocations so that a
// logged-out session's tokens stop working at once.
//
// # What a Verifier checks
//
// An access token is a JWT (RFC 9068). Verify accepts it only if it is at
// most 8 KiB, signed by one of the keys in force (kid and alg in its
// header), of type at+jwt, issued by the issuer given to NewVerifier (or
// one of AcceptIssuers), meant for this API (SetAudience, RFC 9068 §4),
// already valid (nbf, with SetLeeway's leeway for a clock behind tokend's)
// and not expired (exp, no leeway), and, with FollowRevocations, if its
// session was not revoked. It fills a Claims with what the token says:
// the user (Subject), the session, the client, the scope.
//
// # Usage
//
//	v := tokens.NewVerifier(nil, "https://auth.example.com", tokens.SystemClock)
//	v.SetAudience("https://orders.example.com")
//	f := &tokens.JWKSFollower{URL: "https://auth.example.com/.well-known/jwks.json"}
//	if err := f.Follow(ctx, v); err != nil { ... } // the keys, kept current
//	if err := v.FollowRevocations(ctx, tokens.RevocationsConfig{Addrs: []string{"redis:6379"}}); err != nil { ... }
//
//	// for each request:
//	var cl tokens.Claims
//	err := v.VerifyBearer(r.Context(), token, &cl) // or VerifyDPoP
//
// Configure a Verifier before use; its Verify methods are then safe for
// concurrent use.
// Example_middleware is whole net/http middleware; examples/resource-server
// in tokend's repository is a whole service.
//
// # Bearer and DPoP
//
// A token presented as `Authorization: Bearer` (RFC 6750) goes to
// VerifyBearer. A token tokend bound to a client's key (cnf.jkt, RFC 9449)
// is useless without that key: it comes as `Authorization: DPoP` with a
// DPoP header, a proof signed by the key for this request, and goes to
// VerifyDPoP with the request's method and URL as clients call it.
// VerifyBearer refuses a bound token (ErrBound), or a thief could drop the
// proof. Each proof is accepted once per Verifier (SetProofMemory).
//
// # Revocations
//
// Without FollowRevocations a token is good until it expires (tokend's
// TOKEND_ACCESS_TTL, 30 minutes by default), whatever happens to its
// session. With it, the Verifier follows tokend's revocations in its Redis
// (a stream) and refuses a revoked session's tokens within moments. The
// check costs no I/O for a session never revoked: a local bloom filter
// answers; a filter hit is confirmed with Redis once. When Redis cannot
// answer such a check, the error is ErrUnavailable, not a verdict.
//
// # Key rotation
//
// JWKSFollower fetches tokend's JWKS at start, on a schedule, and again as
// soon as a token names a key the Verifier does not know: a rotation on
// tokend (docs/operations.md's key rotation) needs nothing from resource
// servers.
// Without a URL, LoadVerificationKeys reads a JWKS file, and SetKeys
// swaps the keys in force.
//
// # Errors
//
// ErrMalformed, ErrInvalid, ErrExpired, ErrRevoked (and ErrBound, an
// ErrInvalid) refuse the token: answer 401 with error="invalid_token".
// ErrInvalidProof refuses the DPoP proof: answer 401 with
// error="invalid_dpop_proof" and ProofReason(err) as its description.
// Anything else means the check could not be made (ErrUnavailable): answer
// 503, never let the request through. Log the error itself: its text says
// more, and is not for clients.
//
// # What it does not do
//
// It does not read requests: the caller finds the token and the one DPoP
// header and answers refusals (with WWW-Authenticate). It does not decide
// what a scope allows, nor check refresh tokens (only tokend does), nor
// issue DPoP nonces (RFC 9449 §9). It accepts only tokens as tokend writes
// them, not any JWT. Its DPoP replay memory is per process.
package tokens
