package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// testSecret is the HMAC secret of the test instances (and of the "old
// backend" whose legacy tokens they accept).
const testSecret = "e2e-secret-0123456789abcdef-0123456789"

// clock is a test clock shared by a tokend instance and its test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// instance is a tokend started in process on free ports.
type instance struct {
	t      *testing.T
	public string // base URLs
	admin  string
	clock  *clock
	redis  *redistest.Server // nil on the memory store
	logs   *syncBuffer
	api    *contract // api/openapi.yaml, checking every exchange of do
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stores are the two session stores every end-to-end test runs against.
var stores = []string{"memory", "redis"}

// start runs tokend with env over the defaults of the tests (HMAC secret,
// ports 0, the given store; on Redis a redis-server of its own unless env
// names one) until the test ends.
func start(t *testing.T, store string, env map[string]string) *instance {
	t.Helper()
	in := &instance{t: t, clock: &clock{t: time.Now().Truncate(time.Second)}, logs: &syncBuffer{}}
	vars := map[string]string{
		"TOKEND_ADDR":        "127.0.0.1:0",
		"TOKEND_ADMIN_ADDR":  "127.0.0.1:0",
		"TOKEND_HMAC_SECRET": testSecret,
		"TOKEND_STORE":       store,
	}
	if _, own := env["TOKEND_REDIS_ADDR"]; store == "redis" && !own {
		in.redis = redistest.Start(t)
		vars["TOKEND_REDIS_ADDR"] = in.redis.Addr
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return vars[k] }, in.logs, hooks{
			clock: in.clock,
			ready: func(public, admin string) {
				in.public, in.admin = "http://"+public, "http://"+admin
				close(ready)
			},
		})
	}()
	select {
	case <-ready:
	case code := <-done:
		t.Fatalf("tokend exited with %d: %s", code, in.logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("tokend did not start within 10s")
	}
	in.api = newContract(t, in.public, in.admin, vars["TOKEND_DIALECT"] == "aspnet")
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("tokend exited with %d", code)
		}
		if t.Failed() {
			t.Logf("tokend log:\n%s", in.logs.String())
		}
	})
	return in
}

// reply is a parsed HTTP answer.
type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

var client = &http.Client{Timeout: 5 * time.Second}

func (in *instance) do(method, url, contentType string, body []byte, header ...string) reply {
	in.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		in.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1]) // Add: a test may send a header twice
	}
	resp, err := client.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	in.api.check(in.t, req, body, resp.StatusCode, resp.Header, raw)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (in *instance) postJSON(url string, body string) reply {
	in.t.Helper()
	return in.do(http.MethodPost, url, "application/json", []byte(body))
}

// refresh posts a spring refresh request for token.
func (in *instance) refresh(token string) reply {
	in.t.Helper()
	b, _ := json.Marshal(map[string]string{"refreshToken": token})
	return in.postJSON(in.public+"/api/auth/refresh", string(b))
}

// login starts a session for sub on the admin listener and returns the pair.
func (in *instance) login(sub string) (access, refresh string) {
	in.t.Helper()
	r := in.postJSON(in.admin+"/admin/sessions", `{"sub":"`+sub+`"}`)
	if r.status != 200 {
		in.t.Fatalf("POST /admin/sessions = %d %s", r.status, r.raw)
	}
	return pair(in.t, r)
}

// pair extracts the tokens of a spring success body.
func pair(t *testing.T, r reply) (access, refresh string) {
	t.Helper()
	res, _ := r.body["result"].(map[string]any)
	access, _ = res["accessToken"].(string)
	refresh, _ = res["refreshToken"].(string)
	if access == "" || refresh == "" {
		t.Fatalf("no token pair in %d %s", r.status, r.raw)
	}
	return access, refresh
}

// springError asserts a spring error body: status, and the exact fields.
func springError(t *testing.T, r reply, status int, message string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d; want %d (body %s)", r.status, status, r.raw)
	}
	want := map[string]any{"status": float64(status), "message": message}
	if status != 400 {
		want["error"] = http.StatusText(status)
	}
	ts, _ := r.body["timestamp"].(string)
	if !timestampRE.MatchString(ts) {
		t.Fatalf("timestamp %q is not RFC 3339 with microseconds and offset", ts)
	}
	for k, v := range want {
		if r.body[k] != v {
			t.Fatalf("%s = %v; want %v (body %s)", k, r.body[k], v, r.raw)
		}
	}
	if len(r.body) != len(want)+1 {
		t.Fatalf("body has fields %v; want exactly timestamp and %v", keys(r.body), keys(want))
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
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
