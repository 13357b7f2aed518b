package server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/server/spring"
	"github.com/tokend/tokend/tokens"
)

// panicky is an Issuer whose Refresh panics: the server must answer 500 in
// the dialect's shape, log the request id, and keep serving.
type panicky struct{}

func (panicky) StartGrant(context.Context, string, tokens.Grant, *tokens.Pair) error { return nil }
func (panicky) Refresh(context.Context, []byte, []byte, *tokens.Pair) error {
	panic("boom")
}
func (panicky) Revoke(context.Context, []byte) error                     { return nil }
func (panicky) RevokeSubject(context.Context, string, bool) (int, error) { return 0, nil }
func (panicky) Ping(context.Context) error                               { return nil }

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPanicIs500AndServerKeepsRunning(t *testing.T) {
	var logs bytes.Buffer
	srv := server.New(server.Config{
		Dialect: spring.Dialect{}, Issuer: panicky{}, JWKS: func() []byte { return []byte(`{"keys":[]}`) },
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	pub, adm := listen(t), listen(t)
	go srv.Serve(pub, adm)
	defer srv.Shutdown(context.Background())
	url := "http://" + pub.Addr().String()
	for i := 0; i < 2; i++ {
		resp, err := http.Post(url+"/api/auth/refresh", "application/json", strings.NewReader(`{"refreshToken":"a.b.c"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 || !strings.Contains(string(body), `"status":500,"error":"Internal Server Error","message":"Internal server error"}`) {
			t.Fatalf("panic answered %d %s", resp.StatusCode, body)
		}
	}
	resp, err := http.Get(url + "/.well-known/jwks.json")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after panics: %v %v", resp, err)
	}
	if !strings.Contains(logs.String(), `"msg":"handler panicked","request_id":`) || !strings.Contains(logs.String(), "boom") {
		t.Fatalf("panic not logged with a request id: %s", logs.String())
	}
}

func TestFields(t *testing.T) {
	cases := []struct {
		body string
		want string // name=value pairs seen, joined by ;
		ok   bool
	}{
		{`{}`, ``, true},
		{` { "a" : 1 , "b":"x" } `, `a=1;b="x";`, true},
		{`{"a":{"b":[1,{"c":"}"}]},"d":null}`, `a={"b":[1,{"c":"}"}]};d=null;`, true},
		{`{"re\u0066reshToken":"t"}`, `refreshToken="t";`, true},
		{`{"a":"q\"}"}`, `a="q\"}";`, true},
		{`{"a":1}x`, ``, false},
		{`[1]`, ``, false},
		{`{"a":}`, ``, false},
		{``, ``, false},
	}
	for _, tc := range cases {
		var got strings.Builder
		err := server.Fields([]byte(tc.body), func(n, v []byte) { got.WriteString(string(n) + "=" + string(v) + ";") })
		if (err == nil) != tc.ok || got.String() != tc.want {
			t.Errorf("Fields(%s) = %q, %v; want %q, ok=%v", tc.body, got.String(), err, tc.want, tc.ok)
		}
	}
}

// panicAll is an Issuer and an OAuth2 endpoint whose every refresh and
// revoke panics.
type panicAll struct{ panicky }

func (panicAll) Revoke(context.Context, []byte) error { panic("boom") }

type panicOAuth2 struct{}

func (panicOAuth2) Token(*fasthttp.RequestCtx, *tokens.Pair) error { panic("boom") }
func (panicOAuth2) Revoke(*fasthttp.RequestCtx) error              { panic("boom") }
func (panicOAuth2) Metadata(*fasthttp.RequestCtx)                  {}
func (panicOAuth2) Fail(ctx *fasthttp.RequestCtx, err error)       { ctx.SetStatusCode(500) }

// inflight reads the tokend_requests_in_flight gauge.
func inflight(t *testing.T, m *server.Metrics) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tokend_requests_in_flight" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no tokend_requests_in_flight")
	return 0
}

// TestPanicReleasesInflightSlot: a panic in any handler that holds an
// in-flight slot answers 500 and gives the slot back; with MaxInflight 2,
// more panics than slots leave every endpoint serving (not 503).
func TestPanicReleasesInflightSlot(t *testing.T) {
	for _, path := range []string{"/api/auth/refresh", "/api/auth/revoke", "/oauth2/token", "/oauth2/revoke"} {
		t.Run(path, func(t *testing.T) {
			m := server.NewMetrics()
			srv := server.New(server.Config{
				Dialect: spring.Dialect{}, Issuer: panicAll{}, OAuth2: panicOAuth2{}, Metrics: m, MaxInflight: 2,
				JWKS: func() []byte { return nil }, Logger: slog.New(slog.DiscardHandler),
			})
			h := srv.PublicHandler()
			for i := range 4 {
				var ctx fasthttp.RequestCtx
				ctx.Request.Header.SetMethod("POST")
				ctx.Request.SetRequestURI(path)
				ctx.Request.Header.SetContentType("application/json")
				ctx.Request.SetBodyString(`{"refreshToken":"a.b.c"}`)
				h(&ctx)
				if got := ctx.Response.StatusCode(); got != 500 {
					t.Fatalf("request %d: %d %s; want the panic's 500", i, got, ctx.Response.Body())
				}
				if n := inflight(t, m); n != 0 {
					t.Fatalf("after panic %d: %v requests in flight; want 0", i, n)
				}
			}
		})
	}
}
