package server

import (
	"bytes"

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
