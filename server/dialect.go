package server

import (
	"errors"
	"time"

	"tokend/tokens"
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
	// DecodeRefresh parses the body of a refresh or revoke request. Errors
	// wrap ErrBadRequest. r's slices may alias body.
	DecodeRefresh(body []byte, r *Request) error
	// AppendPair appends the success body of a refresh.
	AppendPair(dst []byte, p *tokens.Pair, now time.Time) []byte
	// AppendError appends the body for err and returns its status.
	AppendError(dst []byte, err error, now time.Time) (status int, body []byte)
}
