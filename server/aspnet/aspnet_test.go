package aspnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/server"
)

const (
	tokenRequired   = `{"code":"invalid_request","message":"The Token field is required.","type":"Validation"}`
	refreshRequired = `{"code":"invalid_request","message":"The RefreshToken field is required.","type":"Validation"}`
	tokenNotString  = `{"code":"invalid_request","message":"The Token field must be a string.","type":"Validation"}`
	refreshNotStr   = `{"code":"invalid_request","message":"The RefreshToken field must be a string.","type":"Validation"}`
)

func errs(entries ...string) string {
	return `{"errors":[` + strings.Join(entries, ",") + `]}`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, body     string
		token, refresh string
		wantBody       string // the 400 body when refused
	}{
		{"seed names", `{"Token":"a.b.c","RefreshToken":"AAAA=="}`, "a.b.c", "AAAA==", ""},
		{"camel case", `{"token":"a.b.c","refreshToken":"r"}`, "a.b.c", "r", ""},
		{"upper case", `{"TOKEN":"a.b.c","REFRESHTOKEN":"r"}`, "a.b.c", "r", ""},
		{"mixed case", `{"tOkEn":"a.b.c","rEfReShToKeN":"r"}`, "a.b.c", "r", ""},
		{"escaped name", `{"\u0054oken":"t","Refresh\u0054oken":"r"}`, "t", "r", ""},
		{"escaped value", `{"Token":"a\u002eb","RefreshToken":"x\/y+z=="}`, "a.b", "x/y+z==", ""},
		{"unknown properties ignored", `{"Token":"t","RefreshToken":"r","DeviceId":{"a":[1,2]},"x":null}`, "t", "r", ""},
		{"last duplicate wins", `{"Token":"t1","token":"t2","RefreshToken":"r1","REFRESHTOKEN":"r2"}`, "t2", "r2", ""},
		{"nested names do not count", `{"Token":"t","x":{"RefreshToken":"r"}}`, "", "", errs(refreshRequired)},
		{"no Unicode folding (Kelvin sign)", `{"Token":"t","RefreshTo\u212Aen":"r"}`, "", "", errs(refreshRequired)},
		{"empty object", `{}`, "", "", errs(tokenRequired, refreshRequired)},
		{"Token missing", `{"RefreshToken":"r"}`, "", "", errs(tokenRequired)},
		{"RefreshToken null", `{"Token":"t","RefreshToken":null}`, "", "", errs(refreshRequired)},
		{"Token empty", `{"Token":"","RefreshToken":"r"}`, "", "", errs(tokenRequired)},
		{"Token blank", `{"Token":" \t ","RefreshToken":"r"}`, "", "", errs(tokenRequired)},
		{"Token a number", `{"Token":12,"RefreshToken":"r"}`, "", "", errs(tokenNotString)},
		{"both wrong", `{"Token":[],"RefreshToken":{}}`, "", "", errs(tokenNotString, refreshNotStr)},
		{"Token true, RefreshToken blank", `{"Token":true,"RefreshToken":"  "}`, "", "", errs(tokenNotString, refreshRequired)},
		{"not JSON", `{"Token":"t",`, "", "", errs(`{"code":"invalid_request","message":"The request body is not valid JSON.","type":"Validation"}`)},
		{"array", `[{"Token":"t","RefreshToken":"r"}]`, "", "", errs(`{"code":"invalid_request","message":"The request body must be a JSON object.","type":"Validation"}`)},
		{"string", `"Token"`, "", "", errs(`{"code":"invalid_request","message":"The request body must be a JSON object.","type":"Validation"}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r server.Request
			err := Decode([]byte(tc.body), &r)
			if tc.wantBody == "" {
				if err != nil || string(r.AccessToken) != tc.token || string(r.RefreshToken) != tc.refresh {
					t.Fatalf("Decode = %q, %q, %v; want %q, %q", r.AccessToken, r.RefreshToken, err, tc.token, tc.refresh)
				}
				return
			}
			if !errors.Is(err, server.ErrBadRequest) {
				t.Fatalf("Decode = %v; want a bad request", err)
			}
			status, body := Dialect{}.AppendError(nil, err, time.Time{})
			if status != 400 || string(body) != tc.wantBody {
				t.Fatalf("answer %d %s\nwant 400 %s", status, body, tc.wantBody)
			}
		})
	}
}

func TestDecodeRevoke(t *testing.T) {
	var r server.Request
	if err := DecodeRevoke([]byte(`{"refreshtoken":"r","Token":5}`), &r); err != nil || string(r.RefreshToken) != "r" || r.AccessToken != nil {
		t.Fatalf("DecodeRevoke = %+v, %v; want only the refresh token", r, err)
	}
	err := DecodeRevoke([]byte(`{"Token":"t"}`), &r)
	if _, body := (Dialect{}).AppendError(nil, err, time.Time{}); string(body) != errs(refreshRequired) {
		t.Fatalf("DecodeRevoke without RefreshToken: %s", body)
	}
}

// Every outcome's wire form: the seed's three, DESIGN §1's 401, and the
// server's own.
func TestAppendError(t *testing.T) {
	notFound := errs(`{"code":"invalid_refresh_token","message":"Invalid refresh token","type":"NotFound"}`)
	tests := []struct {
		err    error
		status int
		body   string
	}{
		{fmt.Errorf("x: %w", session.ErrDeleted), 404, errs(`{"code":"user_not_found","message":"User not found","type":"NotFound"}`)},
		{fmt.Errorf("%w: %w", tokens.ErrAccessToken, tokens.ErrInvalid), 401, errs(`{"code":"invalid_token","message":"Invalid token","type":"Unauthorized"}`)},
		{fmt.Errorf("%w: %w", tokens.ErrAccessToken, tokens.ErrMalformed), 401, errs(`{"code":"invalid_token","message":"Invalid token","type":"Unauthorized"}`)},
		{tokens.ErrMalformed, 404, notFound},
		{tokens.ErrInvalid, 404, notFound},
		{tokens.ErrExpired, 404, notFound},
		{session.ErrNotFound, 404, notFound},
		{session.ErrExpired, 404, notFound},
		{session.ErrRevoked, 404, notFound},
		{session.ErrReuse, 404, notFound},
		{session.ErrNotOwner, 404, notFound},
		{server.ErrContentType, 400, errs(`{"code":"invalid_request","message":"The request body must be JSON (Content-Type: application/json).","type":"Validation"}`)},
		{server.ErrTooLarge, 400, errs(`{"code":"invalid_request","message":"The request body is too large.","type":"Validation"}`)},
		{server.ErrSubject, 400, errs(`{"code":"invalid_request","message":"The sub field is required.","type":"Validation"}`)},
		{session.ErrUnavailable, 503, errs(`{"code":"service_unavailable","message":"Service temporarily unavailable","type":"Failure"}`)},
		{server.ErrNoRoute, 404, errs(`{"code":"not_found","message":"Not found","type":"NotFound"}`)},
		{server.ErrMethod, 405, errs(`{"code":"method_not_allowed","message":"Method not allowed","type":"Failure"}`)},
		{errors.New("surprise"), 500, errs(`{"code":"internal_error","message":"Internal server error","type":"Unexpected"}`)},
	}
	for _, tc := range tests {
		status, body := Dialect{}.AppendError([]byte("prefix:"), tc.err, time.Time{})
		if status != tc.status || string(body) != "prefix:"+tc.body {
			t.Errorf("%v: %d %s\nwant %d %s", tc.err, status, body, tc.status, tc.body)
		}
		if !json.Valid(body[len("prefix:"):]) {
			t.Errorf("%v: body is not JSON", tc.err)
		}
	}
}

func TestAppendPair(t *testing.T) {
	var p tokens.Pair
	p.Access, p.Refresh = []byte("h.c.s"), []byte("ab+/cd==")
	got := Dialect{}.AppendPair(nil, &p, time.Now())
	if string(got) != `{"Token":"h.c.s","RefreshToken":"ab+/cd=="}` {
		t.Fatalf("AppendPair = %s", got)
	}
}

// reference decodes body the slow, obvious way: encoding/json over the
// top-level members in order, ASCII case-insensitive, last one wins.
func reference(body []byte) (tok, refresh json.RawMessage, ok bool) {
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil || members == nil { // null decodes into a nil map: not an object either
		return nil, nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.Token() // {
	for dec.More() {
		k, _ := dec.Token()
		var v json.RawMessage
		dec.Decode(&v)
		switch name := k.(string); {
		case bytes.EqualFold([]byte(name), []byte("token")) && isASCII(name):
			tok = v
		case bytes.EqualFold([]byte(name), []byte("refreshtoken")) && isASCII(name):
			refresh = v
		}
	}
	return tok, refresh, true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func wantState(v json.RawMessage) (field, string) {
	var s string
	switch {
	case v == nil || string(v) == "null":
		return missing, ""
	case v[0] != '"' || json.Unmarshal(v, &s) != nil:
		return notString, ""
	case len(bytes.Trim([]byte(s), " \t\r\n")) == 0:
		return missing, ""
	}
	return present, s
}

// FuzzDecode: Decode never panics and agrees with the reference decoder on
// which fields are present and what they hold, and refuses exactly with the
// error naming the fields at fault. Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"Token":"a.b.c","RefreshToken":"AAAA=="}`, `{"token":"a","TOKEN":"b","refreshtoken":null}`,
		`{"Token":1,"RefreshToken":" "}`, `{"x":{"Token":"n"}}`, `[]`, `{"\u0054oken":"\u0041"}`,
		// the canonical shape's edges (the fast path)
		`{"refreshToken":"b","token":"a"}`, `{"Token":"a","Token":"b"}`, "{\"Token\":\"a\x01\",\"RefreshToken\":\"b\"}",
		`{"Token":"a","RefreshToken":"b"} `, `{"Token":"a","RefreshToken":"b","x":1}`, `{"Token":"","RefreshToken":"  "}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return // encoding/json rewrites invalid UTF-8; such tokens never verify anyway
		}
		var r server.Request
		err := Decode(body, &r)
		tok, refresh, ok := reference(body)
		if !ok {
			if err == nil {
				t.Fatalf("Decode accepted %q, which encoding/json refuses", body)
			}
			return
		}
		ts, tv := wantState(tok)
		rs, rv := wantState(refresh)
		if want := fieldErrors[ts][rs]; err != want {
			t.Fatalf("Decode(%q) = %v; want %v", body, err, want)
		}
		if err == nil && (string(r.AccessToken) != tv || string(r.RefreshToken) != rv) {
			t.Fatalf("Decode(%q) = %q, %q; reference reads %q, %q", body, r.AccessToken, r.RefreshToken, tv, rv)
		}
	})
}

// The canonical body's fast path reads what the general JSON path reads, and
// leaves to it every body that is not exactly that shape.
func TestCanonicalAgrees(t *testing.T) {
	for _, tc := range []struct {
		body string
		fast bool
	}{
		{`{"Token":"eyJ.eyJ.sig","RefreshToken":"AAAA+/=="}`, true},
		{`{"token":"a","refreshToken":"b"}`, true},
		{`{"REFRESHTOKEN":"b","tOkEn":"a"}`, true},
		{`{"Token":"","RefreshToken":"  "}`, true}, // present but blank: the same refusal either way
		{`{"Token":"a","Token":"b"}`, false},       // duplicates: the last wins, on the JSON path
		{`{"Token":"a","RefreshToken":"b","Token":"c"}`, false},
		{`{"Token":"a"}`, false},
		{`{"Token":"a","Other":"b"}`, false},
		{`{"Token":"a", "RefreshToken":"b"}`, false},
		{`{"Token":"a","RefreshToken":"b"}` + "\n", false},
		{`{"Token":"a\"b","RefreshToken":"c"}`, false},
		{`{"To\u006ben":"a","RefreshToken":"b"}`, false},
		{`{"Token":1,"RefreshToken":"b"}`, false},
		{`{"Token":"a","RefreshToken":null}`, false},
		{"{\"Token\":\"a\tb\",\"RefreshToken\":\"c\"}", false},
		{"{\"Token\":\"caf\xc3\xa9\",\"RefreshToken\":\"c\"}", false},
		{`{"Token":"a","RefreshToken":"b"`, false},
	} {
		ftok, fref, ok := canonical([]byte(tc.body))
		if ok != tc.fast {
			t.Errorf("%q: fast path %v; want %v", tc.body, ok, tc.fast)
		}
		jtok, jref, err := decodeJSON([]byte(tc.body))
		if ok && (err != nil || !sameRaw(ftok, jtok) || !sameRaw(fref, jref)) {
			t.Errorf("%q: fast path %+v %+v; the JSON path %+v %+v, %v", tc.body, ftok, fref, jtok, jref, err)
		}
	}
}

func sameRaw(a, b raw) bool {
	return string(a.json) == string(b.json) && string(a.str) == string(b.str) && a.isString == b.isString && (a.json == nil) == (b.json == nil)
}
