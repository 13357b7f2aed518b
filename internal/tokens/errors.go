package tokens

import (
	"errors"
	"fmt"
)

// Outcomes a caller branches on. Every error the codec or the Issuer returns
// wraps exactly one of these (or one of the session package's).
var (
	// ErrMalformed: not three base64url segments, header or claims not JSON,
	// or too large to be looked at.
	ErrMalformed = errors.New("tokens: malformed token")
	// ErrInvalid: the token parsed but is not acceptable: bad signature,
	// unknown kid, disallowed alg or header, wrong token type, bad claims.
	ErrInvalid = errors.New("tokens: invalid token")
	// ErrExpired: the signature verifies but exp has passed.
	ErrExpired = errors.New("tokens: token expired")
	// ErrAccessToken: the access token presented beside a refresh token (the
	// aspnet `Token`) does not verify. It wraps the reason as well, one of
	// the above; being expired is no reason.
	ErrAccessToken = errors.New("tokens: access token presented does not verify")
	// ErrRevoked: the token verifies but its session was revoked (the
	// Verifier's denylist said so).
	ErrRevoked = errors.New("tokens: session revoked")
)

// errUnknownKID marks an ErrInvalid whose kid is not in the key set: a
// Verifier following a JWKS URL fetches it again.
var errUnknownKID = errors.New("unknown kid")

// MaxTokenSize bounds any token tokend looks at: larger ones are refused
// before any decoding work.
const MaxTokenSize = 8 << 10

// ErrTooLarge: a session's tokens would be MaxTokenSize or more (its scope,
// client and subject together), so nothing could read them back; the
// session is not started. It is an ErrInvalid.
var ErrTooLarge = fmt.Errorf("%w: tokens would be over the size limit", ErrInvalid)
