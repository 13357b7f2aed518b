// Package dpop checks DPoP proofs (RFC 9449): the JWT a client signs with a
// key of its own for each request, so that a token bound to that key is
// useless to whoever steals it without the key. It checks one proof
// against the request it came with (§4.3) and computes key thumbprints
// (RFC 7638), which is what a token or a session is bound to. It knows
// nothing of HTTP beyond the method and URL a proof names: the caller finds
// the one DPoP header, and makes sure each proof's jti is used once.
package dpop
