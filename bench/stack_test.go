package bench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/dpop"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/server/aspnet"
	"github.com/tokend/tokend/server/oauth2"
	"github.com/tokend/tokend/server/spring"
)

const (
	secret       = "bench-secret-0123456789abcdef-0123456789"
	aspnetSecret = "bench-secret-0123456789abcdef-0123456789abcdef-0123456789abcdef-0123"
)

// stack is tokend wired as cmd/tokend wires it (the denylist included), on
// a given store, speaking one dialect: spring (HS256, JWT refresh tokens) or
// aspnet (HS512, opaque refresh tokens and the access token in every
// request).
type stack struct {
	issuer  *tokens.Issuer
	handler fasthttp.RequestHandler // the public handler, taken once: a method value per call would allocate
	aspnet  bool
}

func newStack(b testing.TB, store session.Store, dialect string) *stack {
	alg, key := "HS256", secret
	if dialect == "aspnet" {
		alg, key = "HS512", aspnetSecret
	}
	ks, err := tokens.HMACKeySet([]byte(key), alg)
	if err != nil {
		b.Fatal(err)
	}
	codec := tokens.NewCodec(ks, "tokend", tokens.SystemClock)
	cfg := tokens.Config{AccessTTL: 30 * time.Minute, RefreshTTL: 720 * time.Hour, SessionMax: 2160 * time.Hour, Grace: 10 * time.Second}
	var (
		d       server.Dialect       = spring.Dialect{}
		refresh tokens.RefreshFormat = tokens.JWTRefresh{Codec: codec}
	)
	if dialect == "aspnet" {
		d, refresh, cfg.NameID = aspnet.Dialect{}, tokens.Opaque{Codec: codec}, true
	}
	metrics := server.NewMetrics() // as cmd/tokend wires it: store calls timed
	is := tokens.NewIssuer(codec, refresh, metrics.Store(store), cfg)
	if feed, ok := store.(session.Feed); ok {
		is.SetDenylist(following(b, feed)) // as cmd/tokend runs by default: every refresh consults it
	}
	proofs, err := dpop.NewVerifier(dpop.Config{})
	if err != nil {
		b.Fatal(err)
	}
	endpoint, err := oauth2.New(oauth2.Config{Issuer: is, PublicURL: publicURL, Clients: []string{"app"}, DPoP: proofs})
	if err != nil {
		b.Fatal(err)
	}
	srv := server.New(server.Config{Dialect: d, Issuer: is, JWKS: func() []byte { return ks.JWKS() },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics, OAuth2: endpoint})
	return &stack{issuer: is, handler: srv.PublicHandler(), aspnet: dialect == "aspnet"}
}

// pair is the client's current tokens.
type pair struct{ access, refresh []byte }

func (s *stack) login(b testing.TB) pair {
	var p tokens.Pair
	if err := s.issuer.Start(context.Background(), "bench-user", &p); err != nil {
		b.Fatal(err)
	}
	return pair{append([]byte(nil), p.Access...), append([]byte(nil), p.Refresh...)}
}

// appendRequest appends the refresh request body for the client's tokens.
func (s *stack) appendRequest(dst []byte, p pair) []byte {
	if !s.aspnet {
		return append(append(append(dst, `{"refreshToken":"`...), p.refresh...), `"}`...)
	}
	dst = append(append(append(dst, `{"Token":"`...), p.access...), `","RefreshToken":"`...)
	return append(append(dst, p.refresh...), `"}`...)
}

// next takes the new tokens out of a success body into p, reusing its
// buffers: sliced out, not decoded, so the allocation test counts the
// server's allocations only.
func (s *stack) next(b testing.TB, body []byte, p *pair) {
	accessKey, refreshKey := `"accessToken":"`, `"refreshToken":"`
	if s.aspnet {
		accessKey, refreshKey = `"Token":"`, `"RefreshToken":"`
	}
	a, r := stringField(body, accessKey), stringField(body, refreshKey)
	if a == nil || r == nil {
		b.Fatalf("not a success body: %s", body)
	}
	p.access, p.refresh = append(p.access[:0], a...), append(p.refresh[:0], r...)
}

// stringField returns the contents of the string after key in body.
func stringField(body []byte, key string) []byte {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return nil
	}
	v := body[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return nil
	}
	return v[:j]
}

func memoryStore(b testing.TB) session.Store {
	m := session.NewMemory(time.Minute)
	b.Cleanup(m.Close)
	return m
}

func redisStore(b testing.TB) session.Store {
	_, r := redisServer(b)
	return r
}

// redisServer starts a redis-server and a store on it; the server comes
// back too, so that a benchmark can count the commands that reached it.
func redisServer(b testing.TB) (*redistest.Server, *session.Redis) {
	srv := redistest.Start(b)
	r, err := session.DialRedis([]string{srv.Addr}, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	return srv, r
}

// inMemory serves the stack's handler on fasthttp's in-memory listener
// until the benchmark ends, and returns a client of it.
func (s *stack) inMemory(b testing.TB) *fasthttp.Client {
	ln := fasthttputil.NewInmemoryListener()
	fs := &fasthttp.Server{Handler: s.handler}
	go fs.Serve(ln)
	b.Cleanup(func() { ln.Close() })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

// benchRefreshHTTP sends refresh requests through a fasthttp client and
// server over an in-memory listener, each with the newest tokens.
func benchRefreshHTTP(b *testing.B, store session.Store, dialect string) {
	s := newStack(b, store, dialect)
	c := s.inMemory(b)
	p := s.login(b)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://tokend/api/auth/refresh")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	var body []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body = s.appendRequest(body[:0], p)
		req.SetBodyRaw(body)
		if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("refresh: %v %d %s", err, resp.StatusCode(), resp.Body())
		}
		s.next(b, resp.Body(), &p)
	}
}

func BenchmarkRefreshHTTPMemory(b *testing.B)       { benchRefreshHTTP(b, memoryStore(b), "spring") }
func BenchmarkRefreshHTTPRedis(b *testing.B)        { benchRefreshHTTP(b, redisStore(b), "spring") }
func BenchmarkRefreshHTTPAspnetMemory(b *testing.B) { benchRefreshHTTP(b, memoryStore(b), "aspnet") }
func BenchmarkRefreshHTTPAspnetRedis(b *testing.B)  { benchRefreshHTTP(b, redisStore(b), "aspnet") }

// handlerRefresh sends one refresh with the client's tokens straight to the
// stack's handler, reusing ctx and body, takes the new tokens into p, and
// fails unless it answers 200.
func (s *stack) handlerRefresh(tb testing.TB, ctx *fasthttp.RequestCtx, body *[]byte, p *pair) {
	*body = s.appendRequest((*body)[:0], *p)
	post(ctx, "/api/auth/refresh", "application/json", *body)
	s.handler(ctx)
	if ctx.Response.StatusCode() != 200 {
		tb.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	s.next(tb, ctx.Response.Body(), p)
}

// post makes ctx a fresh POST of body to uri, as a handler receives it.
func post(ctx *fasthttp.RequestCtx, uri, contentType string, body []byte) {
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetContentType(contentType)
	ctx.Request.SetBodyRaw(body)
}

// BenchmarkRefreshHandler is the handler alone: no sockets, no client.
func BenchmarkRefreshHandler(b *testing.B) {
	for _, dialect := range []string{"spring", "aspnet"} {
		b.Run(dialect, func(b *testing.B) {
			s := newStack(b, memoryStore(b), dialect)
			p := s.login(b)
			var ctx fasthttp.RequestCtx
			var body []byte
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.handlerRefresh(b, &ctx, &body, &p)
			}
		})
	}
}

// BenchmarkRotate is one store rotation.
func BenchmarkRotate(b *testing.B) {
	for _, tc := range []struct {
		name  string
		store func(testing.TB) session.Store
	}{{"memory", memoryStore}, {"redis", redisStore}} {
		b.Run(tc.name, func(b *testing.B) {
			st := tc.store(b)
			now := time.Now()
			s := session.Session{ID: "bench", Subject: "u", Created: now, Rotated: now, Expires: now.Add(time.Hour)}
			if err := st.Create(context.Background(), s, time.Hour); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := st.Rotate(context.Background(), session.Step{ID: "bench", Gen: int64(i), Now: now, Idle: time.Hour}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
