package spring

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tokend/tokend/server"
)

// FuzzDecode: Decode never panics, and agrees with encoding/json on what
// the (case-sensitive, last-wins) refreshToken of a body is.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"refreshToken":"a.b.c"}`, `{"refreshToken":"a","refreshToken":"b"}`,
		`{"RefreshToken":"x"}`, `{"refreshToken":" "}`, `{"refreshToken":"\u0061.b"}`, `[]`, `{"x":{"refreshToken":"n"}}`,
		// the canonical shape's edges (the fast path)
		"{\"refreshToken\":\"eyJhbGciOi\x01JIUzI1NiJ9\"}", `{"refreshToken":"eyJhbGciOiJIUzI1NiJ9""}`, "{\"refreshToken\":\"eyJhbGci\xc3\xa9\"}"} {
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

func TestAppendTimestamp(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("KST", 9*3600), time.FixedZone("NST", -(3*3600 + 30*60)), time.FixedZone("x", 5*3600+45*60)}
	if ny, err := time.LoadLocation("America/New_York"); err == nil {
		zones = append(zones, ny)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		tm := time.Unix(r.Int64N(1<<33), r.Int64N(1e9)).In(zones[i%len(zones)])
		if i == 0 {
			tm = time.Date(2025, 1, 24, 15, 35, 12, 456789000, zones[1])
		}
		got := string(AppendTimestamp(nil, tm))
		if want := tm.Format("2006-01-02T15:04:05.000000-07:00"); got != want {
			t.Fatalf("AppendTimestamp(%v) = %s; want %s", tm, got, want)
		}
	}
}

// The canonical body's fast path reads what the general JSON path reads, and
// leaves to it every body that is not exactly that shape.
func TestCanonicalAgrees(t *testing.T) {
	tok := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLWJ5dGVz"
	bodies := []string{
		`{"refreshToken":"` + tok + `"}`,
		`{"refreshToken":"x"}`,
		`{"refreshToken":"a b"}`,
		`{"refreshToken":" "}`,
		`{"refreshToken":""}`,
		`{"refreshToken":"` + tok + `" }`,
		`{ "refreshToken":"` + tok + `"}`,
		`{"refreshToken":"a\"b"}`,
		`{"refreshToken":"a\\b"}`,
		`{"refreshToken":"a\u0062"}`,
		`{"refreshToken":"` + tok + `"}` + "\n",
		`{"refreshToken":"x","refreshToken":"y"}`,
		`{"refreshToken":"x"}}`,
		`{"refreshToken":"x"`,
		"{\"refreshToken\":\"a\tb\"}",
		"{\"refreshToken\":\"caf\xc3\xa9\"}",
	}
	for _, body := range bodies {
		var fast, general server.Request
		errFast, errGeneral := Decode([]byte(body), &fast), decodeJSON([]byte(body), &general)
		if (errFast == nil) != (errGeneral == nil) || string(fast.RefreshToken) != string(general.RefreshToken) {
			t.Errorf("%q: Decode = %q, %v; the JSON path = %q, %v", body, fast.RefreshToken, errFast, general.RefreshToken, errGeneral)
		}
		_, took := canonical([]byte(body))
		if want := body == bodies[0] || body == bodies[1] || body == bodies[2]; took != want {
			t.Errorf("%q: fast path %v; want %v", body, took, want)
		}
	}
}
