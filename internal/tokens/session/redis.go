package session

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/redis/rueidis"
)

// The Lua scripts are loaded once per process and run by EVALSHA (rueidis
// falls back to EVAL after a Redis restart forgets them).
var (
	//go:embed lua/record_rotate.lua
	rotateLua string
	//go:embed lua/record_revoke.lua
	revokeLua string
	//go:embed lua/record_ack.lua
	ackLua string
	//go:embed lua/index.lua
	indexLua string
	//go:embed lua/rotate.lua
	legacyRotateLua string
	//go:embed lua/revoke.lua
	legacyRevokeLua string
	//go:embed lua/legacy_ack.lua
	legacyAckLua string
	//go:embed lua/legacy_cutoff.lua
	cutoffLua string

	rotateScript = newScript(rotateLua)
	revokeScript = newScript(revokeLua)
	indexScript  = newScript(indexLua)
	cutoffScript = newScript(cutoffLua)
	ackScript    = newScript(ackLua)
	// the hash records of sessions created before the packed record
	legacyRotateScript = newScript(legacyRotateLua)
	legacyRevokeScript = newScript(legacyRevokeLua)
	legacyAckScript    = newScript(legacyAckLua)
)

// script is a Lua script with its SHA-1, which the WAIT path needs to send
// EVALSHA and WAIT down one connection.
type script struct {
	*rueidis.Lua
	src, sha string
}

func newScript(src string) script {
	sum := sha1.Sum([]byte(src))
	return script{Lua: rueidis.NewLuaScript(src), src: src, sha: hex.EncodeToString(sum[:])}
}

// ErrNotReplicated: the write was made on the primary, but fewer replicas
// than TOKEND_REDIS_WAIT_REPLICAS acknowledged it in time. It is
// ErrUnavailable to callers: nothing is issued, and the rotation stays
// marked unacknowledged on the primary, so the client's retry with the same
// token, however late, is answered (a retry, or the rotation made again)
// rather than taken for reuse.
var ErrNotReplicated = fmt.Errorf("%w: replicas did not acknowledge the write in time", ErrUnavailable)

// Redis is a Store in Redis, standalone or Cluster, shared by any number of
// tokend instances. One packed string per session (record.go), under a key
// of its own: a Cluster spreads sessions and each script runs on one node.
type Redis struct {
	client  rueidis.Client
	cluster bool // proof keys go in their session's slot
	// proofKeys: every DPoP proof gets a key of its own, and no record
	// gains the newest proof's field (ProofKeys)
	proofKeys bool
	timeout   time.Duration
	deadlines *deadlines
	// wait replicas: every write is followed by WAIT on its connection
	replicas int64
	waitMS   int64
	out      *outbox // revocations whose publication failed, published again
	// Retention is how long revocations stay in the stream other instances
	// catch up from: the longest access-token life (DefaultRetention if 0).
	// Set it before use.
	Retention time.Duration
}

// NewRedis wraps a connected client. Every call is bounded by timeout (plus
// at most a twentieth: see deadlines); a store slower than that is
// ErrUnavailable, and nothing is issued.
func NewRedis(client rueidis.Client, timeout time.Duration) *Redis {
	return &Redis{client: client, cluster: client.Mode() == rueidis.ClientModeCluster, timeout: timeout, deadlines: newDeadlines(timeout),
		out: newOutbox()}
}

// A RedisOption tunes the client DialRedis makes.
type RedisOption func(*redisOptions)

type redisOptions struct {
	rueidis.ClientOption
	replicas  int64
	proofKeys bool
}

// Auth logs in as an ACL user (username "" is the default user, as with a
// bare requirepass).
func Auth(username, password string) RedisOption {
	return func(o *redisOptions) { o.Username, o.Password = username, password }
}

// TLS speaks TLS to Redis (and to the sentinels, with Sentinel).
func TLS(c *tls.Config) RedisOption {
	return func(o *redisOptions) { o.TLSConfig = c }
}

// Sentinel makes the addresses those of sentinels that monitor master: the
// client asks them for the primary and follows their failovers. The
// sentinels take the same credentials and TLS as Redis.
func Sentinel(master string) RedisOption {
	return func(o *redisOptions) { o.Sentinel.MasterSet = master }
}

// FlushDelay lets the client hold a write to Redis for up to d, so that the
// commands of concurrent refreshes leave in one write and Redis reads them
// in one go: fewer syscalls on both sides, which on a busy machine buys more
// throughput and lower latency than d costs (rueidis' MaxFlushDelay; 0
// writes at once).
func FlushDelay(d time.Duration) RedisOption {
	return func(o *redisOptions) { o.MaxFlushDelay = d }
}

// WaitReplicas makes every write wait, before it is answered, until n
// replicas acknowledge it (WAIT n), for at most half the timeout; fewer is
// ErrNotReplicated. An acknowledged rotation then survives a failover to
// any of those replicas. 0 (the default) does not wait.
func WaitReplicas(n int) RedisOption {
	return func(o *redisOptions) { o.replicas = int64(n) }
}

// ProofKeys makes the store record every DPoP proof under a key of its own
// and write session records as tokend 0.1.0 reads them (a record that kept
// its proof is written back without it, the proof moved to its key), as
// 0.1.0 does: for a rolling upgrade from it, or back to it, while any
// instance runs it (docs/operations.md, TOKEND_DPOP_JTI_KEYS). Without it
// a bound session's record keeps its newest proof, and a refresh writes no
// key (docs/design.md). Either way records of both kinds are read, and
// proofs recorded either way refused.
func ProofKeys(on bool) RedisOption {
	return func(o *redisOptions) { o.proofKeys = on }
}

// DialRedis connects to addrs (comma-separated seeds; rueidis finds out
// whether they are a Cluster, and with Sentinel they are the sentinels).
func DialRedis(addrs []string, timeout time.Duration, opts ...RedisOption) (*Redis, error) {
	o := redisOptions{ClientOption: rueidis.ClientOption{
		InitAddress:  addrs,
		DisableCache: true, // no client-side caching: every rotation must see Redis
		// no CLIENT SETINFO: Redis before 7.2 lacks it, and a minimal ACL user
		// that may not run it would fill ACL LOG with one denial per connection
		ClientSetInfo:    rueidis.DisableClientSetInfo,
		ConnWriteTimeout: timeout,
		// a Redis that went away is noticed within one timeout, not the OS default
		Dialer: net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second},
	}}
	for _, opt := range opts {
		opt(&o)
	}
	if o.Sentinel.MasterSet != "" {
		o.Sentinel.Username, o.Sentinel.Password = o.Username, o.Password
		o.Sentinel.TLSConfig, o.Sentinel.Dialer = o.TLSConfig, o.Dialer
		// besides +switch-master events, which a dropped connection misses
		o.Sentinel.TopologyRefreshInterval = 5 * time.Second
	}
	c, err := rueidis.NewClient(o.ClientOption)
	if err != nil {
		return nil, fmt.Errorf("redis %v: %w", addrs, err)
	}
	r := NewRedis(c, timeout)
	r.replicas, r.waitMS, r.proofKeys = o.replicas, max(1, timeout.Milliseconds()/2), o.proofKeys
	return r, nil
}

// exec runs a script. With WaitReplicas, WAIT follows it on the same
// connection (one DoMulti), and the script's answer counts only once enough
// replicas hold what it wrote.
func (r *Redis) exec(ctx context.Context, s script, keys, args []string) rueidis.RedisResult {
	res, err := r.execWaited(ctx, s, keys, args)
	if err != nil {
		return rueidis.NewErrorResult(err)
	}
	return res
}

// execWaited is exec that keeps the script's answer when too few replicas
// acknowledged what it wrote (the error, ErrNotReplicated), for callers
// that tell an answer from a refusal.
func (r *Redis) execWaited(ctx context.Context, s script, keys, args []string) (rueidis.RedisResult, error) {
	if r.replicas == 0 {
		return s.Exec(ctx, r.client, keys, args), nil
	}
	res, err := r.waited(ctx, r.client.B().Evalsha().Sha1(s.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	if re, ok := rueidis.IsRedisErr(res.Error()); ok && re.IsNoScript() {
		res, err = r.waited(ctx, r.client.B().Eval().Script(s.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	}
	return res, err
}

// write runs one command that writes, followed by WAIT as exec does.
func (r *Redis) write(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	if r.replicas == 0 {
		return r.client.Do(ctx, cmd)
	}
	res, err := r.waited(ctx, cmd)
	if err != nil {
		return rueidis.NewErrorResult(err)
	}
	return res
}

// waited sends cmd and WAIT down one connection: cmd's answer (or WAIT's,
// if WAIT failed), and ErrNotReplicated when fewer replicas than asked
// acknowledged it.
func (r *Redis) waited(ctx context.Context, cmd rueidis.Completed) (rueidis.RedisResult, error) {
	wait := r.client.B().Wait().Numreplicas(r.replicas).Timeout(r.waitMS).Build()
	res := r.client.DoMulti(ctx, cmd, wait)
	if res[0].Error() != nil {
		return res[0], nil
	}
	n, err := res[1].AsInt64()
	if err != nil {
		return res[1], nil
	}
	if n < r.replicas {
		return res[0], fmt.Errorf("WAIT %d: %d acknowledged: %w", r.replicas, n, ErrNotReplicated)
	}
	return res[0], nil
}

// Close stops publishing again what failed, and closes the client.
func (r *Redis) Close() {
	r.out.shut()
	r.client.Close()
}

func subjectKey(sub string) string { return "tokend:u:{" + sub + "}" }

// cutoffKey is the key of sub's legacy cutoff (legacy_cutoff.lua).
func cutoffKey(sub string) string {
	// in the subject index's Cluster slot, so that one script reads both: an
	// empty subject or one starting with "}" leaves subjectKey no hash tag,
	// and then a tag of that slot stands in front of the subject
	if sub == "" || sub[0] == '}' {
		return "tokend:l:{" + slotTags()[keySlot(subjectKey(sub))] + "}" + sub
	}
	return "tokend:l:{" + sub + "}"
}

// adoptKey is the key of legacy token id's adoption mark
// (record_rotate.lua), in the slot of its record rec: in a Cluster under a
// tag of that slot, as proofKey.
func adoptKey(rec, id string, cluster bool) string {
	if !cluster {
		return "tokend:a:" + id
	}
	return "tokend:a:{" + slotTags()[keySlot(rec)] + "}" + id
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// unavailable wraps a client error: anything but a Redis error reply means
// the store could not be asked in time, and so do the replies of a Redis
// that cannot take the write now (transientReply).
func unavailable(op string, err error) error {
	re, isReply := rueidis.IsRedisErr(err)
	if errors.Is(err, ErrUnavailable) || (isReply && !transientReply(re)) {
		return fmt.Errorf("redis %s: %w", op, err)
	}
	return fmt.Errorf("redis %s: %w: %v", op, ErrUnavailable, err)
}

// transientReply: Redis refused for a while, not for good: out of memory
// under noeviction, loading its AOF after a restart, a replica since a
// failover, a Cluster or Sentinel without a primary, a busy script. The
// client gets 503 and its retry is answered by the rotation rule.
func transientReply(e *rueidis.RedisError) bool {
	msg := e.Error()
	for _, prefix := range []string{"OOM ", "LOADING ", "READONLY ", "MASTERDOWN ", "BUSY ", "TRYAGAIN ", "CLUSTERDOWN ", "NOREPLICAS "} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// Create implements Store: SET NX of the packed record, expiring with the
// first refresh token.
func (r *Redis) Create(ctx context.Context, s Session, idle time.Duration) error {
	if err := checkOAuth(s); err != nil {
		return err
	}
	ctx, cancel := r.deadlines.bound(ctx)
	defer cancel()
	s.Gen = 0
	err := r.write(ctx, r.client.B().Set().Key(recordKey(s.ID)).Value(rueidis.BinaryString(packRecord(s, stateActive, !r.proofKeys))).
		Nx().Pxat(until(s.Rotated, idle, s.Expires)).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return fmt.Errorf("session %s: already exists", s.ID)
	}
	if err != nil {
		return unavailable("create", err)
	}
	return r.index(ctx, s)
}

func (r *Redis) index(ctx context.Context, s Session) error {
	err := r.exec(ctx, indexScript, []string{subjectKey(s.Subject)}, []string{s.ID, ms(s.Expires)}).Error()
	if err != nil {
		return unavailable("index", err)
	}
	return nil
}

// Rotate implements Store: one EVALSHA, one round trip (two for a session
// still in the hash record of an earlier tokend).
func (r *Redis) Rotate(ctx context.Context, st Step) (Rotation, error) {
	ctx, cancel := r.deadlines.bound(ctx)
	defer cancel()
	buf := rotationBufs.Get().(*rotationBuf)
	key, arg, owner := buf.rotateStrings(&st, r.replicas > 0, r.proofKeys)
	keys, args := []string{key}, []string{arg, owner}
	switch {
	case st.Gen == -1: // adoption: its mark, the OAuth arguments in their places, then the new record
		st = st.copied() // its session id goes on to the subject index
		keys = append(keys, adoptKey(key, st.ID, r.cluster))
		var err error
		if keys, args, err = oauthArgs(st, keys, args, r.cluster); err != nil {
			return Rotation{}, err
		}
		s := Session{Subject: st.Subject, Created: st.Now, Expires: st.Expires, Rotated: st.Now, Key: st.Key}
		u := until(st.Now, st.Idle, st.Expires)
		// its proof has a key (SET NX): the record gains the field at the
		// next refresh, as one an earlier tokend wrote
		rec := packRecord(s, stateActive, false)
		if r.replicas > 0 {
			rec[recKind] |= kindUnacked // as every record written while waiting (record_rotate.lua)
		}
		args = append(args, string(rec), ms(u), ms(later(st.TokenExpires, u)))
	case st.oauth():
		var err error
		if keys, args, err = oauthArgs(st, keys, args, r.cluster); err != nil {
			return Rotation{}, err
		}
		// trailing empty ones left out: fewer, shorter arguments, less Redis
		// CPU per refresh
		for args[len(args)-1] == "" {
			args = args[:len(args)-1]
		}
	}
	res, notReplicated := r.execWaited(ctx, rotateScript, keys, args)
	if res.NonRedisError() == nil {
		// Answered: rueidis wrote the command before its answer came and
		// reads none of its strings again. Otherwise (a deadline, a broken
		// connection) it may still be queued, and the buffer is left to the
		// garbage collector.
		defer rotationBufs.Put(buf)
	}
	msg, err := res.ToMessage()
	if err != nil {
		return Rotation{}, unavailable("rotate", err)
	}
	code, v := int64(1), ""
	switch {
	case msg.IsString(): // advanced: the record as it was
		v, _ = msg.ToString()
	case msg.IsArray(): // {2 retry | 3 reuse, record}
		a, _ := msg.ToArray()
		if len(a) == 2 {
			code, err = a[0].AsInt64()
			v, _ = a[1].ToString()
		}
	default:
		code, err = msg.AsInt64()
	}
	if err != nil {
		return Rotation{}, fmt.Errorf("redis rotate: bad reply: %w", err)
	}
	if notReplicated != nil && code != 3 {
		// Nothing to undo: what the script wrote is marked unacknowledged,
		// and the client's retry meets it as such (record_rotate.lua). Reuse
		// goes on below: the session is revoked on the primary whatever
		// the replicas say, and the revocation must be told.
		return Rotation{}, unavailable("rotate", notReplicated)
	}
	if code == 0 && st.Gen != -1 {
		return r.legacyRotate(ctx, st)
	}
	if code < 1 || code > 3 {
		return Rotation{}, refusal(st.ID, code)
	}
	s, _, err := unpackRecord(st.ID, v)
	if err != nil {
		return Rotation{}, fmt.Errorf("redis rotate: %w", err)
	}
	if st.Key != "" && code == 1 && st.Gen >= 0 && s.Gen <= st.Gen {
		// an advance: bound already, or by this step. Not a rotation made
		// again (the record was at gen+1 already), which binds nothing, nor
		// an adoption, whose new record says its key itself.
		s.Key = st.Key
	}
	switch code {
	case 1: // the record as it was: the rotation made it gen+1, rotated now
		rot := Rotation{Session: s}
		rot.Lost = max(0, st.Gen-s.Gen)
		rot.Gen, rot.Rotated = st.Gen+1, time.UnixMilli(st.Now.UnixMilli())
		if st.Gen == -1 {
			err = r.indexAdopted(ctx, st, s)
		}
		if err == nil && r.replicas > 0 {
			r.ack(ctx, key, rot.Gen, rot.Rotated)
		}
		return rot, err
	case 2: // the record as it is: a retry hands out its pair again, binding nothing
		if st.Gen == -1 {
			// the index write of the first answer may have failed (a 503
			// while the record was made): the retry writes it again, or
			// nothing is handed out
			if err = r.indexAdopted(ctx, st, s); err != nil {
				return Rotation{}, err
			}
		}
		if r.replicas > 0 && unacked(v) {
			r.ack(ctx, key, s.Gen, s.Rotated)
		}
		return Rotation{Session: s, Retry: true}, nil
	}
	// reuse: the session is revoked whatever happens next; a publication
	// that fails is kept and published again (publishOrKeep)
	_ = r.publishOrKeep(ctx, Revocation{ID: strings.Clone(st.ID), Subject: s.Subject, At: st.Now})
	return Rotation{}, refusal(st.ID, code)
}

// indexAdopted puts the session adopted by st in its subject's index,
// unless the subject was revoked or deleted after st's token was issued
// (RevokeLegacySubject): the session is then marked so, and refused.
func (r *Redis) indexAdopted(ctx context.Context, st Step, s Session) error {
	iat := "0"
	if !st.TokenIssued.IsZero() {
		iat = ms(st.TokenIssued)
	}
	code, err := r.exec(ctx, indexScript, []string{subjectKey(s.Subject), cutoffKey(s.Subject)}, []string{s.ID, ms(s.Expires), iat}).AsInt64()
	switch {
	case err != nil:
		return unavailable("index", err)
	case code == 1:
		return nil
	case code != 4 && code != 5:
		return fmt.Errorf("redis index: unknown code %d", code)
	}
	if err := r.revokeLegacy(ctx, st, strconv.FormatInt(code-3, 10), false); err != nil {
		return err
	}
	return refusal(s.ID, code)
}

// ack marks the rotation (gen, rotated) of the record under key
// acknowledged (record_ack.lua), once WAIT confirmed the write of the
// answer about to go out: the parent token is reuse again after the grace
// window. Best effort and without WAIT: missed, the rotation stays
// unacknowledged, which logs nobody out; it only leaves the parent
// retryable until the child is first presented. key is copied: after a
// deadline the command may still be queued when the rotation's buffer is
// reused.
func (r *Redis) ack(ctx context.Context, key string, gen int64, rotated time.Time) {
	var b [10]byte
	binary.BigEndian.PutUint32(b[:], uint32(gen))
	put48(b[4:], rotated.UnixMilli())
	_ = ackScript.Exec(ctx, r.client, []string{strings.Clone(key)}, []string{string(b[:])}).Error()
}

// oauthArgs adds what an OAuth 2.0 step checks to the script's keys and
// arguments (record_rotate.lua): client, scope, key, and the proof's key
// and proofField, "" where unset.
func oauthArgs(st Step, keys, args []string, cluster bool) ([]string, []string, error) {
	key, arg := "", ""
	if st.Key != "" {
		b, err := base64.RawURLEncoding.Strict().DecodeString(st.Key)
		if err != nil || len(b) != keySize {
			return nil, nil, errors.New("session: step key is not a base64url SHA-256 thumbprint")
		}
		key = string(b)
	}
	if st.Proof != "" {
		pk := proofKey(keys[0], st.Key, st.Proof, cluster)
		keys = append(keys, pk)
		arg = proofField(st, pk[len(pk)-16:])
	}
	return keys, append(args, st.Client, st.Scope, key, arg), nil
}

// proofField is st's proof as a bound record keeps it (record.go): its iat
// (s, uint32; 0 when unknown) and name (its key's last 16 bytes).
func proofField(st Step, name string) string {
	var b [proofSize]byte
	if iat := st.ProofIssued.Unix(); !st.ProofIssued.IsZero() && iat > 0 {
		binary.BigEndian.PutUint32(b[0:], uint32(min(iat, 1<<32-1)))
	}
	copy(b[4:], name)
	return string(b[:])
}

// proofTTL is how long st's proof is kept, ms: at least 1 (PX refuses 0).
func proofTTL(st Step) int64 { return max(1, st.ProofTTL.Milliseconds()) }

// refusal is the error of a rotation script's code other than an advance
// or a retry (both scripts use the same codes).
func refusal(id string, code int64) error {
	var sentinel error
	switch code {
	case 0:
		sentinel = ErrNotFound
	case 3:
		sentinel = ErrReuse
	case 4:
		sentinel = ErrRevoked
	case 5:
		sentinel = ErrDeleted
	case 6:
		sentinel = ErrExpired
	case 7:
		sentinel = ErrNotOwner
	case 8:
		sentinel = ErrWrongClient
	case 9:
		sentinel = ErrKeyRequired
	case 10:
		sentinel = ErrReplay
	case 11:
		sentinel = ErrWrongKey
	case 12:
		sentinel = ErrScope
	default:
		return fmt.Errorf("redis rotate: unknown code %d", code)
	}
	return fmt.Errorf("session %s: %w", id, sentinel)
}

// appendRotateArg packs the rotation's numbers for record_rotate.lua: gen
// (int32), now and the idle deadline (ms, int48), grace (ms, uint32), mark
// (1: the store waits for replicas, and what the script writes is marked
// unacknowledged until ack), and with a proof how long its key lives (ms,
// uint32) and proofKeys (ProofKeys).
func appendRotateArg(dst []byte, st Step, mark, proofKeys bool) []byte {
	var b [rotateArgSize]byte
	binary.BigEndian.PutUint32(b[0:], uint32(int32(st.Gen)))
	put48(b[4:], st.Now.UnixMilli())
	put48(b[10:], st.Now.Add(st.Idle).UnixMilli())
	binary.BigEndian.PutUint32(b[16:], uint32(min(st.Grace.Milliseconds(), 1<<32-1)))
	if mark {
		b[20] = 1
	}
	if st.Proof != "" {
		binary.BigEndian.PutUint32(b[21:], uint32(min(proofTTL(st), 1<<32-1)))
		if proofKeys {
			b[25] = 1
		}
	}
	return append(dst, b[:]...)
}

// rotateArgSize is the size of appendRotateArg's argument.
const rotateArgSize = 26

// A rotationBuf holds the strings of one rotation's command. Rotate returns
// it to rotationBufs only once Redis has answered that command: a command
// whose call ended without an answer may still be queued in rueidis' pipe
// and written later, and its strings must not change under it.
type rotationBuf struct{ b []byte }

var rotationBufs = sync.Pool{New: func() any { return new(rotationBuf) }}

// rotateStrings returns the record key, the packed argument and the packed
// owner ("" for none) of st's rotation, and puts copies of its client and
// scope, which the OAuth arguments carry as they are, in st: every string
// the rotation's command holds is in buf (the step's strings are lent,
// Step), and nothing that outlives the command may keep one.
func (buf *rotationBuf) rotateStrings(st *Step, mark, proofKeys bool) (key, arg, owner string) {
	n := max(len(recordPrefix)+16, len("tokend:t:{}")+len(st.ID)) + rotateArgSize + 1 + len(st.Owner) + len(st.Client) + len(st.Scope)
	if cap(buf.b) < n {
		buf.b = make([]byte, 0, n)
	}
	b := appendRecordKey(buf.b[:0], st.ID)
	k := len(b)
	b = appendRotateArg(b, *st, mark, proofKeys)
	a := len(b)
	if st.Owner != "" {
		b = appendSubject(b, st.Owner)
	}
	o := len(b)
	b = append(b, st.Client...)
	c := len(b)
	b = append(b, st.Scope...)
	// b is not written again until Rotate puts buf back (rotationBuf)
	buf.b = b
	all := unsafe.String(unsafe.SliceData(b), len(b))
	st.Client, st.Scope = all[o:c], all[c:]
	return all[:k], all[k:a], all[a:o]
}

// legacyRotate rotates a session kept in the hash record of an earlier
// tokend, where it is. Those sessions have no client, no scope and no
// key: an OAuth 2.0 refresh of one is not bound to its proof's key (the
// pair is a Bearer pair; docs/design.md).
func (r *Redis) legacyRotate(ctx context.Context, st Step) (Rotation, error) {
	st = st.copied() // its owner goes to the script as it is, its id to a revocation
	// these records have no scope: any item asked is refused, in the script's order
	scope := ""
	if !inScope(st.Scope, "") {
		scope = "1"
	}
	mark := "" // waiting for replicas: marked unacknowledged, as the packed record is
	if r.replicas > 0 {
		mark = "1"
	}
	args := []string{strconv.FormatInt(st.Gen, 10), strconv.FormatInt(st.Gen+1, 10), ms(st.Now),
		strconv.FormatInt(st.Grace.Milliseconds(), 10), ms(st.Now.Add(st.Idle)), st.Owner, scope, mark}
	answer, unacked := r.execWaited(ctx, legacyRotateScript, []string{legacyKey(st.ID)}, args)
	res, err := answer.ToArray()
	if err != nil {
		return Rotation{}, unavailable("rotate", err)
	}
	code, err := res[0].AsInt64()
	if err != nil {
		return Rotation{}, fmt.Errorf("redis rotate: bad reply: %w", err)
	}
	if unacked != nil {
		if sub, err := res[1].ToString(); err == nil && code == 3 { // revoked on the primary all the same
			_ = r.publishOrKeep(ctx, Revocation{ID: st.ID, Subject: sub, At: st.Now})
		}
		return Rotation{}, unavailable("rotate", unacked)
	}
	switch code {
	case 1, 2:
		rot, err := rotation(st.ID, res)
		rot.Retry = code == 2
		if err == nil && r.replicas > 0 {
			// WAIT confirmed: acknowledged, as Redis.ack (a no-op when it was)
			_ = legacyAckScript.Exec(ctx, r.client, []string{legacyKey(st.ID)},
				[]string{strconv.FormatInt(rot.Gen, 10), ms(rot.Rotated)}).Error()
		}
		return rot, err
	case 3:
		if sub, err := res[1].ToString(); err == nil {
			_ = r.publishOrKeep(ctx, Revocation{ID: st.ID, Subject: sub, At: st.Now}) // kept on failure
		}
	}
	return Rotation{}, refusal(st.ID, code)
}

// rotation decodes the legacy script's {code, sub, gen, created, expires,
// rotated, lost}.
func rotation(id string, res []rueidis.RedisMessage) (Rotation, error) {
	if len(res) != 7 {
		return Rotation{}, errors.New("redis rotate: bad reply length")
	}
	var n [5]int64
	sub, err := res[1].ToString()
	for i := range n {
		if err != nil {
			break
		}
		n[i], err = res[2+i].AsInt64()
	}
	if err != nil {
		return Rotation{}, fmt.Errorf("redis rotate: bad reply: %w", err)
	}
	return Rotation{Session: Session{
		ID: id, Subject: sub, Gen: n[0],
		Created: time.UnixMilli(n[1]), Expires: time.UnixMilli(n[2]), Rotated: time.UnixMilli(n[3]),
	}, Lost: n[4]}, nil
}

// Revoke implements Store.
func (r *Redis) Revoke(ctx context.Context, id string) error {
	ctx, cancel := r.deadlines.bound(ctx)
	defer cancel()
	res, unacked := r.execWaited(ctx, revokeScript, []string{recordKey(id)}, []string{"1"})
	if n, err := res.AsInt64(); err == nil && n == 0 {
		res, unacked = r.execWaited(ctx, legacyRevokeScript, []string{legacyKey(id)}, []string{"1"})
	}
	return r.publishRevoked(ctx, id, res, unacked)
}

// publishRevoked decodes a revoke script's answer res and publishes the
// session it names, then reports unacked (ErrNotReplicated) if set:
// published even when the replicas fell short, since the primary revoked
// it and the 503's retry may never come; kept for the outbox on failure.
func (r *Redis) publishRevoked(ctx context.Context, id string, res rueidis.RedisResult, unacked error) error {
	rev, ok, _, err := revokeReply(id, res)
	if err != nil || !ok {
		return err
	}
	err = r.publishOrKeep(ctx, rev)
	if unacked != nil {
		return unavailable("revoke", unacked)
	}
	return err
}

// RevokeLegacy implements Store: the record, if there is one, and the
// token's adoption mark, in one script (one slot).
func (r *Redis) RevokeLegacy(ctx context.Context, st Step) error {
	ctx, cancel := r.deadlines.bound(ctx)
	defer cancel()
	st = st.copied()
	return r.revokeLegacy(ctx, st, "1", true)
}

// revokeLegacy marks the session legacy token st starts, and its adoption
// mark, revoked (to "1") or deleted ("2"), and publishes a session that
// was there. holder: the token's holder asks (RevokeLegacy), and a session
// bound to a DPoP key needs st's proof by it; else the store itself does
// (a subject's cutoff met by the adoption).
func (r *Redis) revokeLegacy(ctx context.Context, st Step, to string, holder bool) error {
	rec := recordKey(st.ID)
	// an expired token is refused by its own exp: nothing to remember
	mark := ""
	if st.TokenExpires.After(st.Now) {
		mark = ms(st.TokenExpires)
	}
	keys, args := []string{rec}, []string{to}
	if holder || mark != "" {
		keys, args = append(keys, adoptKey(rec, st.ID, r.cluster)), append(args, mark)
	}
	if holder {
		// oauthArgs gives client, scope, key, proof (and the proof's key
		// after the mark's): this script takes the key, and the ttl with a proof
		k, a, err := oauthArgs(st, keys, nil, r.cluster)
		if err != nil {
			return err
		}
		keys, args = k, append(args, a[2])
		if st.Proof != "" {
			args = append(args, strconv.FormatInt(proofTTL(st), 10))
		}
	}
	res, unacked := r.execWaited(ctx, revokeScript, keys, args)
	if n, err := res.AsInt64(); err == nil && n != 0 {
		return refusal(st.ID, n) // a refusal wrote nothing
	}
	return r.publishRevoked(ctx, st.ID, res, unacked)
}

// RevokeLegacySubject implements Store.
func (r *Redis) RevokeLegacySubject(ctx context.Context, sub string, at time.Time, del bool) error {
	ctx, cancel := r.deadlines.bound(ctx)
	defer cancel()
	to := "1"
	if del {
		to = "2"
	}
	if err := r.exec(ctx, cutoffScript, []string{cutoffKey(sub)}, []string{ms(at), to}).Error(); err != nil {
		return unavailable("cutoff", err)
	}
	return nil
}

// revokeReply decodes the answer of either revoke script. A session that
// exists is published again even when it was revoked already: a retried
// revoke repairs a publication that failed.
func revokeReply(id string, res rueidis.RedisResult) (rev Revocation, ok, ended bool, err error) {
	v, err := res.ToArray()
	if err != nil {
		if n, e := res.AsInt64(); e == nil && n == 0 {
			return Revocation{}, false, false, nil // no such session
		}
		return Revocation{}, false, false, unavailable("revoke", err)
	}
	var e, x int64
	var sub string
	switch len(v) {
	case 2: // {ended, record}
		var rec string
		if e, err = v[0].AsInt64(); err == nil {
			rec, err = v[1].ToString()
		}
		if err == nil {
			var s Session
			var state byte
			s, state, err = unpackRecord(id, rec)
			sub, x = s.Subject, int64(state)
		}
	case 3: // legacy: {ended, sub, state}
		var err2, err3 error
		e, err = v[0].AsInt64()
		sub, err2 = v[1].ToString()
		x, err3 = v[2].AsInt64()
		err = errors.Join(err, err2, err3)
	default:
		return Revocation{}, false, false, errors.New("redis revoke: bad reply length")
	}
	if err != nil {
		return Revocation{}, false, false, fmt.Errorf("redis revoke: bad reply: %w", err)
	}
	return Revocation{ID: id, Subject: sub, Deleted: x == 2, At: time.Now()}, true, e == 1, nil
}

// RevokeSubject implements Store. The subject's sessions live in other
// slots, so each is marked by its own script call, pipelined, and each
// revocation published. It takes effect at its SMEMBERS: every session
// indexed by then is ended when it returns.
func (r *Redis) RevokeSubject(ctx context.Context, sub string, del bool) (int, error) {
	ctx, cancel := r.deadlines.bound(ctx)
	defer cancel()
	ids, err := r.client.Do(ctx, r.client.B().Smembers().Key(subjectKey(sub)).Build()).AsStrSlice()
	if err != nil {
		return 0, unavailable("smembers", err)
	}
	to := "1"
	if del {
		to = "2"
	}
	n := 0
	var revs []Revocation
	var unacked error
	// sessions still in the hash record of an earlier tokend are found
	// missing in the packed one, and revoked where they are
	missing, err := r.revokeEach(ctx, revokeScript, recordKey, ids, to, &n, &revs, &unacked)
	if err == nil && len(missing) > 0 {
		_, err = r.revokeEach(ctx, legacyRevokeScript, legacyKey, missing, to, &n, &revs, &unacked)
	}
	// what was revoked is published whatever failed after it (Revoke)
	perr := r.publishOrKeep(ctx, revs...)
	if err != nil {
		return n, err
	}
	if unacked != nil {
		return n, unavailable("revoke", unacked)
	}
	if perr != nil {
		return n, perr
	}
	if del && len(ids) > 0 {
		// only the ids read, now ended: a login whose SADD landed since stays
		// in the index for the next deletion (a DEL lost it), and a deletion
		// that failed before here left the index whole to be repeated
		if err := r.write(ctx, r.client.B().Srem().Key(subjectKey(sub)).Member(ids...).Build()).Error(); err != nil {
			return n, unavailable("srem", err)
		}
	}
	return n, nil
}

// revokeEach revokes ids with script s, counting the sessions it ended in
// n and collecting what to publish; it returns the ids it found no record
// of. A revocation its replicas did not acknowledge is collected too, and
// *unacked set.
func (r *Redis) revokeEach(ctx context.Context, s script, key func(string) string, ids []string, to string, n *int, revs *[]Revocation, unacked *error) (missing []string, err error) {
	results, short := r.revokeAll(ctx, s, key, ids, to)
	for i, res := range results {
		rev, ok, ended, err := revokeReply(ids[i], res)
		if err != nil {
			return nil, err
		}
		if short[i] != nil {
			*unacked = short[i]
		}
		if ended {
			*n++
		}
		if ok {
			*revs = append(*revs, rev)
		} else {
			missing = append(missing, ids[i])
		}
	}
	return missing, nil
}

// revokeAll runs a revoke script on each session's key: pipelined, or one
// at a time when each write must be followed by its WAIT, with each
// answer's ErrNotReplicated beside it.
func (r *Redis) revokeAll(ctx context.Context, s script, key func(string) string, ids []string, to string) ([]rueidis.RedisResult, []error) {
	short := make([]error, len(ids))
	if len(ids) == 0 {
		return nil, short
	}
	if r.replicas > 0 {
		res := make([]rueidis.RedisResult, len(ids))
		for i, id := range ids {
			res[i], short[i] = r.execWaited(ctx, s, []string{key(id)}, []string{to})
		}
		return res, short
	}
	execs := make([]rueidis.LuaExec, len(ids))
	for i, id := range ids {
		execs[i] = rueidis.LuaExec{Keys: []string{key(id)}, Args: []string{to}}
	}
	return s.ExecMulti(ctx, r.client, execs...), short
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := r.deadlines.bound(ctx)
	defer cancel()
	if err := r.client.Do(ctx, r.client.B().Ping().Build()).Error(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}
