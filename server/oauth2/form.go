package oauth2

import (
	"bytes"
	"fmt"

	"github.com/tokend/tokend/server"
)

// ErrForm: the body is not application/x-www-form-urlencoded text (a bad
// percent escape).
var ErrForm = fmt.Errorf("%w: the body is not a valid form (a bad percent escape)", server.ErrBadRequest)

// formValues are the parameters an endpoint reads, in the order of its
// names.
type formValues [5][]byte

// readForm decodes an application/x-www-form-urlencoded body, keeping the
// values of names: a name sent twice is an error, one sent empty counts as
// not sent, others are ignored (RFC 6749 §3.1). Values that need no
// unescaping alias body; the others are unescaped into buf, which it
// returns for reuse (it never grows while values alias it: nothing decodes
// longer than it is written). Written by hand: fasthttp.Args would cost
// allocations per request for the loop's closures.
func readForm(body []byte, names []string, vals *formValues, buf []byte) ([]byte, error) {
	*vals = formValues{}
	if cap(buf) < len(body) {
		buf = make([]byte, 0, len(body))
	}
	buf = buf[:0]
	for len(body) > 0 {
		var pair []byte
		pair, body, _ = bytes.Cut(body, []byte{'&'})
		k, v, _ := bytes.Cut(pair, []byte{'='})
		key, rest, ok := unescape(buf, k)
		if !ok {
			return buf, ErrForm
		}
		i := index(names, key)
		if i < 0 {
			continue // key decoded into buf's spare room, not kept
		}
		val, more, ok := unescape(rest, v)
		if !ok {
			return buf, ErrForm
		}
		switch {
		case len(val) == 0:
		case vals[i] != nil:
			return buf, repeated(names[i])
		default:
			vals[i], buf = val, more
		}
	}
	return buf, nil
}

func index(names []string, key []byte) int {
	for i, n := range names {
		if string(key) == n {
			return i
		}
	}
	return -1
}

// unescape decodes s ('+' is a space, %XX a byte): s itself when it has
// nothing to decode, else its decoding appended to buf. It returns the
// value and buf with the value in it (or buf as it was).
func unescape(buf, s []byte) (val, grown []byte, ok bool) {
	if bytes.IndexByte(s, '%') < 0 && bytes.IndexByte(s, '+') < 0 {
		return s, buf, true
	}
	start := len(buf)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			buf = append(buf, ' ')
		case '%':
			if i+2 >= len(s) {
				return nil, buf[:start], false
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi > 15 || lo > 15 {
				return nil, buf[:start], false
			}
			buf = append(buf, hi<<4|lo)
			i += 2
		default:
			buf = append(buf, c)
		}
	}
	return buf[start:], buf, true
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 255
}
