package main

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// errProof is a DPoP proof that fails one of RFC 9449 §4.3's checks.
var errProof = errors.New("DPoP proof")

// pair is an access and a refresh token issued together.
type pair struct{ access, refresh string }

// grant is what a pair is issued for.
type grant struct {
	sub, sid string
	gen      int64  // the new refresh token's generation
	client   string // /oauth2/token only: the client_id, with aud
	jkt      string // the DPoP key the session is bound to, as cnf.jkt
	oauth2   bool
}

// issue builds and signs the pair with jwx's builder and jwt.Sign.
func (s *service) issue(g grant) (pair, error) {
	now := s.now()
	ab := jwt.NewBuilder().Issuer(s.issuer).Subject(g.sub).Claim("sid", g.sid).JwtID(newID()).
		IssuedAt(now).NotBefore(now).Expiration(now.Add(s.accessTTL))
	if g.oauth2 {
		ab = ab.Audience([]string{s.issuer}).Claim("client_id", g.client)
	}
	if g.jkt != "" {
		ab = ab.Claim("cnf", map[string]string{"jkt": g.jkt})
	}
	access, err := s.sign(ab, "at+jwt")
	if err != nil {
		return pair{}, err
	}
	rb := jwt.NewBuilder().Issuer(s.issuer).Subject(g.sub).Claim("sid", g.sid).Claim("gen", g.gen).
		JwtID(newID()).IssuedAt(now).Expiration(now.Add(s.refreshTTL))
	refresh, err := s.sign(rb, "refresh+jwt")
	if err != nil {
		return pair{}, err
	}
	return pair{access, refresh}, nil
}

func (s *service) sign(b *jwt.Builder, typ string) (string, error) {
	tok, err := b.Build()
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.TypeKey, typ); err != nil {
		return "", err
	}
	out, err := jwt.Sign(tok, jwt.WithKey(s.alg, s.signKey, jws.WithProtectedHeaders(h)))
	return string(out), err
}

// parseRefresh verifies a refresh token (signature, iss, exp, nbf) and
// returns its subject, session and generation. An access token has no gen
// claim and is refused.
func (s *service) parseRefresh(raw string) (sub, sid string, gen int64, err error) {
	tok, err := jwt.Parse([]byte(raw), jwt.WithKey(s.alg, s.verifyKey), jwt.WithIssuer(s.issuer),
		jwt.WithRequiredClaim("sid"), jwt.WithRequiredClaim("gen"), jwt.WithClock(jwt.ClockFunc(s.now)))
	if err != nil {
		return "", "", 0, err
	}
	sub, _ = tok.Subject()
	var g float64
	if err := tok.Get("sid", &sid); err != nil {
		return "", "", 0, err
	}
	if err := tok.Get("gen", &g); err != nil {
		return "", "", 0, err
	}
	if sub == "" || sid == "" {
		return "", "", 0, errors.New("refresh token without sub or sid")
	}
	return sub, sid, int64(g), nil
}

// proofClaims are the claims of a DPoP proof RFC 9449 §4.2 requires.
type proofClaims struct {
	JTI string `json:"jti"`
	HTM string `json:"htm"`
	HTU string `json:"htu"`
	IAT *int64 `json:"iat"`
}

// checkProof verifies a DPoP proof for POST to the token endpoint and
// returns its key's RFC 7638 thumbprint and its jti (not yet recorded).
func (s *service) checkProof(proof, method string) (jkt, jti string, err error) {
	msg, err := jws.Parse([]byte(proof))
	if err != nil {
		return "", "", fmt.Errorf("%w: not a JWS: %v", errProof, err)
	}
	if len(msg.Signatures()) != 1 {
		return "", "", fmt.Errorf("%w: not one signature", errProof)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if typ, _ := h.Type(); typ != "dpop+jwt" {
		return "", "", fmt.Errorf("%w: typ is not dpop+jwt", errProof)
	}
	alg, _ := h.Algorithm()
	if a := alg.String(); a != "ES256" && a != "EdDSA" {
		return "", "", fmt.Errorf("%w: alg is not accepted", errProof)
	}
	key, ok := h.JWK()
	if !ok {
		return "", "", fmt.Errorf("%w: no jwk in the header", errProof)
	}
	if kty := key.KeyType().String(); kty != "EC" && kty != "OKP" {
		return "", "", fmt.Errorf("%w: jwk is not a public key", errProof)
	}
	if private, err := jwk.IsPrivateKey(key); err != nil || private {
		return "", "", fmt.Errorf("%w: jwk holds a private key", errProof)
	}
	payload, err := jws.Verify([]byte(proof), jws.WithKey(alg, key))
	if err != nil {
		return "", "", fmt.Errorf("%w: signature does not verify", errProof)
	}
	var c proofClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", "", fmt.Errorf("%w: claims are not JSON", errProof)
	}
	switch {
	case c.JTI == "" || len(c.JTI) > 256:
		return "", "", fmt.Errorf("%w: jti missing or over 256 bytes", errProof)
	case c.HTM != method:
		return "", "", fmt.Errorf("%w: htm is not the request's method", errProof)
	case !s.sameURL(c.HTU):
		return "", "", fmt.Errorf("%w: htu is not the request's URL", errProof)
	case c.IAT == nil:
		return "", "", fmt.Errorf("%w: iat missing", errProof)
	}
	if d := s.now().Sub(time.Unix(*c.IAT, 0)); d > s.dpopWindow || d < -s.dpopWindow {
		return "", "", fmt.Errorf("%w: iat is not within the accepted window of now", errProof)
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", "", fmt.Errorf("%w: thumbprint: %v", errProof, err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), c.JTI, nil
}

// sameURL compares a proof's htu with the token endpoint, without query
// and fragment, scheme and host in any case (RFC 9449 §4.3).
func (s *service) sameURL(htu string) bool {
	u, err := url.Parse(htu)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Scheme, s.endpoint.Scheme) && strings.EqualFold(u.Host, s.endpoint.Host) && u.Path == s.endpoint.Path
}
