package tokens_test

import (
	"net/http"
	"net/http/httptest"
	"time"

	core "github.com/tokend/tokend/internal/tokens"
)

// miniTokend is tokend in miniature for the examples: its JWKS URL, and
// logins whose access tokens its codec mints.
type miniTokend struct {
	Issuer, JWKS string
	codec        *core.Codec
	srv          *httptest.Server
}

func startTokend() *miniTokend {
	keys, err := core.EphemeralKeySet()
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(keys.JWKS()) // tokend serves this at /.well-known/jwks.json
	}))
	const iss = "https://auth.example"
	return &miniTokend{Issuer: iss, JWKS: srv.URL + "/.well-known/jwks.json", codec: core.NewCodec(keys, iss, core.SystemClock), srv: srv}
}

// Login returns an access token of a new session of sub.
func (m *miniTokend) Login(sub string) string {
	now := time.Now()
	token, err := m.codec.AppendToken(nil, core.Access, &core.Claims{Issuer: m.Issuer, Subject: sub, Session: "s-" + sub,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(time.Minute).Unix()})
	if err != nil {
		panic(err)
	}
	return string(token)
}

func (m *miniTokend) Close() { m.srv.Close() }
