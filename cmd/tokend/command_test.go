package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// cli runs a subcommand in process and returns its exit code and output.
func cli(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	code, ok := command(args, func(k string) string { return env[k] }, &out, &errs)
	if !ok {
		t.Fatalf("%q is not a subcommand", args)
	}
	return code, out.String(), errs.String()
}

// jwksKeys returns the keys of a JWKS document.
func jwksKeys(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatalf("not a JWKS: %v: %s", err, b)
	}
	return set.Keys
}

func kids(keys []map[string]any) []string {
	var ks []string
	for _, k := range keys {
		ks = append(ks, k["kid"].(string))
	}
	return ks
}

// TestKeysNew: for each algorithm the issue names, `keys new` writes a
// private JWKS with mode 0600 that tokend starts on and signs with; the
// public key is in JWKS, and `keys public` prints what tokend publishes.
func TestKeysNew(t *testing.T) {
	for _, tc := range []struct {
		alg, kty string
		public   bool
	}{
		{"ES256", "EC", true},
		{"EdDSA", "OKP", true},
		{"RS256", "RSA", true},
		{"HS256", "oct", false},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "keys.jwks")
			code, _, stderr := cli(t, nil, "keys", "new", "--alg", tc.alg, "--kid", "k-"+tc.alg, file)
			if code != 0 {
				t.Fatalf("keys new: %d %s", code, stderr)
			}
			st, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v; want 0600", st.Mode().Perm())
			}
			b, _ := os.ReadFile(file)
			keys := jwksKeys(t, b)
			if len(keys) != 1 || keys[0]["kid"] != "k-"+tc.alg || keys[0]["alg"] != tc.alg || keys[0]["kty"] != tc.kty {
				t.Fatalf("keys %v", keys)
			}
			if keys[0]["d"] == nil && keys[0]["k"] == nil {
				t.Fatalf("not a private key: %v", keys[0])
			}

			in := start(t, "memory", map[string]string{"TOKEND_HMAC_SECRET": "", "TOKEND_KEYS_FILE": file})
			access, refresh := in.login("alice")
			for _, tok := range []string{access, refresh} {
				if hdr, _ := decodeJWT(t, tok); hdr["kid"] != "k-"+tc.alg || hdr["alg"] != tc.alg {
					t.Fatalf("header %v; want kid k-%s alg %s", hdr, tc.alg, tc.alg)
				}
			}
			if r := in.refresh(refresh); r.status != 200 {
				t.Fatalf("refresh: %d %s", r.status, r.raw)
			}
			published := jwksKeys(t, in.do(http.MethodGet, in.public+"/.well-known/jwks.json", "", nil).raw)
			code, stdout, stderr := cli(t, nil, "keys", "public", file)
			if code != 0 {
				t.Fatalf("keys public: %d %s", code, stderr)
			}
			printed := jwksKeys(t, []byte(stdout))
			if !tc.public {
				if len(published) != 0 || len(printed) != 0 || !strings.Contains(stderr, "left out") {
					t.Fatalf("an HMAC secret was published: %v / %v (%s)", published, printed, stderr)
				}
				return
			}
			if len(printed) != 1 || printed[0]["d"] != nil || printed[0]["kid"] != "k-"+tc.alg {
				t.Fatalf("keys public printed %v", printed)
			}
			if !jsonEqual(printed, published) {
				t.Fatalf("keys public %v; tokend publishes %v", printed, published)
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestKeysRotation: the rotation the README describes, against a running
// tokend: add a key (published, not signing), make it the signer, remove
// the old one; sessions survive every step until their key is removed.
func TestKeysRotation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys.jwks")
	if code, _, stderr := cli(t, nil, "keys", "new", "--alg", "ES256", "--kid", "old", file); code != 0 {
		t.Fatal(stderr)
	}
	in := start(t, "memory", map[string]string{"TOKEND_HMAC_SECRET": "", "TOKEND_KEYS_FILE": file})
	reload := func(wantSigner string) {
		t.Helper()
		r := in.postJSON(in.admin+"/admin/keys/reload", "")
		if r.status != 200 || r.body["signing_kid"] != wantSigner {
			t.Fatalf("reload: %d %s; want signer %s", r.status, r.raw, wantSigner)
		}
	}
	published := func() []string {
		return kids(jwksKeys(t, in.do(http.MethodGet, in.public+"/.well-known/jwks.json", "", nil).raw))
	}
	_, rt := in.login("alice")

	// 1. add: published, old still signs.
	if code, _, stderr := cli(t, nil, "keys", "add", file, "--alg", "EdDSA", "--kid", "new"); code != 0 {
		t.Fatal(stderr)
	}
	reload("old")
	if got := published(); !slices.Equal(got, []string{"old", "new"}) {
		t.Fatalf("JWKS %v", got)
	}
	r := in.refresh(rt)
	access, rt := pair(t, r)
	if hdr, _ := decodeJWT(t, access); hdr["kid"] != "old" {
		t.Fatalf("signed by %v; want old", hdr["kid"])
	}

	// 2. sign: new signs, tokens of old still refresh.
	if code, _, stderr := cli(t, nil, "keys", "sign", file, "--kid", "new"); code != 0 {
		t.Fatal(stderr)
	}
	reload("new")
	access, rt = pair(t, in.refresh(rt))
	if hdr, _ := decodeJWT(t, access); hdr["kid"] != "new" {
		t.Fatalf("signed by %v; want new", hdr["kid"])
	}

	// 3. remove: the signer cannot go; old only a refresh lifetime after
	// it stopped signing (TestKeyRotationRunbook), or by force; JWKS follows.
	if code, _, stderr := cli(t, nil, "keys", "remove", file, "--kid", "new"); code != 2 || !strings.Contains(stderr, "signs") {
		t.Fatalf("removing the signer: %d %s", code, stderr)
	}
	if code, _, stderr := cli(t, nil, "keys", "remove", file, "--kid", "old"); code != 2 || !strings.Contains(stderr, "--force") {
		t.Fatalf("removing a key that signed a moment ago: %d %s", code, stderr)
	}
	if code, _, stderr := cli(t, nil, "keys", "remove", file, "--kid", "old", "--force"); code != 0 {
		t.Fatal(stderr)
	}
	reload("new")
	if got := published(); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("JWKS %v", got)
	}
	if r := in.refresh(rt); r.status != 200 {
		t.Fatalf("a token of the signer after removing the old key: %d %s", r.status, r.raw)
	}

	// add --sign: one step, for keys no verifier caches.
	if code, _, stderr := cli(t, nil, "keys", "add", file, "--alg", "HS256", "--kid", "mac", "--sign"); code != 0 {
		t.Fatal(stderr)
	}
	reload("mac")
	st, _ := os.Stat(file)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode after rewrites %v", st.Mode().Perm())
	}
}

// TestKeysErrors: every refusal exits 2 with one line naming the problem,
// and leaves the file as it was.
func TestKeysErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keys.jwks")
	if code, _, stderr := cli(t, nil, "keys", "new", "--kid", "a", file); code != 0 {
		t.Fatal(stderr)
	}
	before, _ := os.ReadFile(file)
	garbage := filepath.Join(dir, "garbage.jwks")
	os.WriteFile(garbage, []byte("not json"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keys"}, "which one"},
		{[]string{"keys", "rotate", file}, `no keys command "rotate"`},
		{[]string{"keys", "new", file}, "exists"},
		{[]string{"keys", "new", "--alg", "none", filepath.Join(dir, "x")}, `algorithm "none" is not supported`},
		{[]string{"keys", "new", "--alg", "RS256", "--bits", "1024", filepath.Join(dir, "x")}, "at least 2048 bits"},
		{[]string{"keys", "new"}, "one FILE"},
		{[]string{"keys", "add", file, "--kid", "a"}, `key id "a" appears twice`},
		{[]string{"keys", "add", filepath.Join(dir, "missing"), "--kid", "b"}, "no such file"},
		{[]string{"keys", "add", garbage}, "not a JWKS document"},
		{[]string{"keys", "sign", file}, "--kid names the key"},
		{[]string{"keys", "sign", file, "--kid", "zz"}, `has no key "zz"`},
		{[]string{"keys", "remove", file, "--kid", "a"}, `"a" signs`},
		{[]string{"keys", "public", garbage}, "not a JWKS document"},
		{[]string{"keys", "new", "--nope", file}, "flag provided but not defined"},
	} {
		code, _, stderr := cli(t, nil, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
		t.Fatal("a refused command changed the file")
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Fatal("a refused keys new wrote its file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := cli(t, nil, "version")
	if code != 0 || !strings.HasPrefix(stdout, "tokend "+release+" ") && !strings.HasPrefix(stdout, "tokend "+release+"+dirty ") ||
		!strings.Contains(stdout, "github.com/tokend/tokend") || !strings.Contains(stdout, "go1.") {
		t.Fatalf("version: %d %q; want tokend %s", code, stdout, release)
	}
	// what go build and go install stamp as the module's version
	for mv, want := range map[string]bool{
		"v0.1.0": true, "v1.2.3-rc.1": true, "v0.2.0-beta": true,
		"(devel)": false, "": false, "v0.1.0+dirty": false,
		"v0.0.0-20261207184753-2550c88f1a2b":         false,
		"v0.1.1-0.20261207184753-2550c88f1a2b":       false,
		"v0.1.1-0.20261207184753-2550c88f1a2b+dirty": false,
		"v0.2.0-rc.1.0.20261207184753-2550c88f1a2b":  false,
	} {
		if tagged(mv) != want {
			t.Errorf("tagged(%q) = %v; want %v", mv, !want, want)
		}
	}
}

// TestChangelogNamesRelease: the newest version CHANGELOG.md describes is
// the one tokend version prints, and every version heading is in Keep a
// Changelog's form with a date.
func TestChangelogNamesRelease(t *testing.T) {
	b, err := os.ReadFile("../../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile(`^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$`)
	var versions []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "## ") || line == "## [Unreleased]" {
			continue
		}
		m := heading.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("CHANGELOG.md: %q is not \"## [X.Y.Z] - YYYY-MM-DD\"", line)
		}
		versions = append(versions, "v"+m[1])
	}
	if len(versions) == 0 || versions[0] != release {
		t.Fatalf("CHANGELOG.md names %v first; tokend's release is %s", versions, release)
	}
}

// TestHealthcheck: 0 for a ready instance, 1 for a refusal or nothing
// listening; the admin token comes from the environment as tokend reads it.
func TestHealthcheck(t *testing.T) {
	const token = "admin-token-0123456789"
	in := start(t, "memory", map[string]string{"TOKEND_ADMIN_TOKEN": token})
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	for _, tc := range []struct {
		name string
		env  map[string]string
		url  string
		code int
		want string
	}{
		{"ready", map[string]string{"TOKEND_ADMIN_TOKEN": token}, in.admin + "/readyz", 0, `"status":"ready"`},
		{"token from file", map[string]string{"TOKEND_ADMIN_TOKEN_FILE": tokenFile}, in.admin + "/healthz", 0, `"status":"ok"`},
		{"no token", nil, in.admin + "/readyz", 1, "answered 401"},
		{"no route", map[string]string{"TOKEND_ADMIN_TOKEN": token}, in.admin + "/nope", 1, "answered 404"},
		{"nothing listening", nil, "http://127.0.0.1:1/readyz", 1, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, tc.env, "healthcheck", "--timeout", "2s", tc.url)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
				t.Fatalf("exit %d, %q %q; want %d and %q", code, stdout, stderr, tc.code, tc.want)
			}
		})
	}
}

// TestNotACommand: settings are not taken for subcommands.
func TestNotACommand(t *testing.T) {
	for _, args := range [][]string{nil, {"--dialect", "aspnet"}, {"-h"}} {
		if _, ok := command(args, os.Getenv, &bytes.Buffer{}, &bytes.Buffer{}); ok {
			t.Errorf("%q taken for a subcommand", args)
		}
	}
}
