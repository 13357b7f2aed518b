-- Rotate a session kept in the hash record of tokend before the packed
-- record (record.go): sessions created then rotate where they are until they
-- expire. The whole rotation rule (docs/design.md) in one atomic step.
-- KEYS[1]  session hash: u sub, g gen, c created, e expires, r rotated (ms), x state,
--          k '1' while the rotation is unacknowledged (as the packed record's kind bit 2)
-- ARGV     gen presented, the next gen (gen + 1), now ms, grace ms,
--          idle deadline ms (now + idle), owner ('' = anyone),
--          '1' when a scope is asked ('' = none; these records have none),
--          '1' when tokend waits for replicas: what it writes is marked
--          unacknowledged until legacy_ack.lua (record_rotate.lua's mark)
-- Returns  {code, sub, gen, created, expires, rotated, lost}
--   code 1 advanced (lost: rotations the record had lost; an unacknowledged
--        rotation made again: gen as it was, rotated now), 2 retry,
--        3 reuse (now revoked: {3, sub}), 4 revoked, 5 deleted,
--        6 expired, 7 another subject's session, 12 a scope asked,
--        0 missing
-- Adoptions (gen -1) are made in the packed record (record_rotate.lua):
-- this script only sees the records that exist.
-- What it writes it takes from ARGV and the record as strings: a Lua number
-- is turned back into a string with snprintf, a visible share of the script.
local gen   = tonumber(ARGV[1])
local now   = tonumber(ARGV[3])
local grace = tonumber(ARGV[4])
local owner = ARGV[6]

local s = redis.call('HMGET', KEYS[1], 'u', 'g', 'c', 'e', 'r', 'x', 'k')
if not s[1] then return {0} end

local cur, created, exp, rot = tonumber(s[2]), tonumber(s[3]), tonumber(s[4]), tonumber(s[5])
if owner ~= '' and owner ~= s[1] then return {7} end
if s[6] == '2' then return {5} end
if s[6] == '1' then return {4} end
if now >= exp then return {6} end
-- after the checks the packed record makes first, as the memory store does:
-- a missing or revoked session is not taken for a scope refusal
if ARGV[7] == '1' then return {12} end
-- cur < gen: a token ahead of its record was signed for rotations the record
-- lost (a failover to a replica that missed them, an fsync that did not
-- happen): it advances past them, so the client holding it stays logged in.
local mark, unacked = ARGV[8] == '1', s[7] == '1'
if cur <= gen then
  redis.call('HSET', KEYS[1], 'g', ARGV[2], 'r', ARGV[3])
  if mark then redis.call('HSET', KEYS[1], 'k', '1') elseif unacked then redis.call('HSET', KEYS[1], 'k', '0') end
  -- the record lives as long as the newest refresh token: idle deadline or the session's end
  local deadline = ARGV[5]
  if exp < tonumber(deadline) then deadline = s[4] end
  redis.call('PEXPIREAT', KEYS[1], deadline)
  return {1, s[1], gen + 1, created, exp, now, gen - cur}
end
if cur == gen + 1 and now - rot < grace then
  -- written again (the same value) so that WAIT, when asked for, confirms
  -- this connection's replicas hold the rotation the retry hands out again
  redis.call('HSET', KEYS[1], 'g', s[2])
  if unacked and not mark then redis.call('HSET', KEYS[1], 'k', '0') end
  return {2, s[1], cur, created, exp, rot, 0}
end
if cur == gen + 1 and unacked then
  -- no answer of this rotation is known to have gone out: made again from
  -- now, as record_rotate.lua does, not taken for reuse
  redis.call('HSET', KEYS[1], 'r', ARGV[3])
  if not mark then redis.call('HSET', KEYS[1], 'k', '0') end
  local deadline = ARGV[5]
  if exp < tonumber(deadline) then deadline = s[4] end
  redis.call('PEXPIREAT', KEYS[1], deadline)
  return {1, s[1], cur, created, exp, now, 0}
end
redis.call('HSET', KEYS[1], 'x', 1)
return {3, s[1]}
