package dpop

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
)

// Errors a caller branches on. Every refusal wraps ErrInvalidProof except
// ErrUseNonce, which asks the client to retry with the server's nonce.
var (
	ErrInvalidProof = errors.New("dpop: invalid proof")
	// ErrUseNonce: the proof lacks the server's current nonce (§8).
	ErrUseNonce = errors.New("dpop: the server's nonce is required")
	// ErrWrongKey: a valid proof, by another key than the one the token or
	// session is bound to.
	ErrWrongKey error = &Refusal{Reason: "signed by another key than the bound one"}
)

// Refusal is a proof refused; it wraps ErrInvalidProof. Reason is fixed
// text naming the check that failed, safe to show a client (RFC 6749 §5.2
// allows only %x20-21 / %x23-5B / %x5D-7E); Detail, for logs only, may
// quote the proof or a library's error.
type Refusal struct {
	Reason string
	Detail error
}

// Error is the reason and, for logs, the detail.
func (r *Refusal) Error() string {
	if r.Detail == nil {
		return ErrInvalidProof.Error() + ": " + r.Reason
	}
	return ErrInvalidProof.Error() + ": " + r.Reason + ": " + r.Detail.Error()
}

// Unwrap makes every Refusal an ErrInvalidProof.
func (r *Refusal) Unwrap() error { return ErrInvalidProof }

// Reason is what a client may be told of err: a Refusal's fixed reason,
// else a fixed sentence; never text from the request or a library.
func Reason(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	if errors.Is(err, ErrUseNonce) {
		return "the proof must carry the server's nonce"
	}
	return "the proof is invalid"
}

// MaxSize bounds a proof: a JWT with a public key in its header is well
// under it.
const MaxSize = 8 << 10

// Config is what proofs are checked against. Zero fields take the defaults.
type Config struct {
	// Algs are the signature algorithms accepted (default ES256 and
	// EdDSA). Only asymmetric ones: a MAC proves nothing about a key.
	Algs []string
	// Window is how far a proof's iat may be from now, either way
	// (default 60 s); a proof's jti must be remembered that long.
	Window time.Duration
	Clock  Clock
}

// Clock tells the time (tokens.Clock is one); declared here so that
// package tokens can use this one.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// asymmetric are the algorithms a proof may use at all.
var asymmetric = map[string]crypto.Hash{
	"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512,
	"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
	"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512,
	"EdDSA": 0,
}

// Verifier checks proofs; safe for concurrent use.
type Verifier struct {
	algs    []string
	hashes  []crypto.Hash // of algs, by position
	window  time.Duration
	clock   Clock
	keys    recent[cachedKey]    // by the JWK's bytes
	headers recent[cachedHeader] // by the header's segment, as sent
	urls    urlSet
}

// recent remembers what recent proofs' headers gave, by exact bytes: a
// client signs every refresh with the same key, and parsing its JWK and
// computing its thumbprint cost as much as a third of a check. What failed
// a check is never stored; past maxCachedKeys a map starts over.
type recent[V any] struct {
	mu sync.RWMutex
	m  map[string]V
}

// cachedKey is a JWK parsed, checked public, and its thumbprint.
type cachedKey struct {
	pub   any
	thumb string
}

// cachedHeader is a header checked (typ, alg accepted) and its key: a
// client's proofs carry the same header, byte for byte, so that a proof
// whose header segment is known is neither decoded nor read.
type cachedHeader struct {
	alg  string
	hash crypto.Hash
	key  cachedKey
}

const maxCachedKeys = 10_000

func (c *recent[V]) get(raw []byte) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[string(raw)] // no allocation for the lookup
	c.mu.RUnlock()
	return v, ok
}

func (c *recent[V]) put(raw []byte, v V) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedKeys {
		c.m = make(map[string]V, 64)
	}
	c.m[string(raw)] = v
	c.mu.Unlock()
}

// NewVerifier returns a Verifier for cfg; an algorithm that is not an
// asymmetric signature algorithm is an error.
func NewVerifier(cfg Config) (*Verifier, error) {
	// a copy: the caller's slice changed later would change what is
	// accepted unchecked (and race with Verify)
	v := &Verifier{algs: slices.Clone(cfg.Algs), window: cfg.Window, clock: cfg.Clock}
	if len(v.algs) == 0 {
		v.algs = []string{"ES256", "EdDSA"}
	}
	for _, a := range v.algs {
		h, ok := asymmetric[a]
		if !ok {
			return nil, fmt.Errorf("dpop: %q is not an asymmetric signature algorithm", a)
		}
		v.hashes = append(v.hashes, h)
	}
	if v.window <= 0 {
		v.window = 60 * time.Second
	}
	if v.clock == nil {
		v.clock = systemClock{}
	}
	return v, nil
}

// Algs are the algorithms accepted, for metadata
// (dpop_signing_alg_values_supported).
func (v *Verifier) Algs() []string { return slices.Clone(v.algs) }

// Window is how far a proof's iat may be from now. A proof is acceptable
// for twice that long, which is how long its jti must be remembered.
func (v *Verifier) Window() time.Duration { return v.window }

// Request is what a proof must match.
type Request struct {
	Method string
	URL    string // the URL the client used (TOKEND_PUBLIC_URL's, behind a proxy)
	// AccessToken, when set, must be what the proof's ath hashes (a
	// request to a resource server, §7).
	AccessToken []byte
	// Nonce, when set, is the server's nonce the proof must carry (§8).
	Nonce string
	// Thumbprint, when set, is the key the token or session is bound to:
	// the proof must be signed by it.
	Thumbprint string
}

// Proof is what a valid proof says.
type Proof struct {
	Thumbprint string    // RFC 7638 SHA-256 thumbprint of its key, base64url (cnf.jkt)
	ID         string    // jti: the caller remembers it for twice Window and refuses it again
	IssuedAt   time.Time // iat
	Nonce      string    // the server nonce it carries, if any (Nonces.Valid checks it)
}

// privateMembers are JWK members of private or symmetric keys: a proof's
// key is public.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// b64 decodes the proof's segments: no padding, no stray bits.
var b64 = base64.RawURLEncoding.Strict()

// Details of refusals, for logs; fixed values, so that a refusal costs no
// formatting where nothing is worth quoting.
var (
	errNotBase64  = errors.New("not base64url")
	errNotJSON    = errors.New("not a JSON object")
	errSignature  = errors.New("the signature does not verify")
	errCurve      = errors.New("the key's curve is not the alg's")
	errSigLength  = errors.New("the signature's length is not the curve's")
	errRSAKeySize = errors.New("RSA key under 2048 bits")
)

// scratch holds what one check decodes: the header, the claims, the
// signature and any string with escapes, pooled so that a check allocates
// nothing of its own but the strings it returns.
type scratch struct {
	buf    []byte
	sha512 hash.Hash // an Ed25519 check's, kept with the buffer
	digest [64]byte  // and its sum
}

var scratchPool = sync.Pool{New: func() any { return &scratch{buf: make([]byte, 0, 2*MaxSize)} }}

// decode appends seg's base64url decoding to st and returns it.
func (st *scratch) decode(seg []byte) ([]byte, bool) {
	n := len(st.buf)
	st.buf = slices.Grow(st.buf, b64.DecodedLen(len(seg)))
	m, err := b64.Decode(st.buf[n:n+b64.DecodedLen(len(seg))], seg)
	if err != nil {
		return nil, false
	}
	st.buf = st.buf[:n+m]
	return st.buf[n : n+m : n+m], true
}

// header are the proof's header members read; slices of the scratch.
type header struct{ typ, alg, jwk []byte }

// claims are the proof's claims read; slices of the scratch.
type claims struct {
	jti, htm, htu, ath, nonce []byte
	iat                       int64
	hasIAT                    bool
}

// Verify checks proof against r, as RFC 9449 §4.3 lists: one JWT, typ
// dpop+jwt, an accepted asymmetric alg, a public jwk in the header that
// verifies the signature, htm and htu of r, iat within the window, ath
// and nonce when r asks for them, and the bound key when r names one.
func (v *Verifier) Verify(proof []byte, r Request) (Proof, error) {
	if len(proof) == 0 || len(proof) > MaxSize {
		return Proof{}, refuse("missing or over 8192 bytes", nil)
	}
	dot1 := bytes.IndexByte(proof, '.')
	dot2 := dot1 + 1 + bytes.IndexByte(proof[dot1+1:], '.')
	if dot1 < 0 || dot2 <= dot1 || bytes.IndexByte(proof[dot2+1:], '.') >= 0 {
		return Proof{}, refuse("not a JWS in compact form", nil)
	}
	st := scratchPool.Get().(*scratch)
	st.buf = st.buf[:0]
	p, err := v.verify(st, proof, dot1, dot2, &r)
	scratchPool.Put(st)
	return p, err
}

// verify is Verify past the split: proof[:dot1] the header, proof[dot2+1:]
// the signature. What it returns holds no slice of st.
func (v *Verifier) verify(st *scratch, proof []byte, dot1, dot2 int, r *Request) (Proof, error) {
	h, known := v.headers.get(proof[:dot1])
	var jwk []byte
	keyKnown := true
	if !known {
		var err error
		if jwk, err = v.header(st, proof[:dot1], &h); err != nil {
			return Proof{}, err
		}
		// the key by its JWK's exact bytes: parsed, checked and its
		// thumbprint computed when it first verified a proof
		if h.key, keyKnown = v.keys.get(jwk); !keyKnown {
			pub, thumb, err := publicKey(jwk, st)
			if err != nil {
				return Proof{}, err
			}
			h.key = cachedKey{pub, thumb}
		}
	}
	key := h.key
	sig, ok := st.decode(proof[dot2+1:])
	if !ok {
		return Proof{}, refuse("signature is not base64url", nil)
	}
	if err := verifySignature(h.alg, h.hash, key.pub, proof[:dot2], sig, st); err != nil {
		return Proof{}, refuse("signature does not verify", err)
	}
	if !known { // a header and a key that verified a signature: worth remembering
		v.headers.put(proof[:dot1], h)
		if !keyKnown {
			v.keys.put(jwk, key)
		}
	}
	seg, ok := st.decode(proof[dot1+1 : dot2])
	if !ok {
		return Proof{}, refuse("claims are not base64url JSON", errNotBase64)
	}
	var c claims
	if !st.claims(seg, &c) {
		return Proof{}, refuse("claims are not base64url JSON", errNotJSON)
	}
	switch {
	case len(c.jti) == 0 || len(c.jti) > 256:
		return Proof{}, refuse("jti missing or over 256 bytes", nil)
	case string(c.htm) != r.Method:
		return Proof{}, refuse("htm is not the request's method", fmt.Errorf("htm %q, want %s", c.htm, r.Method))
	case !v.sameURL(c.htu, r.URL):
		return Proof{}, refuse("htu is not the request's URL", fmt.Errorf("htu %q, want %s", c.htu, r.URL))
	case !c.hasIAT:
		return Proof{}, refuse("iat missing", nil)
	}
	iat := time.Unix(c.iat, 0)
	if d := v.clock.Now().Sub(iat); d > v.window || d < -v.window {
		return Proof{}, refuse("iat is not within the accepted window of now", fmt.Errorf("iat %s, window %s", iat.UTC().Format(time.RFC3339), v.window))
	}
	if r.AccessToken != nil {
		sum := sha256.Sum256(r.AccessToken)
		var want [43]byte // base64url of 32 bytes
		base64.RawURLEncoding.Encode(want[:], sum[:])
		if subtle.ConstantTimeCompare(c.ath, want[:]) != 1 {
			return Proof{}, refuse("ath is not the hash of the access token", nil)
		}
	}
	nonce := r.Nonce // the request's own string when the proof's is it
	if string(c.nonce) != r.Nonce {
		if r.Nonce != "" {
			return Proof{}, ErrUseNonce
		}
		nonce = string(c.nonce)
	}
	if r.Thumbprint != "" && !constantTimeEqual(key.thumb, r.Thumbprint) {
		return Proof{}, ErrWrongKey
	}
	return Proof{Thumbprint: key.thumb, ID: string(c.jti), IssuedAt: iat, Nonce: nonce}, nil
}

// header decodes and reads the header segment seg into h (typ checked,
// alg accepted; not the key) and returns the JWK as written.
func (v *Verifier) header(st *scratch, seg []byte, h *cachedHeader) ([]byte, error) {
	b, ok := st.decode(seg)
	if !ok {
		return nil, refuse("header is not base64url JSON", errNotBase64)
	}
	var hd header
	if !st.header(b, &hd) {
		return nil, refuse("header is not base64url JSON", errNotJSON)
	}
	if string(hd.typ) != "dpop+jwt" {
		return nil, refuse("typ is not dpop+jwt", fmt.Errorf("typ %q", hd.typ))
	}
	if h.alg, h.hash, ok = v.accepted(hd.alg); !ok {
		return nil, refuse("alg is not accepted", fmt.Errorf("alg %q", hd.alg))
	}
	return hd.jwk, nil
}

// accepted finds alg among the accepted algorithms: their own string and
// hash, so that the header's bytes need no copy.
func (v *Verifier) accepted(alg []byte) (string, crypto.Hash, bool) {
	for i, a := range v.algs {
		if a == string(alg) {
			return a, v.hashes[i], true
		}
	}
	return "", 0, false
}

// header reads the proof's header: typ and alg strings, jwk as written.
// A member named twice is refused rather than one of the two taken.
func (st *scratch) header(seg []byte, h *header) bool {
	s := jsonScan{b: seg}
	if !s.open() {
		return false
	}
	for {
		name, val, end, ok := s.next()
		switch {
		case !ok:
			return false
		case end:
			return s.done()
		}
		if name, st.buf = unquote(name, st.buf); len(name) != 3 {
			continue
		}
		var dst *[]byte
		switch string(name) {
		case "typ":
			dst = &h.typ
		case "alg":
			dst = &h.alg
		case "jwk":
			if h.jwk != nil {
				return false
			}
			h.jwk = val
			continue
		default:
			continue
		}
		if *dst != nil {
			return false
		}
		if *dst, st.buf, ok = stringValue(val, st.buf); !ok {
			return false
		}
		if *dst == nil {
			*dst = val[:0] // null: read, and empty
		}
	}
}

// claims reads the proof's claims. A member named twice is refused.
func (st *scratch) claims(seg []byte, c *claims) bool {
	s := jsonScan{b: seg}
	if !s.open() {
		return false
	}
	var seen [6]bool
	for {
		name, val, end, ok := s.next()
		switch {
		case !ok:
			return false
		case end:
			return s.done()
		}
		name, st.buf = unquote(name, st.buf)
		var dst *[]byte
		i := 0
		switch string(name) {
		case "jti":
			dst, i = &c.jti, 0
		case "htm":
			dst, i = &c.htm, 1
		case "htu":
			dst, i = &c.htu, 2
		case "ath":
			dst, i = &c.ath, 3
		case "nonce":
			dst, i = &c.nonce, 4
		case "iat":
			i = 5
		default:
			continue
		}
		if seen[i] {
			return false
		}
		seen[i] = true
		if dst == nil { // iat: a number, or null for none
			switch {
			case val[0] == 'n':
			case val[0] == '-' || '0' <= val[0] && val[0] <= '9':
				if c.iat, ok = intValue(val); !ok {
					return false
				}
				c.hasIAT = true
			default:
				return false
			}
			continue
		}
		if *dst, st.buf, ok = stringValue(val, st.buf); !ok {
			return false
		}
	}
}

// refuse is a Refusal: reason from the fixed texts above, detail (may be
// nil) for logs.
func refuse(reason string, detail error) error {
	return &Refusal{Reason: reason, Detail: detail}
}

// constantTimeEqual compares two strings in time that depends on their
// length alone, without a copy of either.
func constantTimeEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := range len(a) {
		d |= a[i] ^ b[i]
	}
	return subtle.ConstantTimeByteEq(d, 0) == 1
}

// publicKey parses the header's jwk, refusing private and symmetric keys,
// and returns the raw public key and its thumbprint. Only for a key not in
// the cache: jwx parses it, as it computes the thumbprint.
func publicKey(raw []byte, st *scratch) (any, string, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, "", refuse("no jwk in the header", nil)
	}
	s := jsonScan{b: raw}
	s.open()
	for {
		name, _, end, ok := s.next()
		if !ok {
			return nil, "", refuse("jwk is not a public key", errNotJSON)
		}
		if end {
			break
		}
		name, st.buf = unquote(name, st.buf)
		if slices.Contains(privateMembers, string(name)) {
			return nil, "", refuse("jwk holds a private or symmetric key", fmt.Errorf("member %q", name))
		}
	}
	key, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, "", refuse("jwk is not a public key", err)
	}
	var pub any
	if err := jwk.Export(key, &pub); err != nil {
		return nil, "", refuse("jwk is not a public key", err)
	}
	if p, ok := pub.(*ed25519.PublicKey); ok {
		pub = *p
	}
	if p, ok := pub.(ed25519.PublicKey); ok {
		k, err := newEdKey(p)
		if err != nil {
			return nil, "", refuse("jwk is not a public key", err)
		}
		pub = k
	}
	thumb, err := Thumbprint(key)
	if err != nil {
		return nil, "", refuse("jwk is not a public key", err)
	}
	return pub, thumb, nil
}

// Thumbprint is key's RFC 7638 SHA-256 thumbprint, base64url: the value of
// cnf.jkt and of a session's binding.
func Thumbprint(key jwk.Key) (string, error) {
	sum, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// verifySignature checks sig over input with the key the alg calls for.
// ECDSA by crypto/ecdsa itself, its r || s put in ASN.1 in st: what jwsbb
// did through big.Int cost a third again of the verification.
func verifySignature(alg string, hash crypto.Hash, pub any, input, sig []byte, st *scratch) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if alg[:2] != "ES" {
			break
		}
		return verifyECDSA(alg, k, input, sig, st)
	case *edKey:
		if alg != "EdDSA" {
			break
		}
		if !k.verify(input, sig, st) {
			return errSignature
		}
		return nil
	case *rsa.PublicKey:
		if alg[:2] != "RS" && alg[:2] != "PS" {
			break
		}
		if k.N.BitLen() < 2048 {
			return errRSAKeySize
		}
		return jwsbb.VerifyRSA(k, input, sig, hash, alg[:2] == "PS")
	}
	return fmt.Errorf("a %T key cannot verify %s", pub, alg)
}

// verifyECDSA checks an ES256, ES384 or ES512 signature (RFC 7518 §3.4):
// the key on the alg's curve, r || s of the curve's size each.
func verifyECDSA(alg string, k *ecdsa.PublicKey, input, sig []byte, st *scratch) error {
	var curve elliptic.Curve
	switch alg {
	case "ES256":
		curve = elliptic.P256()
	case "ES384":
		curve = elliptic.P384()
	case "ES512":
		curve = elliptic.P521()
	}
	if k.Curve != curve {
		return errCurve
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return errSigLength
	}
	n := len(st.buf)
	switch alg {
	case "ES256":
		sum := sha256.Sum256(input)
		st.buf = append(st.buf, sum[:]...)
	case "ES384":
		sum := sha512.Sum384(input)
		st.buf = append(st.buf, sum[:]...)
	default:
		sum := sha512.Sum512(input)
		st.buf = append(st.buf, sum[:]...)
	}
	m := len(st.buf)
	st.buf = appendASN1Signature(st.buf, sig[:size], sig[size:])
	if !ecdsa.VerifyASN1(k, st.buf[n:m], st.buf[m:]) {
		return errSignature
	}
	return nil
}

// appendASN1Signature appends SEQUENCE { INTEGER r, INTEGER s } (DER), the
// form crypto/ecdsa verifies, for r and s as unsigned big-endian bytes.
func appendASN1Signature(b, r, s []byte) []byte {
	r, s = bytes.TrimLeft(r, "\x00"), bytes.TrimLeft(s, "\x00")
	intLen := func(x []byte) int { // content bytes of the INTEGER
		if len(x) == 0 || x[0]&0x80 != 0 {
			return len(x) + 1
		}
		return len(x)
	}
	body := 2 + intLen(r) + 2 + intLen(s) // at most 2 × 68 for P-521
	b = append(b, 0x30)
	if body >= 0x80 {
		b = append(b, 0x81)
	}
	b = append(b, byte(body))
	for _, x := range [][]byte{r, s} {
		b = append(b, 0x02, byte(intLen(x)))
		if intLen(x) > len(x) {
			b = append(b, 0)
		}
		b = append(b, x...)
	}
	return b
}

// urlSet are request URLs known to be absolute http(s) URLs with a host
// (what sameURL asks of htu): a proof naming one of them exactly needs no
// parsing. Past maxURLs it starts over.
type urlSet struct {
	mu sync.RWMutex
	m  map[string]struct{}
}

const maxURLs = 64

// absolute reports whether u parses with a scheme and a host, remembering
// the answer yes.
func (s *urlSet) absolute(u string) bool {
	s.mu.RLock()
	_, ok := s.m[u]
	s.mu.RUnlock()
	if ok {
		return true
	}
	if p, err := url.Parse(u); err != nil || p.Scheme == "" || p.Host == "" {
		return false
	}
	s.mu.Lock()
	if s.m == nil || len(s.m) >= maxURLs {
		s.m = make(map[string]struct{}, 8)
	}
	s.m[u] = struct{}{}
	s.mu.Unlock()
	return true
}

// sameURL is sameURLs, by a plain comparison when htu is exactly the
// request's URL (as a client that copies it sends), which sameURLs would
// find the same once it parses.
func (v *Verifier) sameURL(htu []byte, want string) bool {
	if string(htu) == want {
		return v.urls.absolute(want)
	}
	return sameURLs(string(htu), want)
}

// sameURLs compares htu with the request's URL as §4.3 asks: without query
// and fragment, scheme and host in any case, default ports implied.
func sameURLs(htu, want string) bool {
	a, err1 := url.Parse(htu)
	b, err2 := url.Parse(want)
	if err1 != nil || err2 != nil || a.Scheme == "" || a.Host == "" {
		return false
	}
	return strings.EqualFold(a.Scheme, b.Scheme) && hostPort(a) == hostPort(b) && path(a) == path(b)
}

func hostPort(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" || (port == "80" && strings.EqualFold(u.Scheme, "http")) || (port == "443" && strings.EqualFold(u.Scheme, "https")) {
		return host
	}
	return host + ":" + port
}

func path(u *url.URL) string {
	if p := u.EscapedPath(); p != "" {
		return p
	}
	return "/"
}
