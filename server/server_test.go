package server_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/server/spring"
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
func (panicOAuth2) MetadataPath() string                           { return "" }
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

// gated is an Issuer whose Refresh of the token "slow" waits for release
// (a store call in flight), while any other token is answered at once.
type gated struct {
	panicky
	entered chan struct{}
	release chan struct{}
}

func (g gated) Refresh(_ context.Context, refresh, _ []byte, p *tokens.Pair) error {
	if string(refresh) == "slow" {
		g.entered <- struct{}{}
		<-g.release
	}
	p.Access, p.Refresh = []byte("at-"+string(refresh)), []byte("rt-"+string(refresh))
	return nil
}

func refreshRequest(token string) string {
	body := `{"refreshToken":"` + token + `"}`
	return "POST /api/auth/refresh HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// readAnswer reads one HTTP answer from br within d.
func readAnswer(t *testing.T, c net.Conn, br *bufio.Reader, d time.Duration) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// TestDrainKeepsPipelinedAnswers: a refresh that committed is answered
// even when a pipelined request waits behind it and a drain begins
// meanwhile (fasthttp holds answers back while another request is
// buffered, and a drain used to close the connection without sending them).
func TestDrainKeepsPipelinedAnswers(t *testing.T) {
	start := func(t *testing.T) (gated, *server.Server, net.Conn, *bufio.Reader, net.Listener) {
		g := gated{entered: make(chan struct{}, 1), release: make(chan struct{})}
		srv := server.New(server.Config{Dialect: spring.Dialect{}, Issuer: g, JWKS: func() []byte { return []byte(`{"keys":[]}`) },
			Logger: slog.New(slog.DiscardHandler)})
		pub, adm := listen(t), listen(t)
		go srv.Serve(pub, adm)
		c, err := net.Dial("tcp", pub.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return g, srv, c, bufio.NewReader(c), pub
	}
	// drain starts a shutdown and waits until the listener refuses
	// connections (the drain has begun).
	drain := func(t *testing.T, srv *server.Server, pub net.Listener) chan error {
		done := make(chan error, 1)
		go func() { done <- srv.Shutdown(context.Background()) }()
		for range 500 {
			c, err := net.Dial("tcp", pub.Addr().String())
			if err != nil {
				return done
			}
			c.Close()
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the listener still accepts after 5 s of shutdown")
		return done
	}
	t.Run("refresh then GET, SIGTERM during the refresh", func(t *testing.T) {
		g, srv, c, br, pub := start(t)
		if _, err := io.WriteString(c, refreshRequest("slow")+"GET /.well-known/jwks.json HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		<-g.entered
		done := drain(t, srv, pub)
		close(g.release)
		resp, body := readAnswer(t, c, br, 5*time.Second)
		if resp.StatusCode != 200 || !strings.Contains(body, "rt-slow") {
			t.Fatalf("refresh answered %d %s", resp.StatusCode, body)
		}
		if !resp.Close {
			t.Fatalf("answer during a drain without Connection: close: %v", resp.Header)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("refresh then refresh, the first answered before the second ends", func(t *testing.T) {
		g, srv, c, br, pub := start(t)
		if _, err := io.WriteString(c, refreshRequest("fast")+refreshRequest("slow")); err != nil {
			t.Fatal(err)
		}
		<-g.entered
		// the first rotation committed: its answer is on the wire now, not
		// held back until the second ends (when a drain may have begun)
		resp, body := readAnswer(t, c, br, 5*time.Second)
		if resp.StatusCode != 200 || !strings.Contains(body, "rt-fast") {
			t.Fatalf("first refresh answered %d %s", resp.StatusCode, body)
		}
		done := drain(t, srv, pub)
		close(g.release)
		resp, body = readAnswer(t, c, br, 5*time.Second)
		if resp.StatusCode != 200 || !strings.Contains(body, "rt-slow") || !resp.Close {
			t.Fatalf("second refresh answered %d %s %v", resp.StatusCode, body, resp.Header)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
