package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

// dialRedis connects the Redis store the settings describe: standalone,
// Cluster or Sentinel, with an ACL user, TLS and WAIT as asked.
func dialRedis(cfg config) (*session.Redis, error) {
	opts := []session.RedisOption{
		session.Auth(cfg.RedisUsername, cfg.RedisPassword),
		session.FlushDelay(cfg.FlushDelay),
		session.WaitReplicas(cfg.WaitReplicas),
		session.ProofKeys(cfg.DPoPJTIKeys),
	}
	tc, err := redisTLS(cfg)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, session.TLS(tc))
	}
	if cfg.RedisSentinel != "" {
		opts = append(opts, session.Sentinel(cfg.RedisSentinel))
	}
	// At start no client waits: a Redis too slow to answer within the store
	// timeout (starting beside tokend, or a starved machine) is asked again
	// for a few seconds before tokend gives up. Any other failure is final.
	var r *session.Redis
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		r, err = session.DialRedis(cfg.RedisAddr, cfg.StoreTimeout, opts...)
		if err == nil || !slowAnswer(err) || time.Since(start) > startPatience {
			break
		}
	}
	if err != nil {
		return nil, redisFault(cfg, err)
	}
	return r, nil
}

// startPatience is how long tokend keeps asking a slow Redis at start.
const startPatience = 3 * time.Second

// slowAnswer reports whether err is Redis not answering in time, rather
// than refusing (a wrong password, a TLS mismatch, nothing listening).
func slowAnswer(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// redisTLS is the TLS configuration of the Redis connections, nil for
// plain TCP. Any TLS setting turns TLS on.
func redisTLS(cfg config) (*tls.Config, error) {
	if !cfg.RedisTLS && cfg.RedisCAFile == "" && cfg.RedisCertFile == "" && cfg.RedisTLSName == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.RedisTLSName}
	if cfg.RedisCAFile != "" {
		pem, err := os.ReadFile(cfg.RedisCAFile)
		if err != nil {
			return nil, fmt.Errorf("TOKEND_REDIS_TLS_CA_FILE: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, errors.New("TOKEND_REDIS_TLS_CA_FILE: " + cfg.RedisCAFile + ": no PEM certificate in it")
		}
	}
	if cfg.RedisCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.RedisCertFile, cfg.RedisKeyFile)
		if err != nil {
			return nil, fmt.Errorf("TOKEND_REDIS_TLS_CERT_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
