package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// redisFault names the setting at fault when tokend cannot reach Redis at
// start, with what Redis or the TLS handshake said. A refused TLS
// handshake and a plain client on a TLS port both end as a bare
// "connection reset by peer", so for those the addresses are probed once,
// plainly and over TLS, to tell which side speaks what.
func redisFault(cfg config, err error) error {
	var re *rueidis.RedisError
	if errors.As(err, &re) {
		msg := re.Error()
		switch {
		case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"):
			return fmt.Errorf("TOKEND_REDIS_PASSWORD: Redis refused the user %q and password: %s", orDefault(cfg.RedisUsername, "default"), msg)
		case strings.HasPrefix(msg, "NOPERM"):
			return fmt.Errorf("TOKEND_REDIS_USERNAME: the ACL user %q may not run what tokend needs (docs/operations.md lists the ACL): %s", cfg.RedisUsername, msg)
		}
	}
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("TOKEND_REDIS_TLS_CA_FILE: Redis' certificate does not verify against %s: %w", orDefault(cfg.RedisCAFile, "the system roots"), err)
	case errors.As(err, &host):
		return fmt.Errorf("TOKEND_REDIS_TLS_SERVER_NAME: Redis' certificate does not name the host tokend expects: %w", err)
	}
	tlsOn := cfg.RedisTLS || cfg.RedisCAFile != "" || cfg.RedisCertFile != "" || cfg.RedisTLSName != ""
	timeout := max(cfg.StoreTimeout, time.Second)
	for _, addr := range cfg.RedisAddr {
		switch {
		case tlsOn && speaksPlain(addr, timeout):
			return fmt.Errorf("TOKEND_REDIS_TLS: Redis at %s answers plain TCP, not TLS (TLS is on because of TOKEND_REDIS_TLS or a TOKEND_REDIS_TLS_* file): %w", addr, err)
		case !tlsOn && speaksTLS(addr, timeout):
			return fmt.Errorf("TOKEND_REDIS_TLS: Redis at %s speaks TLS: set TOKEND_REDIS_TLS=true (and TOKEND_REDIS_TLS_CA_FILE for a private CA): %w", addr, err)
		}
	}
	// TLS 1.3 tells the client of a missing certificate after the
	// handshake: an alert ("certificate required") or a closed connection
	switch msg := err.Error(); {
	case tlsOn && cfg.RedisCertFile == "" && (strings.Contains(msg, "certificate required") || closedByPeer(err)):
		return fmt.Errorf("TOKEND_REDIS_TLS_CERT_FILE: Redis closed the TLS connection, as it does when it demands a client certificate (set TOKEND_REDIS_TLS_CERT_FILE and TOKEND_REDIS_TLS_KEY_FILE): %w", err)
	case tlsOn && cfg.RedisCertFile != "" && (strings.Contains(msg, "remote error: tls: bad certificate") || strings.Contains(msg, "remote error: tls: unknown certificate authority")):
		return fmt.Errorf("TOKEND_REDIS_TLS_CERT_FILE: Redis refused the client certificate: %w", err)
	}
	return fmt.Errorf("TOKEND_REDIS_ADDR: %w", err)
}

// closedByPeer reports whether the connection was reset or closed under tokend.
func closedByPeer(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection reset by peer") || strings.Contains(s, "EOF") || strings.Contains(s, "broken pipe")
}

// speaksPlain reports whether addr answers a plain RESP PING (+PONG, or an
// error such as -NOAUTH: either is plain Redis).
func speaksPlain(addr string, timeout time.Duration) bool {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	b, err := bufio.NewReader(c).ReadByte()
	return err == nil && (b == '+' || b == '-')
}

// speaksTLS reports whether addr completes a TLS handshake or answers it
// with a TLS alert. The probe sends no data: it only learns the protocol,
// so the certificate is not verified here (the real connection does).
func speaksTLS(addr string, timeout time.Duration) bool {
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		c.Close()
		return true
	}
	return strings.Contains(err.Error(), "remote error: tls")
}
