package main

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

var b64 = base64.RawURLEncoding

// keySet writes a keys file holding only the test key kid and returns it
// with the key's private and public halves.
func keySet(t *testing.T, kid string) (file string, private any, public any, publicJWK []byte) {
	t.Helper()
	keys, file, write := keysFile(t)
	for _, k := range keys {
		if k["kid"] != kid {
			continue
		}
		write(k)
		raw, _ := json.Marshal(k)
		key, err := jwk.ParseKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := key.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if publicJWK, err = json.Marshal(pub); err != nil {
			t.Fatal(err)
		}
		switch kid {
		case "es256-1":
			var p ecdsa.PrivateKey
			if err := jwk.Export(key, &p); err != nil {
				t.Fatal(err)
			}
			return file, &p, &p.PublicKey, publicJWK
		case "rs256-1":
			var p rsa.PrivateKey
			if err := jwk.Export(key, &p); err != nil {
				t.Fatal(err)
			}
			return file, &p, &p.PublicKey, publicJWK
		}
	}
	t.Fatalf("no key %s in the test keys", kid)
	return
}

// sign signs header.payload (both raw JSON, as written) with key.
func sign(t *testing.T, key any, header, payload string) string {
	t.Helper()
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:]); err != nil {
			t.Fatal(err)
		}
	case []byte: // HS256 with whatever the attacker calls the secret
		m := hmac.New(sha256.New, k)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	}
	return input + "." + b64.EncodeToString(sig)
}

type attack struct{ name, token string }

// jwtAttacks are forgeries of a token tokend signed (tok) with the key set
// of alg: what an attacker without the private key can send, and, marked
// "signed", headers tokend must refuse even under a valid signature.
func jwtAttacks(t *testing.T, tok, alg string, private, public any, publicJWK []byte) []attack {
	t.Helper()
	parts := strings.Split(tok, ".")
	hdrRaw, _ := b64.DecodeString(parts[0])
	payRaw, _ := b64.DecodeString(parts[1])
	sig, _ := b64.DecodeString(parts[2])
	var hdr map[string]any
	if err := json.Unmarshal(hdrRaw, &hdr); err != nil {
		t.Fatal(err)
	}
	kid, typ := hdr["kid"].(string), hdr["typ"].(string)
	header := func(alg string, extra string) string {
		return fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":%q%s}`, alg, kid, typ, extra)
	}
	enc := func(s string) string { return b64.EncodeToString([]byte(s)) }
	var out []attack
	for _, none := range []string{"none", "None", "NONE", "nOnE"} {
		out = append(out,
			attack{"alg " + none + ", no signature", enc(header(none, "")) + "." + parts[1] + "."},
			attack{"alg " + none + ", original signature", enc(header(none, "")) + "." + parts[1] + "." + parts[2]})
	}
	der, _ := x509.MarshalPKIXPublicKey(public)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	out = append(out,
		attack{"HS256 keyed with the public key (PEM)", sign(t, pemKey, header("HS256", ""), string(payRaw))},
		attack{"HS256 keyed with the public key (JWK)", sign(t, publicJWK, header("HS256", ""), string(payRaw))},
		attack{"signature of zeros (ECDSA r = s = 0)", parts[0] + "." + parts[1] + "." + b64.EncodeToString(make([]byte, len(sig)))},
		attack{"duplicated alg: none last", enc(header(alg, `,"alg":"none"`)) + "." + parts[1] + "." + parts[2]},
		attack{"duplicated alg: none first", enc(`{"alg":"none",`+header(alg, "")[1:]) + "." + parts[1] + "."},
		attack{"unicode-escaped none", enc(`{"alg":"\u006eone","kid":"`+kid+`","typ":"`+typ+`"}`) + "." + parts[1] + "."},
		attack{"five segments", tok + ".e30.e30"},
		attack{"padded payload", parts[0] + "." + parts[1] + "==." + parts[2]},
		attack{"padded signature", tok + "=="},
		attack{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(tok) + "+"},
	)
	flipped := append([]byte(nil), sig...)
	flipped[len(flipped)/2] ^= 0x01
	out = append(out, attack{"one signature bit flipped", parts[0] + "." + parts[1] + "." + b64.EncodeToString(flipped)})

	// the claims bumped under the original signature
	var claims map[string]any
	_ = json.Unmarshal(payRaw, &claims)
	for _, c := range []string{"gen", "exp"} {
		if v, ok := claims[c].(float64); ok {
			claims[c] = v + 1
			bumped, _ := json.Marshal(claims)
			claims[c] = v
			out = append(out, attack{c + " bumped under the old signature", parts[0] + "." + enc(string(bumped)) + "." + parts[2]})
		}
	}
	// an attacker's own key, announced by URL
	evil, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	out = append(out, attack{"jku to the attacker's key set", sign(t, evil,
		`{"alg":"ES256","kid":"evil","typ":"`+typ+`","jku":"http://127.0.0.1:1/jwks.json"}`, string(payRaw))})
	// headers tokend does not understand, under tokend's own valid signature
	out = append(out,
		attack{"crit extension (signed)", sign(t, private, header(alg, `,"crit":["exp"]`), string(payRaw))},
		attack{"b64 false (signed)", sign(t, private, header(alg, `,"b64":false,"crit":["b64"]`), string(payRaw))},
	)
	return out
}

// TestAttacks: forged, altered and confused tokens against ES256 and RS256
// key sets, on both dialects: every one refused in the dialect's shape, and
// none burned the session, whose real refresh token still works after.
func TestAttacks(t *testing.T) {
	for _, kid := range []string{"es256-1", "rs256-1"} {
		alg := strings.ToUpper(strings.TrimSuffix(kid, "-1"))
		file, private, public, publicJWK := keySet(t, kid)
		env := map[string]string{"TOKEND_HMAC_SECRET": "", "TOKEND_KEYS_FILE": file}
		t.Run("spring/"+alg, func(t *testing.T) {
			in := start(t, "memory", env)
			access, refresh := in.login("mallory")
			attacks := append(jwtAttacks(t, refresh, alg, private, public, publicJWK),
				attack{"access token as refresh token", access})
			for _, a := range attacks {
				r := in.refresh(a.token)
				if r.status != 401 || (r.body["message"] != "Invalid JWT token" && r.body["message"] != "Invalid token format") {
					t.Errorf("%s: %d %s; want 401 Invalid JWT token or Invalid token format", a.name, r.status, r.raw)
				}
			}
			pair(t, in.refresh(refresh)) // the session was not burned
		})
		t.Run("aspnet/"+alg, func(t *testing.T) {
			aenv := map[string]string{"TOKEND_DIALECT": "aspnet"}
			for k, v := range env {
				aenv[k] = v
			}
			in := start(t, "memory", aenv)
			token, refresh := in.aspnetLogin("mallory")
			for _, a := range jwtAttacks(t, token, alg, private, public, publicJWK) {
				r := in.aspnetRefresh(a.token, refresh)
				aspnetCode(t, r, 401, "invalid_token", a.name)
			}
			raw, _ := base64.StdEncoding.DecodeString(refresh)
			flip := func(i int) string {
				b := append([]byte(nil), raw...)
				b[i] ^= 0x01
				return base64.StdEncoding.EncodeToString(b)
			}
			opaque := []attack{
				{"access token as refresh token", token},
				{"first bit flipped", flip(0)},
				{"a sid bit flipped", flip(10)},
				{"a MAC bit flipped", flip(len(raw) - 1)},
				{"truncated", refresh[:len(refresh)-4]},
				{"without padding", strings.TrimRight(refresh, "=")},
				{"one byte longer", base64.StdEncoding.EncodeToString(append(append([]byte(nil), raw...), 0))},
				{"a JWT", sign(t, private, `{"alg":"`+alg+`"}`, `{"sub":"mallory"}`)},
			}
			if u := base64.URLEncoding.EncodeToString(raw); u != refresh { // same text when no + or / occurs
				opaque = append(opaque, attack{"URL-safe alphabet", u})
			}
			for _, a := range opaque {
				aspnetCode(t, in.aspnetRefresh(token, a.token), 404, "invalid_refresh_token", a.name)
			}
			aspnetPair(t, in.aspnetRefresh(token, refresh)) // the session was not burned
		})
	}
}

// aspnetCode asserts an aspnet error answer: status and the code of its
// one entry.
func aspnetCode(t *testing.T, r reply, status int, code, name string) {
	t.Helper()
	var body struct {
		Errors []aspnetEntry `json:"errors"`
	}
	if err := json.Unmarshal(r.raw, &body); r.status != status || err != nil || len(body.Errors) != 1 || body.Errors[0].Code != code {
		t.Errorf("%s: %d %s; want %d with the one error %s", name, r.status, r.raw, status, code)
	}
}

// raw sends bytes on a fresh connection and reads the answer. It fails the
// test if the connection is reset before the answer is read.
func rawHTTP(t *testing.T, addr string, send func(c net.Conn)) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go send(c)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	return resp, body
}

func write(c net.Conn, parts ...string) {
	for _, p := range parts {
		if _, err := io.WriteString(c, p); err != nil {
			return
		}
	}
}

// TestHTTPLayerErrors: what the HTTP library refuses before any handler
// runs is answered in the dialect's shape (JSON, the dialect's fields),
// and the client reads that answer: no reset while its body still arrives.
func TestHTTPLayerErrors(t *testing.T) {
	const post = "POST /api/auth/refresh HTTP/1.1\r\nHost: tokend\r\nContent-Type: application/json\r\n"
	big := strings.Repeat("a", 64<<10+20)
	cases := []struct {
		name   string
		send   func(c net.Conn)
		status int
	}{
		{"Content-Length 1 MiB, 16 KiB sent", func(c net.Conn) {
			write(c, post+"Content-Length: 1048576\r\n\r\n", strings.Repeat("a", 16<<10))
		}, 400},
		{"64 KiB + 20 B body sent whole", func(c net.Conn) {
			write(c, post+fmt.Sprintf("Content-Length: %d\r\n\r\n", len(big)), big)
		}, 400},
		{"Content-Length and Transfer-Encoding", func(c net.Conn) {
			write(c, post+"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		}, 400},
		{"100 KB header", func(c net.Conn) {
			write(c, post+"X-Big: "+strings.Repeat("b", 100_000)+"\r\nContent-Length: 2\r\n\r\n{}")
		}, 431},
		{"malformed request line", func(c net.Conn) { write(c, "GARBAGE\r\n\r\n") }, 400},
		{"malformed header", func(c net.Conn) { write(c, post+"Content-Length: x\r\n\r\n{}") }, 400},
	}
	for _, dialect := range []string{"spring", "aspnet"} {
		in := start(t, "memory", dialectEnv(dialect, map[string]string{"TOKEND_STORE": "memory"}))
		for _, c := range cases {
			t.Run(dialect+"/"+c.name, func(t *testing.T) {
				for range 5 { // a reset would show up in some of the runs
					resp, body := rawHTTP(t, in.public, c.send)
					// the answer is one the document gives for the refresh path
					in.api.checkRaw(t, http.MethodPost, in.public+"/api/auth/refresh", resp, body)
					var m map[string]any
					if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &m) != nil {
						t.Fatalf("%d %s %q; want %d in the dialect's JSON", resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status)
					}
					r := reply{status: resp.StatusCode, raw: body, body: m}
					if dialect == "spring" {
						if m["status"] != float64(c.status) || m["timestamp"] == nil || m["message"] == nil {
							t.Fatalf("not the spring error shape: %s", body)
						}
					} else {
						aspnetCode(t, r, c.status, "invalid_request", c.name)
					}
				}
			})
		}
	}
}

// TestSlowClients: 300 connections that send half a request and stall are
// cut off after the read timeout, and other clients are served meanwhile.
func TestSlowClients(t *testing.T) {
	in := start(t, "memory", map[string]string{"TOKEND_READ_TIMEOUT": "1s"})
	_, refresh := in.login("patient")
	conns := make([]net.Conn, 300)
	for i := range conns {
		c, err := net.Dial("tcp", strings.TrimPrefix(in.public, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		write(c, "POST /api/auth/refresh HTTP/1.1\r\nHost: tokend\r\nContent-Length: 100\r\n")
		conns[i] = c
	}
	opened := time.Now()
	for range 50 { // served while the slow ones hold their connections
		_, refresh = pair(t, in.refresh(refresh))
	}
	type answer struct {
		resp *http.Response
		body []byte
	}
	var answers []answer
	for i, c := range conns {
		_ = c.SetReadDeadline(opened.Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 408 || err != nil {
				t.Fatalf("slow client %d: %d %s (%v); want 408 or a closed connection", i, resp.StatusCode, body, err)
			}
			answers = append(answers, answer{resp, body})
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("slow client %d still connected 5s after a 1s read timeout", i)
		}
	}
	// checked once all are read: the check is slow under -race, and the
	// read deadline above counts from the connections' opening
	for _, a := range answers {
		in.api.checkRaw(t, http.MethodPost, in.public+"/api/auth/refresh", a.resp, a.body)
	}
}
