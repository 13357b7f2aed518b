package dpop

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonScan reads one JSON text (RFC 8259) by hand: enough to walk an
// object's members and refuse what is not JSON, with no map, reflection
// or copy. A proof's header and claims are small flat objects; decoding
// them through a general decoder cost more than everything else but the
// signature.
type jsonScan struct {
	b []byte
	i int
	n int // members read of the object being walked
}

// maxDepth bounds the nesting of a value: a proof has no reason to nest,
// and the scanner recurses.
const maxDepth = 32

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScan) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// open starts walking the object at s.i.
func (s *jsonScan) open() bool {
	s.ws()
	s.n = 0
	return s.eat('{')
}

// next reads the walked object's next member: its name as written between
// the quotes (escapes and all) and its value's bytes. end is the object's
// closing brace; ok false is anything that is not JSON.
func (s *jsonScan) next() (name, val []byte, end, ok bool) {
	s.ws()
	if s.eat('}') {
		return nil, nil, true, true
	}
	if s.n > 0 {
		if !s.eat(',') {
			return nil, nil, false, false
		}
		s.ws()
	}
	start := s.i
	if !s.str() {
		return nil, nil, false, false
	}
	name = s.b[start+1 : s.i-1]
	s.ws()
	if !s.eat(':') {
		return nil, nil, false, false
	}
	if val, ok = s.value(1); !ok {
		return nil, nil, false, false
	}
	s.n++
	return name, val, false, true
}

// done reports whether only white space follows.
func (s *jsonScan) done() bool {
	s.ws()
	return s.i == len(s.b)
}

// value skips one value, checking it is JSON, and returns its bytes.
func (s *jsonScan) value(depth int) ([]byte, bool) {
	s.ws()
	if s.i >= len(s.b) || depth > maxDepth {
		return nil, false
	}
	start := s.i
	ok := false
	switch c := s.b[s.i]; {
	case c == '"':
		ok = s.str()
	case c == '{':
		ok = s.object(depth)
	case c == '[':
		ok = s.array(depth)
	case c == '-' || '0' <= c && c <= '9':
		ok = s.number()
	case c == 't':
		ok = s.literal("true")
	case c == 'f':
		ok = s.literal("false")
	case c == 'n':
		ok = s.literal("null")
	}
	if !ok {
		return nil, false
	}
	return s.b[start:s.i], true
}

func (s *jsonScan) object(depth int) bool {
	s.i++ // {
	s.ws()
	if s.eat('}') {
		return true
	}
	for {
		s.ws()
		if !s.str() {
			return false
		}
		s.ws()
		if !s.eat(':') {
			return false
		}
		if _, ok := s.value(depth + 1); !ok {
			return false
		}
		s.ws()
		if s.eat('}') {
			return true
		}
		if !s.eat(',') {
			return false
		}
	}
}

func (s *jsonScan) array(depth int) bool {
	s.i++ // [
	s.ws()
	if s.eat(']') {
		return true
	}
	for {
		if _, ok := s.value(depth + 1); !ok {
			return false
		}
		s.ws()
		if s.eat(']') {
			return true
		}
		if !s.eat(',') {
			return false
		}
	}
}

// str skips a string at s.i: no raw control characters, only the escapes
// RFC 8259 §7 lists.
func (s *jsonScan) str() bool {
	if !s.eat('"') {
		return false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if s.i >= len(s.b) {
				return false
			}
			e := s.b[s.i]
			s.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if s.i+4 > len(s.b) || hex4(s.b[s.i:s.i+4]) < 0 {
					return false
				}
				s.i += 4
			default:
				return false
			}
		}
	}
	return false
}

func (s *jsonScan) number() bool {
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.digits() == 0:
		return false
	}
	if s.eat('.') && s.digits() == 0 {
		return false
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *jsonScan) digits() int {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

func (s *jsonScan) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unquote is a string's content (as next returns a name, or a string
// value without its quotes, already checked by str): itself when it has
// no escape, else decoded onto the end of buf, which it returns grown.
// Lone surrogates decode to U+FFFD, as encoding/json does.
func unquote(raw, buf []byte) (s, grown []byte) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw, buf
	}
	start := len(buf)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			buf = append(buf, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r := hex4(raw[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2 = hex4(raw[i+3:])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default: // " \ /
			buf = append(buf, raw[i])
		}
	}
	return buf[start:], buf
}

// stringValue is a member's value that must be a string (null counts as
// absent, as it did for the struct decoding this replaced), unquoted onto
// buf when it has escapes.
func stringValue(val, buf []byte) (s, grown []byte, ok bool) {
	switch {
	case val[0] == '"':
		s, buf = unquote(val[1:len(val)-1], buf)
		return s, buf, true
	case val[0] == 'n': // null
		return nil, buf, true
	}
	return nil, buf, false
}

// intValue is a number as whole seconds, truncated toward zero (the iat
// claim). Integers of up to 15 digits, nearly always, are read by hand.
func intValue(val []byte) (int64, bool) {
	neg := len(val) > 0 && val[0] == '-'
	digits := val
	if neg {
		digits = val[1:]
	}
	if n := len(digits); n > 0 && n <= 15 {
		var x int64
		for _, c := range digits {
			if c < '0' || c > '9' {
				goto float
			}
			x = x*10 + int64(c-'0')
		}
		if neg {
			x = -x
		}
		return x, true
	}
float:
	f, err := strconv.ParseFloat(string(val), 64)
	if err != nil && f == 0 {
		return 0, false
	}
	// far outside any window either way; int64 of a float beyond its
	// range is not defined
	const limit = 1 << 53
	switch {
	case f > limit:
		return limit, true
	case f < -limit:
		return -limit, true
	}
	return int64(f), true
}
