package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-json"
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
	algs   []string
	window time.Duration
	clock  Clock
	keys   keyCache
}

// keyCache remembers the keys of recent proofs by their JWK's exact bytes:
// a client signs every refresh with the same key, and parsing the JWK and
// computing its thumbprint cost as much as a third of a check. A key that
// failed a check is never stored; past maxCachedKeys the cache starts over.
type keyCache struct {
	mu sync.RWMutex
	m  map[string]cachedKey
}

type cachedKey struct {
	pub   any
	thumb string
}

const maxCachedKeys = 10_000

func (c *keyCache) get(raw []byte) (cachedKey, bool) {
	c.mu.RLock()
	k, ok := c.m[string(raw)] // no allocation for the lookup
	c.mu.RUnlock()
	return k, ok
}

func (c *keyCache) put(raw []byte, k cachedKey) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedKeys {
		c.m = make(map[string]cachedKey, 64)
	}
	c.m[string(raw)] = k
	c.mu.Unlock()
}

// NewVerifier returns a Verifier for cfg; an algorithm that is not an
// asymmetric signature algorithm is an error.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{algs: cfg.Algs, window: cfg.Window, clock: cfg.Clock}
	if len(v.algs) == 0 {
		v.algs = []string{"ES256", "EdDSA"}
	}
	for _, a := range v.algs {
		if _, ok := asymmetric[a]; !ok {
			return nil, fmt.Errorf("dpop: %q is not an asymmetric signature algorithm", a)
		}
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

type header struct {
	Typ string          `json:"typ"`
	Alg string          `json:"alg"`
	JWK json.RawMessage `json:"jwk"`
}

type claims struct {
	JTI   string   `json:"jti"`
	HTM   string   `json:"htm"`
	HTU   string   `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   string   `json:"ath"`
	Nonce string   `json:"nonce"`
}

// privateMembers are JWK members of private or symmetric keys: a proof's
// key is public.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// Verify checks proof against r, as RFC 9449 §4.3 lists: one JWT, typ
// dpop+jwt, an accepted asymmetric alg, a public jwk in the header that
// verifies the signature, htm and htu of r, iat within the window, ath
// and nonce when r asks for them, and the bound key when r names one.
func (v *Verifier) Verify(proof []byte, r Request) (Proof, error) {
	if len(proof) == 0 || len(proof) > MaxSize {
		return Proof{}, refuse("missing or over 8192 bytes", nil)
	}
	parts := strings.Split(string(proof), ".")
	if len(parts) != 3 {
		return Proof{}, refuse("not a JWS in compact form", nil)
	}
	var h header
	if err := decodeSegment(parts[0], &h); err != nil {
		return Proof{}, refuse("header is not base64url JSON", err)
	}
	if h.Typ != "dpop+jwt" {
		return Proof{}, refuse("typ is not dpop+jwt", fmt.Errorf("typ %q", h.Typ))
	}
	hash, ok := asymmetric[h.Alg]
	if !ok || !slices.Contains(v.algs, h.Alg) {
		return Proof{}, refuse("alg is not accepted", fmt.Errorf("alg %q", h.Alg))
	}
	key, cached := v.keys.get(h.JWK)
	if !cached {
		pub, thumb, err := publicKey(h.JWK)
		if err != nil {
			return Proof{}, err
		}
		key = cachedKey{pub, thumb}
	}
	pub, thumb := key.pub, key.thumb
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return Proof{}, refuse("signature is not base64url", nil)
	}
	if err := verify(h.Alg, hash, pub, proof[:len(parts[0])+1+len(parts[1])], sig); err != nil {
		return Proof{}, refuse("signature does not verify", err)
	}
	if !cached { // a key that verified a signature: worth remembering
		v.keys.put(h.JWK, key)
	}
	var c claims
	if err := decodeSegment(parts[1], &c); err != nil {
		return Proof{}, refuse("claims are not base64url JSON", err)
	}
	switch {
	case c.JTI == "" || len(c.JTI) > 256:
		return Proof{}, refuse("jti missing or over 256 bytes", nil)
	case c.HTM != r.Method:
		return Proof{}, refuse("htm is not the request's method", fmt.Errorf("htm %q, want %s", c.HTM, r.Method))
	case !sameURL(c.HTU, r.URL):
		return Proof{}, refuse("htu is not the request's URL", fmt.Errorf("htu %q, want %s", c.HTU, r.URL))
	case c.IAT == nil:
		return Proof{}, refuse("iat missing", nil)
	}
	iat := time.Unix(int64(*c.IAT), 0)
	if d := v.clock.Now().Sub(iat); d > v.window || d < -v.window {
		return Proof{}, refuse("iat is not within the accepted window of now", fmt.Errorf("iat %s, window %s", iat.UTC().Format(time.RFC3339), v.window))
	}
	if r.AccessToken != nil {
		sum := sha256.Sum256(r.AccessToken)
		if subtle.ConstantTimeCompare([]byte(c.ATH), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) != 1 {
			return Proof{}, refuse("ath is not the hash of the access token", nil)
		}
	}
	if r.Nonce != "" && c.Nonce != r.Nonce {
		return Proof{}, ErrUseNonce
	}
	if r.Thumbprint != "" && subtle.ConstantTimeCompare([]byte(thumb), []byte(r.Thumbprint)) != 1 {
		return Proof{}, ErrWrongKey
	}
	return Proof{Thumbprint: thumb, ID: c.JTI, IssuedAt: iat, Nonce: c.Nonce}, nil
}

// refuse is a Refusal: reason from the fixed texts above, detail (may be
// nil) for logs.
func refuse(reason string, detail error) error {
	return &Refusal{Reason: reason, Detail: detail}
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errors.New("not a JSON object")
	}
	return nil
}

// publicKey parses the header's jwk, refusing private and symmetric keys,
// and returns the raw public key and its thumbprint.
func publicKey(raw json.RawMessage) (any, string, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, "", refuse("no jwk in the header", nil)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, "", refuse("jwk is not a public key", err)
	}
	for _, m := range privateMembers {
		if _, ok := members[m]; ok {
			return nil, "", refuse("jwk holds a private or symmetric key", fmt.Errorf("member %q", m))
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

// verify checks sig over input with the key the alg calls for.
func verify(alg string, hash crypto.Hash, pub any, input, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if alg[:2] != "ES" {
			break
		}
		return jwsbb.VerifyECDSA(k, input, sig, hash)
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			break
		}
		return jwsbb.VerifyEdDSA(k, input, sig)
	case *rsa.PublicKey:
		if alg[:2] != "RS" && alg[:2] != "PS" {
			break
		}
		if k.N.BitLen() < 2048 {
			return errors.New("RSA key under 2048 bits")
		}
		return jwsbb.VerifyRSA(k, input, sig, hash, alg[:2] == "PS")
	}
	return fmt.Errorf("a %T key cannot verify %s", pub, alg)
}

// sameURL compares htu with the request's URL as §4.3 asks: without query
// and fragment, scheme and host in any case, default ports implied.
func sameURL(htu, want string) bool {
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
