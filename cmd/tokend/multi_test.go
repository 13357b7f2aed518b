package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// introspect asks in's admin listener about token (RFC 7662 form).
func (in *instance) introspect(token string) reply {
	in.t.Helper()
	return in.do(http.MethodPost, in.admin+"/admin/introspect", "application/x-www-form-urlencoded",
		[]byte(url.Values{"token": {token}}.Encode()))
}

func wantInactive(t *testing.T, r reply) {
	t.Helper()
	if r.status != 200 || string(r.raw) != `{"active":false}` {
		t.Fatalf("introspection = %d %s; want 200 {\"active\":false}", r.status, r.raw)
	}
}

func TestIntrospect(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			in := start(t, store, nil)
			access, refresh := in.login("alice")
			_, claims := decodeJWT(t, access)
			r := in.introspect(access)
			want := map[string]any{"active": true, "sub": "alice", "sid": claims["sid"], "exp": claims["exp"],
				"iat": claims["iat"], "iss": "http://localhost:0", "token_type": "Bearer"} // TOKEND_PUBLIC_URL's default
			if r.status != 200 || len(r.body) != len(want) {
				t.Fatalf("introspection = %d %s; want exactly %v", r.status, r.raw, want)
			}
			for k, v := range want {
				if r.body[k] != v {
					t.Fatalf("%s = %v; want %v (%s)", k, r.body[k], v, r.raw)
				}
			}
			for name, tok := range map[string]string{
				"refresh token": refresh, "garbage": "garbage", "tampered": tamper(access),
			} {
				t.Run(name, func(t *testing.T) { wantInactive(t, in.introspect(tok)) })
			}
			in.clock.Advance(31 * time.Minute)
			wantInactive(t, in.introspect(access))
			in.clock.Advance(-31 * time.Minute)

			// revoked: inactive on this instance as soon as its denylist hears
			// of it (memory: before the revoke answers; Redis: through the
			// stream, milliseconds later, as on every other instance)
			if r := in.postJSON(in.admin+"/admin/subjects/alice/revoke", ""); r.status != 200 {
				t.Fatalf("revoke: %d %s", r.status, r.raw)
			}
			waitUntil(t, func() bool { return in.introspect(access).body["active"] == false })
			wantInactive(t, in.introspect(access))

			bad := []struct {
				name, method, ctype, body string
				status                    int
			}{
				{"no token", "POST", "application/x-www-form-urlencoded", "token_type_hint=access_token", 400},
				{"JSON body", "POST", "application/json", `{"token":"x"}`, 400},
				{"GET", "GET", "", "", 405},
			}
			for _, b := range bad {
				r := in.do(b.method, in.admin+"/admin/introspect", b.ctype, []byte(b.body))
				if r.status != b.status {
					t.Fatalf("%s: %d %s; want %d", b.name, r.status, r.raw, b.status)
				}
				if b.status == 400 && r.body["error"] != "invalid_request" {
					t.Fatalf("%s: %s; want error invalid_request", b.name, r.raw)
				}
			}
		})
	}
}

// TestKeyRotationUnderLoad: workers refresh in chains while the keys file
// rotates through POST /admin/keys/reload: new key added and signing, then
// the old one removed once every chain has moved on. No refresh fails.
func TestKeyRotationUnderLoad(t *testing.T) {
	keys, file, write := keysFile(t)
	ed, es := keys[0], keys[4]
	write(ed)
	in := start(t, "redis", map[string]string{"TOKEND_HMAC_SECRET": "", "TOKEND_KEYS_FILE": file})
	reload := func(wantKID string) {
		t.Helper()
		r := in.postJSON(in.admin+"/admin/keys/reload", "")
		if r.status != 200 || r.body["signing_kid"] != wantKID {
			t.Fatalf("reload = %d %s; want signing kid %s", r.status, r.raw, wantKID)
		}
	}
	const workers = 8
	var (
		mu       sync.Mutex
		failures []string
		done     = make(chan struct{})
		wg       sync.WaitGroup
		kids     [workers]string // kid of each chain's newest token
	)
	for w := range workers {
		_, rt := in.login(fmt.Sprintf("user-%d", w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				r := in.refresh(rt)
				if r.status != 200 {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("worker %d refresh %d: %d %s", w, n, r.status, r.raw))
					mu.Unlock()
					return
				}
				_, rt = pair(t, r)
				hdr, _ := decodeJWT(t, rt)
				mu.Lock()
				kids[w] = hdr["kid"].(string)
				mu.Unlock()
			}
		}()
	}
	all := func(kid string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range kids {
			if k != kid {
				return false
			}
		}
		return true
	}
	waitUntil(t, func() bool { return all("ed-1") })
	write(es, ed) // es256-1 signs, ed-1 still verifies
	reload("es256-1")
	waitUntil(t, func() bool { return all("es256-1") })
	write(es) // ed-1 leaves
	reload("es256-1")
	time.Sleep(300 * time.Millisecond)
	close(done)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d chains failed during the rotation: %v", len(failures), failures)
	}
	jwks := string(in.do(http.MethodGet, in.public+"/.well-known/jwks.json", "", nil).raw)
	if strings.Contains(jwks, `"ed-1"`) || !strings.Contains(jwks, `"es256-1"`) {
		t.Fatalf("JWKS after rotation: %s", jwks)
	}
	// a bad file is refused and keeps the keys; no file at all is a 409
	os.WriteFile(file, []byte("{"), 0o600)
	if r := in.postJSON(in.admin+"/admin/keys/reload", ""); r.status != 409 || r.body["error"] == nil {
		t.Fatalf("reload of a bad file = %d %s; want 409 with the error", r.status, r.raw)
	}
	plain := start(t, "memory", nil)
	if r := plain.postJSON(plain.admin+"/admin/keys/reload", ""); r.status != 409 {
		t.Fatalf("reload without a keys file = %d %s; want 409", r.status, r.raw)
	}
}

func waitUntil(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}

// process is a tokend binary running as its own OS process.
type process struct {
	*instance
	cmd *exec.Cmd
}

// buildTokend builds the tokend binary into a directory of t's.
func buildTokend(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tokend")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs the tokend binary with env on free ports of 127.0.0.1
// and waits for /readyz; SIGTERM at the end, and it must exit 0. "{public}"
// in a value of env is the public listener's address.
func startProcess(t *testing.T, binary string, env map[string]string) *process {
	t.Helper()
	pub := net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
	adm := net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
	p := &process{instance: &instance{t: t, public: "http://" + pub, admin: "http://" + adm, logs: &syncBuffer{}}}
	p.api = newContract(t, p.public, p.admin, env["TOKEND_DIALECT"] == "aspnet")
	p.cmd = exec.Command(binary)
	p.cmd.Env = append(os.Environ(), "TOKEND_ADDR="+pub, "TOKEND_ADMIN_ADDR="+adm, "TOKEND_HMAC_SECRET="+testSecret)
	for k, v := range env {
		v = strings.ReplaceAll(v, "{public}", pub) // for settings that name the listener, such as TOKEND_PUBLIC_URL
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stderr = p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("tokend (pid %d) exited: %v", p.cmd.Process.Pid, err)
		}
		if t.Failed() {
			t.Logf("tokend %s log:\n%s", pub, p.logs.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := client.Get(p.admin + "/readyz"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			p.api.check(t, resp.Request, nil, resp.StatusCode, resp.Header, body) // not ready yet is documented too
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokend process not ready within 10s:\n%s", p.logs.String())
		}
	}
}

// TestTwoInstances: two tokend processes share one Redis, standalone and
// Cluster. Rotation on A then replay on B is reuse; a revocation on one is
// refused on the other at the next request, and its access tokens turn
// inactive in the other's introspection within the propagation bound.
func TestTwoInstances(t *testing.T) {
	redises := map[string]func(t *testing.T) string{
		"standalone": func(t *testing.T) string { return redistest.Start(t).Addr },
		"cluster":    func(t *testing.T) string { return strings.Join(redistest.StartCluster(t, 3).Addrs(), ",") },
	}
	bin := buildTokend(t)
	for name, redis := range redises {
		t.Run(name, func(t *testing.T) {
			// one service behind one URL: the instances share the issuer,
			// which the default (from each one's port) would not
			env := map[string]string{"TOKEND_STORE": "redis", "TOKEND_REDIS_ADDR": redis(t), "TOKEND_REUSE_GRACE": "0s",
				"TOKEND_PUBLIC_URL": publicURL}
			a, b := startProcess(t, bin, env), startProcess(t, bin, env)

			// rotated on A, replayed on B: reuse, and the session is over everywhere
			_, rt0 := a.login("alice")
			_, rt1 := pair(t, b.refresh(rt0))
			springError(t, b.refresh(rt0), 401, "Invalid JWT token")
			springError(t, a.refresh(rt1), 401, "Invalid JWT token")

			// revoked on A (client logout): refused on B, inactive on B
			access, rt := a.login("bob")
			if r := b.introspect(access); r.body["active"] != true {
				t.Fatalf("B's introspection before the revocation: %s", r.raw)
			}
			revoked := time.Now()
			if r := a.postJSON(a.public+"/api/auth/revoke", `{"refreshToken":"`+rt+`"}`); r.status != 204 {
				t.Fatalf("revoke on A: %d %s", r.status, r.raw)
			}
			springError(t, b.refresh(rt), 401, "Invalid JWT token")
			for b.introspect(access).body["active"] != false {
				if time.Since(revoked) > time.Second {
					t.Fatal("B still calls the access token active 1s after the revocation on A")
				}
				time.Sleep(time.Millisecond)
			}
			t.Logf("revocation on A seen by B's introspection after %v", time.Since(revoked))

			// a subject revoked on B: A refuses its refresh, A's introspection agrees
			access, rt = a.login("carol")
			if r := b.postJSON(b.admin+"/admin/subjects/carol/revoke", ""); r.status != 200 {
				t.Fatalf("subject revoke on B: %d %s", r.status, r.raw)
			}
			springError(t, a.refresh(rt), 401, "Invalid JWT token")
			waitUntil(t, func() bool { return a.introspect(access).body["active"] == false })

			// a new instance catches up on start: C learns of bob's revocation
			c := startProcess(t, bin, env)
			wantInactive(t, c.introspect(access))
		})
	}
}
