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
