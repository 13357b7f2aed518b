package tokens

import (
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// ParseGeneral verifies a tokend token through jwx's general jws API. It is
// the reference the fast path (Parse) is proven against, and the path for
// tokens whose shape the fast path does not know. Same errors as Parse.
func (c *Codec) ParseGeneral(token []byte, t Type, cl *Claims) error {
	if err := canonical(token); err != nil {
		return err
	}
	msg, err := jws.Parse(token, jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ph := msg.Signatures()[0].ProtectedHeaders()
	var h header
	if a, ok := ph.Algorithm(); ok {
		h.Alg = a.String()
	}
	h.Kid, _ = ph.KeyID()
	h.Typ, _ = ph.Type()
	for name, dst := range map[string]*[]byte{"crit": (*[]byte)(&h.Crit), "jku": (*[]byte)(&h.Jku), "x5u": (*[]byte)(&h.X5u), "jwk": (*[]byte)(&h.JWK), "b64": (*[]byte)(&h.B64)} {
		if ph.Has(name) {
			*dst = []byte("present")
		}
	}
	if err := decodeClaims(msg.Payload(), cl); err != nil {
		return err
	}
	ks := c.keys.Load()
	ref, err := ks.checkHeader(&h)
	if err != nil {
		return err
	}
	if ref.typ != t {
		return fmt.Errorf("%w: a %s token where a %s token belongs", ErrInvalid, ref.typ, t)
	}
	alg, _ := jwa.LookupSignatureAlgorithm(ref.key.Alg)
	if _, err := jws.Verify(token, jws.WithKey(alg, ref.key.pub)); err != nil {
		return fmt.Errorf("%w: signature: %v", ErrInvalid, err)
	}
	return c.validate(cl, t, c.clock.Now(), DefaultLeeway)
}

// ParseLegacy verifies a refresh token minted by the old spring backend:
// header {"alg":"HS…"} with no kid and no tokend typ, claims sub, iat, exp
// only, signed with the shared secret. cl gets Legacy set and no session.
func (c *Codec) ParseLegacy(token []byte, cl *Claims) error {
	if err := canonical(token); err != nil {
		return err
	}
	msg, err := jws.Parse(token, jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ph := msg.Signatures()[0].ProtectedHeaders()
	a, _ := ph.Algorithm()
	typ, _ := ph.Type()
	for _, name := range []string{"kid", "crit", "jku", "x5u", "jwk", "b64"} {
		if ph.Has(name) {
			return fmt.Errorf("%w: legacy tokens carry no %q header", ErrInvalid, name)
		}
	}
	if typ != "" && typ != "JWT" {
		return fmt.Errorf("%w: legacy tokens carry no typ %q", ErrInvalid, typ)
	}
	if err := decodeClaims(msg.Payload(), cl); err != nil {
		return err
	}
	if cl.Session != "" || cl.Gen >= 0 {
		return fmt.Errorf("%w: not a legacy token", ErrInvalid)
	}
	var last error = fmt.Errorf("%w: no %s key for legacy tokens", ErrInvalid, a)
	for _, k := range c.keys.Load().keys {
		if !k.Symmetric() || k.Alg != a.String() {
			continue
		}
		tok, err := jwt.Parse(token,
			jwt.WithKey(a, k.pub),
			jwt.WithClock(jwt.ClockFunc(c.clock.Now)),
			jwt.WithRequiredClaim("exp"),
			jwt.WithRequiredClaim("sub"),
		)
		switch {
		case err == nil:
			if iss, ok := tok.Issuer(); ok && !c.issuerOK(iss) {
				return fmt.Errorf("%w: issuer %q", ErrInvalid, iss)
			}
			cl.Legacy = true
			return nil
		case errors.Is(err, jwt.TokenExpiredError()):
			return fmt.Errorf("%w: legacy token: %v", ErrExpired, err)
		default:
			last = fmt.Errorf("%w: legacy token: %v", ErrInvalid, err)
		}
	}
	return last
}

// canonical refuses what jwx would decode leniently but the fast path does
// not: bytes outside base64url, non-zero padding bits. One token, one spelling.
func canonical(token []byte) error {
	h, p, s, err := split(token)
	if err != nil {
		return err
	}
	for _, seg := range [][]byte{h, p, s} {
		if _, err := decodeSegment(make([]byte, strictB64.DecodedLen(len(seg))), seg, "segment"); err != nil {
			return err // also a line break, which the decoder would skip
		}
	}
	return nil
}
