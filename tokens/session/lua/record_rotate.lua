-- Rotate a session: the whole rotation rule (docs/design.md) in one atomic
-- step, on its packed record (record.go): a GET and a SET.
-- KEYS[1]  the record
-- ARGV     gen presented, now ms, idle deadline ms (now + idle), grace ms,
--          owner (packed subject; '' = anyone), [record, PXAT: adoption]
-- Returns  the record as it was, for an advance (the caller knows the rest:
--          gen + 1, rotated now, and the rotations lost when its gen was
--          behind); {2, record} retry; {3, record} reuse (now revoked);
--          4 revoked, 5 deleted, 6 expired, 7 another subject's, 0 missing.
-- Short answers, few arguments, no number turned back into a string: Redis'
-- CPU per refresh is what sizes the Redis fleet.
local v = redis.call('GET', KEYS[1])
local gen = tonumber(ARGV[1])
if not v then
  if gen ~= -1 then return 0 end
  -- adoption of a legacy token: the session starts at generation 0
  redis.call('SET', KEYS[1], ARGV[6], 'PXAT', ARGV[7])
  return ARGV[6]
end
local cur, x, exp, rot = struct.unpack('>I4Bxxxxxxi6i6', v)
if ARGV[5] ~= '' and ARGV[5] ~= string.sub(v, 24) then return 7 end
if x ~= 0 then return 3 + x end
local now = tonumber(ARGV[2])
if now >= exp then return 6 end
-- cur < gen: a token ahead of its record was signed for rotations the record
-- lost (a failover to a replica that missed them, an fsync that did not
-- happen): it advances past them, so the client holding it stays logged in.
if cur <= gen then
  -- the record lives as long as the newest refresh token: idle deadline or
  -- the session's end (ARGV[3] as given: a Lua number would be formatted back)
  local deadline = ARGV[3]
  if exp < tonumber(deadline) then deadline = exp end
  redis.call('SET', KEYS[1], struct.pack('>I4', gen + 1) .. string.sub(v, 5, 17) .. struct.pack('>i6', now) .. string.sub(v, 24), 'PXAT', deadline)
  return v
end
if cur == gen + 1 and now - rot < tonumber(ARGV[4]) then
  -- written again (the same value) so that WAIT, when asked for, confirms
  -- this connection's replicas hold the rotation the retry hands out again
  redis.call('SET', KEYS[1], v, 'KEEPTTL')
  return {2, v}
end
redis.call('SET', KEYS[1], string.sub(v, 1, 4) .. '\1' .. string.sub(v, 6), 'KEEPTTL')
return {3, v}
