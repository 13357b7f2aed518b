package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startRedis starts a redis-server of its own on a free port (never the
// machine's usual one), without persistence, and stops it when t ends.
func startRedis(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (make test installs it)")
	}
	addr := free(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitUntil(t, "redis-server answering PING", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		b := make([]byte, 7)
		_, err = c.Write([]byte("PING\r\n"))
		n, _ := io.ReadFull(c, b)
		return err == nil && string(b[:n]) == "+PONG\r\n"
	})
	return addr
}

// free returns a local address nothing listens on (yet).
func free(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// tokend is a real tokend process, built from this repository.
type tokend struct{ public, admin, keys, bin string }

// tokendIssuer is the test tokend's issuer, its TOKEND_PUBLIC_URL: the iss
// of its tokens (RFC 9068 §2.2).
const tokendIssuer = "https://tokend.example.test"

func startTokend(t *testing.T, redisAddr string) *tokend {
	t.Helper()
	dir := t.TempDir()
	td := &tokend{bin: filepath.Join(dir, "tokend"), keys: filepath.Join(dir, "keys.jwks")}
	build := exec.Command("go", "build", "-o", td.bin, "./cmd/tokend")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building tokend: %v\n%s", err, out)
	}
	td.run(t, "keys", "new", "--alg", "ES256", "--kid", "first", td.keys)
	pub, adm := free(t), free(t)
	td.public, td.admin = "http://"+pub, "http://"+adm
	cmd := exec.Command(td.bin)
	cmd.Env = append(os.Environ(), "TOKEND_ADDR="+pub, "TOKEND_ADMIN_ADDR="+adm, "TOKEND_KEYS_FILE="+td.keys,
		"TOKEND_STORE=redis", "TOKEND_REDIS_ADDR="+redisAddr, "TOKEND_PUBLIC_URL="+tokendIssuer)
	logs := &strings.Builder{}
	cmd.Stderr = &lockedWriter{w: logs}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("tokend exited: %v", err)
		}
		if t.Failed() {
			t.Logf("tokend log:\n%s", cmd.Stderr.(*lockedWriter).String())
		}
	})
	waitUntil(t, "tokend ready", func() bool { s, _ := call(t, "GET", td.admin+"/readyz", "", ""); return s == 200 })
	return td
}

func (td *tokend) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(td.bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tokend %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// login starts a session on tokend and returns its access token.
func (td *tokend) login(t *testing.T, sub string) string {
	t.Helper()
	status, body := call(t, "POST", td.admin+"/admin/sessions", "", `{"sub":"`+sub+`"}`)
	var r struct {
		Result struct{ AccessToken string } `json:"result"`
	}
	if json.Unmarshal([]byte(body), &r); status != 200 || r.Result.AccessToken == "" {
		t.Fatalf("login: %d %s", status, body)
	}
	return r.Result.AccessToken
}

// TestResourceServer: the example accepts tokend's access tokens, follows a
// key rotation through the JWKS URL, and refuses a revoked session's tokens
// at once through the denylist.
func TestResourceServer(t *testing.T) {
	redis := startRedis(t)
	td := startTokend(t, redis)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := newHandler(ctx, config{
		JWKS: td.public + "/.well-known/jwks.json", Issuer: tokendIssuer, Redis: redis,
		Every: time.Hour, MinWait: 50 * time.Millisecond, Capacity: 1000, Window: 30 * time.Minute,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(h)
	defer api.Close()

	alice := td.login(t, "alice")
	status, body := call(t, "GET", api.URL+"/me", alice, "")
	var me struct{ Sub, Sid string }
	if json.Unmarshal([]byte(body), &me); status != 200 || me.Sub != "alice" || me.Sid == "" {
		t.Fatalf("GET /me with alice's token: %d %s", status, body)
	}

	// RFC 9068 §4: an API with an audience refuses tokens for none or
	// another (the dialect's tokens carry no aud)
	strict, err := newHandler(ctx, config{
		JWKS: td.public + "/.well-known/jwks.json", Issuer: tokendIssuer, Audience: "https://orders.example.test",
		Every: time.Hour, MinWait: 50 * time.Millisecond,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	strictAPI := httptest.NewServer(strict)
	defer strictAPI.Close()
	if status, body := call(t, "GET", strictAPI.URL+"/me", alice, ""); status != 401 {
		t.Fatalf("a token without aud at an API with an audience: %d %s; want 401", status, body)
	}

	for name, token := range map[string]string{"no token": "", "not a token": "x.y.z", "tampered": tamper(alice)} {
		status, body := call(t, "GET", api.URL+"/me", token, "")
		if status != 401 {
			t.Errorf("%s: %d %s; want 401", name, status, body)
		}
	}

	// a key rotation on tokend: the example fetches the JWKS again when a
	// token names the new key
	td.run(t, "keys", "add", td.keys, "--alg", "EdDSA", "--kid", "second", "--sign")
	if status, body := call(t, "POST", td.admin+"/admin/keys/reload", "", ""); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	bob := td.login(t, "bob")
	waitUntil(t, "a token of the new key accepted", func() bool { s, _ := call(t, "GET", api.URL+"/me", bob, ""); return s == 200 })
	if status, _ := call(t, "GET", api.URL+"/me", alice, ""); status != 200 {
		t.Fatalf("a token of the old key after the rotation: %d", status)
	}

	// logout everywhere: alice's access token stops working before it expires
	if status, body := call(t, "POST", td.admin+"/admin/subjects/alice/revoke", "", ""); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	waitUntil(t, "a revoked session's token refused", func() bool { s, _ := call(t, "GET", api.URL+"/me", alice, ""); return s == 401 })
	if status, _ := call(t, "GET", api.URL+"/me", bob, ""); status != 200 {
		t.Fatalf("bob's token after alice's revocation: %d", status)
	}
}

// TestResourceServerDPoP: a DPoP-bound token (RFC 9449 §7) is accepted
// with a proof by its key for this request, once, and never as Bearer.
func TestResourceServerDPoP(t *testing.T) {
	redis := startRedis(t)
	td := startTokend(t, redis)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const public = "https://api.example.test"
	h, err := newHandler(ctx, config{
		JWKS: td.public + "/.well-known/jwks.json", Issuer: tokendIssuer, Every: time.Hour, MinWait: time.Second,
		Capacity: 1000, Window: 30 * time.Minute, PublicURL: public,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(h)
	defer api.Close()
	// the client's keys, made and used with tokend's dpop-proof command as a
	// client would with its own library
	device, thief := filepath.Join(t.TempDir(), "device.jwk"), filepath.Join(t.TempDir(), "thief.jwk")
	jkt := td.run(t, "dpop-proof", "new", device)
	td.run(t, "dpop-proof", "new", thief)
	status, body := call(t, "POST", td.admin+"/admin/sessions", "", `{"sub":"alice","jkt":"`+jkt+`"}`)
	var r struct {
		Result struct{ AccessToken string } `json:"result"`
	}
	if json.Unmarshal([]byte(body), &r); status != 200 || r.Result.AccessToken == "" {
		t.Fatalf("login: %d %s", status, body)
	}
	token := r.Result.AccessToken
	proof := func(key, method, url string) string {
		return td.run(t, "dpop-proof", key, "--method", method, "--url", url, "--access-token", token)
	}
	get := func(auth string, proofs ...string) int {
		req, _ := http.NewRequest("GET", api.URL+"/me", nil)
		req.Header.Set("Authorization", auth)
		for _, p := range proofs {
			req.Header.Add("DPoP", p)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 401 && len(resp.Header.Values("WWW-Authenticate")) != 2 {
			t.Errorf("401 without both challenges: %v", resp.Header)
		}
		return resp.StatusCode
	}
	good := proof(device, "GET", public+"/me")
	if s := get("DPoP "+token, good); s != 200 {
		t.Fatalf("a bound token with its proof: %d", s)
	}
	for name, s := range map[string]int{
		"the same proof again":      get("DPoP "+token, good),
		"as a Bearer token":         get("Bearer " + token),
		"no proof":                  get("DPoP " + token),
		"two proofs":                get("DPoP "+token, proof(device, "GET", public+"/me"), proof(device, "GET", public+"/me")),
		"another key":               get("DPoP "+token, proof(thief, "GET", public+"/me")),
		"another URL":               get("DPoP "+token, proof(device, "GET", public+"/orders")),
		"another method":            get("DPoP "+token, proof(device, "POST", public+"/me")),
		"the test server's own URL": get("DPoP "+token, proof(device, "GET", api.URL+"/me")),
	} {
		if s != 401 {
			t.Errorf("%s: %d; want 401", name, s)
		}
	}
	if s := get("DPoP "+token, proof(device, "GET", public+"/me")); s != 200 {
		t.Fatalf("a fresh proof: %d", s)
	}
}

func call(t *testing.T, method, url, bearer, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("%s %s: 401 without WWW-Authenticate", method, url)
	}
	return resp.StatusCode, string(b)
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// lockedWriter lets the process write its log while the test reads it.
type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// tamper changes one character of a token's signature to another that
// carries different bits (the third from the end: the last ones may carry
// padding bits a decoder ignores), so the result never verifies.
func tamper(token string) string {
	i := len(token) - 3
	c := byte('A')
	if token[i] == c {
		c = 'B'
	}
	return token[:i] + string(c) + token[i+1:]
}
