package tokens

import (
	"bytes"
	"testing"
	"time"
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
		if err := o.ParseRefresh(token, &cl); err != nil {
			return
		}
		again, err := o.AppendRefresh(nil, &cl)
		if err != nil || !bytes.Equal(again, token) {
			t.Fatalf("accepted %q, which mints as %q (%v)", token, again, err)
		}
	})
}
