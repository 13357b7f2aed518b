-- Rotate a session: the whole rotation rule (docs/design.md) in one atomic
-- step, on its packed record (record.go): a GET and a SET.
-- KEYS[1]  the record
-- KEYS[2]  an adoption (gen -1) only: the legacy token's adoption mark
-- KEYS[2], or KEYS[3] for an adoption  OAuth 2.0 with DPoP only: the
--          proof's jti, recorded once
-- ARGV[1]  packed, big-endian: gen presented (int32; -1 adopts a legacy
--          token), now ms (int48), idle deadline ms (int48: now + idle),
--          grace ms (uint32), mark (byte: 1 when tokend waits for replicas:
--          an advance, and a rotation not acknowledged yet, are written
--          marked unacknowledged, kind bit 2, until record_ack.lua says an
--          answer of it went out)
-- ARGV[2]  owner (packed subject; '' = anyone)
-- ARGV[3..6]  OAuth 2.0 only, trailing empty ones left out: client, scope
--          requested, DPoP key thumbprint (32 bytes; '' = no proof), the
--          proof jti's lifetime ms
-- ARGV[7], ARGV[8], ARGV[9]  adoption only: the new record, its PXAT, and
--          the adoption mark's (the legacy token's expiry)
-- Returns  the record as it was, for an advance (the caller knows the rest:
--          gen + 1, rotated now, the key it bound, and the rotations lost
--          when its gen was behind; a record at gen + 1 is an unacknowledged
--          rotation made again, which binds nothing); {2, record} retry; {3, record} reuse
--          (now revoked); 4 revoked, 5 deleted, 6 expired, 7 another
--          subject's, 8 another client's, 9 bound and no proof, 10 proof
--          used already, 11 bound to another key, 12 scope not the
--          session's, 0 missing. 7 to 12 change nothing.
-- Few, short arguments and a short answer: Redis' CPU per refresh is what
-- sizes the Redis fleet (one packed argument instead of four numbers in
-- decimal: -9% of Redis CPU per rotation, bench/RESULTS.md).
local v = redis.call('GET', KEYS[1])
local gen, now, deadline, grace, mark = struct.unpack('>i4i6i6I4B', ARGV[1])
local client, scope, key = ARGV[3], ARGV[4], ARGV[5] or ''
local proof = KEYS[2]
if gen == -1 then proof = KEYS[3] end
if not v then
  if gen ~= -1 then return 0 end
  -- a legacy token adopted (its session since gone: 6) or revoked (4, 5)
  -- already: accepted once for as long as it could be presented
  local m = redis.call('GET', KEYS[2])
  if m then
    if m == '0' then return 6 end
    return 3 + tonumber(m)
  end
  -- the new session has no scope (a legacy token carries none): any item
  -- asked is refused, as on any session without it, before anything changes
  if scope and string.find(scope, '%S') then return 12 end
  if proof and not redis.call('SET', proof, '', 'NX', 'PX', ARGV[6]) then return 10 end
  -- adoption of a legacy token: the session starts at generation 0
  redis.call('SET', KEYS[1], ARGV[7], 'PXAT', ARGV[8])
  redis.call('SET', KEYS[2], '0', 'PXAT', ARGV[9])
  return ARGV[7]
end
local cur, x, exp, rot, kind = struct.unpack('>I4Bxxxxxxi6i6B', v)
-- tail: the kind byte and what follows it, the packed subject of a plain
-- record; an extended one has its key, client and scope before the subject.
-- Bit 2 of kind (unacknowledged) is set apart: tail and kind go without it.
local tail, bound, cl, sc, at = string.sub(v, 24), '', '', '', 25
local unacked = kind >= 4
if unacked then
  kind = kind - 4
  tail = string.char(kind) .. string.sub(v, 25)
end
if kind >= 2 then
  bound, cl, sc, at = struct.unpack('>Bc0Bc0Hc0', v, 25)
  if ARGV[2] ~= '' and ARGV[2] ~= string.char(kind - 2) .. string.sub(v, at) then return 7 end
elseif ARGV[2] ~= '' and ARGV[2] ~= tail then return 7 end
if client and client ~= '' and cl ~= '' and client ~= cl then return 8 end
if x ~= 0 then return 3 + x end
if now >= exp then return 6 end
if bound ~= '' and key ~= bound then
  if key == '' then return 9 end
  return 11
end
if scope and scope ~= '' then
  -- items split alike on both sides (ASCII white space, as session.inScope)
  local have = {}
  for s in string.gmatch(sc, '%S+') do have[s] = true end
  for s in string.gmatch(scope, '%S+') do
    if not have[s] then return 12 end
  end
end
if proof and not redis.call('SET', proof, '', 'NX', 'PX', ARGV[6]) then return 10 end
if bound == '' and key ~= '' and cur <= gen then
  -- the first proof binds the session to its key, for good; only on an
  -- advance: a retry is anyone's who holds the used-up token, and must not
  -- change who holds the session
  tail = string.char(kind % 2 + 2, 32) .. key .. string.char(#cl) .. cl .. struct.pack('>H', #sc) .. sc .. string.sub(v, at)
end
-- marked: an advance, or a rotation no answer of which went out yet; a
-- retry of an acknowledged one stays acknowledged (its parent is reuse
-- after the grace window, as without WAIT)
if mark == 1 and (cur ~= gen + 1 or unacked) then tail = string.char(string.byte(tail) + 4) .. string.sub(tail, 2) end
-- cur < gen: a token ahead of its record was signed for rotations the record
-- lost (a failover to a replica that missed them, an fsync that did not
-- happen): it advances past them, so the client holding it stays logged in.
if cur <= gen then
  -- the record lives as long as the newest refresh token: idle deadline or
  -- the session's end
  if exp < deadline then deadline = exp end
  redis.call('SET', KEYS[1], struct.pack('>I4', gen + 1) .. string.sub(v, 5, 17) .. struct.pack('>i6', now) .. tail, 'PXAT', deadline)
  return v
end
if cur == gen + 1 and now - rot < grace then
  -- written again (the same value) so that WAIT, when asked for, confirms
  -- this connection's replicas hold the rotation the retry hands out again
  redis.call('SET', KEYS[1], string.sub(v, 1, 23) .. tail, 'KEEPTTL')
  return {2, v}
end
if cur == gen + 1 and unacked then
  -- no answer of this rotation is known to have gone out (its WAIT failed,
  -- or its answer was never read): the parent is its client's retry, not
  -- reuse, until an answer goes out or the child is presented. Made again
  -- from now (a new grace window, the record's life from now), binding
  -- nothing: a thief holding the parent gets what the client would, no more
  if exp < deadline then deadline = exp end
  redis.call('SET', KEYS[1], string.sub(v, 1, 17) .. struct.pack('>i6', now) .. tail, 'PXAT', deadline)
  return v
end
redis.call('SET', KEYS[1], string.sub(v, 1, 4) .. '\1' .. string.sub(v, 6), 'KEEPTTL')
return {3, v}
