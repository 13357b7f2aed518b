package spring

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"tokend/server"
)

// FuzzDecode: Decode never panics, and agrees with encoding/json on what
// the (case-sensitive, last-wins) refreshToken of a body is.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"refreshToken":"a.b.c"}`, `{"refreshToken":"a","refreshToken":"b"}`,
		`{"RefreshToken":"x"}`, `{"refreshToken":" "}`, `{"refreshToken":"\u0061.b"}`, `[]`, `{"x":{"refreshToken":"n"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return // encoding/json rewrites invalid UTF-8; such tokens never verify anyway
		}
		var r server.Request
		err := Decode(body, &r)
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			if err == nil {
				t.Fatalf("Decode accepted %q, which encoding/json refuses", body)
			}
			return
		}
		var want string
		raw, present := m["refreshToken"]
		isString := present && json.Unmarshal(raw, &want) == nil && len(raw) > 0 && raw[0] == '"'
		if err == nil && (!isString || want != string(r.RefreshToken)) {
			t.Fatalf("Decode(%q) = %q; encoding/json reads %s", body, r.RefreshToken, raw)
		}
		if err != nil && isString && len(strings.TrimSpace(want)) > 0 && len(body) <= 4096 {
			t.Fatalf("Decode(%q) refused a token %q: %v", body, want, err)
		}
	})
}
