package tokens

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/goccy/go-json"
)

// Claims are the JWT claims tokend reads and writes. Decoded into a struct,
// never a map: the hot path must not build a map per request.
type Claims struct {
	Issuer    string `json:"iss,omitempty"`
	Subject   string `json:"sub"`
	NameID    string `json:"nameid,omitempty"` // aspnet access tokens
	Session   string `json:"sid,omitempty"`
	Gen       int64  `json:"gen"` // refresh tokens; -1 when absent
	ID        string `json:"jti,omitempty"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf,omitempty"`
	Expires   int64  `json:"exp"`

	// OAuth 2.0 access tokens (RFC 9068 §2.2, RFC 9449 §6): the resource
	// server meant (one, as a string), the client refreshing, the scope
	// granted, and the DPoP key the token is bound to.
	Audience     Audience     `json:"aud,omitempty"`
	ClientID     string       `json:"client_id,omitempty"`
	Scope        string       `json:"scope,omitempty"`
	Confirmation Confirmation `json:"cnf"`

	// Legacy marks a refresh token minted by the old spring backend.
	Legacy bool `json:"-"`
}

// Audience is the aud claim: tokend writes one identifier, as a string;
// another issuer's array reads as its members space-separated, which no
// single identifier equals (RFC 7519 §4.1.3).
type Audience string

// UnmarshalJSON reads aud as a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		var list []string
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		*a = Audience(strings.Join(list, " "))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*a = Audience(s)
	return nil
}

// Confirmation is the cnf claim of a sender-constrained token (RFC 7800).
type Confirmation struct {
	// JKT is the RFC 7638 thumbprint of the DPoP key the token is bound to.
	JKT string `json:"jkt,omitempty"`
}

// reset clears c for decoding, marking gen absent.
func (c *Claims) reset() { *c = Claims{Gen: -1} }

// decodeClaims parses a JWT payload. Not a JSON object is ErrMalformed (the
// legacy backends' "Invalid token format"); JSON of the wrong shape, such as
// a string where a number belongs, is ErrInvalid.
func decodeClaims(payload []byte, c *Claims) error { return decodeClaimsIn(payload, c, false) }

// decodeClaimsIn is decodeClaims whose fast path, with alias, leaves the
// strings of c in payload's own bytes instead of a copy: the caller keeps
// payload unchanged for as long as c's strings are used.
func decodeClaimsIn(payload []byte, c *Claims, alias bool) error {
	c.reset()
	if scanClaimsIn(payload, c, alias) {
		return nil
	}
	c.reset()
	if !isObject(payload) {
		return fmt.Errorf("%w: claims are not a JSON object", ErrMalformed)
	}
	if err := json.Unmarshal(payload, c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%w: claim %q has the wrong type", ErrInvalid, te.Field)
		}
		return fmt.Errorf("%w: claims are not JSON", ErrMalformed)
	}
	return nil
}

// scanClaims reads claims written as appendClaims writes them: one compact
// object of known names with plain ASCII strings and integers. Anything else
// (white space, escapes, other names or types) is left to go-json, by
// returning false. The strings share one allocation, the payload's copy,
// where go-json makes one per claim. FuzzClaims proves it reads what
// go-json reads.
func scanClaims(p []byte, c *Claims) bool { return scanClaimsIn(p, c, false) }

// scanClaimsIn is scanClaims; with alias the strings share p's own bytes
// and nothing is allocated (see decodeClaimsIn).
func scanClaimsIn(p []byte, c *Claims, alias bool) bool {
	if len(p) < 2 || p[0] != '{' || p[len(p)-1] != '}' {
		return false
	}
	var str string // p as a string, made on the first string claim
	i := 1
	for i < len(p)-1 {
		if i > 1 {
			if p[i] != ',' {
				return false
			}
			i++
		}
		// "name":
		if i >= len(p) || p[i] != '"' {
			return false
		}
		end := bytes.IndexByte(p[i+1:], '"')
		if end < 0 || i+end+2 >= len(p) || p[i+end+2] != ':' {
			return false
		}
		name := p[i+1 : i+1+end]
		i += end + 3
		var num *int64
		var dst *string
		switch string(name) {
		case "iss":
			dst = &c.Issuer
		case "sub":
			dst = &c.Subject
		case "nameid":
			dst = &c.NameID
		case "sid":
			dst = &c.Session
		case "jti":
			dst = &c.ID
		case "gen":
			num = &c.Gen
		case "iat":
			num = &c.IssuedAt
		case "nbf":
			num = &c.NotBefore
		case "exp":
			num = &c.Expires
		case "aud":
			dst = (*string)(&c.Audience)
		case "client_id":
			dst = &c.ClientID
		case "scope":
			dst = &c.Scope
		case "cnf":
			// only as appendClaims writes it: {"jkt":"…"}
			const open = `{"jkt":`
			if !bytes.HasPrefix(p[i:], []byte(open)) {
				return false
			}
			n := plainString(p[i+len(open):])
			if n < 0 || i+len(open)+n+2 >= len(p) || p[i+len(open)+n+2] != '}' {
				return false
			}
			if str == "" {
				str = text(p, alias)
			}
			c.Confirmation.JKT = str[i+len(open)+1 : i+len(open)+1+n]
			i += len(open) + n + 3
			continue
		default:
			return false
		}
		if dst != nil {
			n := plainString(p[i:])
			if n < 0 {
				return false
			}
			if str == "" {
				str = text(p, alias)
			}
			*dst = str[i+1 : i+1+n]
			i += n + 2
			continue
		}
		v, n := plainInt(p[i:])
		if n == 0 {
			return false
		}
		*num = v
		i += n
	}
	return i == len(p)-1
}

// text is p as a string: a copy, or with alias p's own bytes (the refresh
// path's claims, kept in the pooled Pair's buffer: no allocation).
func text(p []byte, alias bool) string {
	if alias {
		return unsafe.String(unsafe.SliceData(p), len(p))
	}
	return string(p)
}

// plainString returns the length of the contents of the string literal b
// starts with, or -1 unless it is quoted printable ASCII without escapes.
func plainString(b []byte) int {
	if len(b) == 0 || b[0] != '"' {
		return -1
	}
	for j := 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j - 1
		case c < 0x20 || c >= 0x7f || c == '\\':
			return -1
		}
	}
	return -1
}

// plainInt reads the JSON integer b starts with: an optional minus, then 0
// or a digit string without leading zeros, at most 18 digits (no overflow).
// n is 0 unless one is there and ends at a ',' or '}'.
func plainInt(b []byte) (v int64, n int) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		n = 1
	}
	start := n
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	digits := n - start
	switch {
	case digits == 0 || digits > 18,
		digits > 1 && b[start] == '0',
		n == len(b) || (b[n] != ',' && b[n] != '}'):
		return 0, 0
	}
	if neg {
		v = -v
	}
	return v, n
}

// isObject reports whether b starts, after white space, with '{'.
func isObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// appendClaims writes the claims of a token of type t as compact JSON. Built
// by hand into the caller's buffer: encoding/json would allocate per token.
func appendClaims(b []byte, c *Claims, t Type) []byte {
	b = append(b, '{')
	if c.Issuer != "" {
		b = append(b, `"iss":`...)
		b = AppendJSONString(b, c.Issuer)
		b = append(b, ',')
	}
	b = append(b, `"sub":`...)
	b = AppendJSONString(b, c.Subject)
	if c.NameID != "" {
		b = append(b, `,"nameid":`...)
		b = AppendJSONString(b, c.NameID)
	}
	b = append(b, `,"sid":`...)
	b = AppendJSONString(b, c.Session)
	if t == Refresh {
		b = append(b, `,"gen":`...)
		b = strconv.AppendInt(b, c.Gen, 10)
	}
	b = append(b, `,"jti":`...)
	if c.ID != "" {
		b = AppendJSONString(b, c.ID)
	} else {
		b = appendTokenID(b, c.Session, c.Gen, t)
	}
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, c.IssuedAt, 10)
	if t == Access {
		b = append(b, `,"nbf":`...)
		b = strconv.AppendInt(b, c.NotBefore, 10)
	}
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, c.Expires, 10)
	if t != Access {
		return append(b, '}')
	}
	if c.Audience != "" {
		b = append(b, `,"aud":`...)
		b = AppendJSONString(b, string(c.Audience))
	}
	if c.ClientID != "" {
		b = append(b, `,"client_id":`...)
		b = AppendJSONString(b, c.ClientID)
	}
	if c.Scope != "" {
		b = append(b, `,"scope":`...)
		b = AppendJSONString(b, c.Scope)
	}
	if c.Confirmation.JKT != "" {
		b = append(b, `,"cnf":{"jkt":`...)
		b = AppendJSONString(b, c.Confirmation.JKT)
		b = append(b, '}')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does, so the output always parses.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	// the usual claim (an ID, a subject, the issuer) needs no escaping:
	// checked a word at a time and appended whole
	if Plain(unsafe.Slice(unsafe.StringData(s), len(s))) {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendTokenID writes the jti of the token of type t for session sid at
// generation gen: deterministic, so a retry reissues the very same token.
// Session ids are base64url, so no escaping is needed.
func appendTokenID(b []byte, sid string, gen int64, t Type) []byte {
	b = append(b, '"')
	b = append(b, sid...)
	b = append(b, '.')
	b = strconv.AppendInt(b, gen, 10)
	if t == Refresh {
		b = append(b, ".r"...)
	}
	return append(b, '"')
}
