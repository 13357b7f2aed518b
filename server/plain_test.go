package server

import (
	"strings"
	"testing"
)

// Plain agrees with its definition for every byte value at every position
// of strings up to 24 bytes (three words and a tail), which covers a bad
// byte before, after and between good ones inside one word.
func TestPlain(t *testing.T) {
	def := func(s []byte) bool {
		for _, c := range s {
			if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
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
