-- Rotate a session: the whole rotation rule (docs/design.md) in one atomic
-- step, on its packed record (record.go): a GET and a SET.
-- KEYS[1]  the record
-- KEYS[2]  an adoption (gen -1) only: the legacy token's adoption mark
-- KEYS[2], or KEYS[3] for an adoption  OAuth 2.0 with DPoP only: the
--          proof's own key (its last 16 bytes name the proof), written only
--          when the record cannot answer for the proof alone (below)
-- ARGV[1]  packed, big-endian: gen presented (int32; -1 adopts a legacy
--          token), now ms (int48), idle deadline ms (int48: now + idle),
--          grace ms (uint32), mark (byte: 1 when tokend waits for replicas:
--          an advance, and a rotation not acknowledged yet, are written
--          marked unacknowledged, kind bit 2, until record_ack.lua says an
--          answer of it went out); with a DPoP proof (else zeros): how long
--          a proof's key lives ms (uint32), keys (byte: 1 = every proof gets
--          its key and no record gains the proof field, as tokend 0.1.0,
--          which reads no such field, runs beside this one)
-- ARGV[2]  owner (packed subject; '' = anyone)
-- ARGV[3..6]  OAuth 2.0 only, trailing empty ones left out: client, scope
--          requested, DPoP key thumbprint (32 bytes; '' = no proof), and
--          the proof as a record keeps it: its iat s (uint32; 0 unknown)
--          and the 16 bytes naming it (its key's last)
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
local gen, now, deadline, grace, mark, ttl, keys = struct.unpack('>i4i6i6I4BI4B', ARGV[1])
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
  if proof and not redis.call('SET', proof, '', 'NX', 'PX', ttl) then return 10 end
  -- adoption of a legacy token: the session starts at generation 0
  redis.call('SET', KEYS[1], ARGV[7], 'PXAT', ARGV[8])
  redis.call('SET', KEYS[2], '0', 'PXAT', ARGV[9])
  return ARGV[7]
end
local cur, x, created, exp, rot, kind = struct.unpack('>I4Bi6i6i6B', v)
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
-- bound: the key's 32 bytes, then (52) the session's newest proof: its iat
-- and 16 bytes naming it, as its key would
local bkey = bound
if #bound == 52 then bkey = string.sub(bound, 1, 32) end
if bkey ~= '' and key ~= bkey then
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
-- A proof is used once per session (docs/design.md). The record keeps the
-- newest proof it accepted, newest by iat; every other proof accepted for
-- the session within its time has a key of its own. So a proof newer than
-- the record's was never used here: no key read or written (the common
-- refresh, minutes after the last). The record's own proof is a replay;
-- any other proof, or any when the record keeps none (unbound, or written
-- by an earlier tokend), is decided by SET NX of its key. Few calls and
-- strings on the common path: they are most of what a DPoP refresh costs
-- Redis beyond a plain one (bench/rediscost_test.go).
local newbound, cut
if proof then
  -- numbers, not strings: a string costs Redis a hash and an allocation
  local field = ARGV[6]
  local iat, h1, h2, h3, h4 = struct.unpack('>I4I4I4I4I4', field)
  local riat, r1, r2, r3, r4
  if #bound == 52 then riat, r1, r2, r3, r4 = struct.unpack('>I4I4I4I4I4', bound, 33) end
  if riat and h1 == r1 and h2 == r2 and h3 == r3 and h4 == r4 then return 10 end
  if not riat or keys == 1 or iat <= riat then
    if not redis.call('SET', proof, '', 'NX', 'PX', ttl) then return 10 end
  end
  -- what the record keeps once this proof is used, if anything changes:
  -- never on reuse (the session ends), nor unbound (a retry binds nothing)
  if not (cur > gen + 1 or (cur == gen + 1 and now - rot >= grace and not unacked)) then
    local binds = bkey == '' and key ~= '' and cur <= gen
    if riat and keys == 1 then
      -- beside tokend 0.1.0: the record goes back to what it reads, the
      -- proof it kept to a key of its own while an instance could take it
      newbound = key
      if now < riat * 1000 + ttl then
        redis.call('SET', string.sub(proof, 1, -17) .. string.sub(bound, 37), '', 'PX', ttl)
      end
    elseif riat then
      if iat > riat then
        -- the field is bytes 35 to 54 of tail (kind, key length, key
        -- first): cut in where the record is written
        cut = field
        -- the proof it replaces keeps a key while some instance could still
        -- take it: its iat is then at most the window old
        if now < riat * 1000 + ttl then
          redis.call('SET', string.sub(proof, 1, -17) .. string.sub(bound, 37), '', 'PX', ttl)
        end
      end
    elseif keys == 0 and (bkey ~= '' or binds) then
      -- the record gains the field: proofs used before it have keys, with
      -- iat up to a window past now; kept as if that new, so that no proof
      -- as new as those skips its key
      newbound = key .. struct.pack('>I4', math.max(iat, math.ceil((now + ttl) / 1000))) .. string.sub(field, 5)
    elseif binds then
      newbound = key
    end
  end
elseif bound == '' and key ~= '' and cur <= gen then
  newbound = key -- a key without a proof binds as well (a store's own callers)
end
if newbound then
  -- the first proof binds the session to its key, for good; only on an
  -- advance: a retry is anyone's who holds the used-up token, and must not
  -- change who holds the session
  tail = string.char(kind % 2 + 2, #newbound) .. newbound .. string.char(#cl) .. cl .. struct.pack('>H', #sc) .. sc .. string.sub(v, at)
end
if cut and (mark == 1 or cur > gen) then
  -- an advance without WAIT writes the field in its one concatenation below
  tail, cut = string.sub(tail, 1, 34) .. cut .. string.sub(tail, 55), nil
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
  -- one pack and one concatenation: each string made costs Redis a hash
  -- and an allocation
  local head = struct.pack('>I4Bi6i6i6', gen + 1, x, created, exp, now)
  if cut then
    redis.call('SET', KEYS[1], head .. string.sub(tail, 1, 34) .. cut .. string.sub(tail, 55), 'PXAT', deadline)
  else
    redis.call('SET', KEYS[1], head .. tail, 'PXAT', deadline)
  end
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
