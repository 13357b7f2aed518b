package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// minimalACL is what tokend's Redis user needs and no more (the README
// gives it): its own keys, the scripts and the commands they call, the
// revocation stream, WAIT, and the connection handshake.
const minimalACL = "resetkeys ~tokend:* resetchannels -@all " +
	"+hello +auth +ping +cluster|slots " +
	"+evalsha +eval +script|load +get +set +hmget +hset +pexpireat +pexpiretime +sadd +smembers +srem +del " +
	"+xadd +xrange +xread +wait"

// startFails runs tokend with env and wants it to refuse to start: exit 2
// and one line naming want. It returns that line.
func startFails(t *testing.T, env map[string]string, want string) string {
	t.Helper()
	vars := map[string]string{"TOKEND_ADDR": "127.0.0.1:0", "TOKEND_ADMIN_ADDR": "127.0.0.1:0", "TOKEND_HMAC_SECRET": testSecret}
	for k, v := range env {
		vars[k] = v
	}
	var out bytes.Buffer
	code := run(t.Context(), nil, func(k string) string { return vars[k] }, &out, hooks{})
	line := strings.TrimSpace(out.String())
	if code != 2 || strings.Count(line, "\n") != 0 || !strings.HasPrefix(line, "tokend: "+want) {
		t.Fatalf("exit %d, output %q; want exit 2 and one line naming %s", code, line, want)
	}
	return line
}

// rotateThrough drives one user through both dialects' rotation on in: a login,
// two refreshes, the replay of the first refresh token caught as reuse.
func rotateThrough(t *testing.T, in *instance, dialect, sub string) {
	t.Helper()
	if dialect == "aspnet" {
		tok, r0 := in.aspnetLogin(sub)
		tok, r1 := aspnetPair(t, in.aspnetRefresh(tok, r0))
		tok, _ = aspnetPair(t, in.aspnetRefresh(tok, r1))
		if r := in.aspnetRefresh(tok, r0); r.status != 404 {
			t.Fatalf("replayed refresh token: %d %s; want 404", r.status, r.raw)
		}
		return
	}
	_, r0 := in.login(sub)
	_, r1 := pair(t, in.refresh(r0))
	pair(t, in.refresh(r1))
	springError(t, in.refresh(r0), 401, "Invalid JWT token")
}

func dialectEnv(dialect string, env map[string]string) map[string]string {
	out := map[string]string{"TOKEND_STORE": "redis"}
	if dialect == "aspnet" {
		for k, v := range aspnetEnv {
			out[k] = v
		}
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// TestRedisSlowAtStart: a Redis that does not answer within the store
// timeout when tokend starts (starting beside it, a starved machine) is
// asked again for a few seconds; tokend starts once it answers.
func TestRedisSlowAtStart(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill(syscall.SIGSTOP)
	resumed := make(chan struct{})
	go func() {
		defer close(resumed)
		time.Sleep(time.Second)
		srv.Kill(syscall.SIGCONT)
	}()
	in := start(t, "redis", map[string]string{"TOKEND_REDIS_ADDR": srv.Addr})
	<-resumed
	rotateThrough(t, in, "spring", "slow-start")
}

// TestRedisTLS: tokend reaches a redis-server that speaks only TLS to it
// and wants a client certificate, verifying the server against the given
// CA and name; every setting missing or wrong stops the start with a line
// that says why.
func TestRedisTLS(t *testing.T) {
	certs := redistest.NewCerts(t)
	srv := redistest.StartWith(t, redistest.Config{TLS: certs})
	mutual := map[string]string{"TOKEND_REDIS_ADDR": srv.TLSAddr, "TOKEND_REDIS_TLS_CA_FILE": certs.CA,
		"TOKEND_REDIS_TLS_CERT_FILE": certs.ClientCert, "TOKEND_REDIS_TLS_KEY_FILE": certs.ClientKey}
	with := func(extra ...string) map[string]string {
		env := map[string]string{}
		for k, v := range mutual {
			env[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			if extra[i+1] == "" {
				delete(env, extra[i])
			} else {
				env[extra[i]] = extra[i+1]
			}
		}
		return dialectEnv("spring", env)
	}
	for _, dialect := range []string{"spring", "aspnet"} {
		t.Run(dialect, func(t *testing.T) {
			in := start(t, "redis", dialectEnv(dialect, mutual))
			rotateThrough(t, in, dialect, "alice")
		})
	}
	t.Run("server name", func(t *testing.T) {
		in := start(t, "redis", with("TOKEND_REDIS_TLS_SERVER_NAME", redistest.ServerName))
		rotateThrough(t, in, "spring", "bob")
	})
	refused := []struct {
		name, setting, why string
		env                map[string]string
	}{
		{"system roots do not know the test CA", "TOKEND_REDIS_TLS_CA_FILE", "certificate signed by unknown authority", with("TOKEND_REDIS_TLS_CA_FILE", "", "TOKEND_REDIS_TLS", "true")},
		{"another server name", "TOKEND_REDIS_TLS_SERVER_NAME", "redis.example.com", with("TOKEND_REDIS_TLS_SERVER_NAME", "redis.example.com")},
		{"no client certificate", "TOKEND_REDIS_TLS_CERT_FILE", "client certificate", with("TOKEND_REDIS_TLS_CERT_FILE", "", "TOKEND_REDIS_TLS_KEY_FILE", "")},
		{"plain TCP to the TLS port", "TOKEND_REDIS_TLS", "speaks TLS", dialectEnv("spring", map[string]string{"TOKEND_REDIS_ADDR": srv.TLSAddr})},
		{"TLS to the plain port", "TOKEND_REDIS_TLS", "answers plain TCP", with("TOKEND_REDIS_ADDR", srv.Addr)},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			// time for the handshake to fail on its own, on a busy machine,
			// rather than on the dial deadline
			c.env["TOKEND_STORE_TIMEOUT"] = "2s"
			if line := startFails(t, c.env, c.setting+":"); !strings.Contains(line, c.why) {
				t.Fatalf("%q does not say %q", line, c.why)
			}
		})
	}
}

// TestRedisACL: logged in as an ACL user allowed only minimalACL, two
// instances of each dialect rotate, catch reuse, revoke, and hear each
// other's revocations through the stream; Redis denied tokend nothing
// (ACL LOG stays empty). A wrong password stops the start.
func TestRedisACL(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Config{
		Args: append([]string{"--user", "tokend", "on", ">acl-password-0123456789"}, strings.Fields(minimalACL)...),
	})
	pw := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(pw, []byte("acl-password-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dialect := range []string{"spring", "aspnet"} {
		t.Run(dialect, func(t *testing.T) {
			env := dialectEnv(dialect, map[string]string{"TOKEND_REDIS_ADDR": srv.Addr,
				"TOKEND_REDIS_USERNAME": "tokend", "TOKEND_REDIS_PASSWORD_FILE": pw, "TOKEND_PUBLIC_URL": publicURL})
			a, b := start(t, "redis", env), start(t, "redis", env)
			rotateThrough(t, a, dialect, "carol-"+dialect)
			rotateThrough(t, b, dialect, "carol-"+dialect)
			// OAuth 2.0 with DPoP: binding, the proof's jti, scope, client
			device := newProver(t, "ES256")
			_, rt := a.startFor("erin-"+dialect, "app", "openid", "")
			_, rt = oauthPair(t, a.token(refreshForm(rt, "app"), "DPoP", mustProof(t, device, "POST", tokenURL, a.clock.Now())), "DPoP", "openid")
			form := refreshForm(rt, "app")
			form.Set("scope", "openid")
			oauthPair(t, b.token(form, "DPoP", mustProof(t, device, "POST", tokenURL, a.clock.Now())), "DPoP", "openid")
			// a revocation on a reaches b's denylist through the stream
			var access string
			if dialect == "aspnet" {
				access, _ = a.aspnetLogin("dave-" + dialect)
			} else {
				access, _ = a.login("dave-" + dialect)
			}
			if r := b.introspect(access); r.body["active"] != true {
				t.Fatalf("b: introspection before revocation = %s", r.raw)
			}
			if r := a.postJSON(a.admin+"/admin/subjects/dave-"+dialect+"/revoke", ""); r.status != 200 {
				t.Fatalf("revoke on a: %d %s", r.status, r.raw)
			}
			waitUntil(t, func() bool { return b.introspect(access).body["active"] == false })
			// a deletion ends the sessions it read and takes them out of the index
			if r := b.do(http.MethodDelete, b.admin+"/admin/subjects/dave-"+dialect, "", nil); r.status != 200 {
				t.Fatalf("DELETE on b: %d %s", r.status, r.raw)
			}
		})
	}
	t.Run("legacy tokens", func(t *testing.T) {
		// adoption marks and subjects' cutoffs: the same commands, the same keys
		in := start(t, "redis", map[string]string{"TOKEND_REDIS_ADDR": srv.Addr, "TOKEND_REDIS_USERNAME": "tokend",
			"TOKEND_REDIS_PASSWORD_FILE": pw, "TOKEND_LEGACY_TOKENS": "true"})
		now := in.clock.Now()
		used, unused := legacyToken("acl-a", now.Add(-time.Hour), now.Add(time.Hour)), legacyToken("acl-b", now.Add(-time.Hour), now.Add(time.Hour))
		if r := in.refresh(used); r.status != 200 {
			t.Fatalf("adoption = %d %s", r.status, r.raw)
		}
		if r := in.postJSON(in.public+"/api/auth/revoke", `{"refreshToken":"`+used+`"}`); r.status != 204 {
			t.Fatalf("revoke = %d %s", r.status, r.raw)
		}
		if r := in.do(http.MethodDelete, in.admin+"/admin/subjects/acl-b", "", nil); r.status != 200 {
			t.Fatalf("DELETE = %d %s", r.status, r.raw)
		}
		springError(t, in.refresh(unused), 401, "Invalid JWT token")
	})
	if denied := srv.Do(t, "ACL", "LOG"); denied != "" {
		t.Fatalf("Redis denied tokend's user something (ACL LOG):\n%s", denied)
	}
	t.Run("wrong password", func(t *testing.T) {
		startFails(t, map[string]string{"TOKEND_STORE": "redis", "TOKEND_REDIS_ADDR": srv.Addr,
			"TOKEND_REDIS_USERNAME": "tokend", "TOKEND_REDIS_PASSWORD": "not-the-password"}, "TOKEND_REDIS_PASSWORD: Redis refused the user \"tokend\" and password: WRONGPASS")
	})
}

// TestMaxInflight: with TOKEND_MAX_INFLIGHT requests waiting on the store,
// the next one is refused at once with the dialect's 503 and Retry-After,
// counted as shed; the ones admitted are answered when the store is back.
func TestMaxInflight(t *testing.T) {
	for _, dialect := range []string{"spring", "aspnet"} {
		t.Run(dialect, func(t *testing.T) {
			in := start(t, "redis", dialectEnv(dialect, map[string]string{"TOKEND_MAX_INFLIGHT": "1", "TOKEND_STORE_TIMEOUT": "20s"}))
			var slow, fast func() reply
			if dialect == "aspnet" {
				tok, r0 := in.aspnetLogin("erin")
				tok2, r1 := in.aspnetLogin("frank")
				slow, fast = func() reply { return in.aspnetRefresh(tok, r0) }, func() reply { return in.aspnetRefresh(tok2, r1) }
			} else {
				_, r0 := in.login("erin")
				_, r1 := in.login("frank")
				slow, fast = func() reply { return in.refresh(r0) }, func() reply { return in.refresh(r1) }
			}
			// the store holds every rotation until the test lets it go (a
			// fixed pause could end before a starved machine sends the request)
			in.redis.Do(t, "CLIENT", "PAUSE", "15000", "WRITE")
			defer in.redis.Do(t, "CLIENT", "UNPAUSE")
			held := make(chan reply, 1)
			go func() { held <- slow() }()
			waitUntil(t, func() bool { return metric(t, in, `tokend_requests_in_flight`) >= 1 })
			r := fast()
			if r.status != 503 || r.header.Get("Retry-After") == "" {
				t.Fatalf("request over the limit: %d %s (Retry-After %q); want 503 with Retry-After", r.status, r.raw, r.header.Get("Retry-After"))
			}
			if dialect == "aspnet" {
				aspnetCode(t, r, 503, "service_unavailable", "over the limit")
			} else {
				springError(t, r, 503, "Service temporarily unavailable")
			}
			in.redis.Do(t, "CLIENT", "UNPAUSE")
			if h := <-held; h.status != 200 {
				t.Fatalf("the admitted request: %d %s; want 200 once the store answers", h.status, h.raw)
			}
			if n := metric(t, in, `tokend_refresh_outcomes_total{outcome="shed"}`); n != 1 {
				t.Fatalf("shed outcomes %v; want 1", n)
			}
		})
	}
}

// metric reads one sample of in's /metrics (name with its labels as
// written there); -1 when absent.
func metric(t *testing.T, in *instance, name string) float64 {
	t.Helper()
	r := in.do(http.MethodGet, in.admin+"/metrics", "", nil)
	for _, line := range strings.Split(string(r.raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return f
		}
	}
	return -1
}
