package tokens

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/tokend/tokend/internal/tokens/session"
)

// Lifetimes and rules of an Issuer (DESIGN §7).
type Config struct {
	AccessTTL  time.Duration // access token lifetime
	RefreshTTL time.Duration // refresh token lifetime (idle limit of a session)
	SessionMax time.Duration // absolute session lifetime
	Grace      time.Duration // retry window of the immediate parent
	Legacy     bool          // accept the old spring backend's refresh tokens once
	NameID     bool          // access tokens carry `nameid` (aspnet)
	// Audience is the aud of access tokens whose Grant names none (the
	// dialect endpoints'); "" writes none, as the old backends did.
	Audience string
}

// RefreshFormat is how refresh tokens look on the wire: JWTs for spring,
// opaque MACed bytes for aspnet. It only encodes (sid, gen, iat, exp).
// ParseRefresh judges expiry at now: the issuer reads its clock once per
// refresh and every check uses that instant.
type RefreshFormat interface {
	AppendRefresh(dst []byte, cl *Claims) ([]byte, error)
	ParseRefresh(token []byte, now time.Time, cl *Claims) error
}

// keptParser is a RefreshFormat that can leave cl's strings in *kept, a
// buffer it only appends to, instead of allocating them (parseAt): the
// refresh path's, with the Pair's buffer.
type keptParser interface {
	parseRefreshKept(token []byte, now time.Time, cl *Claims, kept *[]byte) error
}

// Issuer starts sessions and trades refresh tokens for new pairs.
type Issuer struct {
	codec   *Codec
	store   session.Store
	refresh RefreshFormat
	kept    keptParser // refresh, when it can parse into the Pair's buffer
	cfg     Config
	log     *slog.Logger
	deny    Denylist
}

// NewIssuer wires a codec (access tokens), a refresh format and a store.
func NewIssuer(codec *Codec, refresh RefreshFormat, store session.Store, cfg Config) *Issuer {
	kept, _ := refresh.(keptParser)
	return &Issuer{codec: codec, store: store, refresh: refresh, kept: kept, cfg: cfg, log: slog.New(slog.DiscardHandler)}
}

// SetLogger sets where security events (reuse detected) are logged. Lines
// name sessions by id, never by token.
func (is *Issuer) SetLogger(l *slog.Logger) { is.log = l }

// SetDenylist makes Refresh consult d before the store: a refresh token of
// a session the denylist knows to be revoked is refused from local memory,
// with no store round trip. The store stays the authority for the rest.
func (is *Issuer) SetDenylist(d Denylist) { is.deny = d }

// Config returns the issuer's settings.
func (is *Issuer) Config() Config { return is.cfg }

// Pair is a freshly issued access and refresh token. Both slices point into
// an internal buffer that is reused by the next call with the same Pair, so
// pooling Pairs makes issuing allocate nothing of its own; Session's strings
// may share the Pair's buffers too (the id read from the token presented),
// and are as short-lived: copy what must outlive the Pair's next use.
type Pair struct {
	Access, Refresh  []byte
	AccessExpiresIn  time.Duration
	RefreshExpiresIn time.Duration
	Session          session.Session
	Scope            string    // of the access token (OAuth 2.0)
	Retry            bool      // the pair re-issues one issued before (grace window)
	Lost             int64     // rotations the store had lost and this refresh advanced past
	At               time.Time // when the issuer decided: the answer's timestamp
	buf              []byte
	claims           Claims // of the tokens issued
	presented        Claims // of the refresh token presented
	owner            Claims // of the access token presented (aspnet)
	// kept holds the presented tokens' decoded claims, which presented's
	// and owner's strings (and so the step's and, from Redis, Session.ID)
	// share: truncated at the start of each refresh, appended to during it.
	kept []byte
}

// Grant is what an OAuth 2.0 client presents beside its refresh token
// (server/oauth2), or what a session is started with.
type Grant struct {
	// Client is the client_id. A session started for a client is refreshed
	// by that client only; its access tokens name it.
	Client string
	// Scope, on a refresh, narrows the new access token's scope ("": the
	// session's); it must not exceed the session's. On Start, the
	// session's scope.
	Scope string
	// Key is the RFC 7638 thumbprint of the DPoP key: on a refresh, of the
	// proof's key ("": no proof), on Start the key to bind the session to.
	Key string
	// Proof is the proof's jti, accepted once per session for at least
	// ProofTTL (session.Step); ProofIssued its iat.
	Proof       string
	ProofTTL    time.Duration
	ProofIssued time.Time
	// Audience, on a refresh, is the new access token's aud (RFC 9068
	// §2.2, RFC 8707): one resource server's identifier ("": Config's).
	Audience string
}

// tokenRoom is what a session's tokens may grow by after its login: a
// DPoP binding (cnf, 84 bytes) and a signing key with a longer kid or larger
// signatures (an RSA-4096 one's is 683 bytes, HMAC-SHA256's 43).
const tokenRoom = 1 << 10

// Start opens a session for sub and issues its first pair.
func (is *Issuer) Start(ctx context.Context, sub string, p *Pair) error {
	return is.StartGrant(ctx, sub, Grant{}, p)
}

// StartGrant opens a session for sub started for g.Client, with scope
// g.Scope, bound to the DPoP key g.Key when set, and issues its first pair.
func (is *Issuer) StartGrant(ctx context.Context, sub string, g Grant, p *Pair) error {
	if sub == "" || len(sub) > 256 || !utf8.ValidString(sub) {
		return fmt.Errorf("%w: subject must be 1 to 256 bytes of UTF-8", ErrInvalid)
	}
	id, err := newSessionID()
	if err != nil {
		return err
	}
	at := is.codec.clock.Now()
	now := at.Truncate(time.Millisecond) // what the stores keep
	s := session.Session{ID: id, Subject: sub, Created: now, Rotated: now, Expires: now.Add(is.cfg.SessionMax),
		Client: g.Client, Scope: g.Scope, Key: g.Key}
	// issued before the session is stored: a session whose tokens could
	// never be presented back is refused, not started
	p.Retry, p.Lost, p.At = false, 0, at
	if err := is.issue(s, Grant{}, p); err != nil {
		return err
	}
	if len(p.Access)+tokenRoom >= MaxTokenSize || len(p.Refresh)+tokenRoom >= MaxTokenSize {
		return fmt.Errorf("%w: %d and %d bytes, the limit is %d with %d to spare (a shorter scope, client or subject)",
			ErrTooLarge, len(p.Access), len(p.Refresh), MaxTokenSize, tokenRoom)
	}
	if err := is.store.Create(ctx, s, is.cfg.RefreshTTL); err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	return nil
}

// Refresh verifies a refresh token, rotates its session and issues the pair
// for the new generation (or again for the current one, inside the grace
// window). Errors wrap this package's or the session package's sentinels.
//
// access is the client's current access token where the dialect sends one
// (aspnet), else nil. It may have expired, but must verify, and the session
// must belong to the subject it names.
func (is *Issuer) Refresh(ctx context.Context, refresh, access []byte, p *Pair) error {
	return is.refreshGrant(ctx, refresh, access, nil, p)
}

// RefreshGrant is Refresh on the OAuth 2.0 token endpoint: g's client,
// scope and DPoP proof are checked in the rotation's own step (errors wrap
// session.ErrWrongClient, ErrScope, ErrKeyRequired, ErrWrongKey or
// ErrReplay, and burn nothing), and the access token carries client_id,
// scope and, for a bound session, cnf.jkt.
func (is *Issuer) RefreshGrant(ctx context.Context, refresh []byte, g Grant, p *Pair) error {
	return is.refreshGrant(ctx, refresh, nil, &g, p)
}

func (is *Issuer) refreshGrant(ctx context.Context, refresh, access []byte, g *Grant, p *Pair) error {
	now := is.codec.clock.Now() // the one clock read of a refresh: every check and the answer use it
	// The claims' strings share p.kept: nothing keeps them past this call
	// but p (stores and the denylist copy or hash what they keep), so a
	// pooled Pair makes parsing allocate nothing. Each parse resets the
	// claims it fills; the previous refresh's are not read again.
	p.kept = p.kept[:0]
	var owner string
	if access != nil {
		var err error
		if owner, err = is.owner(access, now, &p.owner, &p.kept); err != nil {
			return err
		}
	}
	cl := &p.presented
	if err := is.parseRefresh(refresh, now, cl, &p.kept); err != nil {
		return err
	}
	if owner == "" {
		owner = cl.Subject // a JWT refresh token names its subject; opaque ones do not
	}
	st := session.Step{ID: cl.Session, Gen: cl.Gen, Now: now, Grace: is.cfg.Grace, Idle: is.cfg.RefreshTTL, Owner: owner}
	if cl.Legacy {
		st.ID, st.Gen = legacySessionID(refresh), -1
		st.Subject, st.Expires = cl.Subject, now.Add(is.cfg.SessionMax)
		st.TokenIssued, st.TokenExpires = legacyTimes(cl)
	}
	var grant Grant
	if g != nil {
		grant = *g
		st.Client, st.Scope, st.Key, st.Proof, st.ProofTTL, st.ProofIssued = g.Client, g.Scope, g.Key, g.Proof, g.ProofTTL, g.ProofIssued
	}
	if err := is.denied(ctx, st); err != nil {
		return err
	}
	rot, err := is.store.Rotate(ctx, st)
	switch {
	case err == nil:
		p.Retry, p.Lost, p.At = rot.Retry, rot.Lost, now
		if rot.Lost > 0 {
			is.log.Warn("session record was behind its refresh token: the store lost acknowledged rotations; advanced past them",
				"sid", st.ID, "gen", st.Gen, "lost", rot.Lost)
		}
		return is.issue(rot.Session, grant, p)
	case errors.Is(err, session.ErrReuse):
		is.log.Warn("refresh token reuse detected; session revoked", "sid", st.ID, "gen", st.Gen)
	case errors.Is(err, session.ErrNotOwner):
		is.log.Warn("refresh token presented with another subject's access token; refused", "sid", st.ID)
	case errors.Is(err, session.ErrWrongKey), errors.Is(err, session.ErrKeyRequired):
		is.log.Warn("refresh of a DPoP-bound session without a proof by its key; refused", "sid", st.ID)
	}
	return err
}

// denied answers a refresh of a session the denylist knows to be revoked as
// the store would: another subject's session is ErrNotOwner (it learns
// nothing), else ErrRevoked or ErrDeleted. A denylist that cannot confirm,
// or that found no record, leaves the decision to the store.
func (is *Issuer) denied(ctx context.Context, st session.Step) error {
	if is.deny == nil {
		return nil
	}
	rev, revoked, err := is.deny.Check(ctx, st.ID)
	switch {
	case err != nil || !revoked:
		return nil
	case rev.Gone: // no record: the store answers (ErrNotFound, or a legacy token's adoption)
		return nil
	case st.Owner != "" && st.Owner != rev.Subject:
		return fmt.Errorf("session %s: %w", st.ID, session.ErrNotOwner)
	}
	return fmt.Errorf("session %s (denylist): %w", st.ID, rev.Err())
}

// owner verifies the access token presented with a refresh token and returns
// the subject it names. Being expired is the reason it is presented, so that
// is no error; a bad signature, alg or typ is.
func (is *Issuer) owner(token []byte, now time.Time, cl *Claims, kept *[]byte) (string, error) {
	err := is.codec.parseAt(token, Access, now, DefaultLeeway, cl, kept)
	switch {
	case err != nil && !errors.Is(err, ErrExpired):
		return "", fmt.Errorf("%w: %w", ErrAccessToken, err)
	case cl.NameID != "" && cl.NameID != cl.Subject:
		return "", fmt.Errorf("%w: %w: nameid and sub differ", ErrAccessToken, ErrInvalid)
	}
	return cl.Subject, nil
}

// parseRefresh parses a presented refresh token, its strings in *kept where
// the format can.
func (is *Issuer) parseRefresh(token []byte, now time.Time, cl *Claims, kept *[]byte) error {
	if is.kept != nil {
		return is.kept.parseRefreshKept(token, now, cl, kept)
	}
	return is.refresh.ParseRefresh(token, now, cl)
}

// Revoke ends the session a refresh token names (the dialects' revoke
// endpoint). Tokens that do not parse revoke nothing and are not an error:
// the endpoint is no oracle. A session bound to a DPoP key is refused
// (session.ErrKeyRequired): no proof is possible here, and its tokens
// alone must not end it any more than they refresh it.
func (is *Issuer) Revoke(ctx context.Context, token []byte) error {
	var cl Claims
	now := is.codec.clock.Now()
	err := is.refresh.ParseRefresh(token, now, &cl)
	switch {
	case err == nil, errors.Is(err, ErrExpired):
		return is.revokeAs(ctx, token, &cl, now, Grant{})
	}
	return nil
}

// RevokeAny ends the session a token names, a refresh token or an access
// token (RFC 7009): its refresh tokens stop working, and its access tokens
// go on the denylist of every instance. An expired token still names its
// session; a token that is neither revokes nothing and is no error.
//
// g is the client asking (RFC 7009 §2.1) and its DPoP proof (Key, Proof,
// ProofTTL) where it sent one: a token issued to another client is
// session.ErrWrongClient, and a session bound to a DPoP key is ended only
// with a proof by that key (session.ErrKeyRequired, ErrWrongKey); the
// session's own client and binding are checked in the store's atomic
// step, the token's claims here. Each refusal ends nothing.
func (is *Issuer) RevokeAny(ctx context.Context, token []byte, g Grant) error {
	var cl Claims
	now := is.codec.clock.Now()
	err := is.refresh.ParseRefresh(token, now, &cl)
	switch {
	case err == nil, errors.Is(err, ErrExpired):
		return is.revokeAs(ctx, token, &cl, now, g)
	}
	err = is.codec.ParseAt(token, Access, now, &cl)
	if (err != nil && !errors.Is(err, ErrExpired)) || cl.Session == "" {
		return nil
	}
	return is.revokeAs(ctx, token, &cl, now, g)
}

// revokeAs ends the session of token, parsed into cl, for g: the client
// and DPoP key the token names must be g's, then the store checks the
// session's own.
func (is *Issuer) revokeAs(ctx context.Context, token []byte, cl *Claims, now time.Time, g Grant) error {
	if cl.Legacy {
		// ended whether or not it was adopted yet: the token is refused for
		// as long as it could be presented (a legacy token names no client
		// and no key; an adoption with a proof bound its session to that
		// key, which the store checks as RevokeAs does)
		st := session.Step{ID: legacySessionID(token), Gen: -1, Now: now, Subject: cl.Subject, Key: g.Key, Proof: g.Proof, ProofTTL: g.ProofTTL, ProofIssued: g.ProofIssued}
		st.TokenIssued, st.TokenExpires = legacyTimes(cl)
		err := is.store.RevokeLegacy(ctx, st)
		if errors.Is(err, session.ErrWrongKey) || errors.Is(err, session.ErrKeyRequired) {
			is.log.Warn("revocation of a DPoP-bound session without a proof by its key; refused", "sid", st.ID)
		}
		return err
	}
	id := cl.Session
	if id == "" {
		return nil
	}
	var err error
	switch jkt := cl.Confirmation.JKT; {
	case g.Client != "" && cl.ClientID != "" && cl.ClientID != g.Client:
		// a session of no client names in its tokens the client that refreshed it
		return fmt.Errorf("session %s: %w", id, session.ErrWrongClient)
	case jkt != "" && g.Key == "":
		err = fmt.Errorf("session %s: %w", id, session.ErrKeyRequired)
	case jkt != "" && g.Key != jkt:
		err = fmt.Errorf("session %s: %w", id, session.ErrWrongKey)
	default:
		err = is.store.RevokeAs(ctx, session.Step{ID: id, Now: now, Client: g.Client, Key: g.Key, Proof: g.Proof, ProofTTL: g.ProofTTL, ProofIssued: g.ProofIssued})
	}
	if errors.Is(err, session.ErrWrongKey) || errors.Is(err, session.ErrKeyRequired) {
		is.log.Warn("revocation of a DPoP-bound session without a proof by its key; refused", "sid", id)
	}
	return err
}

// legacySkew is how long past its exp a legacy token's adoption is
// remembered: the store may expire keys by a clock ahead of tokend's.
const legacySkew = 5 * time.Minute

// legacyTimes are the issue and expiry times a store keeps for legacy
// token cl (zero iat: it has none).
func legacyTimes(cl *Claims) (issued, expires time.Time) {
	if cl.IssuedAt != 0 {
		issued = time.Unix(cl.IssuedAt, 0)
	}
	return issued, time.Unix(cl.Expires, 0).Add(legacySkew)
}

// RevokeSubject ends every session of sub; deleted makes refreshes of them
// report session.ErrDeleted. With legacy tokens, those the old backend
// issued sub until now are refused too, adopted already or not.
func (is *Issuer) RevokeSubject(ctx context.Context, sub string, deleted bool) (int, error) {
	if is.cfg.Legacy {
		// first: an adoption racing this is then found by RevokeSubject or
		// refused by the cutoff (session.Store)
		if err := is.store.RevokeLegacySubject(ctx, sub, is.codec.clock.Now(), deleted); err != nil {
			return 0, err
		}
	}
	return is.store.RevokeSubject(ctx, sub, deleted)
}

// Ping reports whether the store answers.
func (is *Issuer) Ping(ctx context.Context) error { return is.store.Ping(ctx) }

// issue signs the pair for session s at its generation. Timestamps come from
// the rotation, so a retry inside the grace window gets the same claims.
// The access token names g's client and scope where set, else the
// session's, and the key the session is bound to.
func (is *Issuer) issue(s session.Session, g Grant, p *Pair) error {
	iat := s.Rotated.Unix()
	// Both tokens end with the session at the latest: an access token past
	// it would outlive the record that the denylist confirms revocations by.
	refreshExp := earlier(s.Rotated.Add(is.cfg.RefreshTTL), s.Expires)
	accessExp := earlier(s.Rotated.Add(is.cfg.AccessTTL), s.Expires)
	cl := &p.claims
	*cl = Claims{
		Issuer: is.codec.issuer, Subject: s.Subject, Session: s.ID, Gen: s.Gen,
		IssuedAt: iat, NotBefore: iat, Expires: accessExp.Unix(),
	}
	if is.cfg.NameID {
		cl.NameID = s.Subject
	}
	cl.ClientID, cl.Scope, cl.Confirmation.JKT = cmp.Or(g.Client, s.Client), cmp.Or(g.Scope, s.Scope), s.Key
	cl.Audience = Audience(cmp.Or(g.Audience, is.cfg.Audience))
	buf, err := is.codec.AppendToken(p.buf[:0], Access, cl)
	if err != nil {
		return err
	}
	mid := len(buf)
	cl.NameID = ""
	cl.Expires = refreshExp.Unix()
	buf, err = is.refresh.AppendRefresh(buf, cl)
	if err != nil {
		return err
	}
	p.buf = buf
	p.Access, p.Refresh = buf[:mid], buf[mid:]
	p.AccessExpiresIn = accessExp.Sub(s.Rotated)
	p.RefreshExpiresIn = refreshExp.Sub(s.Rotated)
	if p.Retry {
		// the tokens of an earlier rotation: what is left of their lives,
		// not the full lifetimes the rotation announced
		p.AccessExpiresIn = max(0, s.Rotated.Add(is.cfg.AccessTTL).Sub(p.At))
		p.RefreshExpiresIn = max(0, refreshExp.Sub(p.At))
	}
	p.Session, p.Scope = s, cl.Scope
	return nil
}

// earlier returns whichever of a and b comes first.
func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// JWTRefresh is the spring refresh format: a JWT with typ refresh+jwt,
// optionally accepting the old backend's tokens once (Legacy).
type JWTRefresh struct {
	Codec  *Codec
	Legacy bool
}

// AppendRefresh implements RefreshFormat.
func (f JWTRefresh) AppendRefresh(dst []byte, cl *Claims) ([]byte, error) {
	return f.Codec.AppendToken(dst, Refresh, cl)
}

// ParseRefresh implements RefreshFormat. A token tokend did not mint is
// tried as a legacy token when those are enabled.
func (f JWTRefresh) ParseRefresh(token []byte, now time.Time, cl *Claims) error {
	return f.parseRefreshKept(token, now, cl, nil)
}

// parseRefreshKept implements keptParser (kept nil: ParseRefresh).
func (f JWTRefresh) parseRefreshKept(token []byte, now time.Time, cl *Claims, kept *[]byte) error {
	err := f.Codec.parseAt(token, Refresh, now, DefaultLeeway, cl, kept)
	if err == nil || !f.Legacy || !errors.Is(err, ErrInvalid) {
		return err
	}
	var legacy Claims
	switch lerr := f.Codec.ParseLegacy(token, &legacy); {
	case lerr == nil:
		*cl = legacy
		return nil
	case errors.Is(lerr, ErrExpired):
		return lerr
	}
	return err
}

func newSessionID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// legacySessionID derives the session a legacy token starts from the token
// itself, so that presenting it twice lands on the same session record.
func legacySessionID(token []byte) string {
	sum := sha256.Sum256(token)
	return "legacy-" + base64.RawURLEncoding.EncodeToString(sum[:16])
}
