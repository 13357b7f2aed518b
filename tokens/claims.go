package tokens

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

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

	// Legacy marks a refresh token minted by the old spring backend.
	Legacy bool `json:"-"`
}

// reset clears c for decoding, marking gen absent.
func (c *Claims) reset() { *c = Claims{Gen: -1} }

// decodeClaims parses a JWT payload. Not a JSON object is ErrMalformed (the
// legacy backends' "Invalid token format"); JSON of the wrong shape, such as
// a string where a number belongs, is ErrInvalid.
func decodeClaims(payload []byte, c *Claims) error {
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
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does, so the output always parses.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
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
