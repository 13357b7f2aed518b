package tokens

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/goccy/go-json"
)

// FuzzParse: the fast path never accepts what jwx's general path rejects,
// both read the same claims, and neither panics. Seeds: testdata/fuzz/FuzzParse
// plus tokens minted here.
func FuzzParse(f *testing.F) {
	ks := testKeys(f, "hs256-1")
	c := NewCodec(ks, "", fixedClock(now))
	hs, _ := ks.Lookup("hs256-1")
	f.Add(mint(f, c, Refresh, claimsAt(now)))
	f.Add(mint(f, c, Access, claimsAt(now)))
	f.Add(mint(f, c, Refresh, claimsAt(now.Add(-time.Hour))))
	f.Add(forge(f, hs, `{"typ":"refresh+jwt","alg":"HS256","kid":"hs256-1"}`, `{"sub":"a","sid":"s","gen":1,"exp":9999999999}`))
	f.Add([]byte("e30.e30.e30"))
	f.Fuzz(func(t *testing.T, token []byte) {
		for _, typ := range []Type{Access, Refresh} {
			var fast, general Claims
			ferr := c.Parse(token, typ, &fast)
			gerr := c.ParseGeneral(token, typ, &general)
			if (ferr == nil) != (gerr == nil) {
				t.Fatalf("%s: fast path %v, general path %v", typ, ferr, gerr)
			}
			if ferr == nil && fast != general {
				t.Fatalf("%s: claims differ: fast %+v, general %+v", typ, fast, general)
			}
		}
		if bytes.Count(token, []byte(".")) == 2 {
			var cl Claims
			_ = c.ParseLegacy(token, &cl)
		}
	})
}

// FuzzOpaque: the opaque codec never panics, and whatever it accepts is the
// one spelling it would mint for those claims under the key in force: no
// second form of a token, no token it did not make. Seeds:
// testdata/fuzz/FuzzOpaque plus tokens minted here.
func FuzzOpaque(f *testing.F) {
	ks := testKeys(f, "hs512-1")
	o := Opaque{Codec: NewCodec(ks, "", fixedClock(now))}
	for _, gen := range []int64{0, 1, 1 << 31} {
		tok, err := o.AppendRefresh(nil, &Claims{Session: "AAECAwQFBgcICQoLDA0ODw", Gen: gen, Expires: now.Add(time.Hour).Unix()})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Add(bytes.Repeat([]byte("A"), OpaqueLen))
	f.Fuzz(func(t *testing.T, token []byte) {
		var cl Claims
		if err := o.ParseRefresh(token, o.Codec.Clock().Now(), &cl); err != nil {
			return
		}
		again, err := o.AppendRefresh(nil, &cl)
		if err != nil || !bytes.Equal(again, token) {
			t.Fatalf("accepted %q, which mints as %q (%v)", token, again, err)
		}
	})
}

// FuzzClaims: whatever the claims scanner accepts, go-json (the path it
// short-cuts) reads the same way, copied or in place, and the scanner
// never panics. Seeds:
// testdata/fuzz/FuzzClaims plus the claims tokend writes.
func FuzzClaims(f *testing.F) {
	for _, seed := range claimsSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var fast Claims
		fast.reset()
		if !scanClaims(payload, &fast) {
			return
		}
		var want Claims
		want.reset()
		if err := json.Unmarshal(payload, &want); err != nil {
			t.Fatalf("scanned %q, which go-json refuses: %v", payload, err)
		}
		if fast != want {
			t.Fatalf("%q: scanned %+v, go-json reads %+v", payload, fast, want)
		}
		// the refresh path's variant, its strings in the payload's own bytes
		var lent Claims
		lent.reset()
		kept := bytes.Clone(payload)
		if !scanClaimsIn(kept, &lent, true) || lent != want {
			t.Fatalf("%q: scanned in place %+v, go-json reads %+v", payload, lent, want)
		}
	})
}

// claimsSeeds are the payloads of both token types, aspnet's nameid
// included, as appendClaims writes them.
func claimsSeeds() [][]byte {
	full := claimsAt(now)
	full.Issuer, full.NameID = "tokend", full.Subject
	oauth := claimsAt(now)
	oauth.ClientID, oauth.Scope, oauth.Confirmation.JKT = "ios-app", "openid orders:read", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	var seeds [][]byte
	for _, cl := range []*Claims{claimsAt(now), full, oauth} {
		for _, typ := range []Type{Access, Refresh} {
			seeds = append(seeds, appendClaims(nil, cl, typ))
		}
	}
	return seeds
}

// TestScanClaims: the claims tokend writes take the scanner's path, and
// what it does not know goes to go-json with the same result.
func TestScanClaims(t *testing.T) {
	for _, p := range claimsSeeds() {
		var fast, want Claims
		fast.reset()
		want.reset()
		if !scanClaims(p, &fast) {
			t.Fatalf("scanner refused tokend's own claims %s", p)
		}
		if err := json.Unmarshal(p, &want); err != nil || fast != want {
			t.Fatalf("%s: scanned %+v, go-json %+v (%v)", p, fast, want, err)
		}
	}
	for _, tc := range []struct {
		payload string
		scanned bool // read by the scanner, not go-json
		want    Claims
		err     error
	}{
		{`{}`, true, Claims{Gen: -1}, nil},
		{`{"sub":"a","sub":"b"}`, true, Claims{Subject: "b", Gen: -1}, nil},
		{`{"gen":-0,"exp":0}`, true, Claims{Gen: 0}, nil},
		{`{"sub":"a\u0062"}`, false, Claims{Subject: "ab", Gen: -1}, nil},
		{`{ "sub" : "a" }`, false, Claims{Subject: "a", Gen: -1}, nil},
		{`{"SUB":"a"}`, false, Claims{Subject: "a", Gen: -1}, nil}, // go-json matches names case-insensitively
		{`{"sub":"a","aud":["x"]}`, false, Claims{Subject: "a", Audience: "x", Gen: -1}, nil},
		{`{"sub":"a","aud":["x","y"]}`, false, Claims{Subject: "a", Audience: "x y", Gen: -1}, nil}, // no single audience
		{`{"sub":"a","aud":"x"}`, true, Claims{Subject: "a", Audience: "x", Gen: -1}, nil},
		{`{"sub":"Ã©"}`, false, Claims{Subject: "Ã©", Gen: -1}, nil},
		{`{"exp":1e3}`, false, Claims{Gen: -1}, ErrInvalid},
		{`{"exp":"1"}`, false, Claims{Gen: -1}, ErrInvalid},
		{`{"exp":99999999999999999999}`, false, Claims{Gen: -1}, ErrInvalid},
		{`{"exp":01}`, false, Claims{Gen: -1}, ErrMalformed},
		{`{"exp":1,}`, false, Claims{Gen: -1}, ErrMalformed},
		{`{"sub":"a"}x`, false, Claims{Gen: -1}, ErrMalformed},
		{`["sub"]`, false, Claims{Gen: -1}, ErrMalformed},
	} {
		var cl Claims
		cl.reset()
		if got := scanClaims([]byte(tc.payload), &cl); got != tc.scanned {
			t.Errorf("scanClaims(%s) = %v; want %v", tc.payload, got, tc.scanned)
		}
		err := decodeClaims([]byte(tc.payload), &cl)
		if !errors.Is(err, tc.err) || tc.err == nil && cl != tc.want {
			t.Errorf("decodeClaims(%s) = %+v, %v; want %+v, %v", tc.payload, cl, err, tc.want, tc.err)
		}
	}
}
