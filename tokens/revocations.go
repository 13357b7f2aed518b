package tokens

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokend/tokend/internal/tokens/denylist"
	"github.com/tokend/tokend/internal/tokens/session"
)

// RevocationsConfig says where tokend's Redis is: the same addresses,
// credentials and TLS as tokend's TOKEND_REDIS_* settings. Zero fields
// take the defaults.
type RevocationsConfig struct {
	// Addrs are Redis addresses, host:port: one standalone server, Cluster
	// seeds, or the sentinels (with SentinelMaster). Required.
	Addrs []string
	// Username and Password log in (an ACL user; Username "" is the
	// default user, as with requirepass).
	Username, Password string
	// TLS, when set, speaks TLS to Redis (and to the sentinels).
	TLS *tls.Config
	// SentinelMaster is the master the sentinels at Addrs monitor (empty:
	// no Sentinel).
	SentinelMaster string
	// AccessTTL is the longest access-token life, tokend's TOKEND_ACCESS_TTL
	// (default 30m): revocations are remembered that long, and a newly
	// started Verifier reads back that far.
	AccessTTL time.Duration
	// Size is how many revocations one AccessTTL may hold at a 0.1%
	// false-positive rate (default 1,000,000; tokend's TOKEND_DENYLIST_SIZE):
	// a false positive costs one Redis lookup, nothing more.
	Size int
	// Timeout bounds each Redis command (default 1s).
	Timeout time.Duration
	// StartTimeout bounds FollowRevocations' wait for the revocations of
	// the last AccessTTL (default 30s).
	StartTimeout time.Duration
	// Logger hears of feed interruptions (default: none).
	Logger *slog.Logger
}

// FollowRevocations makes the Verifier refuse tokens of revoked sessions
// (ErrRevoked) from the moment tokend revokes them rather than at their
// expiry. It connects to tokend's Redis, reads the revocations of the last
// AccessTTL, then follows new ones in the background until ctx ends,
// reconnecting after a failure. Each token is then checked against a local
// bloom filter with no I/O; only a filter hit asks Redis (once, then
// cached), and a Redis that does not answer then fails the token closed
// (ErrUnavailable). It returns once caught up, or with an error if Redis
// cannot be reached or the catch-up takes over StartTimeout. It may be
// called while tokens are verified (a retry after a failed start); a
// second success replaces the first's revocations, whose feed runs on
// until its ctx ends. When ctx ends, revocations are no longer heard and
// the connection is closed: Verify then fails closed (ErrUnavailable)
// until FollowRevocations succeeds again. Give it a ctx as long-lived as
// the Verifier.
func (v *Verifier) FollowRevocations(ctx context.Context, c RevocationsConfig) error {
	if len(c.Addrs) == 0 {
		return errors.New("tokens: revocations: no Redis address")
	}
	var opts []session.RedisOption
	if c.Username != "" || c.Password != "" {
		opts = append(opts, session.Auth(c.Username, c.Password))
	}
	if c.TLS != nil {
		opts = append(opts, session.TLS(c.TLS))
	}
	if c.SentinelMaster != "" {
		opts = append(opts, session.Sentinel(c.SentinelMaster))
	}
	store, err := session.DialRedis(c.Addrs, cmp.Or(c.Timeout, time.Second), opts...)
	if err != nil {
		return fmt.Errorf("tokens: revocations: %w", err)
	}
	deny, err := denylist.New(store, denylist.Config{Capacity: c.Size, Window: c.AccessTTL, Logger: c.Logger})
	if err != nil {
		store.Close()
		return fmt.Errorf("tokens: revocations: %w", err)
	}
	run, stop := context.WithCancel(ctx) // stopped early if the start fails
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = deny.Run(run) // until ctx ends: a broken feed is followed again
		deny.Close()
		store.Close()
	}()
	wait := time.NewTimer(cmp.Or(c.StartTimeout, 30*time.Second))
	defer wait.Stop()
	select {
	case <-deny.Ready(): // the revocations of the last AccessTTL are known
		v.v.SetDenylist(deny)        // fails closed once ctx ends (denylist.Run)
		context.AfterFunc(ctx, stop) // followed until the caller's ctx ends
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-wait.C:
		err = errors.New("the revocations could not be read in time")
	}
	stop()
	<-done
	return fmt.Errorf("tokens: revocations %v: %w", c.Addrs, err)
}
