-- Rotate a session: the whole rotation rule (docs/design.md) in one atomic
-- step, on its packed record (record.go): a GET and a SET.
-- KEYS[1]  the record
-- ARGV[1]  packed, big-endian: gen presented (int32; -1 adopts a legacy
--          token), now ms (int48), idle deadline ms (int48: now + idle),
--          grace ms (uint32)
-- ARGV[2]  owner (packed subject; '' = anyone)
-- ARGV[3], ARGV[4]  adoption only: the new record, its PXAT
-- Returns  the record as it was, for an advance (the caller knows the rest:
--          gen + 1, rotated now, and the rotations lost when its gen was
--          behind); {2, record} retry; {3, record} reuse (now revoked);
--          4 revoked, 5 deleted, 6 expired, 7 another subject's, 0 missing.
-- Few, short arguments and a short answer: Redis' CPU per refresh is what
-- sizes the Redis fleet (one packed argument instead of four numbers in
-- decimal: -9% of Redis CPU per rotation, bench/RESULTS.md).
local v = redis.call('GET', KEYS[1])
local gen, now, deadline, grace = struct.unpack('>i4i6i6I4', ARGV[1])
if not v then
  if gen ~= -1 then return 0 end
  -- adoption of a legacy token: the session starts at generation 0
  redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[4])
  return ARGV[3]
end
local cur, x, exp, rot = struct.unpack('>I4Bxxxxxxi6i6', v)
if ARGV[2] ~= '' and ARGV[2] ~= string.sub(v, 24) then return 7 end
if x ~= 0 then return 3 + x end
if now >= exp then return 6 end
-- cur < gen: a token ahead of its record was signed for rotations the record
-- lost (a failover to a replica that missed them, an fsync that did not
-- happen): it advances past them, so the client holding it stays logged in.
if cur <= gen then
  -- the record lives as long as the newest refresh token: idle deadline or
  -- the session's end
  if exp < deadline then deadline = exp end
  redis.call('SET', KEYS[1], struct.pack('>I4', gen + 1) .. string.sub(v, 5, 17) .. struct.pack('>i6', now) .. string.sub(v, 24), 'PXAT', deadline)
  return v
end
if cur == gen + 1 and now - rot < grace then
  -- written again (the same value) so that WAIT, when asked for, confirms
  -- this connection's replicas hold the rotation the retry hands out again
  redis.call('SET', KEYS[1], v, 'KEEPTTL')
  return {2, v}
end
redis.call('SET', KEYS[1], string.sub(v, 1, 4) .. '\1' .. string.sub(v, 6), 'KEEPTTL')
return {3, v}
