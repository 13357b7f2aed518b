package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// TestRefresh speaks HTTP to the typical stack on a real listener, on each
// store: a refresh rotates, a used refresh token presented again is reuse
// and ends the session, a DPoP refresh binds the session, a replayed proof
// is refused without burning the session.
func TestRefresh(t *testing.T) {
	redisAddr := startRedis(t)
	for _, tc := range []struct{ store, addr string }{{"memory", ""}, {"redis", redisAddr}} {
		t.Run(tc.store, func(t *testing.T) {
			base := serve(t, config{storeKind: tc.store, redisAddr: tc.addr, alg: "HS256", clients: "loadgen"})
			c := &client{t: t, base: base}
			key := newProverKey(t)
			other := newProverKey(t)
			htu := base + "/oauth2/token"
			var r0, r1, r2 string // refresh tokens of the spring session, oldest first
			var d0, d1 string     // of the DPoP session
			var replayed string   // a proof used once already
			steps := []struct {
				name string
				do   func() (status int, body string)
				want int
			}{
				{"login", func() (int, string) { return c.spring("/admin/sessions", `{"sub":"alice"}`, &r0) }, 200},
				{"refresh rotates", func() (int, string) { return c.spring("/api/auth/refresh", refreshBody(r0), &r1) }, 200},
				{"the new token refreshes", func() (int, string) { return c.spring("/api/auth/refresh", refreshBody(r1), &r2) }, 200},
				{"the used token again is reuse", func() (int, string) { return c.spring("/api/auth/refresh", refreshBody(r0), nil) }, 401},
				{"reuse ended the session", func() (int, string) { return c.spring("/api/auth/refresh", refreshBody(r2), nil) }, 401},
				{"an access token is not a refresh token", func() (int, string) {
					st, body := c.post("/admin/sessions", "application/json", `{"sub":"carol"}`, "")
					access := field(body, "accessToken")
					if st != 200 || access == "" {
						return st, body
					}
					return c.spring("/api/auth/refresh", refreshBody(access), nil)
				}, 401},
				{"dpop login", func() (int, string) { return c.spring("/admin/sessions", `{"sub":"bob","client_id":"loadgen"}`, &d0) }, 200},
				{"oauth2 refresh with a proof", func() (int, string) {
					replayed = proof(t, key, htu)
					return c.oauth2(d0, replayed, &d1, "DPoP")
				}, 200},
				{"a replayed proof is refused", func() (int, string) { return c.oauth2(d1, replayed, nil, "") }, 400},
				{"another key's proof is refused", func() (int, string) { return c.oauth2(d1, proof(t, other, htu), nil, "") }, 400},
				{"no proof on a bound session is refused", func() (int, string) { return c.oauth2(d1, "", nil, "") }, 400},
				{"the dialect endpoint refuses a bound session", func() (int, string) { return c.spring("/api/auth/refresh", refreshBody(d1), nil) }, 401},
				{"a proof for another URL is refused", func() (int, string) { return c.oauth2(d1, proof(t, key, base+"/elsewhere"), nil, "") }, 400},
				{"none of those burned the session", func() (int, string) { return c.oauth2(d1, proof(t, key, htu), nil, "DPoP") }, 200},
				{"oauth2 without a proof", func() (int, string) {
					var p0 string
					c.spring("/admin/sessions", `{"sub":"dave","client_id":"loadgen"}`, &p0)
					return c.oauth2(p0, "", nil, "Bearer")
				}, 200},
			}
			for _, s := range steps {
				status, body := s.do()
				if status != s.want {
					t.Fatalf("%s: status %d, want %d: %s", s.name, status, s.want, body)
				}
			}
		})
	}
}

type client struct {
	t    *testing.T
	base string
}

func (c *client) post(path, contentType, body, dpop string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if dpop != "" {
		req.Header.Set("DPoP", dpop)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// spring posts a JSON body and, on 200, keeps the new refresh token in next.
func (c *client) spring(path, body string, next *string) (int, string) {
	st, b := c.post(path, "application/json", body, "")
	if st == 200 && next != nil {
		if *next = field(b, "refreshToken"); *next == "" {
			c.t.Fatalf("%s: no refreshToken in %s", path, b)
		}
	}
	return st, b
}

// oauth2 refreshes on /oauth2/token and, on 200, checks the token type
// (unless tokenType is empty) and keeps the new refresh token in next.
func (c *client) oauth2(refresh, dpop string, next *string, tokenType string) (int, string) {
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"loadgen"}, "refresh_token": {refresh}}
	st, b := c.post("/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), dpop)
	if st == 200 {
		if got := field(b, "token_type"); tokenType != "" && got != tokenType {
			c.t.Fatalf("token_type %q, want %q: %s", got, tokenType, b)
		}
		if next != nil {
			*next = field(b, "refresh_token")
		}
	}
	return st, b
}

func refreshBody(token string) string { return fmt.Sprintf(`{"refreshToken":%q}`, token) }

// field is a string field of a JSON object or of its "result".
func field(body, name string) string {
	var v struct {
		Result map[string]any `json:"result"`
	}
	var flat map[string]any
	_ = json.Unmarshal([]byte(body), &v)
	_ = json.Unmarshal([]byte(body), &flat)
	if s, ok := v.Result[name].(string); ok {
		return s
	}
	s, _ := flat[name].(string)
	return s
}

func newProverKey(t testing.TB) jwk.Key {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// proof is an ES256 DPoP proof by key for POST htu, issued now.
func proof(t testing.TB, key jwk.Key, htu string) string {
	t.Helper()
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.TypeKey, "dpop+jwt"); err != nil {
		t.Fatal(err)
	}
	if err := h.Set(jws.JWKKey, pub); err != nil {
		t.Fatal(err)
	}
	claims, _ := json.Marshal(map[string]any{"jti": newID(), "htm": "POST", "htu": htu, "iat": time.Now().Unix()})
	out, err := jws.Sign(claims, jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// serve starts the service on a free port of 127.0.0.1, stopped when the
// test ends, and returns its base URL.
func serve(t *testing.T, c config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.publicURL = "http://" + ln.Addr().String()
	s, err := newService(c, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(s)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c.publicURL
}

// startRedis starts a redis-server of the test's own on a free port (never
// the shared 6379), stopped when the test ends.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: run `make redis-server`, or `apt-get install redis-server`")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
	}
	t.Fatalf("redis-server did not listen on %s: %s", addr, logs.String())
	return ""
}
