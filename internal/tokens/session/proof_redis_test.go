package session_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
	"github.com/tokend/tokend/internal/tokens/session/sessiontest"
)

// instances is one Store that is several: each call goes to the next of
// them in turn, as a load balancer spreads a client's requests over
// tokend's instances.
type instances struct {
	all []session.Store
	n   atomic.Int64
}

func (in *instances) next() session.Store { return in.all[int(in.n.Add(1))%len(in.all)] }

func (in *instances) Create(ctx context.Context, s session.Session, idle time.Duration) error {
	return in.next().Create(ctx, s, idle)
}
func (in *instances) Rotate(ctx context.Context, st session.Step) (session.Rotation, error) {
	return in.next().Rotate(ctx, st)
}
func (in *instances) Revoke(ctx context.Context, id string) error { return in.next().Revoke(ctx, id) }
func (in *instances) RevokeAs(ctx context.Context, st session.Step) error {
	return in.next().RevokeAs(ctx, st)
}
func (in *instances) RevokeSubject(ctx context.Context, sub string, deleted bool) (int, error) {
	return in.next().RevokeSubject(ctx, sub, deleted)
}
func (in *instances) RevokeLegacy(ctx context.Context, st session.Step) error {
	return in.next().RevokeLegacy(ctx, st)
}
func (in *instances) RevokeLegacySubject(ctx context.Context, sub string, at time.Time, deleted bool) error {
	return in.next().RevokeLegacySubject(ctx, sub, at, deleted)
}
func (in *instances) Ping(ctx context.Context) error { return in.next().Ping(ctx) }

// TestRedisProofsAcrossInstances: the OAuth 2.0, DPoP and revocation cases
// with every call on the next of two instances, in each step of a rolling
// upgrade from tokend 0.1.0: both keeping a key per proof (ProofKeys, the
// first restart, beside 0.1.0's own instances: TestRedisProofUpgrade), one
// of each (the second restart), both keeping proofs in the record.
func TestRedisProofsAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name         string
		keys1, keys2 bool
	}{
		{"keys/keys", true, true},
		{"keys/record", true, false},
		{"record/keys", false, true},
		{"record/record", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sessiontest.RunInstances(t, func(t *testing.T) session.Store {
				srv.Flush(t)
				return &instances{all: []session.Store{dialProofs(t, tc.keys1, srv.Addr), dialProofs(t, tc.keys2, srv.Addr)}}
			})
		})
	}
}

// dialProofs is dial, keeping a key per proof when keys is set.
func dialProofs(t *testing.T, keys bool, addrs ...string) *session.Redis {
	t.Helper()
	r, err := session.DialRedis(addrs, time.Second, session.ProofKeys(keys))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}
