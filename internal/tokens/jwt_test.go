package tokens

import (
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
)

// now is the fixed test clock: tokens expire by moving it, never by sleeping.
var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func fixedClock(t time.Time) Clock { return ClockFunc(func() time.Time { return t }) }

func testKeys(t testing.TB, signing string) *KeySet {
	t.Helper()
	b, err := os.ReadFile("testdata/keys.jwks")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := ParseJWKS(b, signing)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func claimsAt(at time.Time) *Claims {
	return &Claims{Issuer: "https://tokend.test", Subject: "alice", Session: "sid1", Gen: 3,
		IssuedAt: at.Unix(), NotBefore: at.Unix(), Expires: at.Add(30 * time.Minute).Unix()}
}

func mint(t testing.TB, c *Codec, typ Type, cl *Claims) []byte {
	t.Helper()
	tok, err := c.AppendToken(nil, typ, cl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// forge signs arbitrary header and claims JSON with key k, the way an
// attacker holding no key, or a buggy client, could shape a token.
func forge(t testing.TB, k *Key, hdr, claims string) []byte {
	t.Helper()
	b64 := base64.RawURLEncoding
	input := b64.EncodeToString([]byte(hdr)) + "." + b64.EncodeToString([]byte(claims))
	tok, err := k.appendSignature([]byte(input+"."), []byte(input), noPrefix)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The pooled HMAC states sign exactly as jwsbb's SignHMAC does, and verify
// what it signs, for every HMAC algorithm, from many goroutines at once:
// arbitrary inputs, and inputs that start with the key's header of a token
// type, MACed from the state prepared after that header.
func TestPooledHMACMatchesJWSBB(t *testing.T) {
	for _, kid := range []string{"hs256-1", "hs384-1", "hs512-1"} {
		t.Run(kid, func(t *testing.T) {
			k, _ := testKeys(t, kid).Lookup(kid)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 200 {
						prefix := i%(int(numTypes)+1) - 1 // noPrefix, then each Type
						input := []byte(strings.Repeat("x", g*37+i))
						if prefix != noPrefix {
							input = append([]byte(k.header[prefix]+"."), input...)
						}
						want, err := jwsbb.SignHMAC(k.priv.([]byte), input, hashFunc(k.hash))
						if err != nil {
							t.Error(err)
							return
						}
						got, _ := k.appendSignature(nil, input, prefix)
						if string(got) != base64.RawURLEncoding.EncodeToString(want) {
							t.Errorf("input %d, prefix %d: pooled %s, jwsbb %x", len(input), prefix, got, want)
							return
						}
						if k.verify(input, want, prefix) != nil || k.verify(input, want[1:], prefix) == nil ||
							k.verify(append(input, 'y'), want, prefix) == nil || k.verify(input, want, noPrefix) != nil {
							t.Errorf("input %d, prefix %d: verify disagrees with jwsbb", len(input), prefix)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

func TestRoundTripEveryAlgorithm(t *testing.T) {
	for _, kid := range []string{"hs256-1", "hs384-1", "hs512-1", "es256-1", "ed-1", "rs256-1"} {
		t.Run(kid, func(t *testing.T) {
			c := NewCodec(testKeys(t, kid), "https://tokend.test", fixedClock(now))
			for _, typ := range []Type{Access, Refresh} {
				in := claimsAt(now)
				tok := mint(t, c, typ, in)
				var out Claims
				if err := c.Parse(tok, typ, &out); err != nil {
					t.Fatalf("Parse(%s): %v", typ, err)
				}
				if err := c.ParseGeneral(tok, typ, &out); err != nil {
					t.Fatalf("ParseGeneral(%s): %v", typ, err)
				}
				// jwx's own verifier accepts what the fast path signed
				alg, _ := jwa.LookupSignatureAlgorithm(c.Keys().Signing().Alg)
				if _, err := jws.Verify(tok, jws.WithKey(alg, c.Keys().Signing().pub)); err != nil {
					t.Fatalf("jws.Verify: %v", err)
				}
				if out.Subject != "alice" || out.Session != "sid1" || out.Expires != in.Expires || out.IssuedAt != in.IssuedAt {
					t.Fatalf("claims = %+v", out)
				}
				if typ == Refresh && out.Gen != 3 || typ == Access && out.Gen != -1 {
					t.Fatalf("gen = %d for %s", out.Gen, typ)
				}
				if out.ID == "" {
					t.Fatal("no jti")
				}
			}
		})
	}
}

// TestParseTable runs every rejection through both the fast path and the
// general path: they must agree on the outcome, error class included.
func TestParseTable(t *testing.T) {
	ks := testKeys(t, "hs256-1")
	c := NewCodec(ks, "https://tokend.test", fixedClock(now))
	hs, _ := ks.Lookup("hs256-1")
	ed, _ := ks.Lookup("ed-1")
	good := `{"iss":"https://tokend.test","sub":"alice","sid":"s","gen":0,"jti":"j","iat":1,"exp":` + itoa(now.Add(time.Hour).Unix()) + `}`
	hdr := func(alg, kid, typ string, extra ...string) string {
		h := `{"alg":"` + alg + `","kid":"` + kid + `","typ":"` + typ + `"`
		for _, e := range extra {
			h += "," + e
		}
		return h + "}"
	}
	refresh := mint(t, c, Refresh, claimsAt(now))
	access := mint(t, c, Access, claimsAt(now))
	tampered := []byte(string(refresh[:len(refresh)-2]) + "AA")
	if string(tampered) == string(refresh) {
		tampered = []byte(string(refresh[:len(refresh)-2]) + "BB")
	}
	cases := []struct {
		name  string
		token []byte
		want  error // nil: accepted
	}{
		{"ours", refresh, nil},
		{"reordered header, same meaning", forge(t, hs, `{"typ":"refresh+jwt","alg":"HS256","kid":"hs256-1"}`, good), nil},
		{"access where refresh belongs", access, ErrInvalid},
		{"tampered signature", tampered, ErrInvalid},
		{"two segments", []byte("abc.def"), ErrMalformed},
		{"four segments", append(append([]byte{}, refresh...), ".x"...), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"header not base64url", []byte("a+b/.e30.sig"), ErrMalformed},
		{"header not JSON", []byte(b64s("nope") + "." + b64s(good) + ".c2ln"), ErrMalformed},
		{"header a JSON array", []byte(b64s("[1]") + "." + b64s(good) + ".c2ln"), ErrMalformed},
		{"claims not JSON", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt"), "not json"), ErrMalformed},
		{"claims a JSON string", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt"), `"x"`), ErrMalformed},
		{"claims of the wrong type", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt"), `{"sub":"a","sid":"s","gen":"0","exp":"soon"}`), ErrInvalid},
		{"signature not base64url", []byte(string(refresh[:len(refresh)-3]) + "*=*"), ErrMalformed},
		{"alg none", []byte(b64s(`{"alg":"none","kid":"hs256-1","typ":"refresh+jwt"}`) + "." + b64s(good) + "."), ErrInvalid},
		{"unknown kid", forge(t, hs, hdr("HS256", "nope", "refresh+jwt"), good), ErrInvalid},
		{"no kid", forge(t, hs, `{"alg":"HS256","typ":"refresh+jwt"}`, good), ErrInvalid},
		{"alg not the key's", forge(t, hs, hdr("HS512", "hs256-1", "refresh+jwt"), good), ErrInvalid},
		{"HMAC with a public key's kid", forge(t, hs, hdr("HS256", "ed-1", "refresh+jwt"), good), ErrInvalid},
		{"jku", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt", `"jku":"https://evil.example/jwks"`), good), ErrInvalid},
		{"x5u", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt", `"x5u":"https://evil.example/x5u"`), good), ErrInvalid},
		{"embedded jwk", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt", `"jwk":{"kty":"oct","k":"AAAA"}`), good), ErrInvalid},
		{"crit", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt", `"crit":["exp"]`, `"exp":1`), good), ErrInvalid},
		{"no typ", forge(t, hs, `{"alg":"HS256","kid":"hs256-1"}`, good), ErrInvalid},
		{"foreign typ", forge(t, hs, hdr("HS256", "hs256-1", "JWT"), good), ErrInvalid},
		{"signed by another key", forge(t, ed, hdr("HS256", "hs256-1", "refresh+jwt"), good), ErrInvalid},
		{"wrong issuer", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt"), strings.Replace(good, "tokend.test", "evil.test", 1)), ErrInvalid},
		{"no sid", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt"), strings.Replace(good, `"sid":"s",`, "", 1)), ErrInvalid},
		{"no gen", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt"), strings.Replace(good, `"gen":0,`, "", 1)), ErrInvalid},
		{"no exp", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt"), `{"iss":"https://tokend.test","sub":"a","sid":"s","gen":0}`), ErrInvalid},
		{"not yet valid", forge(t, hs, hdr("HS256", "hs256-1", "refresh+jwt"), strings.Replace(good, `"iat":1`, `"iat":1,"nbf":`+itoa(now.Add(DefaultLeeway+time.Second).Unix()), 1)), ErrInvalid},
		{"expired", mint(t, c, Refresh, claimsAt(now.Add(-31*time.Minute))), ErrExpired},
		{"expires this second", mint(t, c, Refresh, claimsAt(now.Add(-30*time.Minute))), ErrExpired},
		{"8 KiB", []byte(strings.Repeat("a", MaxTokenSize/2) + "." + strings.Repeat("b", MaxTokenSize/2) + ".c"), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for name, parse := range map[string]func([]byte, Type, *Claims) error{"fast": c.Parse, "general": c.ParseGeneral} {
				var cl Claims
				err := parse(tc.token, Refresh, &cl)
				if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("%s path: err = %v; want %v", name, err, tc.want)
				}
			}
		})
	}
}

func b64s(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func itoa(n int64) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int64) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

// An expired token still yields verified claims, for the aspnet dialect's
// `Token`, which may be expired but must be genuine.
func TestExpiredKeepsClaims(t *testing.T) {
	c := NewCodec(testKeys(t, "hs512-1"), "", fixedClock(now))
	tok := mint(t, c, Access, claimsAt(now.Add(-2*time.Hour)))
	var cl Claims
	if err := c.Parse(tok, Access, &cl); !errors.Is(err, ErrExpired) || cl.Subject != "alice" {
		t.Fatalf("Parse = %v, %+v; want ErrExpired with claims", err, cl)
	}
}

// Rotation: a token signed by a key that left the set stops verifying; one
// signed by a key that stayed keeps verifying.
func TestSetKeys(t *testing.T) {
	all := testKeys(t, "ed-1")
	c := NewCodec(all, "", fixedClock(now))
	old := mint(t, c, Access, claimsAt(now))
	hs, _ := all.Lookup("hs256-1")
	ed, _ := all.Lookup("ed-1")
	onlyHS, err := newKeySet([]*Key{hs}, "")
	if err != nil {
		t.Fatal(err)
	}
	c.SetKeys(onlyHS)
	var cl Claims
	if err := c.Parse(old, Access, &cl); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token of a removed key: %v; want ErrInvalid", err)
	}
	both, _ := newKeySet([]*Key{hs, ed}, "hs256-1")
	c.SetKeys(both)
	if err := c.Parse(old, Access, &cl); err != nil {
		t.Fatalf("token of a kept key: %v", err)
	}
	if k := c.Keys().Signing(); k.ID != "hs256-1" {
		t.Fatalf("signing key %s; want hs256-1", k.ID)
	}
}

// A line break anywhere in a token, which the base64 decoder would skip, or
// a segment of a length raw base64 never has, is malformed: the bytes that
// verify are exactly the bytes sent.
func TestLineBreaksAndLengths(t *testing.T) {
	ks := testKeys(t, "hs256-1")
	c := NewCodec(ks, "", fixedClock(now))
	tok := mint(t, c, Refresh, claimsAt(now))
	dot1 := strings.IndexByte(string(tok), '.')
	dot2 := dot1 + 1 + strings.IndexByte(string(tok[dot1+1:]), '.')
	insert := func(at int, s string) []byte { return []byte(string(tok[:at]) + s + string(tok[at:])) }
	for _, tc := range []struct {
		name  string
		token []byte
	}{
		{"LF in the header", insert(5, "\n")},
		{"CR in the claims", insert(dot1+9, "\r")},
		{"CRLF in the claims", insert(dot1+9, "\r\n")},
		{"four line breaks in the claims", insert(dot1+9, "\r\n\r\n")},
		{"LF at the end of the claims", insert(dot2, "\n")},
		{"CR in the signature", insert(dot2+3, "\r")},
		{"LF after the signature", append(append([]byte(nil), tok...), '\n')},
		{"claims of length 4q+1", insert(dot2, "A")},
		{"signature of length 4q+1", append(append([]byte(nil), tok...), 'A', 'A')},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cl Claims
			if err := c.Parse(tc.token, Refresh, &cl); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse = %v; want ErrMalformed", err)
			}
		})
	}
	var cl Claims
	if err := c.Parse(tok, Refresh, &cl); err != nil {
		t.Fatalf("the token itself: %v", err)
	}
}
