package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/tokens/dpop"
)

// TestDPoPProofCommand: the key file the README's walk-through makes, its
// thumbprint, and proofs the server's checks accept for that key.
func TestDPoPProofCommand(t *testing.T) {
	dir := t.TempDir()
	v, err := dpop.NewVerifier(dpop.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"ES256", "EdDSA"} {
		file := filepath.Join(dir, alg+".jwk")
		code, out, errs := cli(t, nil, "dpop-proof", "new", "--alg", alg, file)
		thumb := strings.TrimSpace(out)
		if code != 0 || len(thumb) != 43 {
			t.Fatalf("new: %d %q %s", code, out, errs)
		}
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v; want mode 0600", fi.Mode(), err)
		}
		if code, out, _ := cli(t, nil, "dpop-proof", "thumbprint", file); code != 0 || strings.TrimSpace(out) != thumb {
			t.Fatalf("thumbprint: %d %q; want %s", code, out, thumb)
		}
		code, out, errs = cli(t, nil, "dpop-proof", file, "--url", "https://auth.example.test/oauth2/token")
		if code != 0 {
			t.Fatalf("proof: %d %s", code, errs)
		}
		p, err := v.Verify([]byte(strings.TrimSpace(out)), dpop.Request{Method: "POST", URL: "https://auth.example.test/oauth2/token", Thumbprint: thumb})
		if err != nil || p.Thumbprint != thumb {
			t.Fatalf("%s proof refused: %v", alg, err)
		}
		code, out, _ = cli(t, nil, "dpop-proof", file, "--method", "GET", "--url", "https://api.example.test/me", "--access-token", "tok")
		if _, err := v.Verify([]byte(strings.TrimSpace(out)), dpop.Request{Method: "GET", URL: "https://api.example.test/me", AccessToken: []byte("tok")}); code != 0 || err != nil {
			t.Fatalf("resource proof: %d %v", code, err)
		}
	}
	for _, args := range [][]string{
		{"dpop-proof", "new", filepath.Join(dir, "ES256.jwk")}, // never over a key
		{"dpop-proof", "new", "--alg", "HS256", filepath.Join(dir, "x.jwk")},
		{"dpop-proof", filepath.Join(dir, "ES256.jwk")}, // no --url
		{"dpop-proof", filepath.Join(dir, "missing.jwk"), "--url", "https://a/"},
		{"dpop-proof"},
	} {
		if code, _, errs := cli(t, nil, args...); code != 2 || errs == "" {
			t.Errorf("%q: exit %d %q; want 2 and a reason", args, code, errs)
		}
	}
}
