package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/session"
)

// Errors the server itself produces; a Dialect maps them, with the tokens
// and session sentinels, to its wire errors in one table.
var (
	// ErrBadRequest: body too large, wrong content type, not JSON, or a
	// field missing or malformed. Dialects wrap it with the field's name.
	ErrBadRequest = errors.New("bad request")
	// ErrNoRoute: no endpoint at this path.
	ErrNoRoute = errors.New("no such endpoint")
	// ErrMethod: the endpoint exists, not for this method.
	ErrMethod = errors.New("method not allowed")
	// ErrInternal: a handler panicked or failed unexpectedly.
	ErrInternal = errors.New("internal error")
	// ErrHeaderTooLarge: the request's headers do not fit the read buffer
	// (431).
	ErrHeaderTooLarge = errors.New("request header fields too large")
	// ErrTimeout: the request did not arrive within the read timeout (408).
	ErrTimeout = errors.New("request timeout")
	// ErrOverloaded: more requests in flight than Config.MaxInflight; it is
	// a session.ErrUnavailable to dialects, the 503 a client retries.
	ErrOverloaded = fmt.Errorf("%w: requests in flight over the limit", session.ErrUnavailable)
)

// The bad requests the server itself finds, before a dialect reads a field.
// Prepared once: refusing a request allocates nothing.
var (
	ErrContentType = fmt.Errorf("%w: content type is not application/json", ErrBadRequest)
	ErrTooLarge    = fmt.Errorf("%w: body over the size limit", ErrBadRequest)
	ErrNotJSON     = fmt.Errorf("%w: body is not JSON", ErrBadRequest)
	ErrNotObject   = fmt.Errorf("%w: body is not a JSON object", ErrBadRequest)
	// ErrHTTP: the HTTP layer could not parse the request (request line,
	// a header, Content-Length with Transfer-Encoding, chunked framing).
	ErrHTTP = fmt.Errorf("%w: malformed HTTP request", ErrBadRequest)
	// ErrSubject: POST /admin/sessions without a usable "sub".
	ErrSubject = fmt.Errorf("%w: sub is missing, blank, not a string or not 1 to 256 bytes of UTF-8", ErrBadRequest)
)

// Request is a decoded refresh or revoke request.
type Request struct {
	RefreshToken []byte
	AccessToken  []byte // the aspnet dialect's `Token`; nil in spring
}

// Dialect is one backend's wire contract for the client-facing endpoints.
// Implementations append into the caller's buffer and must not keep it.
type Dialect interface {
	// Name is the TOKEND_DIALECT value.
	Name() string
	// DecodeRefresh parses the body of a refresh request. Errors wrap
	// ErrBadRequest. r's slices may alias body.
	DecodeRefresh(body []byte, r *Request) error
	// DecodeRevoke parses the body of a revoke request, which needs only
	// the refresh token.
	DecodeRevoke(body []byte, r *Request) error
	// AppendPair appends the success body of a refresh.
	AppendPair(dst []byte, p *tokens.Pair, now time.Time) []byte
	// AppendError appends the body for err and returns its status.
	AppendError(dst []byte, err error, now time.Time) (status int, body []byte)
}
