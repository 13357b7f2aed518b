package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// TestAdmin: sessions, subject revocation and deletion, probes and metrics
// on the admin listener; none of it on the public one.
func TestAdmin(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, map[string]string{"TOKEND_ADMIN_TOKEN": "s3cret"})
			auth := []string{"Authorization", "Bearer s3cret"}
			post := func(path, body string, hdr ...string) reply {
				return in.do(http.MethodPost, in.admin+path, "application/json", []byte(body), hdr...)
			}
			if r := post("/admin/sessions", `{"sub":"alice"}`); r.status != 401 {
				t.Fatalf("no token: %d; want 401", r.status)
			}
			if r := post("/admin/sessions", `{"sub":"alice"}`, "Authorization", "Bearer wrong"); r.status != 401 {
				t.Fatalf("wrong token: %d; want 401", r.status)
			}
			r := post("/admin/sessions", `{"sub":"alice"}`, auth...)
			if r.status != 200 {
				t.Fatalf("POST /admin/sessions = %d %s", r.status, r.raw)
			}
			_, a1 := pair(t, r)
			_, a2 := pair(t, post("/admin/sessions", `{"sub":"alice"}`, auth...))
			_, b1 := pair(t, post("/admin/sessions", `{"sub":"bob/builder"}`, auth...))
			springError(t, post("/admin/sessions", `{"sub":"  "}`, auth...), 400, "Invalid request body")
			springError(t, post("/admin/sessions", `{}`, auth...), 400, "Invalid request body")

			r = post("/admin/subjects/alice/revoke", ``, auth...)
			if r.status != 200 || r.body["revoked"] != float64(2) {
				t.Fatalf("revoke alice = %d %s; want 2 revoked", r.status, r.raw)
			}
			springError(t, in.refresh(a1), 401, "Invalid JWT token")
			springError(t, in.refresh(a2), 401, "Invalid JWT token")

			r = in.do(http.MethodDelete, in.admin+"/admin/subjects/bob%2Fbuilder", "", nil, auth...)
			if r.status != 200 || r.body["revoked"] != float64(1) || r.body["sub"] != "bob/builder" {
				t.Fatalf("delete bob/builder = %d %s", r.status, r.raw)
			}
			springError(t, in.refresh(b1), 401, "Invalid JWT token")
			if r := in.do(http.MethodGet, in.admin+"/admin/subjects/alice/revoke", "", nil, auth...); r.status != 405 {
				t.Fatalf("GET revoke = %d; want 405", r.status)
			}

			for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/debug/pprof/cmdline": 200, "/debug/pprof/": 200, "/nope": 404} {
				if r := in.do(http.MethodGet, in.admin+path, "", nil, auth...); r.status != want {
					t.Fatalf("GET %s = %d; want %d", path, r.status, want)
				}
			}
			// the profiles' index links to every named profile
			if r := in.do(http.MethodGet, in.admin+"/debug/pprof/", "", nil, auth...); !strings.Contains(string(r.raw), "goroutine") {
				t.Fatalf("GET /debug/pprof/ lists no profiles: %.200s", r.raw)
			}
			m := string(in.do(http.MethodGet, in.admin+"/metrics", "", nil, auth...).raw)
			for _, series := range []string{
				`tokend_requests_total{route="refresh",status="401"}`,
				`tokend_requests_total{route="admin_sessions",status="200"}`,
				`tokend_refresh_outcomes_total{outcome="revoked"} 2`,
				`tokend_request_duration_seconds_bucket{route="refresh"`,
			} {
				if !strings.Contains(m, series) {
					t.Errorf("metrics lack %s", series)
				}
			}
			// admin paths do not exist on the public listener
			for _, path := range []string{"/admin/sessions", "/admin/subjects/alice/revoke", "/healthz", "/metrics", "/debug/pprof/cmdline"} {
				r := in.do(http.MethodPost, in.public+path, "application/json", []byte(`{"sub":"x"}`))
				springError(t, r, 404, "No endpoint found")
			}
			springError(t, in.do(http.MethodGet, in.public+"/api/auth/refresh", "", nil), 405, "Request method not supported")
		})
	}
}

// TestJWKS publishes public keys only: no oct key, no private member.
func TestJWKS(t *testing.T) {
	keys := filepath.Join("..", "..", "internal", "tokens", "testdata", "keys.jwks")
	in := start(t, "memory", map[string]string{"TOKEND_HMAC_SECRET": "", "TOKEND_KEYS_FILE": keys, "TOKEND_SIGNING_KID": "es256-1"})
	r := in.do(http.MethodGet, in.public+"/.well-known/jwks.json", "", nil)
	if r.status != 200 {
		t.Fatalf("jwks = %d", r.status)
	}
	list, _ := r.body["keys"].([]any)
	if len(list) != 3 {
		t.Fatalf("%d keys published; want the 3 asymmetric ones: %s", len(list), r.raw)
	}
	for _, k := range list {
		k := k.(map[string]any)
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if k[private] != nil {
				t.Fatalf("key %v publishes %q", k["kid"], private)
			}
		}
	}
	_, rt := in.login("alice")
	if hdr, _ := decodeJWT(t, rt); hdr["kid"] != "es256-1" || hdr["alg"] != "ES256" {
		t.Fatalf("signed with %v; want es256-1", hdr)
	}
	if r := in.refresh(rt); r.status != 200 {
		t.Fatalf("ES256 refresh = %d %s", r.status, r.raw)
	}
}

// TestFailures: the failure table of DESIGN §8 that does not need a second
// process.
func TestFailures(t *testing.T) {
	in := start(t, "memory", nil)
	t.Run("huge body", func(t *testing.T) {
		// Announce 1 MiB and send none of it: fasthttp refuses on the
		// Content-Length alone. (Sending it would race the answer against
		// the connection being closed mid-upload.)
		c, err := net.Dial("tcp", strings.TrimPrefix(in.public, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "POST /api/auth/refresh HTTP/1.1\r\nHost: tokend\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 1<<20)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 413 && resp.StatusCode != 400 {
			t.Fatalf("1 MiB body = %d %s (%v); want 413 or 400", resp.StatusCode, body, err)
		}
		in.api.checkRaw(t, http.MethodPost, in.public+"/api/auth/refresh", resp, body)
		if r := in.refresh("still.serving.x"); r.status != 401 {
			t.Fatalf("after a huge body: %d", r.status)
		}
	})
}

// TestRedisDown: with Redis gone, refresh answers 503 in the spring shape
// with Retry-After within the store timeout, never a token; readyz says so;
// when Redis returns, tokend serves again with no restart.
func TestRedisDown(t *testing.T) {
	in := start(t, "redis", nil)
	_, rt := in.login("alice")
	in.redis.Stop()
	begin := time.Now()
	r := in.refresh(rt)
	springError(t, r, 503, "Service temporarily unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("503 took %v; want about the 200ms store timeout", d)
	}
	if r := in.do(http.MethodGet, in.admin+"/readyz", "", nil); r.status != 503 {
		t.Fatalf("readyz with Redis down = %d; want 503", r.status)
	}
	springError(t, in.postJSON(in.admin+"/admin/sessions", `{"sub":"bob"}`), 503, "Service temporarily unavailable")

	in.redis.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for in.do(http.MethodGet, in.admin+"/readyz", "", nil).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("readyz did not recover within 10s of Redis returning")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A pooled connection may still be the old one: its first use can fail
	// (503, fail closed). A 503 never burns the token: the same one works.
	var login reply
	for login = in.postJSON(in.admin+"/admin/sessions", `{"sub":"alice"}`); login.status != 200; login = in.postJSON(in.admin+"/admin/sessions", `{"sub":"alice"}`) {
		if login.status != 503 || time.Now().After(deadline) {
			t.Fatalf("login after recovery = %d %s", login.status, login.raw)
		}
	}
	_, rt2 := pair(t, login)
	for {
		r := in.refresh(rt2)
		if r.status == 200 {
			break
		}
		if r.status != 503 || time.Now().After(deadline) {
			t.Fatalf("refresh after recovery = %d %s", r.status, r.raw)
		}
	}
}

// TestSettings: a bad setting stops the start with one line naming it.
func TestSettings(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"TOKEND_ACCESS_TTL": "soon"}, "TOKEND_ACCESS_TTL"},
		{map[string]string{"TOKEND_REFRESH_TTL": "-1h"}, "TOKEND_REFRESH_TTL"},
		{map[string]string{"TOKEND_SESSION_MAX": "0"}, "TOKEND_SESSION_MAX"},
		{map[string]string{"TOKEND_REUSE_GRACE": "ten"}, "TOKEND_REUSE_GRACE"},
		{map[string]string{"TOKEND_REDIS_FLUSH_DELAY": "-1us"}, "TOKEND_REDIS_FLUSH_DELAY"},
		{map[string]string{"TOKEND_LEGACY_TOKENS": "maybe"}, "TOKEND_LEGACY_TOKENS"},
		{map[string]string{"TOKEND_DIALECT": "soap"}, "TOKEND_DIALECT"},
		{map[string]string{"TOKEND_STORE": "etcd"}, "TOKEND_STORE"},
		{map[string]string{"TOKEND_HMAC_ALG": "RS256", "TOKEND_HMAC_SECRET": testSecret}, "TOKEND_HMAC_ALG"},
		{map[string]string{"TOKEND_HMAC_SECRET": "short"}, "TOKEND_HMAC_SECRET"},
		{map[string]string{"TOKEND_HMAC_SECRET": testSecret, "TOKEND_KEYS_FILE": "k.jwks"}, "TOKEND_HMAC_SECRET"},
		{map[string]string{"TOKEND_KEYS_FILE": "/no/such/file"}, "TOKEND_KEYS_FILE"},
		{map[string]string{"TOKEND_KEYS_FILE": "../../internal/tokens/testdata/keys.jwks", "TOKEND_SIGNING_KID": "nope"}, "TOKEND_KEYS_FILE"},
		{map[string]string{"TOKEND_ADMIN_ADDR": "0.0.0.0:8081"}, "TOKEND_ADMIN_ADDR"},
		{map[string]string{"TOKEND_REDIS_ADDR": "nocolon"}, "TOKEND_REDIS_ADDR"},
		{map[string]string{"TOKEND_ACCESS_TTL": "48h", "TOKEND_REFRESH_TTL": "24h"}, "TOKEND_ACCESS_TTL"},
		// a retry hands back the rotation's access token: it must still be valid
		{map[string]string{"TOKEND_ACCESS_TTL": "10s", "TOKEND_REUSE_GRACE": "10s"}, "TOKEND_REUSE_GRACE"},
		{map[string]string{"TOKEND_ACCESS_TTL": "5s", "TOKEND_REUSE_GRACE": "30s"}, "TOKEND_REUSE_GRACE"},
		{map[string]string{"TOKEND_ACCESS_TTL": "1s", "TOKEND_REUSE_GRACE": "500ms"}, "TOKEND_REUSE_GRACE"},
		{map[string]string{"TOKEND_STORE": "redis", "TOKEND_REDIS_ADDR": fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))}, "TOKEND_REDIS_ADDR"},
		{map[string]string{"TOKEND_DIALECT": "aspnet", "TOKEND_REFRESH_KEY": "too-short"}, "TOKEND_REFRESH_KEY"},
		{map[string]string{"TOKEND_DIALECT": "aspnet", "TOKEND_REFRESH_KEY": strings.Repeat("k", 32) + ",short"}, "TOKEND_REFRESH_KEY"},
		{map[string]string{"TOKEND_REFRESH_KEY": strings.Repeat("k", 32)}, "TOKEND_REFRESH_KEY"},
		{map[string]string{"TOKEND_DIALECT": "aspnet", "TOKEND_LEGACY_TOKENS": "true"}, "TOKEND_LEGACY_TOKENS"},
		{map[string]string{"TOKEND_DIALECT": "aspnet", "TOKEND_HMAC_ALG": "HS512", "TOKEND_HMAC_SECRET": testSecret}, "TOKEND_HMAC_SECRET"},
		{map[string]string{"TOKEND_HMAC_SECRET": testSecret, "TOKEND_HMAC_SECRET_FILE": "../../internal/tokens/testdata/keys.jwks"}, "TOKEND_HMAC_SECRET_FILE"},
		{map[string]string{"TOKEND_HMAC_SECRET_FILE": "/no/such/file"}, "TOKEND_HMAC_SECRET_FILE"},
		{map[string]string{"TOKEND_REDIS_PASSWORD_FILE": "/no/such/file"}, "TOKEND_REDIS_PASSWORD_FILE"},
		{map[string]string{"TOKEND_REDIS_TLS": "yes please"}, "TOKEND_REDIS_TLS"},
		{map[string]string{"TOKEND_STORE": "redis", "TOKEND_REDIS_TLS_CA_FILE": "/no/such/ca.pem"}, "TOKEND_REDIS_TLS_CA_FILE"},
		{map[string]string{"TOKEND_STORE": "redis", "TOKEND_REDIS_TLS_CA_FILE": "../../internal/tokens/testdata/keys.jwks"}, "TOKEND_REDIS_TLS_CA_FILE"},
		{map[string]string{"TOKEND_REDIS_TLS_CERT_FILE": "client.pem"}, "TOKEND_REDIS_TLS_CERT_FILE"},
		{map[string]string{"TOKEND_REDIS_WAIT_REPLICAS": "-1"}, "TOKEND_REDIS_WAIT_REPLICAS"},
		{map[string]string{"TOKEND_REDIS_WAIT_REPLICAS": "1", "TOKEND_REUSE_GRACE": "0s"}, "TOKEND_REDIS_WAIT_REPLICAS"},
		{map[string]string{"TOKEND_PUBLIC_URL": "auth.example.com"}, "TOKEND_PUBLIC_URL"},
		{map[string]string{"TOKEND_PUBLIC_URL": "ftp://auth.example.com"}, "TOKEND_PUBLIC_URL"},
		{map[string]string{"TOKEND_PUBLIC_URL": "https://auth.example.com/?x=1"}, "TOKEND_PUBLIC_URL"},
		{map[string]string{"TOKEND_CLIENTS": "app," + strings.Repeat("c", 256)}, "TOKEND_CLIENTS"},
		{map[string]string{"TOKEND_DPOP_ALGS": "HS256"}, "TOKEND_DPOP_ALGS"},
		{map[string]string{"TOKEND_DPOP_ALGS": "none"}, "TOKEND_DPOP_ALGS"},
		{map[string]string{"TOKEND_DPOP_WINDOW": "10ms"}, "TOKEND_DPOP_WINDOW"},
		{map[string]string{"TOKEND_DPOP_NONCE": "sometimes"}, "TOKEND_DPOP_NONCE"},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprint(i, "_", tc.want), func(t *testing.T) {
			env := map[string]string{"TOKEND_ADDR": "127.0.0.1:0", "TOKEND_ADMIN_ADDR": "127.0.0.1:0"}
			for k, v := range tc.env {
				env[k] = v
			}
			var out bytes.Buffer
			code := run(t.Context(), nil, func(k string) string { return env[k] }, &out, hooks{})
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "tokend: "+tc.want) {
				t.Fatalf("exit %d, output %q; want exit 2 and one line naming %s", code, out.String(), tc.want)
			}
		})
	}
	// flags win over the environment
	cfg, err := parseConfig([]string{"--access-ttl", "5m"}, func(k string) string { return map[string]string{"TOKEND_ACCESS_TTL": "10m"}[k] }, &bytes.Buffer{})
	if err != nil || cfg.AccessTTL != 5*time.Minute {
		t.Fatalf("--access-ttl 5m over TOKEND_ACCESS_TTL=10m: %v, %v", cfg.AccessTTL, err)
	}
	// a switch alone means true, as Go's flag package has it; =false turns it off
	for _, tc := range []struct {
		args []string
		env  string
		want bool
	}{
		{[]string{"--dpop-nonce"}, "", true},
		{[]string{"--dpop-nonce=true"}, "", true},
		{[]string{"--dpop-nonce=false"}, "true", false},
		{nil, "true", true},
		{nil, "", false},
	} {
		cfg, err := parseConfig(tc.args, func(k string) string { return map[string]string{"TOKEND_DPOP_NONCE": tc.env}[k] }, &bytes.Buffer{})
		if err != nil || cfg.DPoPNonce != tc.want {
			t.Fatalf("%q with TOKEND_DPOP_NONCE=%q: %v, %v; want %v", tc.args, tc.env, cfg.DPoPNonce, err, tc.want)
		}
	}
	if _, err := parseConfig([]string{"--legacy-tokens=maybe"}, func(string) string { return "" }, &bytes.Buffer{}); err == nil || !strings.HasPrefix(err.Error(), "TOKEND_LEGACY_TOKENS") {
		t.Fatalf("--legacy-tokens=maybe: %v; want an error naming TOKEND_LEGACY_TOKENS", err)
	}
	cfg, err = parseConfig(nil, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil || cfg.AccessTTL != 30*time.Minute || cfg.RefreshTTL != 720*time.Hour || cfg.SessionMax != 2160*time.Hour ||
		cfg.ReuseGrace != 10*time.Second || cfg.LegacyTokens || cfg.Dialect != "spring" || cfg.Store != "memory" ||
		cfg.Addr != ":8080" || cfg.AdminAddr != "127.0.0.1:8081" || cfg.HMACAlg != "HS256" || cfg.StoreTimeout != 200*time.Millisecond ||
		cfg.FlushDelay != 20*time.Microsecond {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
}

// TestSecretFiles: a secret read from its _FILE variant works as the value
// would (one trailing newline trimmed), and the start line names every
// setting given with secrets redacted.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	secret, admin := filepath.Join(dir, "hmac"), filepath.Join(dir, "admin")
	if err := os.WriteFile(secret, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(admin, []byte("admin-token-from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := start(t, "memory", map[string]string{"TOKEND_HMAC_SECRET": "", "TOKEND_HMAC_SECRET_FILE": secret,
		"TOKEND_ADMIN_TOKEN_FILE": admin, "TOKEND_ACCESS_TTL": "5m"})
	if r := in.postJSON(in.admin+"/admin/sessions", `{"sub":"alice"}`); r.status != 401 {
		t.Fatalf("admin without the file's token = %d; want 401", r.status)
	}
	r := in.do(http.MethodPost, in.admin+"/admin/sessions", "application/json", []byte(`{"sub":"alice"}`),
		"Authorization", "Bearer admin-token-from-file")
	_, refresh := pair(t, r)
	// tokens verify with the secret as written, without its newline
	ks, err := tokens.HMACKeySet([]byte(testSecret), "HS256")
	if err != nil {
		t.Fatal(err)
	}
	var cl tokens.Claims
	if err := tokens.NewCodec(ks, "http://localhost:0", in.clock).Parse([]byte(refresh), tokens.Refresh, &cl); err != nil { // the default issuer
		t.Fatalf("refresh token does not verify with the file's secret: %v", err)
	}
	logs := in.logs.String()
	for _, want := range []string{`"TOKEND_HMAC_SECRET=[redacted]"`, `"TOKEND_ADMIN_TOKEN=[redacted]"`, `"TOKEND_ACCESS_TTL=5m"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("start line lacks %s: %s", want, logs)
		}
	}
	if strings.Contains(logs, testSecret) || strings.Contains(logs, "admin-token-from-file") {
		t.Errorf("a secret reached the log: %s", logs)
	}
}

// TestSIGTERMDrains runs the real binary: a request in flight when SIGTERM
// arrives is answered, new connections are refused, and the exit code is 0.
func TestSIGTERMDrains(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tokend")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	port, admin := redistest.FreePort(t), redistest.FreePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), fmt.Sprintf("TOKEND_ADDR=127.0.0.1:%d", port), fmt.Sprintf("TOKEND_ADMIN_ADDR=127.0.0.1:%d", admin))
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var conn net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if conn, err = net.Dial("tcp", addr); err == nil {
			break
		}
	}
	if conn == nil {
		t.Fatalf("tokend did not listen: %v\n%s", err, logs.String())
	}
	defer conn.Close()
	body := `{"refreshToken":"a.b.c"}`
	// send the head and half the body: the request is in flight
	fmt.Fprintf(conn, "POST /api/auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
	time.Sleep(100 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("tokend still accepts connections after SIGTERM")
	}
	fmt.Fprint(conn, body[10:])
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request: %v; want its 401 answer", err)
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("in-flight request: %d %s (%v); want its 401 answer", resp.StatusCode, answer, err)
	}
	// the answer given while draining is one the document gives
	pub, adm := fmt.Sprintf("http://127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", admin)
	newContract(t, pub, adm, false).checkRaw(t, http.MethodPost, pub+"/api/auth/refresh", resp, answer)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("tokend did not exit within 10s of SIGTERM\n%s", logs.String())
	}
}

// scrape parses GET /metrics of in into its families.
func scrape(t *testing.T, in *instance, header ...string) map[string]*dto.MetricFamily {
	t.Helper()
	r := in.do(http.MethodGet, in.admin+"/metrics", "", nil, header...)
	if r.status != 200 {
		t.Fatalf("GET /metrics = %d", r.status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.raw))
	if err != nil {
		t.Fatalf("metrics are not the Prometheus text format: %v", err)
	}
	return fams
}

// value returns the value of the series of name whose labels include
// labels (name=value pairs), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetrics: build info, store latency by operation, and the denylist's
// state, with values that follow what the instance did.
func TestMetrics(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, nil)
			_, rt := in.login("alice")
			in.login("alice")
			_, rt = pair(t, in.refresh(rt))
			if r := in.postJSON(in.admin+"/admin/subjects/alice/revoke", ""); r.body["revoked"] != float64(2) {
				t.Fatalf("revoke: %s", r.raw)
			}
			// the denylist hears both revocations (on Redis through the stream)
			waitUntil(t, func() bool { v, _ := value(scrape(t, in), "tokend_denylist_revocations_heard_total"); return v >= 2 })
			springError(t, in.refresh(rt), 401, "Invalid JWT token")

			fams := scrape(t, in)
			want := []struct {
				name   string
				labels []string
				ok     func(float64) bool
				what   string
			}{
				{"tokend_build_info", []string{"goversion", runtime.Version()}, eq(1), "1 with the Go version"},
				{"tokend_store_duration_seconds", []string{"op", "create"}, eq(2), "2 creates"},
				{"tokend_store_duration_seconds", []string{"op", "rotate"}, atLeast(1), "a rotation"},
				{"tokend_store_duration_seconds", []string{"op", "revoke_subject"}, eq(1), "1 subject revocation"},
				{"tokend_store_failures_total", []string{"op", "rotate"}, eq(0), "no failures"},
				{"tokend_denylist_ready", nil, eq(1), "ready"},
				{"tokend_denylist_feed_silence_seconds", nil, between(0, 3), "heard from within 3s"},
				{"tokend_denylist_last_revocation_timestamp_seconds", nil, between(float64(time.Now().Add(-time.Minute).Unix()), float64(time.Now().Unix()+1)), "this minute"},
				{"tokend_denylist_feed_lag_seconds", nil, atLeast(2), "two lags observed"},
				{"tokend_denylist_filter_hits_total", nil, atLeast(1), "the revoked token's check"},
				{"tokend_denylist_cache_hits_total", nil, atLeast(1), "answered from the cache"},
				{"tokend_denylist_confirmations_total", nil, eq(0), "no confirmation needed"},
				{"tokend_denylist_false_positives_total", nil, eq(0), "none"},
				{"tokend_denylist_confirmation_failures_total", nil, eq(0), "none"},
				{"tokend_denylist_generations_total", nil, eq(1), "the first"},
				{"tokend_denylist_bloom_fill_ratio", []string{"generation", "current"}, between(1e-9, 0.01), "two keys' bits"},
				{"tokend_denylist_bloom_fill_ratio", []string{"generation", "previous"}, eq(0), "empty"},
				{"tokend_denylist_bloom_bytes", nil, atLeast(1 << 20), "the default size"},
			}
			for _, w := range want {
				v, ok := value(fams, w.name, w.labels...)
				if !ok || !w.ok(v) {
					t.Errorf("%s%v = %v (present %v); want %s", w.name, w.labels, v, ok, w.what)
				}
			}
		})
	}
}

func eq(want float64) func(float64) bool     { return func(v float64) bool { return v == want } }
func atLeast(min float64) func(float64) bool { return func(v float64) bool { return v >= min } }
func between(lo, hi float64) func(float64) bool {
	return func(v float64) bool { return v >= lo && v <= hi }
}

// TestGraceShorterThanAccessTTL: a retry inside the grace window hands back
// the access token of the rotation it retries, so a grace window that is
// not shorter than its lifetime (by the second exp is counted in) is
// refused; one that is, is taken.
func TestGraceShorterThanAccessTTL(t *testing.T) {
	for _, tc := range []struct {
		access, grace string
		ok            bool
	}{{"10s", "10s", false}, {"5s", "30s", false}, {"1s", "500ms", false}, {"2s", "1s", true}, {"1s", "0s", true}, {"30m", "10s", true}} {
		env := map[string]string{"TOKEND_ACCESS_TTL": tc.access, "TOKEND_REUSE_GRACE": tc.grace}
		_, err := parseConfig(nil, func(k string) string { return env[k] }, &bytes.Buffer{})
		if (err == nil) != tc.ok || err != nil && !strings.HasPrefix(err.Error(), "TOKEND_REUSE_GRACE") {
			t.Errorf("access %s, grace %s: %v; want ok=%v", tc.access, tc.grace, err, tc.ok)
		}
	}
}
