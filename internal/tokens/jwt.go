package tokens

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goccy/go-json"
)

// DefaultLeeway is how far a token's nbf may be ahead of the checker's
// clock (RFC 7519 §4.1.5): tokend sets nbf = iat, so a checker a little
// behind the issuer would otherwise refuse fresh tokens. exp takes none.
const DefaultLeeway = 60 * time.Second

// Codec signs and verifies tokend's JWTs with the keys in force. Safe for
// concurrent use; SetKeys swaps the key set atomically (key rotation).
type Codec struct {
	keys   atomic.Pointer[KeySet]
	clock  Clock
	issuer string
	// accepted are former issuers still accepted on read: tokens issued
	// before an upgrade or a change of issuer work until they expire.
	accepted []string
}

// NewCodec returns a codec over ks. issuer, when not empty, is written into
// every token and required of every token read.
func NewCodec(ks *KeySet, issuer string, clock Clock) *Codec {
	if clock == nil {
		clock = SystemClock
	}
	c := &Codec{clock: clock, issuer: issuer}
	c.keys.Store(ks)
	return c
}

// Keys returns the key set in force.
func (c *Codec) Keys() *KeySet { return c.keys.Load() }

// SetKeys puts ks in force for every token signed or verified from now on.
func (c *Codec) SetKeys(ks *KeySet) { c.keys.Store(ks) }

// Issuer returns the configured `iss`.
func (c *Codec) Issuer() string { return c.issuer }

// AcceptIssuers makes tokens with these iss values acceptable beside the
// codec's own issuer, which alone is written. Call it before use.
func (c *Codec) AcceptIssuers(iss ...string) { c.accepted = append(c.accepted, iss...) }

// issuerOK reports whether a token's iss is the codec's or an accepted
// one (any iss when the codec has none).
func (c *Codec) issuerOK(iss string) bool {
	return c.issuer == "" || iss == c.issuer || slices.Contains(c.accepted, iss)
}

// Clock returns the codec's clock.
func (c *Codec) Clock() Clock { return c.clock }

// scratch holds the decoded segments of one token; pooled so that verifying
// allocates nothing of its own.
type scratch struct {
	header  [1024]byte
	payload [MaxTokenSize]byte
	sig     [1024]byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// AppendToken signs claims as a token of type t with the signing key and
// appends the compact serialization to dst.
func (c *Codec) AppendToken(dst []byte, t Type, cl *Claims) ([]byte, error) {
	k := c.keys.Load().signing
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)

	start := len(dst)
	dst = append(dst, k.header[t]...)
	dst = append(dst, '.')
	dst = base64.RawURLEncoding.AppendEncode(dst, appendClaims(s.payload[:0], cl, t))
	mid := len(dst)
	dst, err := k.appendSignature(append(dst, '.'), dst[start:mid], int(t))
	if err != nil {
		return dst[:start], fmt.Errorf("tokens: signing with %q: %w", k.ID, err)
	}
	return dst, nil
}

// header is the protected header as far as tokend reads it. Any member that
// would let the token pick its own key, or demand an extension we do not
// implement, is refused.
type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
	Jku  json.RawMessage `json:"jku"`
	X5u  json.RawMessage `json:"x5u"`
	JWK  json.RawMessage `json:"jwk"`
	B64  json.RawMessage `json:"b64"`
}

// split cuts a compact JWS into its three segments.
func split(token []byte) (h, p, s []byte, err error) {
	if len(token) >= MaxTokenSize {
		return nil, nil, nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrMalformed, len(token), MaxTokenSize)
	}
	i := bytes.IndexByte(token, '.')
	if i < 0 {
		return nil, nil, nil, fmt.Errorf("%w: not three segments", ErrMalformed)
	}
	j := bytes.IndexByte(token[i+1:], '.')
	if j < 0 {
		return nil, nil, nil, fmt.Errorf("%w: not three segments", ErrMalformed)
	}
	j += i + 1
	if bytes.IndexByte(token[j+1:], '.') >= 0 {
		return nil, nil, nil, fmt.Errorf("%w: more than three segments", ErrMalformed)
	}
	// CR and LF, which the strict decoder skips, are refused by
	// decodeSegment; a header byte-equal to a prepared one has none.
	return token[:i], token[i+1 : j], token[j+1:], nil
}

// strictB64 also refuses non-zero padding bits, so each token has exactly
// one spelling.
var strictB64 = base64.RawURLEncoding.Strict()

// decodeSegment base64url-decodes src into dst, which must be large enough.
//
// The strict decoder refuses every byte outside the base64url alphabet but
// skips CR and LF, and a token that differs from the signed bytes must not
// verify anywhere. Decoding all of src is proof that none was skipped,
// with no scan for them: over the lengths raw base64 can have (4q, 4q+2,
// 4q+3; never 4q+1) the decoded length grows strictly, so DecodedLen(len)
// bytes come only from len characters.
func decodeSegment(dst, src []byte, what string) ([]byte, error) {
	want := strictB64.DecodedLen(len(src))
	if want > len(dst) {
		return nil, fmt.Errorf("%w: %s too long", ErrMalformed, what)
	}
	n, err := strictB64.Decode(dst, src)
	if err != nil || len(src)%4 == 1 {
		return nil, fmt.Errorf("%w: %s is not base64url", ErrMalformed, what)
	}
	if n != want {
		return nil, fmt.Errorf("%w: line break inside the %s", ErrMalformed, what)
	}
	return dst[:n], nil
}

// Parse verifies a token of type t signed by a key in force against the
// codec's clock and fills cl; see ParseAt.
func (c *Codec) Parse(token []byte, t Type, cl *Claims) error {
	return c.ParseAt(token, t, c.clock.Now(), cl)
}

// ParseAt is Parse at the instant now, which a caller that reads the clock
// once per request passes down. It is the hot path: a header byte-equal to one tokend writes is matched to
// its key without decoding; any other header is decoded and checked.
//
// Errors wrap ErrMalformed, ErrInvalid or ErrExpired. ErrExpired is returned
// only for a token that passes every other check, with cl filled, so a caller
// that accepts expired tokens (the aspnet `Token`) may use cl.
func (c *Codec) ParseAt(token []byte, t Type, now time.Time, cl *Claims) error {
	return c.parseAt(token, t, now, DefaultLeeway, cl, nil)
}

// parseAt is ParseAt with nbf allowed leeway ahead of now; with kept not nil the claims are decoded onto the end
// of *kept and cl's strings share those bytes (no allocation): the caller
// owns *kept, only appends to it while cl is in use, and drops cl's strings
// before it truncates *kept (the Issuer's refresh path, kept in the Pair).
func (c *Codec) parseAt(token []byte, t Type, now time.Time, leeway time.Duration, cl *Claims, kept *[]byte) error {
	cl.reset() // a refusal before the claims are read must not leave a reused cl naming the previous token's user
	hseg, pseg, sseg, err := split(token)
	if err != nil {
		return err
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)

	ks := c.keys.Load()
	if ks == nil {
		return fmt.Errorf("%w: no keys yet", ErrInvalid)
	}
	ref, known := ks.headerRef(hseg, t)
	var h *header // decoded only for a header tokend did not write: a value here would escape on every call
	if !known {
		raw, err := decodeSegment(s.header[:], hseg, "header")
		if err != nil {
			return err
		}
		h = new(header)
		if !isObject(raw) || json.Unmarshal(raw, h) != nil {
			return fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
		}
	}
	into := s.payload[:]
	if kept != nil {
		start := len(*kept)
		*kept = slices.Grow(*kept, strictB64.DecodedLen(len(pseg)))
		into = (*kept)[start:cap(*kept)]
	}
	payload, err := decodeSegment(into, pseg, "claims")
	if err != nil {
		return err
	}
	if kept != nil {
		*kept = (*kept)[:len(*kept)+len(payload)]
	}
	if err := decodeClaimsIn(payload, cl, kept != nil); err != nil {
		return err
	}
	sig, err := decodeSegment(s.sig[:], sseg, "signature")
	if err != nil {
		return err
	}
	prefix := noPrefix
	if known {
		prefix = int(ref.typ) // the header is byte-equal to ref's: its MAC state after it applies
	} else if ref, err = ks.checkHeader(h); err != nil {
		return err
	}
	if ref.typ != t {
		return fmt.Errorf("%w: a %s token where a %s token belongs", ErrInvalid, ref.typ, t)
	}
	if err := ref.key.verify(token[:len(hseg)+1+len(pseg)], sig, prefix); err != nil {
		return fmt.Errorf("%w: signature: %v", ErrInvalid, err)
	}
	return c.validate(cl, t, now, leeway)
}

// checkHeader applies the header rules to a header tokend did not write
// byte for byte, and finds its key.
func (ks *KeySet) checkHeader(h *header) (headerRef, error) {
	switch {
	case h.Alg == "" || h.Alg == "none":
		return headerRef{}, fmt.Errorf("%w: alg %q refused", ErrInvalid, h.Alg)
	case h.Jku != nil || h.X5u != nil || h.JWK != nil:
		return headerRef{}, fmt.Errorf("%w: header names its own key (jku, x5u or jwk)", ErrInvalid)
	case h.Crit != nil || h.B64 != nil:
		return headerRef{}, fmt.Errorf("%w: critical header extensions are not supported", ErrInvalid)
	}
	k, ok := ks.byKID[h.Kid]
	if !ok {
		return headerRef{}, fmt.Errorf("%w: %w %q", ErrInvalid, errUnknownKID, h.Kid)
	}
	if k.Alg != h.Alg {
		return headerRef{}, fmt.Errorf("%w: alg %q does not match key %q (%s)", ErrInvalid, h.Alg, k.ID, k.Alg)
	}
	for t := Type(0); t < numTypes; t++ {
		if h.Typ == t.String() {
			return headerRef{k, t}, nil
		}
	}
	return headerRef{}, fmt.Errorf("%w: typ %q is not a tokend token type", ErrInvalid, h.Typ)
}

// validate checks the claims of a verified token against now and the
// settings, nbf with leeway (never exp). Expiry comes last: see Parse.
func (c *Codec) validate(cl *Claims, t Type, at time.Time, leeway time.Duration) error {
	now := at.Unix()
	switch {
	case cl.Expires == 0:
		return fmt.Errorf("%w: no exp", ErrInvalid)
	case !c.issuerOK(cl.Issuer):
		return fmt.Errorf("%w: issuer %q", ErrInvalid, cl.Issuer)
	case cl.Session == "" || cl.Subject == "":
		return fmt.Errorf("%w: no sid or sub", ErrInvalid)
	case t == Refresh && cl.Gen < 0:
		return fmt.Errorf("%w: refresh token without gen", ErrInvalid)
	}
	if cl.NotBefore > at.Add(leeway).Unix() {
		return fmt.Errorf("%w: not valid before %d", ErrInvalid, cl.NotBefore)
	}
	if now >= cl.Expires {
		return fmt.Errorf("%w: expired at %d", ErrExpired, cl.Expires)
	}
	return nil
}
