package main

// mutation is one deliberate defect: From, found exactly once in File,
// becomes To; the tests Run in Packages (with Args) must then fail.
type mutation struct {
	Name     string
	File     string
	From, To string
	Breaks   string // what the mutation breaks, for the table
	Run      string
	Args     []string
	Packages []string
}

// mutations is the list make mutants runs. A new rule comes with a new
// mutation here, so that a test is shown to notice when the rule breaks.
var mutations = []mutation{
	// Settings and the Redis client
	{Name: "wait-replicas-setting-ignored", File: "cmd/tokend/redis.go",
		From: "session.WaitReplicas(cfg.WaitReplicas)", To: "session.WaitReplicas(0)",
		Breaks: "TOKEND_REDIS_WAIT_REPLICAS silently ignored",
		Run:    "TestWaitReplicasEndToEnd", Packages: []string{"./cmd/tokend"}},
	{Name: "wait-never-sent", File: "internal/tokens/session/redis.go",
		From: "r.replicas, r.waitMS, r.proofKeys = o.replicas,", To: "r.replicas, r.waitMS, r.proofKeys = 0,",
		Breaks: "WAIT never sent: a write answered before any replica holds it",
		Run:    "TestRedisWait|TestReplicaDown", Packages: []string{"./internal/tokens/session", "./loadtest/drill"}},

	// The rotation rule (record_rotate.lua)
	{Name: "lost-rotations-taken-for-reuse", File: "internal/tokens/session/lua/record_rotate.lua",
		From: "if cur <= gen then\n  -- the record lives", To: "if cur == gen then\n  -- the record lives",
		Breaks: "a token ahead of its record (rotations a failover lost) is reuse: honest users logged out",
		Run:    "TestRedisContract|TestReplicaLinkCut", Packages: []string{"./internal/tokens/session", "./loadtest/drill"}},
	{Name: "advance-not-stored", File: "internal/tokens/session/lua/record_rotate.lua",
		From:   "  if cut then\n    redis.call('SET', KEYS[1], head .. string.sub(tail, 1, 34) .. cut .. string.sub(tail, 55), 'PXAT', deadline)\n  else\n    redis.call('SET', KEYS[1], head .. tail, 'PXAT', deadline)\n  end\n",
		To:     "",
		Breaks: "an advance answered 200 and never stored",
		Run:    "TestRedisContract|TestRedisRestart|TestClusterFailover", Packages: []string{"./internal/tokens/session", "./loadtest/drill"}},
	{Name: "retry-after-grace", File: "internal/tokens/session/lua/record_rotate.lua",
		From: "if cur == gen + 1 and now - rot < grace then", To: "if cur == gen + 1 then",
		Breaks: "a used token retried forever: replays never detected",
		Run:    "TestRedisContract", Packages: []string{"./internal/tokens/session"}},
	{Name: "retry-binds-dpop-key", File: "internal/tokens/session/lua/record_rotate.lua",
		From: "local binds = bkey == '' and key ~= '' and cur <= gen", To: "local binds = bkey == '' and key ~= ''",
		Breaks: "a thief's retry with a proof binds the session to the thief's key",
		Run:    "TestRedisContract/RetryDoesNotBind", Packages: []string{"./internal/tokens/session"}},
	{Name: "proof-jti-not-recorded", File: "internal/tokens/session/lua/record_rotate.lua",
		From:   "    if not redis.call('SET', proof, '', 'NX', 'PX', ttl) then return 10 end\n",
		To:     "    redis.call('SET', proof, '', 'PX', ttl)\n",
		Breaks: "a DPoP proof the session's record cannot answer for (the same second as its newest, older, no iat) replayed within its window",
		Run:    "TestRedisContract/Proof", Packages: []string{"./internal/tokens/session"}},
	{Name: "proof-record-replay-unchecked", File: "internal/tokens/session/lua/record_rotate.lua",
		From:   "  if riat and h1 == r1 and h2 == r2 and h3 == r3 and h4 == r4 then return 10 end\n",
		To:     "",
		Breaks: "the proof a session's record keeps as its newest (no key of its own) replayed: a second pair for its request",
		Run:    "TestRedisContract/Proof", Packages: []string{"./internal/tokens/session"}},
	{Name: "proof-displaced-keeps-no-key", File: "internal/tokens/session/lua/record_rotate.lua",
		From:   "        if now < riat * 1000 + ttl then\n",
		To:     "        if false then\n",
		Breaks: "a proof a newer one took the place of in its session's record replayed within its window",
		Run:    "TestRedisContract/Proof", Packages: []string{"./internal/tokens/session"}},
	{Name: "memory-proof-record-replay-unchecked", File: "internal/tokens/session/memory.go",
		From:   "if r.proof != nil && r.proof.name == proofName(st) {\n\t\treturn false\n\t}\n",
		To:     "",
		Breaks: "the memory store takes its session's newest proof again (Redis refuses it)",
		Run:    "TestMemoryContract/Proof", Packages: []string{"./internal/tokens/session"}},
	{Name: "owner-check-removed", File: "internal/tokens/session/lua/record_rotate.lua",
		From: "elseif ARGV[2] ~= '' and ARGV[2] ~= tail then return 7 end", To: "end",
		Breaks: "another user's refresh token accepted with an aspnet Token",
		Run:    "TestRedisContract", Packages: []string{"./internal/tokens/session"}},
	{Name: "expiry-check-removed", File: "internal/tokens/session/lua/record_rotate.lua",
		From: "if now >= exp then return 6 end\n", To: "",
		Breaks: "a session refreshed past its absolute end",
		Run:    "TestRedisContract", Packages: []string{"./internal/tokens/session"}},
	{Name: "unacknowledged-mark-ignored", File: "internal/tokens/session/lua/record_rotate.lua",
		From: "if cur == gen + 1 and unacked then", To: "if false then",
		Breaks: "a 503'd rotation's retry after the grace window is reuse: honest users logged out when a replica lags",
		Run:    "TestRedisWait", Packages: []string{"./internal/tokens/session"}},

	// Sessions still in the hash record of an earlier tokend (rotate.lua)
	{Name: "hash-record-unacked-ignored", File: "internal/tokens/session/lua/rotate.lua",
		From: "if cur == gen + 1 and unacked then", To: "if false then",
		Breaks: "a 503'd rotation of an earlier session is reuse after the grace window: its user logged out when a replica lags",
		Run:    "TestRedisWaitHashRecordUnacknowledged", Packages: []string{"./internal/tokens/session"}},
	{Name: "hash-record-owner-check-removed", File: "internal/tokens/session/lua/rotate.lua",
		From: "if owner ~= '' and owner ~= s[1] then return {7} end\n", To: "",
		Breaks: "another user's refresh token accepted on an earlier session (aspnet)",
		Run:    "TestRedisEarlierContract", Packages: []string{"./internal/tokens/session"}},
	{Name: "hash-record-expiry-check-removed", File: "internal/tokens/session/lua/rotate.lua",
		From: "if now >= exp then return {6} end\n", To: "",
		Breaks: "an earlier session refreshed past its absolute end",
		Run:    "TestRedisEarlierContract", Packages: []string{"./internal/tokens/session"}},

	// Revocation checked like a refresh (record_revoke_as.lua)
	{Name: "revoke-any-client", File: "internal/tokens/session/lua/record_revoke_as.lua",
		From: "if ARGV[1] ~= '' and cl ~= '' and ARGV[1] ~= cl then return 8 end", To: "",
		Breaks: "a session ended by a client it was not issued to (RFC 7009 §2.1)",
		Run:    "TestRedisContract/RevokeAs", Packages: []string{"./internal/tokens/session"}},
	{Name: "revoke-as-unacked-read-as-extension", File: "internal/tokens/session/lua/record_revoke_as.lua",
		From: "if string.byte(v, 24) % 4 >= 2 then", To: "if string.byte(v, 24) >= 2 then",
		Breaks: "a plain session whose rotation is unacknowledged cannot be logged out (a Lua error, a 500)",
		Run:    "TestRedisRevokeAsUnacknowledgedRecord", Packages: []string{"./internal/tokens/session"}},
	{Name: "legacy-revoke-binding-ignored", File: "internal/tokens/session/lua/record_revoke.lua",
		From: "if v and ARGV[3] then", To: "if false then",
		Breaks: "a used legacy token, seen in a log, logs out the DPoP-bound session it adopted",
		Run:    "TestRedisContract/LegacyRevokeBoundNeedsItsKey", Packages: []string{"./internal/tokens/session"}},

	// Subjects, deletions, legacy tokens
	{Name: "uuid-dashes-anywhere", File: "internal/tokens/session/record.go",
		From: "if i == 8 || i == 13 || i == 18 || i == 23 {", To: "if s[i] == '-' {",
		Breaks: "a subject stored as another user's (its UUID spelling normalised)",
		Run:    "TestRedisContract/Subject|TestSubjectPacking", Packages: []string{"./internal/tokens/session"}},
	{Name: "legacy-adoption-scope-unchecked", File: "internal/tokens/session/lua/record_rotate.lua",
		From: "if scope and string.find(scope, '%S') then return 12 end", To: "",
		Breaks: "an adoption at /oauth2/token signs an access token with any scope asked",
		Run:    "TestRedisContract/LegacyAdoptionScope", Packages: []string{"./internal/tokens/session"}},
	{Name: "legacy-mark-ignored", File: "internal/tokens/session/lua/record_rotate.lua",
		From: "  if m then\n", To: "  if false then\n",
		Breaks: "a legacy token accepted again once its adopted session is gone",
		Run:    "TestRedisContract/Legacy", Packages: []string{"./internal/tokens/session"}},

	// Revocation: the denylist and the feed
	{Name: "denylist-previous-generation-ignored", File: "internal/tokens/denylist/denylist.go",
		From: "if !g.cur.has(id) && !g.prev.has(id) {", To: "if !g.cur.has(id) {",
		Breaks: "revoked sessions' access tokens accepted again after a window rollover",
		Run:    "TestDenylistGenerations", Packages: []string{"./internal/tokens/denylist"}},
	{Name: "gone-record-not-revoked", File: "internal/tokens/session/redisfeed.go",
		From: "return Revocation{ID: id, Gone: true}, true, nil // no record in either form", To: "return Revocation{}, false, nil // no record in either form",
		Breaks: "a revoked session whose record expired answers 'not revoked' (fail open)",
		Run:    "TestRedisContract/LookupRecordGone|TestDenylistRecordsGone", Packages: []string{"./internal/tokens/session", "./internal/tokens/denylist"}},

	// Tokens
	{Name: "access-token-outlives-session", File: "internal/tokens/issuer.go",
		From: "accessExp := earlier(s.Rotated.Add(is.cfg.AccessTTL), s.Expires)", To: "accessExp := s.Rotated.Add(is.cfg.AccessTTL)",
		Breaks: "an access token valid up to TOKEND_ACCESS_TTL past its session's end",
		Run:    "TestIssuerAccessCappedAtSessionEnd", Packages: []string{"./internal/tokens"}},
	{Name: "nbf-leeway-removed", File: "internal/tokens/jwt.go",
		From: "if cl.NotBefore > at.Add(leeway).Unix() {", To: "if cl.NotBefore > at.Unix() {",
		Breaks: "a resource server a little behind refuses fresh tokens",
		Run:    "TestNotBeforeLeeway", Packages: []string{"./internal/tokens"}},

	// DPoP proofs
	{Name: "ed25519-s-not-canonical", File: "internal/tokens/dpop/ed25519.go",
		From: "if _, err := s.SetCanonicalBytes(sig[32:]); err != nil {", To: "if _, err := s.SetUniformBytes(append(sig[32:64:64], make([]byte, 32)...)); err != nil {",
		Breaks: "the cached-point Ed25519 check accepts S + l, a second signature of the same proof (RFC 8032 §5.1.7)",
		Run:    "TestEdKeyVerify", Packages: []string{"./internal/tokens/dpop"}},

	// The dialects' error tables
	{Name: "spring-reuse-answered-400", File: "server/spring/spring.go",
		From: `row(session.ErrReuse, 401, "Unauthorized", "Invalid JWT token"),`, To: `row(session.ErrReuse, 400, "Bad Request", "Invalid request body"),`,
		Breaks: "spring's answer to a replayed token differs from the old backend's",
		Run:    "TestSpring", Packages: []string{"./cmd/tokend"}},
	{Name: "aspnet-owner-refusal-reveals", File: "server/aspnet/aspnet.go",
		From: "row(session.ErrNotOwner, 404, invalidRefreshToken),", To: "row(session.ErrNotOwner, 401, invalidRefreshToken),",
		Breaks: "aspnet tells another user's refresh token apart (an oracle)",
		Run:    "TestAspnet", Packages: []string{"./cmd/tokend"}},
}
