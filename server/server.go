package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/pprof"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goccy/go-json"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"github.com/valyala/fasthttp/pprofhandler"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/dpop"
	"github.com/tokend/tokend/server/watchdog"
)

// pprofIndex lists the live instance's profiles at /debug/pprof/.
var pprofIndex = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Index)

// Issuer is what the server needs of tokens.Issuer.
type Issuer interface {
	// StartGrant opens a session for sub, for g's client, scope and DPoP
	// key where set.
	StartGrant(ctx context.Context, sub string, g tokens.Grant, p *tokens.Pair) error
	// Refresh trades a refresh token for a new pair; access is the client's
	// current access token where the dialect sends one (aspnet), else nil.
	// p.At, when set, is the answer's timestamp.
	Refresh(ctx context.Context, refresh, access []byte, p *tokens.Pair) error
	Revoke(ctx context.Context, token []byte) error
	RevokeSubject(ctx context.Context, sub string, deleted bool) (int, error)
	Ping(ctx context.Context) error
}

// Config wires a Server.
type Config struct {
	Dialect    Dialect
	Issuer     Issuer
	JWKS       func() []byte // the public key set in force
	Clock      tokens.Clock  // for response timestamps
	Logger     *slog.Logger
	Metrics    *Metrics
	AdminToken string // when set, the admin listener demands it as a Bearer token
	MaxBody    int    // largest request body read as JSON (MaxBody: 12 KiB)

	// Introspector verifies access tokens for POST /admin/introspect
	// (tokens.Verifier, with the denylist); nil answers 404.
	Introspector Introspector
	// ReloadKeys re-reads the keys file for POST /admin/keys/reload (SIGHUP
	// does the same); it returns the signing kid and the number of keys.
	ReloadKeys func() (signingKID string, keys int, err error)
	// Ready, when set, must also be nil for /readyz: the denylist caught up.
	Ready func() error
	// MaxInflight bounds the refresh and revoke requests served at once;
	// the ones beyond it get the dialect's 503 with Retry-After at once
	// instead of queueing for the store (0: no bound).
	MaxInflight int
	// ReadTimeout bounds how long a request may take to arrive, headers and
	// body (10 s): slow clients are cut off, not waited for.
	ReadTimeout time.Duration
	// OpenAPI is served as GET /openapi.yaml on the admin listener (nil:
	// 404).
	OpenAPI []byte
	// OAuth2 serves the standard OAuth 2.0 endpoints beside the dialect's
	// (server/oauth2); nil: 404.
	OAuth2 OAuth2
}

// OAuth2 is the standard OAuth 2.0 token, revocation and metadata
// endpoints, in RFC 6749's error shape (server/oauth2.Endpoint).
type OAuth2 interface {
	// Token serves POST /oauth2/token, issuing into p; it returns the
	// error it answered (nil: 200), for metrics.
	Token(ctx *fasthttp.RequestCtx, p *tokens.Pair) error
	// Revoke serves POST /oauth2/revoke (RFC 7009).
	Revoke(ctx *fasthttp.RequestCtx) error
	// Metadata serves GET /.well-known/oauth-authorization-server, and
	// GET MetadataPath.
	Metadata(ctx *fasthttp.RequestCtx)
	// MetadataPath is where RFC 8414 §3.1 puts the metadata of an issuer
	// with a path (/.well-known/oauth-authorization-server/auth); "" when
	// the issuer has none.
	MetadataPath() string
	// Fail answers one of this package's errors (ErrMethod,
	// ErrOverloaded, ErrInternal …) in RFC 6749's shape.
	Fail(ctx *fasthttp.RequestCtx, err error)
}

// Introspector is what POST /admin/introspect needs of tokens.Verifier.
type Introspector interface {
	Verify(ctx context.Context, token []byte, cl *tokens.Claims) error
}

// Server serves the public and the admin listener.
type Server struct {
	cfg      Config
	public   *fasthttp.Server
	admin    *fasthttp.Server
	prom     fasthttp.RequestHandler
	inflight atomic.Int64
}

// MaxBody is the default limit on request bodies: room for a token of the
// largest size tokend reads (tokens.MaxTokenSize) and 4 KiB of the rest (an
// aspnet refresh token, a session's client and scope), so that every token
// tokend issues can be presented back.
const MaxBody = tokens.MaxTokenSize + 4<<10

// MaxHeader bounds a public request's headers (the listener's read
// buffer): a DPoP proof of dpop.MaxSize, as the OpenAPI document allows,
// on top of the 4 KiB every other request had.
const MaxHeader = dpop.MaxSize + 4<<10

// New builds a Server; call Serve to start it.
func New(cfg Config) *Server {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = MaxBody
	}
	if cfg.Clock == nil {
		cfg.Clock = tokens.SystemClock
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	s := &Server{cfg: cfg}
	cfg.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tokend_requests_in_flight", Help: "Refresh and revoke requests being served (TOKEND_MAX_INFLIGHT bounds them).",
	}, func() float64 { return float64(s.inflight.Load()) }))
	s.prom = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(cfg.Metrics.Registry, promhttp.HandlerOpts{}))
	s.public = s.newHTTP("tokend", s.servePublic)
	s.public.ReadBufferSize = MaxHeader
	s.public.ErrorHandler = s.publicHTTPError
	s.admin = s.newHTTP("tokend-admin", s.serveAdmin)
	s.admin.ErrorHandler = s.adminHTTPError
	return s
}

func (s *Server) newHTTP(name string, h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Name:    "tokend",
		Handler: h,
		// No ReadTimeout, IdleTimeout or WriteTimeout here: fasthttp would
		// update a timer twice per request for them. The listener's
		// watchdog (Serve) bounds the request's arrival by cfg.ReadTimeout
		// and the wait between requests by IdleTimeout instead. Every answer
		// (under 2 KiB) fits the socket buffer; a client that stops reading
		// is cut off by those limits at its next request.
		// Bodies over MaxBody (12 KiB) get a 400 in the dialect's shape from
		// the handler; over 64 KiB fasthttp stops reading, and
		// publicHTTPError answers the same 400. Headers must fit
		// ReadBufferSize (4 KiB; MaxHeader, 12 KiB, on the public listener).
		MaxRequestBodySize: 64 << 10,
		// A drain marks the answers it still sends Connection: close (and so
		// flushes them): the client knows a pipelined request behind one
		// was not served, instead of losing the answer to the close.
		CloseOnShutdown: true,
		Logger:          slogPrinter{s.cfg.Logger.With("listener", name)},
	}
}

// PublicHandler is the handler of the public listener, for benchmarks and
// tests that drive fasthttp without a socket.
func (s *Server) PublicHandler() fasthttp.RequestHandler { return s.servePublic }

// AdminHandler is the handler of the admin listener.
func (s *Server) AdminHandler() fasthttp.RequestHandler { return s.serveAdmin }

// Serve answers on the two listeners until Shutdown. It returns the first
// error of either listener.
func (s *Server) Serve(public, admin net.Listener) error {
	errc := make(chan error, 2)
	go func() { errc <- s.public.Serve(s.watched(public)) }()
	go func() { errc <- s.admin.Serve(s.watched(admin)) }()
	err := <-errc
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

// IdleTimeout is how long a connection may wait for its next request.
const IdleTimeout = 90 * time.Second

// watched wraps a listener in the read and idle limits, then the
// lingering close of refused requests.
func (s *Server) watched(ln net.Listener) net.Listener {
	return lingerListener{watchdog.Listen(ln, s.cfg.ReadTimeout, IdleTimeout)}
}

// Shutdown stops accepting connections, lets requests in flight finish, and
// returns when they have or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, srv := range []*fasthttp.Server{s.public, s.admin} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = srv.ShutdownWithContext(ctx) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Route names, as metrics labels.
const (
	routeRefresh  = "refresh"
	routeRevoke   = "revoke"
	routeJWKS     = "jwks"
	routeSessions = "admin_sessions"
	routeSubject  = "admin_subject"
	routeHealth   = "healthz"
	routeReady    = "readyz"
	routeMetrics  = "metrics"
	routePprof    = "pprof"
	routeIntro    = "admin_introspect"
	routeKeys     = "admin_keys_reload"
	routeOpenAPI  = "openapi"
	routeToken    = "oauth2_token"
	routeOARevoke = "oauth2_revoke"
	routeOAMeta   = "oauth2_metadata"
	routeNone     = "none"
)

// storeCtx is the context of store calls. Not the fasthttp RequestCtx: that
// one is done as soon as shutdown begins, and requests in flight must still
// finish. The store bounds every call by its own timeout.
var storeCtx = context.Background()

var (
	contentJSON = []byte("application/json")
	headerRetry = []byte("Retry-After")
)

func (s *Server) servePublic(ctx *fasthttp.RequestCtx) {
	start := requestStart(ctx)
	route := routeNone
	defer func() { s.finish(ctx, route, start, recover()) }()
	switch string(publicPath(ctx)) {
	case refreshPath:
		route = routeRefresh
		if s.method(ctx, fasthttp.MethodPost) && s.admit(ctx) {
			defer s.inflight.Add(-1) // deferred: a panic must not keep the slot
			s.refresh(ctx)
		}
	case "/api/auth/revoke":
		route = routeRevoke
		if s.method(ctx, fasthttp.MethodPost) && s.admit(ctx) {
			defer s.inflight.Add(-1)
			s.revoke(ctx)
		}
	case "/.well-known/jwks.json":
		route = routeJWKS
		if s.method(ctx, fasthttp.MethodGet) {
			ctx.Response.Header.Set("Cache-Control", "public, max-age=300")
			ctx.SetContentTypeBytes(contentJSON)
			ctx.SetBody(s.cfg.JWKS())
		}
	case "/oauth2/token", "/oauth2/revoke", "/.well-known/oauth-authorization-server":
		if s.cfg.OAuth2 == nil {
			s.fail(ctx, ErrNoRoute)
			break
		}
		route = oauth2Routes[string(ctx.Path())]
		s.oauth2(ctx, route)
	default:
		if o := s.cfg.OAuth2; o != nil && o.MetadataPath() != "" && string(ctx.Path()) == o.MetadataPath() {
			route = routeOAMeta
			s.oauth2(ctx, route)
			break
		}
		s.fail(ctx, ErrNoRoute)
	}
}

var oauth2Routes = map[string]string{
	"/oauth2/token": routeToken, "/oauth2/revoke": routeOARevoke, "/.well-known/oauth-authorization-server": routeOAMeta,
}

// oauth2 serves the standard endpoints, answering in their error shape.
func (s *Server) oauth2(ctx *fasthttp.RequestCtx, route string) {
	o := s.cfg.OAuth2
	want := fasthttp.MethodPost
	if route == routeOAMeta {
		want = fasthttp.MethodGet
	}
	if string(ctx.Method()) != want {
		ctx.Response.Header.Set("Allow", want)
		o.Fail(ctx, ErrMethod)
		return
	}
	if route == routeOAMeta {
		o.Metadata(ctx)
		return
	}
	if !s.admitted() {
		o.Fail(ctx, ErrOverloaded)
		return
	}
	defer s.inflight.Add(-1)
	if route == routeOARevoke {
		if err := o.Revoke(ctx); err != nil {
			s.logFailure(ctx, err, ctx.Response.StatusCode())
		}
		return
	}
	st := statePool.Get().(*state)
	defer statePool.Put(st)
	if err := o.Token(ctx, &st.pair); err != nil {
		s.cfg.Metrics.outcome(classify(err))
		s.logFailure(ctx, err, ctx.Response.StatusCode())
		return
	}
	s.cfg.Metrics.refreshed(&st.pair)
}

const refreshPath = "/api/auth/refresh"

// publicPath is the request's path. A request line naming the refresh path
// exactly is taken as sent: parsing and normalising the URI, which only
// other spellings need, was a visible share of a refresh.
func publicPath(ctx *fasthttp.RequestCtx) []byte {
	if raw := ctx.Request.Header.RequestURI(); string(raw) == refreshPath {
		return raw
	}
	return ctx.Path()
}

// requestStart is when fasthttp read the request: it reads the clock for
// every request anyway, so timing one costs no extra read.
func requestStart(ctx *fasthttp.RequestCtx) time.Time {
	if t := ctx.Time(); !t.IsZero() {
		return t
	}
	return time.Now() // a RequestCtx driven without a server (benchmarks)
}

// finish records the request and turns a panic into a 500 in the dialect's
// shape, logged with the request id; the server keeps running.
func (s *Server) finish(ctx *fasthttp.RequestCtx, route string, start time.Time, panicked any) {
	if panicked != nil {
		s.cfg.Logger.Error("handler panicked", "request_id", ctx.ID(), "route", route, "panic", fmt.Sprint(panicked))
		ctx.Response.Reset()
		if strings.HasPrefix(route, "oauth2_") {
			s.cfg.OAuth2.Fail(ctx, ErrInternal)
		} else {
			s.fail(ctx, ErrInternal)
		}
	}
	switch route {
	case routeRefresh, routeRevoke, routeToken, routeOARevoke, routeSessions, routeSubject: // they change the store
		sendNow(ctx)
	}
	s.cfg.Metrics.request(route, ctx.Response.StatusCode(), time.Since(start))
}

// sendNow has fasthttp write the answer to the socket once it is made.
// fasthttp holds an answer back while a pipelined request is buffered, and
// a drain that stops the connection meanwhile discards it: a rotation
// committed and its answer lost, the client's retry after the grace window
// is reuse. A handler's write deadline is what makes it flush (zero: none).
func sendNow(ctx *fasthttp.RequestCtx) { _ = ctx.SetWriteDeadline(time.Time{}) }

// admit counts a request in flight, or answers 503 at once when
// MaxInflight are: past saturation a fast refusal the client retries
// later beats a queue that makes every answer late. The caller that was
// admitted defers the decrement, so that no path, a panic included, keeps
// a slot (TestPanicReleasesInflightSlot).
func (s *Server) admit(ctx *fasthttp.RequestCtx) bool {
	if s.admitted() {
		return true
	}
	s.fail(ctx, ErrOverloaded)
	return false
}

// admitted counts a request in flight, or counts it shed and reports false
// (the caller answers 503 in its shape).
func (s *Server) admitted() bool {
	if s.inflight.Add(1) <= int64(s.cfg.MaxInflight) || s.cfg.MaxInflight == 0 {
		return true
	}
	s.inflight.Add(-1)
	s.cfg.Metrics.shed()
	return false
}

func (s *Server) method(ctx *fasthttp.RequestCtx, want string) bool {
	if string(ctx.Method()) == want {
		return true
	}
	ctx.Response.Header.Set("Allow", want)
	s.fail(ctx, ErrMethod)
	return false
}

// state is the per-request scratch of the refresh path, pooled: the decoded
// request, the issued pair with its token buffer, the response body.
type state struct {
	req  Request
	pair tokens.Pair
	out  []byte
}

var statePool = sync.Pool{New: func() any { return &state{out: make([]byte, 0, 2048)} }}

func (s *Server) refresh(ctx *fasthttp.RequestCtx) {
	st := statePool.Get().(*state)
	defer statePool.Put(st)
	err := s.decode(ctx, s.cfg.Dialect.DecodeRefresh, &st.req)
	if err == nil {
		err = s.cfg.Issuer.Refresh(storeCtx, st.req.RefreshToken, st.req.AccessToken, &st.pair)
	}
	if err != nil {
		s.cfg.Metrics.outcome(classify(err))
		s.fail(ctx, err)
		return
	}
	s.cfg.Metrics.refreshed(&st.pair)
	s.ok(ctx, st)
}

func (s *Server) ok(ctx *fasthttp.RequestCtx, st *state) {
	at := st.pair.At // the issuer's instant: no second clock read
	if at.IsZero() {
		at = s.cfg.Clock.Now()
	}
	st.out = s.cfg.Dialect.AppendPair(st.out[:0], &st.pair, at)
	ctx.SetContentTypeBytes(contentJSON)
	// The answer's bytes become the response's body and the response's
	// previous (pooled, empty) buffer becomes this state's: no copy.
	st.out = ctx.Response.SwapBody(st.out)[:0]
}

func (s *Server) revoke(ctx *fasthttp.RequestCtx) {
	var req Request
	err := s.decode(ctx, s.cfg.Dialect.DecodeRevoke, &req)
	if err == nil {
		err = s.cfg.Issuer.Revoke(storeCtx, req.RefreshToken)
	}
	if err != nil {
		s.fail(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// decode checks the body's size and type, then lets the dialect parse it.
func (s *Server) decode(ctx *fasthttp.RequestCtx, parse func([]byte, *Request) error, r *Request) error {
	body, err := s.jsonBody(ctx)
	if err != nil {
		return err
	}
	*r = Request{}
	return parse(body, r)
}

func (s *Server) jsonBody(ctx *fasthttp.RequestCtx) ([]byte, error) {
	if !isJSON(ctx.Request.Header.ContentType()) {
		return nil, ErrContentType
	}
	body := ctx.PostBody()
	if len(body) > s.cfg.MaxBody {
		return nil, ErrTooLarge
	}
	return body, nil
}

// isJSON accepts application/json with parameters (charset) and +json types.
func isJSON(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	return bytes.EqualFold(ct, contentJSON) ||
		len(ct) > 17 && bytes.EqualFold(ct[:12], []byte("application/")) && bytes.HasSuffix(bytes.ToLower(ct), []byte("+json"))
}

// fail answers err in the dialect's shape; 503s tell the client when to retry.
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error) {
	st := statePool.Get().(*state)
	defer statePool.Put(st)
	status, body := s.cfg.Dialect.AppendError(st.out[:0], err, s.cfg.Clock.Now())
	st.out = body
	s.logFailure(ctx, err, status)
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.SetBytesKV(headerRetry, []byte("1"))
	}
	ctx.SetStatusCode(status)
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBody(body)
}

// logFailure logs a request answered status for err: the store's 503s
// and the server's own failures, not the client's mistakes.
func (s *Server) logFailure(ctx *fasthttp.RequestCtx, err error, status int) {
	switch {
	case err == ErrOverloaded: // counted, not logged: a log line per shed request would add to the overload
	case status == fasthttp.StatusServiceUnavailable:
		s.cfg.Logger.Warn("store unavailable", "request_id", ctx.ID(), "path", string(ctx.Path()), "err", err)
	case status >= 500:
		s.cfg.Logger.Error("request failed", "request_id", ctx.ID(), "path", string(ctx.Path()), "err", err)
	}
}

// Admin listener.

func (s *Server) serveAdmin(ctx *fasthttp.RequestCtx) {
	start := requestStart(ctx)
	route := routeNone
	defer func() { s.finish(ctx, route, start, recover()) }()
	if !s.authorized(ctx) {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="tokend-admin"`)
		adminJSON(ctx, fasthttp.StatusUnauthorized, map[string]any{"error": "unauthorized"})
		return
	}
	path := string(ctx.URI().PathOriginal())
	switch {
	case path == "/admin/sessions":
		route = routeSessions
		if s.method(ctx, fasthttp.MethodPost) {
			s.startSession(ctx)
		}
	case strings.HasPrefix(path, "/admin/subjects/"):
		route = routeSubject
		s.subject(ctx, strings.TrimPrefix(path, "/admin/subjects/"))
	case path == "/admin/introspect" && s.cfg.Introspector != nil:
		route = routeIntro
		if s.method(ctx, fasthttp.MethodPost) {
			s.introspect(ctx)
		}
	case path == "/admin/keys/reload" && s.cfg.ReloadKeys != nil:
		route = routeKeys
		if s.method(ctx, fasthttp.MethodPost) {
			s.reloadKeys(ctx)
		}
	case path == "/healthz":
		route = routeHealth
		if s.method(ctx, fasthttp.MethodGet) {
			adminJSON(ctx, fasthttp.StatusOK, map[string]any{"status": "ok"})
		}
	case path == "/readyz":
		route = routeReady
		if s.method(ctx, fasthttp.MethodGet) {
			err := s.cfg.Issuer.Ping(storeCtx)
			if err == nil && s.cfg.Ready != nil {
				err = s.cfg.Ready()
			}
			if err != nil {
				adminJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]any{"status": "unavailable", "error": err.Error()})
				return
			}
			adminJSON(ctx, fasthttp.StatusOK, map[string]any{"status": "ready"})
		}
	case path == "/metrics":
		route = routeMetrics
		if s.method(ctx, fasthttp.MethodGet) {
			s.prom(ctx)
		}
	case path == "/openapi.yaml" && s.cfg.OpenAPI != nil:
		route = routeOpenAPI
		if s.method(ctx, fasthttp.MethodGet) {
			ctx.SetContentType("application/yaml")
			ctx.SetBody(s.cfg.OpenAPI)
		}
	case path == "/debug/pprof/":
		// fasthttp's pprofhandler answers 404 to any path ending in "/", the index included.
		route = routePprof
		pprofIndex(ctx)
	case strings.HasPrefix(path, "/debug/pprof/"):
		route = routePprof // profiles of a live instance; the admin listener guards them
		pprofhandler.PprofHandler(ctx)
	default:
		s.fail(ctx, ErrNoRoute)
	}
}

func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	if s.cfg.AdminToken == "" {
		return true // only bound to loopback then: see cmd/tokend
	}
	got, ok := bytes.CutPrefix(ctx.Request.Header.Peek("Authorization"), []byte("Bearer "))
	return ok && subtle.ConstantTimeCompare(got, []byte(s.cfg.AdminToken)) == 1
}

func (s *Server) startSession(ctx *fasthttp.RequestCtx) {
	body, err := s.jsonBody(ctx)
	var req struct {
		Sub    *string `json:"sub"`
		Client string  `json:"client_id"`
		Scope  string  `json:"scope"`
		JKT    string  `json:"jkt"`
	}
	if err == nil {
		switch {
		case json.Unmarshal(body, &req) != nil || req.Sub == nil || strings.TrimSpace(*req.Sub) == "":
			err = ErrSubject
		default:
			err = checkGrant(req.Client, req.Scope, req.JKT)
		}
	}
	st := statePool.Get().(*state)
	defer statePool.Put(st)
	if err == nil {
		g := tokens.Grant{Client: req.Client, Scope: strings.Join(strings.Fields(req.Scope), " "), Key: req.JKT}
		err = s.cfg.Issuer.StartGrant(storeCtx, *req.Sub, g, &st.pair)
		switch {
		case errors.Is(err, tokens.ErrTooLarge):
			err = ErrGrantTooLarge
		case errors.Is(err, tokens.ErrInvalid):
			err = ErrSubject
		}
	}
	if err != nil {
		s.fail(ctx, err)
		return
	}
	s.ok(ctx, st)
}

// The admin API's refusals of a session's OAuth fields.
var (
	ErrClientID = fmt.Errorf("%w: client_id is not 1 to 255 bytes", ErrBadRequest)
	ErrScope    = fmt.Errorf("%w: scope is not space-separated scope tokens of at most 4096 bytes", ErrBadRequest)
	ErrJKT      = fmt.Errorf("%w: jkt is not an RFC 7638 SHA-256 thumbprint (43 characters of base64url)", ErrBadRequest)
	// ErrGrantTooLarge: the session's tokens, which carry its subject,
	// client and scope, would be too large to be presented back.
	ErrGrantTooLarge = fmt.Errorf("%w: sub, client_id and scope together make tokens over 8 KiB", ErrBadRequest)
)

// ScopeChar reports whether c may stand in a scope token (RFC 6749 §3.3:
// %x21 / %x23-5B / %x5D-7E).
func ScopeChar(c byte) bool { return 0x21 <= c && c <= 0x7e && c != '"' && c != '\\' }

// checkGrant checks what POST /admin/sessions may start a session with.
func checkGrant(client, scope, jkt string) error {
	if len(client) > 255 {
		return ErrClientID
	}
	if len(scope) > 4096 {
		return ErrScope
	}
	for i := range len(scope) {
		if c := scope[i]; c != ' ' && !ScopeChar(c) {
			return ErrScope
		}
	}
	if jkt != "" {
		if b, err := base64.RawURLEncoding.Strict().DecodeString(jkt); err != nil || len(b) != 32 {
			return ErrJKT
		}
	}
	return nil
}

// subject serves POST /admin/subjects/{sub}/revoke and DELETE
// /admin/subjects/{sub}. rest is the escaped path after /admin/subjects/.
func (s *Server) subject(ctx *fasthttp.RequestCtx, rest string) {
	esc, deleted := rest, true
	if e, ok := strings.CutSuffix(rest, "/revoke"); ok {
		esc, deleted = e, false
	}
	sub, err := url.PathUnescape(esc)
	if err != nil || sub == "" || strings.Contains(esc, "/") {
		s.fail(ctx, ErrNoRoute)
		return
	}
	want := fasthttp.MethodDelete
	if !deleted {
		want = fasthttp.MethodPost
	}
	if !s.method(ctx, want) {
		return
	}
	n, err := s.cfg.Issuer.RevokeSubject(storeCtx, sub, deleted)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	s.cfg.Logger.Info("subject revoked", "sessions", n, "deleted", deleted)
	adminJSON(ctx, fasthttp.StatusOK, map[string]any{"sub": sub, "revoked": n, "deleted": deleted})
}

// inactive is RFC 7662's whole answer for a token that is not active: no
// reason given, whatever it was.
var inactive = []byte(`{"active":false}`)

// Introspection is RFC 7662's answer for an active access token.
type Introspection struct {
	Active    bool   `json:"active"`
	Subject   string `json:"sub"`
	Session   string `json:"sid"`
	Expires   int64  `json:"exp"`
	IssuedAt  int64  `json:"iat"`
	Issuer    string `json:"iss,omitempty"`
	TokenType string `json:"token_type"` // DPoP for a bound token (RFC 9449 §6.2)
	ClientID  string `json:"client_id,omitempty"`
	Scope     string `json:"scope,omitempty"`
	// Confirmation is cnf with the jkt of a DPoP-bound token.
	Confirmation *tokens.Confirmation `json:"cnf,omitempty"`
}

// introspect serves POST /admin/introspect (RFC 7662): a form with token=…;
// the answer comes from the cached keys and the local denylist, with no
// store round trip unless the denylist must confirm a hit.
func (s *Server) introspect(ctx *fasthttp.RequestCtx) {
	if !bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte("application/x-www-form-urlencoded")) {
		adminJSON(ctx, fasthttp.StatusBadRequest, map[string]any{"error": "invalid_request",
			"error_description": "the body must be application/x-www-form-urlencoded"})
		return
	}
	token := ctx.PostArgs().Peek("token")
	if len(token) == 0 {
		adminJSON(ctx, fasthttp.StatusBadRequest, map[string]any{"error": "invalid_request",
			"error_description": "the token parameter is required"})
		return
	}
	var cl tokens.Claims
	err := s.cfg.Introspector.Verify(storeCtx, token, &cl)
	switch {
	case err == nil:
		in := Introspection{Active: true, Subject: cl.Subject, Session: cl.Session, Expires: cl.Expires, IssuedAt: cl.IssuedAt,
			Issuer: cl.Issuer, TokenType: "Bearer", ClientID: cl.ClientID, Scope: cl.Scope}
		if cl.Confirmation.JKT != "" {
			in.TokenType, in.Confirmation = "DPoP", &cl.Confirmation
		}
		adminJSON(ctx, fasthttp.StatusOK, in)
	case errors.Is(err, tokens.ErrMalformed), errors.Is(err, tokens.ErrInvalid),
		errors.Is(err, tokens.ErrExpired), errors.Is(err, tokens.ErrRevoked):
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentTypeBytes(contentJSON)
		ctx.SetBody(inactive)
	default: // the denylist could not confirm: no answer rather than a wrong one
		s.cfg.Logger.Warn("introspection unavailable", "err", err)
		ctx.Response.Header.SetBytesK(headerRetry, "1")
		adminJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]any{"error": "temporarily_unavailable"})
	}
}

// reloadKeys serves POST /admin/keys/reload, as SIGHUP: a bad file keeps
// the keys in force and says why.
func (s *Server) reloadKeys(ctx *fasthttp.RequestCtx) {
	kid, n, err := s.cfg.ReloadKeys()
	if err != nil {
		adminJSON(ctx, fasthttp.StatusConflict, map[string]any{"error": err.Error()})
		return
	}
	adminJSON(ctx, fasthttp.StatusOK, map[string]any{"status": "reloaded", "signing_kid": kid, "keys": n})
}

func adminJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, _ := json.Marshal(v)
	ctx.SetStatusCode(status)
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBody(b)
}

// slogPrinter routes fasthttp's own log lines to slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) {
	p.l.Warn(fmt.Sprintf(format, args...))
}
