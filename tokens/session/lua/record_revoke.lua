-- Mark a session revoked (ARGV[1] = 1) or its subject deleted (2), on its
-- packed record (record.go). Never downgrades a deletion.
-- KEYS[1]: the record.
-- KEYS[2], ARGV[2]: a legacy token's revocation only: its adoption mark
-- (record_rotate.lua), raised to the same state and kept until ARGV[2] ms
-- at least, so that the token stays refused once the record is gone, or
-- when there was none yet.
-- Returns 0 for a missing session, else {ended, the record as it is now}:
-- ended is 1 when the session was active until now.
local to = tonumber(ARGV[1])
if KEYS[2] then
  local m = tonumber(redis.call('GET', KEYS[2]) or '0')
  local at = math.max(redis.call('PEXPIRETIME', KEYS[2]), tonumber(ARGV[2]))
  redis.call('SET', KEYS[2], tostring(math.max(m, to)), 'PXAT', at)
end
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local x = string.byte(v, 5)
if x >= to then return {0, v} end
v = string.sub(v, 1, 4) .. string.char(to) .. string.sub(v, 6)
redis.call('SET', KEYS[1], v, 'KEEPTTL')
if x == 0 then return {1, v} end
return {0, v}
