// Package spring speaks the contract of the Spring backend tokend replaces
// (seeds/004): `{"refreshToken"}` in, `{"timestamp","result":{…}}` out, and
// its four error bodies. Every error maps to its wire form in one table.
//
// Part of tokend's HTTP layer, not a library: no compatibility promise.
// The public Go API is package github.com/tokend/tokend/tokens.
package spring

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/server"
)

// Dialect is the spring wire contract; the zero value is ready to use.
type Dialect struct{}

// Name implements server.Dialect.
func (Dialect) Name() string { return "spring" }

var errNoToken = fmt.Errorf("%w: refreshToken is missing, not a string, or blank", server.ErrBadRequest)

// Decode parses `{"refreshToken": "<JWT>"}`. Like the Spring backend
// (Jackson, @NotBlank): the name is case-sensitive, unknown properties are
// ignored, the last duplicate wins, and a missing, null, non-string, empty or
// blank token is refused. r.RefreshToken aliases body unless it had escapes.
func Decode(body []byte, r *server.Request) error {
	if tok, ok := canonical(body); ok {
		r.RefreshToken = tok
		return nil
	}
	return decodeJSON(body, r)
}

// decodeJSON is Decode of any body: checked to be one JSON object, then
// walked for its refreshToken.
func decodeJSON(body []byte, r *server.Request) error {
	var raw []byte
	err := server.Fields(body, func(name, value []byte) {
		if string(name) == "refreshToken" {
			raw = value
		}
	})
	if err != nil {
		return err
	}
	tok, ok := server.StringValue(nil, raw)
	if !ok || len(bytes.TrimSpace(tok)) == 0 {
		return errNoToken
	}
	r.RefreshToken = tok
	return nil
}

// canonical reads the body nearly every client sends, exactly
// {"refreshToken":"<token>"} with a token of plain ASCII: valid JSON by
// construction, so it needs no JSON pass (the general one costs about 3,000
// instructions, 4% of a refresh). Anything else is left to decodeJSON (ok
// false), which reads such a body the same way (TestCanonicalAgrees).
func canonical(body []byte) (tok []byte, ok bool) {
	const open, end = `{"refreshToken":"`, `"}`
	if len(body) < len(open)+len(end) || string(body[:len(open)]) != open || string(body[len(body)-len(end):]) != end {
		return nil, false
	}
	tok = body[len(open) : len(body)-len(end)]
	if !tokens.Plain(tok) || len(bytes.TrimSpace(tok)) == 0 {
		return nil, false
	}
	return tok, true
}

// DecodeRefresh implements server.Dialect.
func (Dialect) DecodeRefresh(body []byte, r *server.Request) error { return Decode(body, r) }

// DecodeRevoke implements server.Dialect: the same body as a refresh.
func (Dialect) DecodeRevoke(body []byte, r *server.Request) error { return Decode(body, r) }

// AppendTimestamp writes t as the Spring backend did: RFC 3339 with
// microseconds and the numeric zone offset, e.g. 2025-01-24T15:35:12.456789+09:00.
// Written by hand: time.Format's layout interpreter was a visible share of
// a refresh; TestAppendTimestamp checks it against AppendFormat.
func AppendTimestamp(b []byte, t time.Time) []byte {
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	_, offset := t.Zone()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	sign := byte('+')
	if offset < 0 {
		sign, offset = '-', -offset
	}
	b = append(b, sign)
	b = appendDigits(b, offset/3600, 2)
	b = append(b, ':')
	return appendDigits(b, offset/60%60, 2)
}

// appendDigits appends v (>= 0) zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var d [10]byte
	i := len(d)
	for v > 0 || i > len(d)-width {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[i:]...)
}

// AppendPair implements server.Dialect.
func (Dialect) AppendPair(b []byte, p *tokens.Pair, now time.Time) []byte {
	b = append(b, `{"timestamp":"`...)
	b = AppendTimestamp(b, now)
	b = append(b, `","result":{"accessToken":"`...)
	b = append(b, p.Access...) // base64url and dots: nothing to escape
	b = append(b, `","refreshToken":"`...)
	b = append(b, p.Refresh...)
	b = append(b, `","tokenType":"Bearer","accessTokenExpiresIn":`...)
	b = strconv.AppendInt(b, p.AccessExpiresIn.Milliseconds(), 10)
	b = append(b, `,"refreshTokenExpiresIn":`...)
	b = strconv.AppendInt(b, p.RefreshExpiresIn.Milliseconds(), 10)
	return append(b, "}}"...)
}

// wireError is one row of the error table with its body around the
// timestamp prepared once.
type wireError struct {
	err    error
	status int
	suffix string // everything after the timestamp's closing quote
}

func row(err error, status int, errName, message string) wireError {
	suffix := `","status":` + strconv.Itoa(status)
	if errName != "" {
		suffix += `,"error":"` + errName + `"`
	}
	return wireError{err, status, suffix + `,"message":"` + message + `"}`}
}

// errorTable maps every outcome to the Spring backend's answer. Order
// matters: the first row whose error matches wins.
var errorTable = []wireError{
	row(server.ErrBadRequest, 400, "", "Invalid request body"),
	row(tokens.ErrExpired, 401, "Unauthorized", "JWT token has expired"),
	row(tokens.ErrMalformed, 401, "Unauthorized", "Invalid token format"),
	row(tokens.ErrInvalid, 401, "Unauthorized", "Invalid JWT token"),
	row(session.ErrNotOwner, 401, "Unauthorized", "Invalid JWT token"),
	row(session.ErrNotFound, 401, "Unauthorized", "Invalid JWT token"),
	row(session.ErrExpired, 401, "Unauthorized", "Invalid JWT token"),
	row(session.ErrRevoked, 401, "Unauthorized", "Invalid JWT token"),
	row(session.ErrDeleted, 401, "Unauthorized", "Invalid JWT token"),
	row(session.ErrReuse, 401, "Unauthorized", "Invalid JWT token"),
	// a session bound to a DPoP key (POST /oauth2/token) is refreshed there
	// only, with a proof by its key
	row(session.ErrKeyRequired, 401, "Unauthorized", "Invalid JWT token"),
	row(session.ErrUnavailable, 503, "Service Unavailable", "Service temporarily unavailable"),
	row(server.ErrHeaderTooLarge, 431, "Request Header Fields Too Large", "Request header fields too large"),
	row(server.ErrTimeout, 408, "Request Timeout", "Request timeout"),
	row(server.ErrNoRoute, 404, "Not Found", "No endpoint found"),
	row(server.ErrMethod, 405, "Method Not Allowed", "Request method not supported"),
}

var internalError = row(server.ErrInternal, 500, "Internal Server Error", "Internal server error")

// AppendError implements server.Dialect.
func (Dialect) AppendError(b []byte, err error, now time.Time) (int, []byte) {
	e := internalError
	for _, r := range errorTable {
		if errors.Is(err, r.err) {
			e = r
			break
		}
	}
	b = append(b, `{"timestamp":"`...)
	b = AppendTimestamp(b, now)
	return e.status, append(b, e.suffix...)
}
