// Command typical is the "typical Go stack" tokend is measured against: the
// refresh service a competent Go team writes without tokend's tricks.
// net/http with sane timeouts, encoding/json, lestrrat-go/jwx/v3's general
// path (jwt.Parse with jwt.WithKey; jwt.NewBuilder and jwt.Sign), and
// redis/go-redis/v9 with its connection pool: the rotation, reuse detection
// included, is one Lua script run by EVALSHA (rotate.lua); a DPoP proof's
// jti is recorded once by a SET NX of its own.
//
// It speaks the wire contract of the load generator (loadtest/loadgen) and
// the floor (bench/floor): POST /admin/sessions starts a session (on the
// same listener, as the floor's), POST /api/auth/refresh is the spring
// dialect's refresh, POST /oauth2/token the RFC 6749 refresh_token grant,
// with an optional RFC 9449 DPoP proof (ES256 or EdDSA). Tokens carry the
// claims tokend's do; no grace window for retries, no metrics, no logging
// per request.
//
//	typical -addr 127.0.0.1:9091 [-store redis -redis 127.0.0.1:6379] [-alg ES256]
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/redis/go-redis/v9"
)

// config is what the flags set.
type config struct {
	addr, storeKind, redisAddr, publicURL, alg, secret, clients string
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:9091", "listen address")
	flag.StringVar(&c.storeKind, "store", "memory", "memory or redis")
	flag.StringVar(&c.redisAddr, "redis", "127.0.0.1:6379", "Redis address (-store redis)")
	flag.StringVar(&c.publicURL, "public-url", "", "the issuer and the base of DPoP proofs' htu (default: http:// + -addr)")
	flag.StringVar(&c.alg, "alg", "HS256", "signing algorithm: HS256 (tokend's load runs) or ES256")
	flag.StringVar(&c.secret, "secret", "", "HS256 secret (default: 32 random bytes)")
	flag.StringVar(&c.clients, "clients", "loadgen", "comma-separated client_ids /oauth2/token accepts")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (empty: off)")
	flag.Parse()
	if c.publicURL == "" {
		c.publicURL = "http://" + c.addr
	}
	s, err := newService(c, time.Now)
	if err != nil {
		log.Fatal(err)
	}
	if *pprofAddr != "" {
		// the default mux holds only pprof's handlers; the service has its own
		go func() { log.Println(http.ListenAndServe(*pprofAddr, nil)) }()
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := newHTTPServer(s)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Printf("typical listening on %s (store %s, %s)", c.addr, c.storeKind, c.alg)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// newHTTPServer serves s with the timeouts a production net/http server sets.
func newHTTPServer(s *service) *http.Server {
	return &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    12 << 10,
	}
}

// service is the token service: keys parsed once, a store, a clock.
type service struct {
	store                 store
	alg                   jwa.SignatureAlgorithm
	signKey, verifyKey    jwk.Key
	issuer                string
	endpoint              *url.URL // the token endpoint, which proofs name in htu
	clients               map[string]bool
	accessTTL, refreshTTL time.Duration
	dpopWindow            time.Duration
	now                   func() time.Time
}

func newService(c config, now func() time.Time) (*service, error) {
	s := &service{
		issuer:     strings.TrimSuffix(c.publicURL, "/"),
		clients:    map[string]bool{},
		accessTTL:  30 * time.Minute,
		refreshTTL: 30 * 24 * time.Hour,
		dpopWindow: time.Minute,
		now:        now,
	}
	endpoint, err := url.Parse(s.issuer + "/oauth2/token")
	if err != nil {
		return nil, fmt.Errorf("-public-url: %w", err)
	}
	s.endpoint = endpoint
	for _, id := range strings.Split(c.clients, ",") {
		if id != "" {
			s.clients[id] = true
		}
	}
	if err := s.loadKeys(c); err != nil {
		return nil, err
	}
	switch c.storeKind {
	case "memory":
		s.store = newMemoryStore(now)
	case "redis":
		rdb := redis.NewClient(&redis.Options{Addr: c.redisAddr})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return nil, fmt.Errorf("redis %s: %w", c.redisAddr, err)
		}
		s.store = redisStore{rdb}
	default:
		return nil, fmt.Errorf("-store %q: memory or redis", c.storeKind)
	}
	return s, nil
}

// loadKeys makes the signing and verification JWKs once, at start.
func (s *service) loadKeys(c config) error {
	var raw any
	switch c.alg {
	case "HS256":
		s.alg = jwa.HS256()
		secret := []byte(c.secret)
		if len(secret) == 0 {
			secret = make([]byte, 32)
			_, _ = rand.Read(secret)
		}
		raw = secret
	case "ES256":
		s.alg = jwa.ES256()
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		raw = k
	default:
		return fmt.Errorf("-alg %q: HS256 or ES256", c.alg)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		return err
	}
	if err := key.Set(jwk.KeyIDKey, "typical-"+c.alg); err != nil {
		return err
	}
	if err := key.Set(jwk.AlgorithmKey, s.alg); err != nil {
		return err
	}
	s.signKey, s.verifyKey = key, key
	if c.alg != "HS256" {
		if s.verifyKey, err = key.PublicKey(); err != nil {
			return err
		}
	}
	return nil
}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/sessions", s.login)
	mux.HandleFunc("POST /api/auth/refresh", s.refreshSpring)
	mux.HandleFunc("POST /oauth2/token", s.token)
	return mux
}

// newID is 16 random bytes in base64url: session ids and token jtis.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
