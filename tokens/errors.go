package tokens

import (
	core "github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/denylist"
	"github.com/tokend/tokend/internal/tokens/dpop"
)

// Outcomes a caller branches on, with errors.Is. They are the very values
// tokend uses inside, so a wrapped error matches wherever it came from.
// Every refusal of a token wraps one of ErrMalformed, ErrInvalid,
// ErrExpired or ErrRevoked, and every refusal of its DPoP proof wraps
// ErrInvalidProof: answer those 401 (RFC 6750 §3.1 invalid_token, RFC 9449
// §7.1 invalid_dpop_proof). Any other error means the answer is unknown:
// answer 503, never let the request through.
var (
	// ErrMalformed: not a JWT at all (not three base64url segments, header
	// or claims not JSON), or too large to look at (8 KiB).
	ErrMalformed = core.ErrMalformed
	// ErrInvalid: the token parsed but is not acceptable: bad signature,
	// unknown key, disallowed algorithm, not an access token, another
	// issuer or audience, not valid yet, or the wrong scheme for its
	// binding (ErrBound is one).
	ErrInvalid = core.ErrInvalid
	// ErrExpired: the signature verifies but exp has passed.
	ErrExpired = core.ErrExpired
	// ErrRevoked: the token verifies but its session was revoked (logout,
	// a replayed refresh token, an admin): heard through FollowRevocations.
	ErrRevoked = core.ErrRevoked
	// ErrBound: a DPoP-bound token (cnf.jkt) presented as a Bearer token,
	// which RFC 9449 §7.1 says to refuse: without its proof the binding
	// would protect nothing. It is an ErrInvalid.
	ErrBound = core.ErrBound
	// ErrInvalidProof: the DPoP proof is refused (ProofReason says why):
	// another key, method, URL or token, outside the time window, or a jti
	// this Verifier has seen already.
	ErrInvalidProof = dpop.ErrInvalidProof
	// ErrUnavailable: the revocations could not be asked about a session
	// (tokend's Redis did not answer in time), so whether its token is
	// revoked is unknown. It wraps none of the refusals above: the
	// Verifier fails closed, and the request deserves a 503 and a retry.
	ErrUnavailable = denylist.ErrUnconfirmed
)

// ProofReason is what a client may be told of a refused proof (err wraps
// ErrInvalidProof): fixed text naming the check that failed, within the
// characters RFC 6749 §5.2 allows in error_description, never text from
// the request or a library. Log err itself for the details.
func ProofReason(err error) string { return dpop.Reason(err) }
