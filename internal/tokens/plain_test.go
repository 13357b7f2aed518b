package tokens

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// Plain agrees with its definition for every byte value at every position
// of strings up to 24 bytes (three words and a tail), which covers a bad
// byte before, after and between good ones inside one word.
func TestPlain(t *testing.T) {
	def := func(s []byte) bool {
		for _, c := range s {
			if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				return false
			}
		}
		return true
	}
	for n := 1; n <= 24; n++ {
		for at := range n {
			for b := range 256 {
				s := []byte(strings.Repeat("eyJ0", 6)[:n])
				s[at] = byte(b)
				if got, want := Plain(s), def(s); got != want {
					t.Fatalf("Plain(%q) = %v; want %v", s, got, want)
				}
				if at > 0 { // and next to a byte just past the edges
					s[at-1] = []byte{0x1f, 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80}[b%8]
					if got, want := Plain(s), def(s); got != want {
						t.Fatalf("Plain(%q) = %v; want %v", s, got, want)
					}
				}
			}
		}
	}
}

// AppendJSONString writes a literal that parses back to s (each invalid
// UTF-8 byte as U+FFFD), with s whole when Plain(s): every byte value at
// every position of strings up to 20 bytes, so both the word-wise fast
// path and the escaping loop are crossed.
func TestAppendJSONString(t *testing.T) {
	valid := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			b.WriteRune(r) // RuneError for an invalid byte, as n is 1
			i += n
		}
		return b.String()
	}
	for n := 1; n <= 20; n++ {
		for at := range n {
			for c := range 256 {
				s := []byte(strings.Repeat("kw-pkqvf", 3)[:n])
				s[at] = byte(c)
				out := AppendJSONString([]byte("x"), string(s))
				if out[0] != 'x' {
					t.Fatalf("AppendJSONString(%q) overwrote its destination: %q", s, out)
				}
				var got string
				if err := json.Unmarshal(out[1:], &got); err != nil {
					t.Fatalf("AppendJSONString(%q) = %q: %v", s, out[1:], err)
				}
				if want := valid(string(s)); got != want {
					t.Fatalf("AppendJSONString(%q) parses to %q; want %q", s, got, want)
				}
				if Plain(s) && string(out[1:]) != `"`+string(s)+`"` {
					t.Fatalf("AppendJSONString(%q) = %q; want it unescaped", s, out[1:])
				}
			}
		}
	}
}
