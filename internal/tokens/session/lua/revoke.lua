-- Mark a session of the hash record (before the packed one) revoked (ARGV[1] = 1) or its subject deleted (2). Never
-- downgrades a deletion. KEYS[1]: session hash.
-- Returns 0 for a missing session, else {ended, sub, state}: ended is 1 when
-- the session was active until now, state what it is now (1 or 2).
local s = redis.call('HMGET', KEYS[1], 'u', 'x')
if not s[1] then return 0 end
local x, to = tonumber(s[2]), tonumber(ARGV[1])
local ended = 0
if x < to then
  redis.call('HSET', KEYS[1], 'x', to)
  if x == 0 then ended = 1 end
  x = to
end
return {ended, s[1], x}
