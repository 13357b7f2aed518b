package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/tokend/tokend/tokens/session"
)

// dialRedis connects the Redis store the settings describe: standalone,
// Cluster or Sentinel, with an ACL user, TLS and WAIT as asked.
func dialRedis(cfg config) (*session.Redis, error) {
	opts := []session.RedisOption{
		session.Auth(cfg.RedisUsername, cfg.RedisPassword),
		session.FlushDelay(cfg.FlushDelay),
		session.WaitReplicas(cfg.WaitReplicas),
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
	r, err := session.DialRedis(cfg.RedisAddr, cfg.StoreTimeout, opts...)
	if err != nil {
		return nil, redisFault(cfg, err)
	}
	return r, nil
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
