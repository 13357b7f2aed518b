// Command tokend serves refresh-token rotation for mobile clients: settings
// from flags and TOKEND_* variables, keys, store, dialect and listeners
// wired here; SIGTERM drains, SIGHUP reloads the keys file. Its subcommands
// (tokend help) make and rotate key files, print the version, and probe a
// running instance for container health checks.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tokend/tokend/api"
	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/denylist"
	"github.com/tokend/tokend/internal/tokens/dpop"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/server/aspnet"
	"github.com/tokend/tokend/server/oauth2"
	"github.com/tokend/tokend/server/spring"
)

func main() {
	if code, ok := command(os.Args[1:], os.Getenv, os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr, hooks{}))
}

// hooks let tests drive an in-process tokend: a clock they move, and the
// bound addresses (they listen on port 0).
type hooks struct {
	clock tokens.Clock
	ready func(public, admin string)
}

// app is a wired tokend, before it listens.
type app struct {
	cfg      config
	log      *slog.Logger
	codec    *tokens.Codec
	store    session.Store
	deny     *denylist.Denylist // nil when TOKEND_DENYLIST_SIZE=0
	close    func()
	server   *server.Server
	denyDone chan struct{}
	nonces   *dpop.Nonces // nil unless TOKEND_DPOP_NONCE
}

// run starts tokend and blocks until ctx ends or SIGTERM/SIGINT, then drains.
// It returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, h hooks) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "tokend: %v\n", err)
		return 2
	}
	if h.clock == nil {
		h.clock = tokens.SystemClock
	}
	a, err := build(cfg, h.clock, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tokend: %v\n", err)
		return 2
	}
	defer a.close()

	public, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintf(stderr, "tokend: TOKEND_ADDR: %v\n", err)
		return 2
	}
	admin, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		public.Close()
		fmt.Fprintf(stderr, "tokend: TOKEND_ADMIN_ADDR: %v\n", err)
		return 2
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)

	if a.deny != nil {
		follow, stop := context.WithCancel(context.Background())
		defer func() { stop(); <-a.denyDone }()
		go func() { defer close(a.denyDone); _ = a.deny.Run(follow) }()
	}
	served := make(chan error, 1)
	go func() { served <- a.server.Serve(public, admin) }()
	a.log.Info("tokend listening", "public", public.Addr().String(), "admin", admin.Addr().String(),
		"dialect", cfg.Dialect, "store", cfg.Store, "signing_kid", a.codec.Keys().Signing().ID, "settings", cfg.given)
	if h.ready != nil {
		h.ready(public.Addr().String(), admin.Addr().String())
	}

	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				if _, _, err := a.reloadKeys(); err != nil {
					a.log.Error("key reload failed; keeping the keys in force", "err", err)
				}
				continue
			}
			a.log.Info("draining", "signal", sig.String())
		case <-ctx.Done():
			a.log.Info("draining", "reason", "context done")
		case err := <-served:
			a.log.Error("listener failed", "err", err)
			return 1
		}
		break
	}
	drain, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	if err := a.server.Shutdown(drain); err != nil {
		a.log.Error("drain incomplete", "err", err)
		return 1
	}
	a.log.Info("stopped")
	return 0
}

// build wires keys, store, issuer and server from cfg.
func build(cfg config, clock tokens.Clock, stderr io.Writer) (*app, error) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	ks, err := loadKeys(cfg)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, codec: tokens.NewCodec(ks, cfg.Issuer, clock)}
	a.codec.AcceptIssuers(cfg.Accepted...)
	if cfg.formerIssuer != "" {
		log.Warn("TOKEND_ISSUER is not the issuer, TOKEND_PUBLIC_URL: tokens are issued with iss of TOKEND_PUBLIC_URL, and those with the former one still accepted; move it to TOKEND_ACCEPTED_ISSUERS",
			"issuer", cfg.Issuer, "former", cfg.formerIssuer)
	}
	metrics := server.NewMetrics()
	v := buildVersion()
	metrics.BuildInfo(v.Version, v.Revision, v.Go)

	var feed session.Feed
	switch cfg.Store {
	case "redis":
		r, err := dialRedis(cfg)
		if err != nil {
			return nil, err
		}
		r.Retention = cfg.AccessTTL // a revocation matters while an access token of the session may live
		a.store, a.close, feed = r, r.Close, r
		if cfg.publicURLDefault {
			// instances sharing a Redis share sessions; with issuers made from
			// their own ports they would refuse one another's tokens
			log.Warn("TOKEND_PUBLIC_URL is not set: the issuer is made from this instance's port; every instance sharing this Redis must have the same TOKEND_PUBLIC_URL, or they refuse one another's tokens",
				"issuer", cfg.Issuer)
		}
	default:
		m := session.NewMemory(time.Minute)
		a.store, a.close, feed = m, m.Close, m
	}
	verifier := tokens.NewVerifierFor(a.codec)
	if cfg.DenylistSize > 0 {
		d, err := denylist.New(metrics.Feed(feed), denylist.Config{
			Capacity: cfg.DenylistSize, Window: cfg.AccessTTL, Logger: log, OnHeard: metrics.FeedLag,
		})
		if err != nil {
			return nil, fmt.Errorf("TOKEND_DENYLIST_SIZE: %w", err)
		}
		a.deny, a.denyDone = d, make(chan struct{})
		closeStore := a.close
		a.close = func() { d.Close(); closeStore() }
		verifier.SetDenylist(d)
		metrics.Denylist(d.Stats, time.Now) // the denylist's own clock: ages of real time
	}

	var (
		dialect server.Dialect       = spring.Dialect{}
		refresh tokens.RefreshFormat = tokens.JWTRefresh{Codec: a.codec, Legacy: cfg.LegacyTokens}
	)
	if cfg.Dialect == "aspnet" {
		dialect = aspnet.Dialect{}
		opaque := tokens.Opaque{Codec: a.codec} // MAC keys follow the key set, SIGHUP included
		if cfg.RefreshKeys != nil {
			if opaque.Fixed, err = tokens.NewMACKeys(cfg.RefreshKeys...); err != nil {
				return nil, fmt.Errorf("TOKEND_REFRESH_KEY: %w", err)
			}
		}
		refresh = opaque
	}
	issuer := tokens.NewIssuer(a.codec, refresh, metrics.Store(a.store), tokens.Config{
		AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL, SessionMax: cfg.SessionMax,
		Grace: cfg.ReuseGrace, Legacy: cfg.LegacyTokens, NameID: cfg.Dialect == "aspnet",
		Audience: dialectAudience(cfg),
	})
	issuer.SetLogger(log)
	if a.deny != nil {
		issuer.SetDenylist(a.deny)
	}
	endpoint, err := a.oauth2(issuer, ks, clock)
	if err != nil {
		return nil, err
	}
	a.server = server.New(server.Config{
		Dialect:      dialect,
		Issuer:       issuer,
		JWKS:         func() []byte { return a.codec.Keys().JWKS() },
		Clock:        clock,
		Logger:       log,
		AdminToken:   cfg.AdminToken,
		Introspector: verifier,
		ReloadKeys:   a.reloadKeys,
		Ready:        a.ready,
		MaxInflight:  cfg.MaxInflight,
		ReadTimeout:  cfg.ReadTimeout,
		Metrics:      metrics,
		OpenAPI:      api.OpenAPI,
		OAuth2:       endpoint,
	})
	if ks.Ephemeral {
		log.Warn("NO SIGNING KEY CONFIGURED: signing with an ephemeral Ed25519 key; every token dies with this process. " +
			"Set TOKEND_KEYS_FILE or TOKEND_HMAC_SECRET for anything but development.")
	}
	return a, nil
}

// oauth2 builds the standard OAuth 2.0 endpoints with DPoP.
func (a *app) oauth2(issuer *tokens.Issuer, ks *tokens.KeySet, clock tokens.Clock) (*oauth2.Endpoint, error) {
	verifier, err := dpop.NewVerifier(dpop.Config{Algs: a.cfg.DPoPAlgs, Window: a.cfg.DPoPWindow, Clock: clock})
	if err != nil {
		return nil, fmt.Errorf("TOKEND_DPOP_ALGS: %w", err)
	}
	if a.cfg.DPoPNonce {
		// nonces from the keys, so that every instance sharing them agrees
		a.nonces = dpop.NewNonces(a.cfg.DPoPWindow, clock, ks.Secrets(nonceSecret)...)
	}
	e, err := oauth2.New(oauth2.Config{
		Issuer: issuer, PublicURL: a.cfg.PublicURL, Clients: a.cfg.Clients, DPoP: verifier, Nonces: a.nonces,
		Logger: a.log, Audiences: a.cfg.Audience,
	})
	if err != nil {
		return nil, fmt.Errorf("OAuth 2.0 endpoints: %w", err)
	}
	return e, nil
}

const nonceSecret = "dpop nonce v1"

// dialectAudience is the aud of the dialect endpoints' access tokens: none
// unless TOKEND_DIALECT_AUDIENCE asks, the old backends wrote none.
func dialectAudience(cfg config) string {
	if !cfg.DialectAud {
		return ""
	}
	if len(cfg.Audience) > 0 {
		return cfg.Audience[0]
	}
	return cfg.Issuer
}

// loadKeys builds the key set the settings ask for.
func loadKeys(cfg config) (*tokens.KeySet, error) {
	switch {
	case cfg.KeysFile != "":
		b, err := os.ReadFile(cfg.KeysFile)
		if err != nil {
			return nil, fmt.Errorf("TOKEND_KEYS_FILE: %w", err)
		}
		ks, err := tokens.ParseJWKS(b, cfg.SigningKID)
		if err != nil {
			return nil, fmt.Errorf("TOKEND_KEYS_FILE: %s: %w", cfg.KeysFile, err)
		}
		return ks, nil
	case cfg.HMACSecret != "":
		ks, err := tokens.HMACKeySet([]byte(cfg.HMACSecret), cfg.HMACAlg)
		if err != nil {
			return nil, fmt.Errorf("TOKEND_HMAC_SECRET: %w", err)
		}
		return ks, nil
	}
	return tokens.EphemeralKeySet()
}

// reloadKeys re-reads TOKEND_KEYS_FILE (SIGHUP, POST /admin/keys/reload).
// A bad file keeps the keys in force.
func (a *app) reloadKeys() (string, int, error) {
	if a.cfg.KeysFile == "" {
		return "", 0, errors.New("no TOKEND_KEYS_FILE to reload: the keys come from TOKEND_HMAC_SECRET or are ephemeral")
	}
	ks, err := loadKeys(a.cfg)
	if err != nil {
		return "", 0, err
	}
	a.codec.SetKeys(ks)
	if a.nonces != nil {
		a.nonces.SetSecrets(ks.Secrets(nonceSecret)...)
	}
	a.log.Info("keys reloaded", "signing_kid", ks.Signing().ID, "keys", len(ks.Keys()))
	return ks.Signing().ID, len(ks.Keys()), nil
}

// ready reports whether the denylist has caught up with the revocations
// published before this instance started.
func (a *app) ready() error {
	if a.deny == nil {
		return nil
	}
	select {
	case <-a.deny.Ready():
		return nil
	default:
		return errors.New("denylist catching up")
	}
}
