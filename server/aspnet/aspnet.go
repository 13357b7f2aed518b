// Package aspnet speaks the contract of the ASP.NET backend tokend replaces
// (seeds/000): `{"Token","RefreshToken"}` in, property names matched
// case-insensitively as ASP.NET Core's JSON binding does; the same two
// properties out; every error in one envelope,
// `{"errors":[{"code","message","type"}]}`, mapped in one table.
//
// Part of tokend's HTTP layer, not a library: no compatibility promise.
// The public Go API is package github.com/tokend/tokend/tokens.
package aspnet

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/server"
)

// Dialect is the aspnet wire contract; the zero value is ready to use.
type Dialect struct{}

// Name implements server.Dialect.
func (Dialect) Name() string { return "aspnet" }

// field is what a request property looked like.
type field uint8

const (
	present   field = iota // a string with something besides white space
	missing                // absent, null, empty or blank: [Required] refuses all four
	notString              // a number, object, array or boolean
	numFields
)

// Decode parses a refresh request: both `Token` and `RefreshToken` are
// required. Names match in any ASCII case, unknown properties are ignored,
// the last duplicate wins. Errors name every field at fault.
func Decode(body []byte, r *server.Request) error {
	tok, refresh, err := decode(body)
	if err != nil {
		return err
	}
	if err := fieldErrors[state(tok)][state(refresh)]; err != nil {
		return err
	}
	r.AccessToken, r.RefreshToken = tok.str, refresh.str
	return nil
}

// DecodeRevoke parses a revoke request: only `RefreshToken` is required;
// a `Token` is ignored.
func DecodeRevoke(body []byte, r *server.Request) error {
	_, refresh, err := decode(body)
	if err != nil {
		return err
	}
	if err := fieldErrors[present][state(refresh)]; err != nil {
		return err
	}
	r.RefreshToken = refresh.str
	return nil
}

// DecodeRefresh implements server.Dialect.
func (Dialect) DecodeRefresh(body []byte, r *server.Request) error { return Decode(body, r) }

// DecodeRevoke implements server.Dialect.
func (Dialect) DecodeRevoke(body []byte, r *server.Request) error { return DecodeRevoke(body, r) }

// raw holds a property's value as found: nil when absent, else its JSON,
// or the unescaped string when it was one (str set).
type raw struct {
	json, str []byte
	isString  bool
}

func decode(body []byte) (tok, refresh raw, err error) {
	if tok, refresh, ok := canonical(body); ok {
		return tok, refresh, nil
	}
	return decodeJSON(body)
}

// canonical reads the body clients send, exactly {"Token":"…","RefreshToken":"…"}
// (the names in any case, in either order, once each) with values of plain
// ASCII: valid JSON by construction, so it needs no JSON pass (the general
// one cost 4,300 instructions, 6% of a refresh). Anything else is left to
// decodeJSON (ok false), which reads such a body the same way
// (TestCanonicalAgrees).
func canonical(body []byte) (tok, refresh raw, ok bool) {
	rest, ok := bytes.CutPrefix(body, []byte(`{"`))
	if !ok {
		return raw{}, raw{}, false
	}
	var seen [2]bool // token, refreshtoken
	for i := range 2 {
		name, quoted, after, ok := member(rest)
		if !ok {
			return raw{}, raw{}, false
		}
		v := raw{json: quoted, str: quoted[1 : len(quoted)-1], isString: true}
		switch {
		case !seen[0] && equalFoldASCII(name, "token"):
			tok, seen[0] = v, true
		case !seen[1] && equalFoldASCII(name, "refreshtoken"):
			refresh, seen[1] = v, true
		default:
			return raw{}, raw{}, false
		}
		if i == 0 {
			if rest, ok = bytes.CutPrefix(after, []byte(`,"`)); !ok {
				return raw{}, raw{}, false
			}
		} else if string(after) != "}" {
			return raw{}, raw{}, false
		}
	}
	return tok, refresh, true
}

// member reads `name":"value"` at the start of b, name and value plain,
// and returns the name, the value with its quotes, and what follows.
func member(b []byte) (name, quoted, after []byte, ok bool) {
	n := bytes.IndexByte(b, '"')
	if n < 0 || !tokens.Plain(b[:n]) || !bytes.HasPrefix(b[n:], []byte(`":"`)) {
		return nil, nil, nil, false
	}
	e := bytes.IndexByte(b[n+3:], '"') // the value's closing quote, at n+3+e
	if e < 0 || !tokens.Plain(b[n+3:n+3+e]) {
		return nil, nil, nil, false
	}
	return b[:n], b[n+2 : n+4+e], b[n+4+e:], true
}

// decodeJSON is decode of any body: checked to be one JSON object, then
// walked for its two properties.
func decodeJSON(body []byte) (tok, refresh raw, err error) {
	err = server.Fields(body, func(name, value []byte) {
		switch {
		case equalFoldASCII(name, "token"):
			tok = raw{json: value}
		case equalFoldASCII(name, "refreshtoken"):
			refresh = raw{json: value}
		}
	})
	if err != nil {
		return
	}
	// unescaping happens only for the two values kept, and allocates only
	// when they hold escapes
	tok.str, tok.isString = server.StringValue(nil, tok.json)
	refresh.str, refresh.isString = server.StringValue(nil, refresh.json)
	return
}

func state(v raw) field {
	switch {
	case v.json == nil || string(v.json) == "null":
		return missing
	case !v.isString:
		return notString
	case isBlank(v.str):
		return missing
	}
	return present
}

// equalFoldASCII compares a property name with a lower-case ASCII name.
// ASCII only: no Unicode folding (the Kelvin sign is not a K).
func equalFoldASCII(name []byte, lower string) bool {
	if len(name) != len(lower) {
		return false
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func isBlank(s []byte) bool {
	for _, c := range s {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// AppendPair implements server.Dialect: `{"Token","RefreshToken"}`. Both
// tokens are base64 (url-safe or standard) and dots: nothing to escape.
func (Dialect) AppendPair(b []byte, p *tokens.Pair, _ time.Time) []byte {
	b = append(b, `{"Token":"`...)
	b = append(b, p.Access...)
	b = append(b, `","RefreshToken":"`...)
	b = append(b, p.Refresh...)
	return append(b, `"}`...)
}

// wireError is one row of the error table, its body prepared once.
type wireError struct {
	err    error
	status int
	body   string
}

// entry is one member of the envelope's "errors" array.
type entry struct{ code, message, typ string }

func envelope(entries ...entry) string {
	var b []byte
	b = append(b, `{"errors":[`...)
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"code":`...)
		b = tokens.AppendJSONString(b, e.code)
		b = append(b, `,"message":`...)
		b = tokens.AppendJSONString(b, e.message)
		b = append(b, `,"type":`...)
		b = tokens.AppendJSONString(b, e.typ)
		b = append(b, '}')
	}
	return string(append(b, "]}"...))
}

func row(err error, status int, entries ...entry) wireError {
	return wireError{err, status, envelope(entries...)}
}

// The seed's three answers, and the 401 of DESIGN §1.
var (
	invalidRefreshToken = entry{"invalid_refresh_token", "Invalid refresh token", "NotFound"}
	userNotFound        = entry{"user_not_found", "User not found", "NotFound"}
	invalidToken        = entry{"invalid_token", "Invalid token", "Unauthorized"}
)

func validation(message string) entry { return entry{"invalid_request", message, "Validation"} }

// fieldErrors[token][refresh] is the error for each combination of faults,
// nil when both fields are present. Prepared at init so that refusing a
// request allocates nothing.
var fieldErrors [numFields][numFields]error

// fieldMessage is ASP.NET's own wording for a [Required] string property.
func fieldMessage(name string, f field) string {
	if f == notString {
		return "The " + name + " field must be a string."
	}
	return "The " + name + " field is required."
}

// errorTable maps every outcome to the ASP.NET backend's answer. Order
// matters: the first row whose error matches wins.
var errorTable = func() []wireError {
	var rows []wireError
	for t := present; t < numFields; t++ {
		for r := present; r < numFields; r++ {
			var entries []entry
			var names []string
			if t != present {
				entries = append(entries, validation(fieldMessage("Token", t)))
				names = append(names, "Token")
			}
			if r != present {
				entries = append(entries, validation(fieldMessage("RefreshToken", r)))
				names = append(names, "RefreshToken")
			}
			if entries == nil {
				continue
			}
			err := fmt.Errorf("%w: %s", server.ErrBadRequest, strings.Join(names, " and ")+" missing, blank or not a string")
			fieldErrors[t][r] = err
			rows = append(rows, row(err, 400, entries...))
		}
	}
	return append(rows,
		row(server.ErrContentType, 400, validation("The request body must be JSON (Content-Type: application/json).")),
		row(server.ErrTooLarge, 400, validation("The request body is too large.")),
		row(server.ErrHTTP, 400, validation("The request is not valid HTTP.")),
		row(server.ErrNotJSON, 400, validation("The request body is not valid JSON.")),
		row(server.ErrNotObject, 400, validation("The request body must be a JSON object.")),
		row(server.ErrSubject, 400, validation("The sub field is required.")),
		row(server.ErrBadRequest, 400, validation("The request is invalid.")),
		// the Token first: a request whose Token does not verify learns
		// nothing about its refresh token
		row(tokens.ErrAccessToken, 401, invalidToken),
		row(session.ErrDeleted, 404, userNotFound),
		row(tokens.ErrMalformed, 404, invalidRefreshToken),
		row(tokens.ErrInvalid, 404, invalidRefreshToken),
		row(tokens.ErrExpired, 404, invalidRefreshToken),
		row(session.ErrNotFound, 404, invalidRefreshToken),
		row(session.ErrExpired, 404, invalidRefreshToken),
		row(session.ErrRevoked, 404, invalidRefreshToken),
		row(session.ErrReuse, 404, invalidRefreshToken),
		row(session.ErrNotOwner, 404, invalidRefreshToken),
		// a session bound to a DPoP key (POST /oauth2/token) is refreshed
		// there only, with a proof by its key
		row(session.ErrKeyRequired, 404, invalidRefreshToken),
		row(session.ErrUnavailable, 503, entry{"service_unavailable", "Service temporarily unavailable", "Failure"}),
		row(server.ErrHeaderTooLarge, 431, validation("The request headers are too large.")),
		row(server.ErrTimeout, 408, entry{"request_timeout", "Request timeout", "Failure"}),
		row(server.ErrNoRoute, 404, entry{"not_found", "Not found", "NotFound"}),
		row(server.ErrMethod, 405, entry{"method_not_allowed", "Method not allowed", "Failure"}),
	)
}()

var internalError = row(server.ErrInternal, 500, entry{"internal_error", "Internal server error", "Unexpected"})

// AppendError implements server.Dialect.
func (Dialect) AppendError(b []byte, err error, _ time.Time) (int, []byte) {
	e := internalError
	for _, r := range errorTable {
		if errors.Is(err, r.err) {
			e = r
			break
		}
	}
	return e.status, append(b, e.body...)
}
