package server

import (
	"bytes"
	"encoding/binary"

	"github.com/goccy/go-json"
)

// Fields calls fn with each member of the JSON object body: its name,
// unescaped, and its raw value. It refuses anything but one valid JSON
// object. Validation is go-json's; the walk itself allocates nothing, so
// dialects pick their fields with exact (spring) or case-insensitive
// (aspnet) names without decoding into a map.
func Fields(body []byte, fn func(name, value []byte)) error {
	if !json.Valid(body) {
		return ErrNotJSON
	}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return ErrNotObject
	}
	i++
	for {
		i = skipSpace(body, i)
		if body[i] == '}' {
			return nil
		}
		if body[i] == ',' {
			i = skipSpace(body, i+1)
		}
		end := endOfString(body, i)
		name := body[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			name = unquote(nil, body[i:end]) // rare: allocates only then
		}
		i = skipSpace(body, end)
		i = skipSpace(body, i+1) // the colon
		vend := endOfValue(body, i)
		fn(name, body[i:vend])
		i = vend
	}
}

// StringValue returns the contents of a raw JSON value that is a string,
// unescaped into buf when it holds escapes.
func StringValue(buf, raw []byte) (s []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	s = raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') >= 0 {
		s = unquote(buf, raw)
	}
	return s, true
}

// unquote decodes a JSON string literal known to be valid (rare path).
func unquote(buf, lit []byte) []byte {
	var s string
	_ = json.Unmarshal(lit, &s)
	return append(buf, s...)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index after the closing quote of the string at i.
// It jumps from quote to quote (IndexByte is vectorised; tokens are long) and
// skips a quote escaped by an odd run of backslashes.
func endOfString(b []byte, i int) int {
	for j := i + 1; ; {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		q := j + k
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
}

// endOfValue returns the index after the value at i, in valid JSON.
func endOfValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = endOfString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// Plain reports whether every byte of s may stand unescaped in a JSON
// string and is ASCII: 0x20 to 0x7f, not '"' nor '\\'. The dialects read
// their usual bodies with it and no JSON pass. Eight bytes at a time (1,600
// instructions for a 300-byte token against 2,600 a byte at a time): in a
// word with no byte at 0x80 or above, some byte is below n exactly when
// (w - n*ones) &^ w has a high bit set (a zero byte: n = 1, after XOR with
// the byte sought); w's own high bits in the same OR refuse the bytes at
// 0x80 and above, for which that would not hold.
func Plain(s []byte) bool {
	// variables, not constants: held in registers across the loop instead
	// of loaded into one at every use
	ones, highs := uint64(0x0101010101010101), uint64(0x8080808080808080)
	space, quote, backslash := 0x20*ones, '"'*ones, '\\'*ones
	for ; len(s) >= 8; s = s[8:] {
		w := binary.LittleEndian.Uint64(s)
		q, b := w^quote, w^backslash
		if (w|(w-space)&^w|(q-ones)&^q|(b-ones)&^b)&highs != 0 {
			return false
		}
	}
	for _, c := range s {
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
