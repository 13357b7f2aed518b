package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReloadsKeys: new tokens use the new signing key at once, a key
// removed from the file stops verifying, JWKS follows, a bad file keeps the
// keys in force.
func TestSIGHUPReloadsKeys(t *testing.T) {
	src, err := os.ReadFile("../../tokens/testdata/keys.jwks")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(src, &set); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "keys.jwks")
	write := func(keys []map[string]any) {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(set.Keys) // ed-1 first: it signs
	in := start(t, "memory", map[string]string{"TOKEND_HMAC_SECRET": "", "TOKEND_KEYS_FILE": file})
	_, old := in.login("alice")
	if hdr, _ := decodeJWT(t, old); hdr["kid"] != "ed-1" {
		t.Fatalf("signed by %v; want ed-1", hdr["kid"])
	}
	hup := func(wantLog string) {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(in.logs.String(), wantLog); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log after SIGHUP", wantLog)
			}
		}
	}

	os.WriteFile(file, []byte("not a jwks"), 0o600)
	hup("key reload failed")
	r := in.refresh(old)
	if r.status != 200 {
		t.Fatalf("after a bad reload: %d %s", r.status, r.raw)
	}
	_, old = pair(t, r) // the current token of alice's session, signed by ed-1

	write(set.Keys[1:]) // ed-1 leaves; hs256-1 signs now
	hup("keys reloaded")
	_, fresh := in.login("bob")
	if hdr, _ := decodeJWT(t, fresh); hdr["kid"] != "hs256-1" {
		t.Fatalf("signed by %v after reload; want hs256-1", hdr["kid"])
	}
	springError(t, in.refresh(old), 401, "Invalid JWT token")
	if r := in.refresh(fresh); r.status != 200 {
		t.Fatalf("token of the new key: %d", r.status)
	}
	jwks := string(in.do(http.MethodGet, in.public+"/.well-known/jwks.json", "", nil).raw)
	if strings.Contains(jwks, `"ed-1"`) || !strings.Contains(jwks, `"es256-1"`) {
		t.Fatalf("JWKS after reload: %s", jwks)
	}
}
