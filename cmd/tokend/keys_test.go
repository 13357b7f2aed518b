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

	"github.com/tokend/tokend/internal/tokens"
)

// keysFile returns the keys of internal/tokens/testdata/keys.jwks (ed-1, hs256-1,
// hs384-1, hs512-1, es256-1, rs256-1), a path in a temporary directory, and a
// function that writes a JWKS of the given keys there.
func keysFile(t *testing.T) (keys []map[string]any, file string, write func(keys ...map[string]any)) {
	t.Helper()
	src, err := os.ReadFile("../../internal/tokens/testdata/keys.jwks")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(src, &set); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "keys.jwks")
	return set.Keys, file, func(keys ...map[string]any) {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSIGHUPReloadsKeys: new tokens use the new signing key at once, a key
// removed from the file stops verifying, JWKS follows, a bad file keeps the
// keys in force.
func TestSIGHUPReloadsKeys(t *testing.T) {
	keys, file, write := keysFile(t)
	write(keys...) // ed-1 first: it signs
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

	write(keys[1:]...) // ed-1 leaves; hs256-1 signs now
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

// TestAspnetKeyRotation: with keys from a file, any key signs aspnet Tokens
// (EdDSA here) and the refresh tokens' MAC keys follow the key set: a
// rotation with overlap keeps sessions alive, a key removed ends its tokens.
func TestAspnetKeyRotation(t *testing.T) {
	keys, file, write := keysFile(t)
	ed, hs512 := keys[0], keys[3]
	write(ed, hs512)
	in := start(t, "memory", map[string]string{"TOKEND_DIALECT": "aspnet", "TOKEND_HMAC_SECRET": "", "TOKEND_KEYS_FILE": file})
	hup := func() {
		t.Helper()
		n := strings.Count(in.logs.String(), "keys reloaded")
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); strings.Count(in.logs.String(), "keys reloaded") == n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no reload in the log after SIGHUP")
			}
		}
	}
	aliceTok, aliceRT := in.aspnetLogin("alice")
	bobTok, bobRT := in.aspnetLogin("bob")
	if hdr, _ := decodeJWT(t, aliceTok); hdr["kid"] != "ed-1" || hdr["alg"] != "EdDSA" {
		t.Fatalf("Token header %v; want ed-1, EdDSA", hdr)
	}

	write(hs512, ed) // hs512-1 signs now, ed-1 still verifies
	hup()
	aliceTok, aliceRT = aspnetPair(t, in.aspnetRefresh(aliceTok, aliceRT))
	if hdr, _ := decodeJWT(t, aliceTok); hdr["kid"] != "hs512-1" {
		t.Fatalf("Token after rotation signed by %v; want hs512-1", hdr["kid"])
	}

	write(hs512) // ed-1 is gone
	hup()
	aspnetPair(t, in.aspnetRefresh(aliceTok, aliceRT))
	aspnetError(t, in.aspnetRefresh(bobTok, bobRT), 401, invalidToken) // Token of a removed key
	newBobTok, _ := in.aspnetLogin("bob")
	aspnetError(t, in.aspnetRefresh(newBobTok, bobRT), 404, invalidRefreshToken) // MAC of a removed key
}

// TestAspnetRefreshKey: TOKEND_REFRESH_KEY, not the signing key, makes the
// MAC of refresh tokens.
func TestAspnetRefreshKey(t *testing.T) {
	const k1, k2 = "refresh-key-one-0123456789abcdef-0123456789", "refresh-key-two-0123456789abcdef-0123456789"
	in := startAspnet(t, "memory", map[string]string{"TOKEND_REFRESH_KEY": k1 + "," + k2})
	tok, _ := in.aspnetLogin("alice")
	_, claims := decodeJWT(t, tok)
	sid := claims["sid"].(string)
	_, derived := aspnetCodec(t, aspnetSecret, in.clock.Now())
	byKey := func(key string) tokens.Opaque {
		ring, err := tokens.NewMACKeys([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return tokens.Opaque{Codec: derived.Codec, Fixed: ring}
	}
	mintRT := func(o tokens.Opaque, gen int64) string {
		exp := in.clock.Now().Add(720 * time.Hour) // as the server sets it: TOKEND_REFRESH_TTL
		b, err := o.AppendRefresh(nil, &tokens.Claims{Session: sid, Gen: gen, Expires: exp.Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	aspnetError(t, in.aspnetRefresh(tok, mintRT(derived, 0)), 404, invalidRefreshToken)
	_, rt := aspnetPair(t, in.aspnetRefresh(tok, mintRT(byKey(k2), 0))) // the second key verifies
	if rt != mintRT(byKey(k1), 1) {
		t.Fatal("the first TOKEND_REFRESH_KEY must make new refresh tokens")
	}
}
