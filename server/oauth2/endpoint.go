package oauth2

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/dpop"
	"github.com/tokend/tokend/server"
)

// Issuer is what the endpoints need of tokens.Issuer.
type Issuer interface {
	RefreshGrant(ctx context.Context, refresh []byte, g tokens.Grant, p *tokens.Pair) error
	RevokeAny(ctx context.Context, token []byte, g tokens.Grant) error
}

// Config wires an Endpoint.
type Config struct {
	Issuer Issuer
	// PublicURL is the URL clients reach tokend at (TOKEND_PUBLIC_URL),
	// behind any load balancer: the issuer of the metadata, and what a
	// DPoP proof's htu names.
	PublicURL string
	// Clients are the public client ids accepted; nil takes any client_id
	// as given.
	Clients []string
	// DPoP checks proofs (nil: DPoP headers are refused).
	DPoP *dpop.Verifier
	// Nonces, when set, makes every proof carry a server nonce (§8).
	Nonces *dpop.Nonces
	// MaxBody is the largest form read (server.MaxBody: a token of the
	// largest size tokend reads, and the rest).
	MaxBody int
	// Audiences are the resource servers' identifiers a token may be for
	// (TOKEND_AUDIENCE): the first is the aud of a request naming no
	// resource, the one a `resource` parameter names otherwise (RFC 8707).
	// Empty: the issuer, PublicURL.
	Audiences []string
	// Logger takes, at debug, what a refusal's fixed description leaves
	// out (the proof's values, a library's error); nil logs nothing.
	Logger *slog.Logger
}

// Endpoint serves the standard endpoints; see server.OAuth2.
type Endpoint struct {
	issuer    Issuer
	clients   map[string]string // id to itself; nil: any
	dpop      *dpop.Verifier
	nonces    *dpop.Nonces
	tokenURL  string
	revokeURL string
	maxBody   int
	metadata  []byte
	metaPath  string
	log       *slog.Logger
	aud       []string // Config.Audiences, never empty
}

// Paths of the endpoints, under Config.PublicURL.
const (
	TokenPath    = "/oauth2/token"
	RevokePath   = "/oauth2/revoke"
	MetadataPath = "/.well-known/oauth-authorization-server"
	JWKSPath     = "/.well-known/jwks.json"
)

// New checks cfg and builds an Endpoint, its metadata document included.
func New(cfg Config) (*Endpoint, error) {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("public URL %q: want an absolute http(s) URL without query or fragment", cfg.PublicURL)
	}
	base := strings.TrimSuffix(cfg.PublicURL, "/")
	e := &Endpoint{metaPath: metadataPath(u), aud: cfg.Audiences, issuer: cfg.Issuer, dpop: cfg.DPoP, nonces: cfg.Nonces,
		tokenURL: base + TokenPath, revokeURL: base + RevokePath, maxBody: cfg.MaxBody, log: cfg.Logger}
	if e.maxBody == 0 {
		e.maxBody = server.MaxBody
	}
	if len(e.aud) == 0 {
		e.aud = []string{base}
	}
	if cfg.Clients != nil {
		e.clients = map[string]string{}
		for _, c := range cfg.Clients {
			if c == "" || len(c) > 255 {
				return nil, fmt.Errorf("client id %q: want 1 to 255 bytes", c)
			}
			e.clients[c] = c
		}
	}
	md := map[string]any{
		"issuer":                                base,
		"token_endpoint":                        e.tokenURL,
		"revocation_endpoint":                   base + RevokePath,
		"jwks_uri":                              base + JWKSPath,
		"grant_types_supported":                 []string{"refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"revocation_endpoint_auth_methods_supported": []string{"none"},
		"response_types_supported":                   []string{},
	}
	if e.dpop != nil {
		md["dpop_signing_alg_values_supported"] = e.dpop.Algs()
	}
	if e.metadata, err = json.Marshal(md); err != nil {
		return nil, err
	}
	return e, nil
}

var (
	contentJSON = []byte("application/json")
	contentForm = []byte("application/x-www-form-urlencoded")
	headerNonce = []byte("DPoP-Nonce")
	headerDPoP  = "DPoP"
)

// scratch is the per-request state of the endpoints, pooled: the form's
// unescaped values, and the response body.
type scratch struct {
	form []byte
	out  []byte
}

var statePool = sync.Pool{New: func() any { return &scratch{out: make([]byte, 0, 2048)} }}

// The parameters each endpoint reads, by position.
var (
	tokenParams  = []string{"grant_type", "refresh_token", "client_id", "scope", "resource"}
	revokeParams = []string{"token", "client_id", "token_type_hint"}
)

// storeCtx: as the server's, not the RequestCtx, which ends when shutdown
// begins; the store bounds every call itself.
var storeCtx = context.Background()

// tokenRequest is a decoded token request.
type tokenRequest struct {
	refresh []byte
	grant   tokens.Grant
}

// Token implements server.OAuth2: the refresh_token grant.
func (e *Endpoint) Token(ctx *fasthttp.RequestCtx, p *tokens.Pair) error {
	st := statePool.Get().(*scratch)
	defer statePool.Put(st)
	var req tokenRequest
	err := e.decodeToken(ctx, st, &req)
	if err == nil {
		err = e.proof(ctx, e.tokenURL, &req.grant)
	}
	if err == nil {
		err = e.issuer.RefreshGrant(storeCtx, req.refresh, req.grant, p)
	}
	if err != nil {
		e.Fail(ctx, err)
		return err
	}
	st.out = appendPair(st.out[:0], p)
	if e.nonces != nil {
		ctx.Response.Header.SetBytesK(headerNonce, e.nonces.Current())
	}
	noStore(ctx)
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBody(st.out)
	return nil
}

// decodeToken reads the form of a token request into req; req's slices
// alias the request or st.
func (e *Endpoint) decodeToken(ctx *fasthttp.RequestCtx, st *scratch, req *tokenRequest) error {
	var v formValues
	if err := e.readForm(ctx, st, tokenParams, &v); err != nil {
		return err
	}
	grantType, client, scope, resource := v[0], v[2], v[3], v[4]
	req.refresh = v[1]
	switch {
	case grantType == nil:
		return missing("grant_type")
	case string(grantType) != "refresh_token":
		return ErrUnsupportedGrant
	case req.refresh == nil:
		return missing("refresh_token")
	}
	id, err := e.client(client)
	if err != nil {
		return err
	}
	req.grant.Client = id
	if scope != nil {
		s, err := normalScope(scope)
		if err != nil {
			return err
		}
		req.grant.Scope = s
	}
	req.grant.Audience, err = e.audience(resource)
	return err
}

// audience is the aud a token request gets: the default, or the one its
// resource parameter names exactly (RFC 8707 §2), as configured, so that
// it costs no allocation.
func (e *Endpoint) audience(resource []byte) (string, error) {
	if resource == nil {
		return e.aud[0], nil
	}
	for _, a := range e.aud {
		if string(resource) == a {
			return a, nil
		}
	}
	return "", ErrInvalidTarget
}

// readForm checks the body's type and size and decodes the form.
func (e *Endpoint) readForm(ctx *fasthttp.RequestCtx, st *scratch, names []string, v *formValues) error {
	ct := ctx.Request.Header.ContentType()
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	if !bytes.EqualFold(bytes.TrimSpace(ct), contentForm) {
		return ErrContentType
	}
	body := ctx.PostBody()
	if len(body) > e.maxBody {
		return ErrTooLarge
	}
	var err error
	st.form, err = readForm(body, names, v, st.form)
	return err
}

// client checks a client_id against the clients configured and returns
// it: the configured string itself, so that a known client costs no
// allocation.
func (e *Endpoint) client(id []byte) (string, error) {
	switch {
	case id == nil:
		return "", missing("client_id")
	case len(id) > 255:
		return "", ErrUnknownClient
	case e.clients == nil:
		return string(id), nil
	}
	known, ok := e.clients[string(id)]
	if !ok {
		return "", ErrUnknownClient
	}
	return known, nil
}

// normalScope checks a scope parameter (scope tokens of %x21 / %x23-5B /
// %x5D-7E, space-separated) and returns it with single spaces and no
// repeats.
func normalScope(b []byte) (string, error) {
	var out []string
	for _, tok := range strings.Split(string(b), " ") {
		if tok == "" {
			continue
		}
		for i := range len(tok) {
			if !server.ScopeChar(tok[i]) {
				return "", ErrBadScope
			}
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	if len(out) == 0 {
		return "", ErrBadScope
	}
	return strings.Join(out, " "), nil
}

// proof checks the request's DPoP header, if any (§4.3), for a POST to
// url, and puts the proof's key and jti in g.
func (e *Endpoint) proof(ctx *fasthttp.RequestCtx, url string, g *tokens.Grant) error {
	headers := ctx.Request.Header.PeekAll(headerDPoP)
	switch {
	case len(headers) == 0:
		return nil
	case len(headers) > 1:
		return ErrTwoProofs
	case e.dpop == nil:
		return errDPoPOff
	}
	p, err := e.dpop.Verify(headers[0], dpop.Request{Method: fasthttp.MethodPost, URL: url})
	if err != nil {
		return err
	}
	if e.nonces != nil && !e.nonces.Valid(p.Nonce) {
		return dpop.ErrUseNonce
	}
	// a proof is acceptable while its iat is within the window of now,
	// either way: its jti must be remembered that long; by its iat the
	// store tells a proof newer than any its session took (session.Step)
	g.Key, g.Proof, g.ProofTTL, g.ProofIssued = p.Thumbprint, p.ID, 2*e.dpop.Window(), p.IssuedAt
	return nil
}

// appendPair writes RFC 6749 §5.1's answer.
func appendPair(b []byte, p *tokens.Pair) []byte {
	b = append(b, `{"access_token":"`...)
	b = append(b, p.Access...) // JWTs and opaque tokens need no escaping
	b = append(b, `","token_type":"`...)
	if p.Session.Key != "" {
		b = append(b, "DPoP"...)
	} else {
		b = append(b, "Bearer"...)
	}
	b = append(b, `","expires_in":`...)
	b = strconv.AppendInt(b, int64(p.AccessExpiresIn/time.Second), 10)
	b = append(b, `,"refresh_token":"`...)
	b = append(b, p.Refresh...)
	b = append(b, '"')
	if p.Scope != "" {
		b = append(b, `,"scope":`...)
		b = tokens.AppendJSONString(b, p.Scope)
	}
	return append(b, '}')
}

// noStore marks an answer with tokens, or about them, as not to be cached
// (RFC 6749 §5.1).
func noStore(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Pragma", "no-cache")
}

// Revoke implements server.OAuth2 (RFC 7009): any token is answered 200,
// whether it named a session or not; a refresh token ends its session, an
// access token too, which puts it on every instance's denylist. A token
// issued to another client is invalid_grant (§2.1; RFC 6749 §5.2), and a
// session bound to a DPoP key is ended only with a proof by that key for
// this endpoint (RFC 9449 §5 lets a server ask for one): whoever saw a
// token cannot log its user out. Each refusal ends nothing.
func (e *Endpoint) Revoke(ctx *fasthttp.RequestCtx) error {
	st := statePool.Get().(*scratch)
	defer statePool.Put(st)
	var v formValues
	var g tokens.Grant
	err := e.readForm(ctx, st, revokeParams, &v)
	token := v[0]
	if err == nil && token == nil {
		err = missing("token")
	}
	if err == nil {
		g.Client, err = e.client(v[1])
	}
	if err == nil {
		err = e.proof(ctx, e.revokeURL, &g)
	}
	if err == nil {
		err = e.issuer.RevokeAny(storeCtx, token, g)
	}
	if err != nil {
		e.Fail(ctx, err)
		return err
	}
	noStore(ctx)
	ctx.SetStatusCode(fasthttp.StatusOK)
	return nil
}

// metadataPath is RFC 8414 §3.1's metadata path of an issuer with a path:
// the well-known part inserted before the issuer's path, its trailing "/"
// dropped; "" when the issuer is a bare origin.
func metadataPath(issuer *url.URL) string {
	p := strings.TrimSuffix(issuer.EscapedPath(), "/")
	if p == "" {
		return ""
	}
	return MetadataPath + p
}

// MetadataPath implements server.OAuth2.
func (e *Endpoint) MetadataPath() string { return e.metaPath }

// Metadata implements server.OAuth2 (RFC 8414).
func (e *Endpoint) Metadata(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Cache-Control", "public, max-age=300")
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBody(e.metadata)
}
