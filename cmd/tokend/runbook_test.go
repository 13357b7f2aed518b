package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens"
)

// TestKeyRotationRunbook follows docs/operations.md's "Rotation without
// logouts" with tokend keys, for spring, aspnet (refresh MAC keys derived
// from the key set) and aspnet with a fixed TOKEND_REFRESH_KEY: a client
// idle since the signer changed still refreshes once the runbook's step 4
// is done. Issue 25, item 9: removing the old key one access-token lifetime
// later, as the runbook said for aspnet, logged it out (invalid_token).
func TestKeyRotationRunbook(t *testing.T) {
	const refreshKey = "runbook-refresh-key-0123456789abcdef-0123456789"
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"spring", nil},
		{"aspnet", map[string]string{"TOKEND_DIALECT": "aspnet"}},
		{"aspnet with TOKEND_REFRESH_KEY", map[string]string{"TOKEND_DIALECT": "aspnet", "TOKEND_REFRESH_KEY": refreshKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "keys.jwks")
			env := map[string]string{"TOKEND_HMAC_SECRET": "", "TOKEND_KEYS_FILE": file, "TOKEND_ACCESS_TTL": "30m", "TOKEND_REFRESH_TTL": "720h"}
			for k, v := range tc.env {
				env[k] = v
			}
			aspnet := env["TOKEND_DIALECT"] == "aspnet"
			now := time.Now // tokend keys runs on the operator's clock: the instance's, once it runs
			keys := func(args ...string) (int, string) {
				t.Helper()
				var out, errs bytes.Buffer
				if err := keysCommand(args, func(k string) string { return env[k] }, now, &out, &errs); err != nil {
					return 2, err.Error()
				}
				return 0, errs.String()
			}
			if code, stderr := keys("new", "--alg", "ES256", "--kid", "old", file); code != 0 {
				t.Fatal(stderr)
			}
			in := start(t, "memory", env)
			now = in.clock.Now
			reload := func(wantSigner string) {
				t.Helper()
				r := in.postJSON(in.admin+"/admin/keys/reload", "")
				if r.status != 200 || r.body["signing_kid"] != wantSigner {
					t.Fatalf("reload: %d %s; want signer %s", r.status, r.raw, wantSigner)
				}
			}
			type pairOf struct{ access, refresh string }
			login := func(sub string) pairOf {
				if aspnet {
					a, r := in.aspnetLogin(sub)
					return pairOf{a, r}
				}
				a, r := in.login(sub)
				return pairOf{a, r}
			}
			refresh := func(p pairOf) (pairOf, reply) {
				t.Helper()
				if aspnet {
					r := in.aspnetRefresh(p.access, p.refresh)
					if r.status != 200 {
						return p, r
					}
					a, rt := aspnetPair(t, r)
					return pairOf{a, rt}, r
				}
				r := in.refresh(p.refresh)
				if r.status != 200 {
					return p, r
				}
				a, rt := pair(t, r)
				return pairOf{a, rt}, r
			}
			idle, active := login("idle"), login("active")

			// 1. add the new key, reload: published, old still signs.
			if code, stderr := keys("add", file, "--alg", "EdDSA", "--kid", "new"); code != 0 {
				t.Fatal(stderr)
			}
			reload("old")
			// 3. make it the signer, reload.
			in.clock.Advance(time.Minute)
			last := login("last") // the old key's last session: idle from now on
			if hdr, _ := decodeJWT(t, last.access); hdr["kid"] != "old" {
				t.Fatalf("signed by %v; want old", hdr["kid"])
			}
			if code, stderr := keys("sign", file, "--kid", "new"); code != 0 {
				t.Fatal(stderr)
			}
			reload("new")
			var r reply
			if active, r = refresh(active); r.status != 200 {
				t.Fatalf("refresh after the signer changed: %d %s", r.status, r.raw)
			}
			if hdr, _ := decodeJWT(t, active.access); hdr["kid"] != "new" {
				t.Fatalf("signed by %v; want new", hdr["kid"])
			}
			signedUntil := in.clock.Now()
			// 4. one access-token lifetime later (what the runbook said for
			// aspnet), the old key goes, if keys remove lets it
			in.clock.Advance(31 * time.Minute)
			code, stderr := keys("remove", file, "--kid", "old")
			if code == 0 {
				reload("new")
			}
			if idle, r = refresh(idle); r.status != 200 {
				t.Fatalf("a client idle since the signer changed, after keys remove (exit %d): %d %s", code, r.status, r.raw)
			}
			if code != 2 || !strings.Contains(stderr, "--force") {
				t.Fatalf("keys remove of a key that signed 31 min ago: exit %d, %q; want 2, naming --force", code, stderr)
			}
			in.clock.Advance(360 * time.Hour)
			if active, r = refresh(active); r.status != 200 {
				t.Fatalf("refresh 15 days on: %d %s", r.status, r.raw)
			}
			// a second before a refresh lifetime has passed since the old key
			// stopped signing, its last session may still come back: kept
			in.clock.Advance(signedUntil.Add(720*time.Hour - time.Second).Sub(in.clock.Now()))
			if code, stderr := keys("remove", file, "--kid", "old"); code != 2 || !strings.Contains(stderr, "--force") {
				t.Fatalf("keys remove a second before the refresh lifetime: exit %d, %q; want 2", code, stderr)
			}
			if _, r := refresh(last); r.status != 200 {
				t.Fatalf("the old key's last session, idle for a refresh lifetime less a second: %d %s", r.status, r.raw)
			}
			in.clock.Advance(time.Second) // every token the old key signed has expired
			if code, stderr := keys("remove", file, "--kid", "old"); code != 0 {
				t.Fatalf("keys remove a refresh lifetime after the old key stopped signing: %s", stderr)
			}
			reload("new")
			for name, p := range map[string]pairOf{"active": active, "idle": idle} {
				if _, r := refresh(p); r.status != 200 {
					t.Fatalf("%s client, refreshed since the signer changed, after the old key left: %d %s", name, r.status, r.raw)
				}
			}
		})
	}
}

// TestKeysRetired: tokend keys records when a key stops signing (sign, add
// --sign), forgets it when the key signs again, and keys remove keeps a
// key for --refresh-ttl (default TOKEND_REFRESH_TTL) after that; a key that
// never signed goes at once. The record is never published.
func TestKeysRetired(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys.jwks")
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	env := map[string]string{"TOKEND_REFRESH_TTL": "1h"}
	run := func(args ...string) error {
		t.Helper()
		var out, errs bytes.Buffer
		return keysCommand(args, func(k string) string { return env[k] }, func() time.Time { return at }, &out, &errs)
	}
	must := func(args ...string) {
		t.Helper()
		if err := run(args...); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
	}
	retired := func() map[string]any {
		t.Helper()
		b, _ := os.ReadFile(file)
		ks, err := tokens.ParseJWKS(b, "")
		if err != nil {
			t.Fatalf("the file does not load: %v", err)
		}
		if strings.Contains(string(ks.JWKS()), retiredMember) {
			t.Fatal("the retirement record is published")
		}
		r := map[string]any{}
		for _, k := range jwksKeys(t, b) {
			if v, ok := k[retiredMember]; ok {
				r[k["kid"].(string)] = v
			}
		}
		return r
	}
	must("new", "--alg", "ES256", "--kid", "a", file)
	must("add", file, "--alg", "EdDSA", "--kid", "b")
	must("add", file, "--alg", "EdDSA", "--kid", "never")
	if r := retired(); len(r) != 0 {
		t.Fatalf("retired %v; want none yet", r)
	}
	at = at.Add(500 * time.Millisecond)
	must("sign", file, "--kid", "b")
	if r := retired(); !reflect.DeepEqual(r, map[string]any{"a": "2026-12-01T10:00:01Z"}) {
		t.Fatalf("retired %v; want a, at 10:00:00.5 rounded up", r)
	}
	at = at.Add(10 * time.Minute)
	must("sign", file, "--kid", "a") // a signs again: b retires, a is not retired
	if r := retired(); !reflect.DeepEqual(r, map[string]any{"b": "2026-12-01T10:10:01Z"}) {
		t.Fatalf("retired %v; want b only", r)
	}
	must("sign", file, "--kid", "a") // the signer already: nothing retires
	at = at.Add(10 * time.Minute)
	must("add", file, "--alg", "ES256", "--kid", "c", "--sign")
	if r := retired(); !reflect.DeepEqual(r, map[string]any{"a": "2026-12-01T10:20:01Z", "b": "2026-12-01T10:10:01Z"}) {
		t.Fatalf("retired %v; want a and b", r)
	}
	must("remove", file, "--kid", "never") // never signed: no session holds its tokens
	if err := run("remove", file, "--kid", "b"); err == nil || !strings.Contains(err.Error(), "2026-12-01T11:10:01Z") {
		t.Fatalf("removing b 10 min after it stopped signing: %v; want refused until 11:10:01", err)
	}
	if err := run("remove", file, "--kid", "b", "--refresh-ttl", "nope"); err == nil || !strings.Contains(err.Error(), "--refresh-ttl") {
		t.Fatalf("a bad --refresh-ttl: %v", err)
	}
	must("remove", file, "--kid", "b", "--refresh-ttl", "9m") // the flag wins over TOKEND_REFRESH_TTL
	at = at.Add(time.Hour + time.Second)                      // a refresh lifetime after 10:20:00.5, rounded up
	must("remove", file, "--kid", "a")
	must("add", file, "--alg", "EdDSA", "--kid", "d", "--sign") // c retires, and its record goes bad
	b, _ := os.ReadFile(file)
	os.WriteFile(file, bytes.Replace(b, []byte(`"tokend_retired":"2026-12-01T11:20:02Z"`), []byte(`"tokend_retired":"yesterday"`), 1), 0o600)
	if err := run("remove", file, "--kid", "c"); err == nil || !strings.Contains(err.Error(), "not an RFC 3339 time") {
		t.Fatalf("a bad record: %v; want it named", err)
	}
	must("remove", file, "--kid", "c", "--force")
	b, _ = os.ReadFile(file)
	if got := kids(jwksKeys(t, b)); !reflect.DeepEqual(got, []string{"d"}) {
		t.Fatalf("keys %v; want d", got)
	}
}
