package dpop

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzJSONScan: the hand-written scanner takes for JSON what encoding/json
// takes (but for nesting past maxDepth, which it refuses), and reads an
// object's string members as encoding/json does (for valid UTF-8: it
// leaves other bytes as they are where encoding/json writes U+FFFD).
func FuzzJSONScan(f *testing.F) {
	for _, seed := range []string{
		`{}`, ` { "a" : "b" } `, `{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","x":"AA","y":"BB"}}`,
		`{"a":[1,-0.5e+3,true,false,null,{},[]]}`, `{"a":"\u00e9\ud83d\ude00\ud800\"\\\/\b\f\n\r\t"}`,
		`{"a":1,}`, `{"a" 1}`, `[1,2`, `"\u12"`, `012`, `-`, `1.`, `1e`, `{"a":"` + "\x01" + `"}`, `nul`, `{"a":1}x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := jsonScan{b: b}
		_, ok := s.value(0)
		ok = ok && s.done()
		if valid := json.Valid(b); ok != valid {
			if valid && bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) > maxDepth {
				return // nested too deep to be sure, and refused
			}
			t.Fatalf("scanner says JSON: %v; encoding/json: %v", ok, valid)
		}
		if !ok || !utf8.Valid(b) {
			return
		}
		var want map[string]any
		if json.Unmarshal(b, &want) != nil {
			return // not an object
		}
		s = jsonScan{b: b}
		if !s.open() {
			t.Fatal("an object not opened")
		}
		got := map[string]any{}
		var buf []byte
		for {
			name, val, end, ok := s.next()
			if !ok {
				t.Fatal("an object not walked")
			}
			if end {
				break
			}
			var n []byte
			n, buf = unquote(name, buf)
			if val[0] == '"' {
				var v []byte
				v, buf, _ = stringValue(val, buf)
				got[string(n)] = string(v)
			} else {
				got[string(n)] = nil
			}
		}
		for n, v := range got {
			w, ok := want[n]
			if _, isString := w.(string); !ok || (isString || v != nil) && w != v {
				t.Fatalf("member %q: %#v; encoding/json reads %#v", n, v, w)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d members; encoding/json reads %d", len(got), len(want))
		}
	})
}
