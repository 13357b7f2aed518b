package oauth2

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/valyala/fasthttp"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/dpop"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/server"
)

// Errors of this package's own checks. Each request error wraps
// server.ErrBadRequest; the table below gives each its fixed
// error_description.
var (
	ErrContentType      = fmt.Errorf("%w: the body must be application/x-www-form-urlencoded", server.ErrBadRequest)
	ErrTooLarge         = fmt.Errorf("%w: the body is over the size limit", server.ErrBadRequest)
	ErrUnsupportedGrant = errors.New("only grant_type=refresh_token is supported")
	ErrUnknownClient    = errors.New("unknown client_id")
	// ErrInvalidTarget: a resource parameter names no audience of this
	// server (RFC 8707 §2).
	ErrInvalidTarget = errors.New("the resource is not one of this server's audiences")
	ErrBadScope      = errors.New("scope is not a list of scope tokens (RFC 6749 section 3.3)")
	// ErrTwoProofs: a token request with more than one DPoP header (RFC
	// 9449 §4.3).
	ErrTwoProofs error = &dpop.Refusal{Reason: "more than one DPoP header"}
	errDPoPOff   error = &dpop.Refusal{Reason: "DPoP is not enabled"}
)

// requestError is an invalid_request naming the parameter at fault.
type requestError struct{ param, what string }

func (e requestError) Error() string { return e.param + " " + e.what }
func (e requestError) Unwrap() error { return server.ErrBadRequest }

func missing(param string) error  { return requestError{param, "is missing"} }
func repeated(param string) error { return requestError{param, "is repeated"} }

// wireError is one row of the table: an error's status, RFC 6749 code and
// description, fixed text of RFC 6749 §5.2's characters ("" only where
// describe finds the fixed text: a requestError's, a dpop.Refusal's).
type wireError struct {
	err    error
	status int
	code   string
	desc   string
}

// table maps every outcome to the wire, most specific first. An invalid
// grant is one answer whatever the reason: the endpoint is no oracle of a
// session's state or owner.
var table = []wireError{
	{ErrUnsupportedGrant, 400, "unsupported_grant_type", "only grant_type=refresh_token is supported"},
	{ErrUnknownClient, 401, "invalid_client", "unknown client_id"},
	{ErrInvalidTarget, 400, "invalid_target", "the resource is not one of this server's audiences"},
	// RFC 8707 allows several; tokend issues a token for one audience
	{requestError{"resource", "is repeated"}, 400, "invalid_target", "one resource per request"},
	{ErrBadScope, 400, "invalid_scope", "scope is not a list of scope tokens (RFC 6749 section 3.3)"},
	{session.ErrScope, 400, "invalid_scope", "the scope requested exceeds the session's"},
	{dpop.ErrUseNonce, 400, "use_dpop_nonce", "the DPoP proof must carry the server's nonce (DPoP-Nonce header)"},
	{session.ErrKeyRequired, 400, "invalid_dpop_proof", "the session is bound to a DPoP key: a proof signed by it is required"},
	{session.ErrWrongKey, 400, "invalid_dpop_proof", "the DPoP proof is signed by another key than the one the session is bound to"},
	{session.ErrReplay, 400, "invalid_dpop_proof", "the DPoP proof was used already (jti)"},
	{dpop.ErrInvalidProof, 400, "invalid_dpop_proof", ""},
	{session.ErrUnavailable, 503, "temporarily_unavailable", "the token service is temporarily unavailable; retry"},
	{server.ErrMethod, 405, "invalid_request", "method not allowed"},
	{server.ErrNoRoute, 404, "invalid_request", "no such endpoint"},
	{ErrContentType, 400, "invalid_request", "the body must be application/x-www-form-urlencoded"},
	{ErrTooLarge, 400, "invalid_request", "the body is over the size limit"},
	{server.ErrTooLarge, 400, "invalid_request", "the body is over the size limit"},
	{ErrForm, 400, "invalid_request", "the body is not a valid form (a bad percent escape)"},
	{server.ErrHeaderTooLarge, 431, "invalid_request", "the request headers are over the size limit"},
	{server.ErrHTTP, 400, "invalid_request", "malformed HTTP request"},
	{server.ErrBadRequest, 400, "invalid_request", ""},
	{tokens.ErrMalformed, 400, "invalid_grant", invalidGrant},
	{tokens.ErrInvalid, 400, "invalid_grant", invalidGrant},
	{tokens.ErrExpired, 400, "invalid_grant", invalidGrant},
	{session.ErrNotFound, 400, "invalid_grant", invalidGrant},
	{session.ErrExpired, 400, "invalid_grant", invalidGrant},
	{session.ErrRevoked, 400, "invalid_grant", invalidGrant},
	{session.ErrDeleted, 400, "invalid_grant", invalidGrant},
	{session.ErrReuse, 400, "invalid_grant", invalidGrant},
	{session.ErrNotOwner, 400, "invalid_grant", invalidGrant},
	{session.ErrWrongClient, 400, "invalid_grant", invalidGrant},
}

const invalidGrant = "the refresh token is invalid, expired or revoked"

var internal = wireError{server.ErrInternal, 500, "server_error", "internal error"}

// lookup finds err's row.
func lookup(err error) wireError {
	for _, w := range table {
		if errors.Is(err, w.err) {
			return w
		}
	}
	return internal
}

// appendError appends err's RFC 6749 §5.2 body and returns its status.
func appendError(b []byte, err error) (int, []byte) {
	w := lookup(err)
	b = append(b, `{"error":"`...)
	b = append(b, w.code...)
	b = append(b, `","error_description":"`...)
	b = append(b, describe(err, w)...) // fixed text: nothing to escape
	return w.status, append(b, `"}`...)
}

// describe is err's error_description, always fixed text: the row's, a
// requestError's (its parameter is one of the endpoint's names) or a
// dpop.Refusal's reason. Never the request's or a library's words, which
// RFC 6749 §5.2's character set would not hold and a client has no use
// for; the server logs err itself at debug.
func describe(err error, w wireError) string {
	if w.desc != "" {
		return w.desc
	}
	var re requestError
	if errors.As(err, &re) {
		return re.Error()
	}
	if errors.Is(err, dpop.ErrInvalidProof) {
		return "DPoP proof: " + dpop.Reason(err)
	}
	return "the request is invalid"
}

var headerRetry = []byte("Retry-After")

// Fail implements server.OAuth2: err in RFC 6749's shape.
func (e *Endpoint) Fail(ctx *fasthttp.RequestCtx, err error) {
	st := statePool.Get().(*scratch)
	defer statePool.Put(st)
	status, body := appendError(st.out[:0], err)
	st.out = body
	if e.log != nil && status < 500 && e.log.Enabled(storeCtx, slog.LevelDebug) {
		e.log.Debug("oauth2 request refused", "request_id", ctx.ID(), "path", string(ctx.Path()), "status", status, "err", err)
	}
	switch status {
	case fasthttp.StatusServiceUnavailable:
		ctx.Response.Header.SetBytesKV(headerRetry, []byte("1"))
	case fasthttp.StatusUnauthorized:
		// RFC 6749 §5.2 asks for it where the client authenticated by header;
		// a public client did not, and it does no harm
		ctx.Response.Header.Set("WWW-Authenticate", `Basic realm="tokend"`)
	}
	if e.nonces != nil {
		ctx.Response.Header.SetBytesK(headerNonce, e.nonces.Current())
	}
	noStore(ctx)
	ctx.SetStatusCode(status)
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBody(body)
}
