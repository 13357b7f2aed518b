package session

import (
	"context"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

var (
	//go:embed lua/record_revoke_as.lua
	revokeAsLua    string
	revokeAsScript = newScript(revokeAsLua)
)

// RevokeAs implements Store: the session's client and DPoP binding are
// checked, the proof's jti recorded and the session revoked in one
// critical section of its shard.
func (m *Memory) RevokeAs(_ context.Context, st Step) error {
	if st.Key != "" { // refused before any lock, as Redis does
		if b, err := base64.RawURLEncoding.Strict().DecodeString(st.Key); err != nil || len(b) != keySize {
			return errors.New("session: step key is not a base64url SHA-256 thumbprint")
		}
	}
	sh := m.shard(st.ID)
	sh.mu.Lock()
	r, ok := sh.sessions[st.ID]
	if !ok || !st.Now.Before(r.until) {
		sh.mu.Unlock()
		return nil // missing or past its time: nothing to end
	}
	var err error
	switch {
	case st.Client != "" && r.Client != "" && st.Client != r.Client:
		err = ErrWrongClient
	case r.Key != "" && st.Key == "":
		err = ErrKeyRequired
	case r.Key != "" && st.Key != r.Key:
		err = ErrWrongKey
	case st.Proof != "" && r.proof != nil && r.proof.name == proofName(st), st.Proof != "" && !m.useProof(st):
		err = ErrReplay
	}
	if err != nil || r.state != active {
		sh.mu.Unlock()
		if err != nil {
			return fmt.Errorf("session %s: %w", st.ID, err)
		}
		return nil
	}
	r.state, r.revokedAt = revoked, st.Now
	rev := r.revocation()
	sh.mu.Unlock()
	m.feed.publish(rev)
	return nil
}

// RevokeAs implements Store: one EVALSHA (record_revoke_as.lua) checks and
// revokes; a session still in the hash record of an earlier tokend has no
// client or key and is revoked as Revoke does.
func (r *Redis) RevokeAs(ctx context.Context, st Step) error {
	ctx, cancel := r.deadlines.bound(ctx)
	defer cancel()
	keys := []string{recordKey(st.ID)}
	args := []string{st.Client, "", ""}
	if st.Key != "" {
		var err error
		if keys, args, err = oauthArgs(st, keys, nil, r.cluster); err != nil {
			return err
		}
		// oauthArgs gives client, scope, key, proof: this script takes no
		// scope, and of the proof its key's lifetime
		ttl := ""
		if st.Proof != "" {
			ttl = strconv.FormatInt(proofTTL(st), 10)
		}
		args = []string{args[0], args[2], ttl}
	}
	// published even when WAIT falls short, as Revoke is (publishRevoked)
	res, unacked := r.execWaited(ctx, revokeAsScript, keys, args)
	if n, err := res.AsInt64(); err == nil {
		if n != 0 {
			return refusal(st.ID, n) // a refusal wrote nothing
		}
		res, unacked = r.execWaited(ctx, legacyRevokeScript, []string{legacyKey(st.ID)}, []string{"1"})
	}
	return r.publishRevoked(ctx, st.ID, res, unacked)
}
