package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/goccy/go-json"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"tokend/server"
	"tokend/server/spring"
	"tokend/tokens"
	"tokend/tokens/session"
	"tokend/tokens/session/redistest"
)

const secret = "bench-secret-0123456789abcdef-0123456789"

// stack is tokend wired as cmd/tokend wires it, on a given store.
type stack struct {
	issuer *tokens.Issuer
	srv    *server.Server
}

func newStack(b testing.TB, store session.Store) *stack {
	ks, err := tokens.HMACKeySet([]byte(secret), "HS256")
	if err != nil {
		b.Fatal(err)
	}
	codec := tokens.NewCodec(ks, "tokend", tokens.SystemClock)
	is := tokens.NewIssuer(codec, tokens.JWTRefresh{Codec: codec}, store, tokens.Config{
		AccessTTL: 30 * time.Minute, RefreshTTL: 720 * time.Hour, SessionMax: 2160 * time.Hour, Grace: 10 * time.Second,
	})
	srv := server.New(server.Config{Dialect: spring.Dialect{}, Issuer: is, JWKS: func() []byte { return ks.JWKS() },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &stack{issuer: is, srv: srv}
}

func (s *stack) login(b testing.TB) []byte {
	var p tokens.Pair
	if err := s.issuer.Start(context.Background(), "bench-user", &p); err != nil {
		b.Fatal(err)
	}
	return append([]byte(nil), p.Refresh...)
}

func memoryStore(b testing.TB) session.Store {
	m := session.NewMemory(time.Minute)
	b.Cleanup(m.Close)
	return m
}

func redisStore(b testing.TB) session.Store {
	srv := redistest.Start(b)
	r, err := session.DialRedis([]string{srv.Addr}, "", time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	return r
}

// newestToken pulls the refresh token out of a spring success body.
func newestToken(b testing.TB, body []byte) []byte {
	var r struct {
		Result struct {
			RefreshToken string `json:"refreshToken"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Result.RefreshToken == "" {
		b.Fatalf("not a success body: %s", body)
	}
	return []byte(r.Result.RefreshToken)
}

// benchRefreshHTTP sends refresh requests through a fasthttp client and
// server over an in-memory listener, each with the newest refresh token.
func benchRefreshHTTP(b *testing.B, store session.Store) {
	s := newStack(b, store)
	ln := fasthttputil.NewInmemoryListener()
	fs := &fasthttp.Server{Handler: s.srv.PublicHandler()}
	go fs.Serve(ln)
	defer ln.Close()
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	tok := s.login(b)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://tokend/api/auth/refresh")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	var body []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body = append(append(append(body[:0], `{"refreshToken":"`...), tok...), `"}`...)
		req.SetBodyRaw(body)
		if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("refresh: %v %d %s", err, resp.StatusCode(), resp.Body())
		}
		tok = newestToken(b, resp.Body())
	}
}

func BenchmarkRefreshHTTPMemory(b *testing.B) { benchRefreshHTTP(b, memoryStore(b)) }
func BenchmarkRefreshHTTPRedis(b *testing.B)  { benchRefreshHTTP(b, redisStore(b)) }

// handlerRefresh sends one refresh with tok straight to handler h, reusing
// ctx and body, and fails unless it answers 200.
func handlerRefresh(tb testing.TB, h fasthttp.RequestHandler, ctx *fasthttp.RequestCtx, body *[]byte, tok []byte) {
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.SetRequestURI("/api/auth/refresh")
	ctx.Request.Header.SetContentType("application/json")
	*body = append(append(append((*body)[:0], `{"refreshToken":"`...), tok...), `"}`...)
	ctx.Request.SetBodyRaw(*body)
	h(ctx)
	if ctx.Response.StatusCode() != 200 {
		tb.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

// BenchmarkRefreshHandler is the handler alone: no sockets, no client.
func BenchmarkRefreshHandler(b *testing.B) {
	s := newStack(b, memoryStore(b))
	h := s.srv.PublicHandler()
	tok := s.login(b)
	var ctx fasthttp.RequestCtx
	var body []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		handlerRefresh(b, h, &ctx, &body, tok)
		tok = newestToken(b, ctx.Response.Body())
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

// BenchmarkHS256 signs and verifies one access token through tokend's codec,
// beside the crypto/hmac floor over the same bytes.
func BenchmarkHS256(b *testing.B) {
	ks, _ := tokens.HMACKeySet([]byte(secret), "HS256")
	codec := tokens.NewCodec(ks, "tokend", tokens.SystemClock)
	now := time.Now()
	cl := tokens.Claims{Issuer: "tokend", Subject: "7f36a89d-1234-4567-8901-234567890abc", Session: "kw-pkqvf8FGCBXF1UAqlyg", Gen: 7,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(time.Hour).Unix()}
	tok, _ := codec.AppendToken(nil, tokens.Access, &cl)
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for i := 0; i < b.N; i++ {
			buf, _ = codec.AppendToken(buf[:0], tokens.Access, &cl)
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		var out tokens.Claims
		for i := 0; i < b.N; i++ {
			if err := codec.Parse(tok, tokens.Access, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify-general", func(b *testing.B) {
		b.ReportAllocs()
		var out tokens.Claims
		for i := 0; i < b.N; i++ {
			if err := codec.ParseGeneral(tok, tokens.Access, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor-crypto-hmac", func(b *testing.B) {
		b.ReportAllocs()
		input := tok[:len(tok)-44]
		for i := 0; i < b.N; i++ {
			m := hmac.New(sha256.New, []byte(secret))
			m.Write(input)
			m.Sum(nil)
		}
	})
}
